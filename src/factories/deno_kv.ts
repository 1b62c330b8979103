/**
 * A {@linkcode Factory} of Deno KV handles: `Deno.openKv` on Deno (found through `globalThis`,
 * so it needs `--unstable-kv` where KV is still unstable), or any compatible `openKv` passed in,
 * such as the npm [`@deno/kv`](https://www.npmjs.com/package/@deno/kv) client on Node, Bun and
 * Deno. On Bun, `@deno/kv` needs a serializer: pass
 * `openKv: (path) => openKv(path, makeLimitedV8Serializer())` (strings, booleans and null only)
 * or your own `encodeV8`/`decodeV8`.
 *
 * @example With the npm client (Node, Deno)
 * ```ts
 * import { openKv } from "@deno/kv";
 * import { Pool } from "@edgepool/pool";
 * import { denoKvFactory } from "@edgepool/pool/deno-kv";
 * import assert from "node:assert/strict";
 *
 * // No path: an in-memory database per handle.
 * await using pool = new Pool(denoKvFactory(undefined, { openKv }), { max: 2 });
 * const entry = await pool.use(async (kv) => {
 *   await kv.set(["greeting"], "hello");
 *   return await kv.get<string>(["greeting"]);
 * });
 * assert.equal(entry.value, "hello");
 * ```
 *
 * @module
 */

import type { Factory, ResourceInfo } from "../options.ts";
import { raceSignal } from "./_signal.ts";

export type { Factory, ResourceInfo };

/**
 * What the factory needs of a KV handle (`Deno.Kv` and `@deno/kv`'s `Kv` both fit).
 *
 * @example A fake handle for tests
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import { denoKvFactory, type KvHandle } from "@edgepool/pool/deno-kv";
 * import assert from "node:assert/strict";
 *
 * // Anything with get() and close() fits.
 * class FakeKv implements KvHandle {
 *   closed = false;
 *   get = (key: readonly unknown[]) => Promise.resolve({ key, value: null, versionstamp: null });
 *   close = () => void (this.closed = true);
 * }
 * const pool = new Pool(denoKvFactory(undefined, { openKv: () => Promise.resolve(new FakeKv()) }));
 * const kv = await pool.use((kv) => kv);
 * await pool.close();
 * assert.equal(kv.closed, true); // destroy() closed it
 * ```
 */
export interface KvHandle {
  /** Reads one key. */
  get(key: readonly unknown[]): Promise<unknown>;
  /** Closes the handle. */
  close(): void;
}

/**
 * Opens a KV database: `Deno.openKv`, or `openKv` from `@deno/kv`.
 *
 * @example Count the handles opened
 * ```ts
 * import { type Kv, openKv } from "@deno/kv";
 * import { Pool } from "@edgepool/pool";
 * import { denoKvFactory, type OpenKv } from "@edgepool/pool/deno-kv";
 * import assert from "node:assert/strict";
 *
 * let opened = 0;
 * const counting: OpenKv<Kv> = (path) => {
 *   opened++;
 *   return openKv(path);
 * };
 * await using pool = new Pool(denoKvFactory(undefined, { openKv: counting }), { max: 2 });
 * await pool.use((kv) => kv.set(["visits"], 1));
 * const entry = await pool.use((kv) => kv.get<number>(["visits"]));
 * assert.deepEqual([entry.value, opened], [1, 1]); // one handle, opened once, reused
 * ```
 */
export type OpenKv<K extends KvHandle> = (path?: string) => Promise<K>;

/**
 * Options of {@linkcode denoKvFactory}.
 *
 * @example The npm client, and a key of your own to validate with
 * ```ts
 * import { type Kv, openKv } from "@deno/kv";
 * import { Pool } from "@edgepool/pool";
 * import { denoKvFactory, type DenoKvFactoryOptions } from "@edgepool/pool/deno-kv";
 * import assert from "node:assert/strict";
 *
 * const options: DenoKvFactoryOptions<Kv> = { openKv, validateKey: ["health", "ping"] };
 * // validateBypassMs: 0 validates (reads validateKey) on every reuse, to show it here.
 * await using pool = new Pool(denoKvFactory(undefined, options), { validateBypassMs: 0 });
 * await pool.use(() => {});
 * await pool.use(() => {});
 * assert.deepEqual([pool.stats().validations, pool.stats().validationFailures], [1, 0]);
 * ```
 */
