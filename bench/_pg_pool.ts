/**
 * pg-pool (node-postgres's pool) over a scripted client, so that it can stand beside the other
 * pools in the benches that need no database. pg-pool takes its client class as an option; the
 * fake one does what pg-pool asks of a `pg.Client`: `connect(callback)` (after `connectMs`, or
 * on the next microtask), `end(callback)`, the `EventEmitter` methods pg-pool uses to watch idle
 * clients, and the `_queryable` / `_ending` flags it reads on release.
 *
 * pg-pool ships no types: the little we use is typed here.
 *
 * @module
 */

import { EventEmitter } from "node:events";
import PgPoolModule from "pg-pool";

/** A scripted `pg.Client`. */
export class FakeClient extends EventEmitter {
  /** Read by pg-pool on release: a client that is not queryable is removed. */
  _queryable = true;
  _ending = false;
  /** Set by pg-pool when it lends the client. */
  release!: (error?: unknown) => void;
  uses = 0;
  readonly id: number;
  readonly #connectMs: number;

  constructor(id: number, connectMs: number) {
    super();
    this.id = id;
    this.#connectMs = connectMs;
  }

  connect(callback: (error?: Error) => void): void {
    if (this.#connectMs > 0) setTimeout(() => callback(), this.#connectMs);
    else queueMicrotask(() => callback());
  }

  end(callback?: () => void): Promise<void> {
    this._ending = true;
    this._queryable = false;
    queueMicrotask(() => {
      this.emit("end");
      callback?.();
    });
    return Promise.resolve();
  }
}

/** What we use of a pg-pool `Pool`. */
export interface PgPool {
  connect(): Promise<FakeClient>;
  end(): Promise<void>;
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
}

/** Options of {@linkcode pgPool}. */
export interface PgPoolOptions {
  max: number;
  min?: number;
  /** How long a client takes to connect. @default {0} */
  connectMs?: number;
  /** pg-pool's acquire deadline (it also bounds connecting); 0 waits forever. @default {0} */
  connectionTimeoutMillis?: number;
  /** pg-pool arms this timer on every release while above `min`; 0 turns it off. */
  idleTimeoutMillis: number;
  /** Supplies each client instead of a new one (to keep the clients out of a heap measurement). */
  supply?: () => FakeClient;
}

/** A pg-pool over {@linkcode FakeClient}s; `created()` counts the clients it made. */
export function pgPool(options: PgPoolOptions): { pool: PgPool; created(): number } {
  let n = 0;
  const connectMs = options.connectMs ?? 0;
  const supply = options.supply;
  // pg-pool calls `new Client(options)`: a constructor that returns an object yields that object.
  const Client = function (): FakeClient {
    n++;
    return supply !== undefined ? supply() : new FakeClient(n, connectMs);
  };
  const Pool = PgPoolModule as unknown as new (options: Record<string, unknown>) => PgPool;
  const pool = new Pool({
    Client,
    max: options.max,
    min: options.min ?? 0,
    connectionTimeoutMillis: options.connectionTimeoutMillis ?? 0,
    idleTimeoutMillis: options.idleTimeoutMillis,
  });
  return { pool, created: () => n };
}
