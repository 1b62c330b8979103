#!/usr/bin/env bash
# Thin wrapper: the runner needs Node 24 (type stripping), not the system node.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec "$root/node_modules/.bin/node" "$root/scripts/test.ts" "$@"