export interface DenoKvFactoryOptions<K extends KvHandle> {
  /** How to open a handle. @default {globalThis.Deno.openKv, when it exists} */
  openKv?: OpenKv<K>;
  /** The key `validate()` reads. @default {["__edgepool", "validate"]} */
  validateKey?: readonly unknown[];
}

/** `Deno.openKv` when this runtime has it (Deno with KV enabled). */
function builtinOpenKv(): OpenKv<KvHandle> | undefined {
  const deno = (globalThis as { Deno?: { openKv?: OpenKv<KvHandle> } }).Deno;
  return typeof deno?.openKv === "function" ? deno.openKv.bind(deno) : undefined;
}

/**
 * Makes a factory of KV handles on the database at `path` (the runtime's default database
 * when omitted) for a {@linkcode Pool}.
 *
 * - `create()` opens a handle; with neither `openKv` nor `Deno.openKv` it throws an error that
 *   says what to pass.
 * - `validate()` reads `validateKey`, bounded by the pool's `validateTimeoutMs`.
 * - `destroy()` closes the handle.
 * - `isBroken()` is true for errors about a closed handle.
 *
 * @example On Deno with `--unstable-kv`
 * ```ts ignore
 * import { Pool } from "@edgepool/pool";
 * import { denoKvFactory } from "@edgepool/pool/deno-kv";
 *
 * await using pool = new Pool(denoKvFactory("./app.db", { openKv: Deno.openKv }), { max: 4 });
 * const entry = await pool.use((kv) => kv.get<string>(["greeting"]));
 * ```
 */
export function denoKvFactory<K extends KvHandle = KvHandle>(
  path?: string,
  options: DenoKvFactoryOptions<K> = {},
): Factory<K> {
  if (path !== undefined && typeof path !== "string") {
    throw new TypeError(`path must be a string or undefined, received ${typeof path}`);
  }
  if (options === null || typeof options !== "object") {
    throw new TypeError("options must be an object");
  }
  if (options.openKv !== undefined && typeof options.openKv !== "function") {
    throw new TypeError("openKv must be a function");
  }
  const validateKey = options.validateKey ?? ["__edgepool", "validate"];
  if (!Array.isArray(validateKey) || validateKey.length === 0) {
    throw new TypeError("validateKey must be a non-empty array");
  }
  return {
    async create(signal: AbortSignal): Promise<K> {
      const open = options.openKv ?? (builtinOpenKv() as OpenKv<K> | undefined);
      if (open === undefined) {
        throw new Error(
          "denoKvFactory needs Deno.openKv (run Deno with --unstable-kv) or an openKv option, " +
            'e.g. { openKv } from the npm package "@deno/kv"',
        );
      }
      const opening = path === undefined ? open() : open(path);
      try {
        return await raceSignal(opening, signal);
      } catch (error) {
        // Aborted: close the handle if it opens after all.
        if (signal.aborted) void opening.then((kv) => kv.close(), () => {});
        throw error;
      }
    },
    async validate(kv: K, signal: AbortSignal): Promise<boolean> {
      await raceSignal(kv.get(validateKey), signal);
      return true;
    },
    destroy(kv: K): void {
      kv.close();
    },
    isBroken(_kv: K, error: unknown): boolean {
      if (error === null || typeof error !== "object") return false;
      const { name, message } = error as { name?: unknown; message?: unknown };
      return name === "BadResource" ||
        (typeof message === "string" && /after '?\.?close'? is called|closed/i.test(message));
    },
  };
}
