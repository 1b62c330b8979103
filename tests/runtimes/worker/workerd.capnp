# workerd config for tests/runtimes/workerd_test.ts: one module worker (the esbuild bundle of
# worker.ts, written beside a copy of this file) behind one HTTP socket. The test binds the
# socket to 127.0.0.1 on a free port with --socket-addr and learns it through --control-fd.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [(name = "main", worker = .worker)],
  sockets = [(name = "http", address = "127.0.0.1:0", http = (), service = "main")],
);

const worker :Workerd.Worker = (
  modules = [(name = "worker.js", esModule = embed "worker.js")],
  compatibilityDate = "2026-11-01",
);
