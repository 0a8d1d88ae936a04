/**
 * {@linkcode MemoryHook}: a storage hook that keeps its records in Maps. It survives a restart of
 * the {@linkcode Server} object (give the new hook the same {@linkcode MemoryStore}), not of the
 * process: for tests, and as the reference every other backend is checked against.
 *
 * @module
 */

import type {
  ClientRecord,
  InflightRecord,
  StoredMessage,
  StoredState,
  SubscriptionRecord,
} from "../../src/storage.ts";
import { inflightId, type StorageBackend, StorageHook, type WriteOp } from "./storage.ts";

/**
 * The records of a {@linkcode MemoryHook}, kept in Maps. Several hooks (one after the other) may
 * share one store, as a restarted broker shares a database file.
 *
 * @example Reading what a broker stored
 * ```ts
 * import assert from "node:assert/strict";
 * import { AllowHook, Server } from "../../mod.ts";
 * import { MemoryHook, MemoryStore } from "./memory.ts";
 *
 * const store = new MemoryStore();
 * const server = new Server({ inlineClient: true });
 * await server.addHook(new AllowHook());
 * await server.addHook(new MemoryHook({ store }));
 * await server.serve();
 * await server.publish("greeting", "hello", true, 0); // retained
 * await server.close(); // flushes the writes
 * assert.equal(store.retained.get("greeting")?.origin, "inline");
 * assert.equal(store.clients.size, 0); // no network client connected
 * ```
 */
export class MemoryStore implements StorageBackend {
  /** Sessions by client id. */
  readonly clients: Map<string, ClientRecord> = new Map();
  /** Subscriptions by client id, then filter. */
  readonly subscriptions: Map<string, Map<string, SubscriptionRecord>> = new Map();
  /** In-flight records by client id, then `direction:id`. */
  readonly inflight: Map<string, Map<string, InflightRecord>> = new Map();
  /** Retained messages by topic. */
  readonly retained: Map<string, StoredMessage> = new Map();
  /** The $SYS counters, once saved. */
  sysInfo: Record<string, string | number> | undefined;
  /** Commits applied (for tests). */
  commits = 0;
  /** Write operations applied (for tests). */
  writes = 0;

  /** Nothing to open. */
  open(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Applies a batch (copies of the records, so later changes to live objects do not leak in).
   *
   * @param ops The writes, in order.
   */
  commit(ops: WriteOp[]): Promise<void> {
    for (const op of ops) this.#apply(op);
    this.commits++;
    this.writes += ops.length;
    return Promise.resolve();
  }

  /**
   * Copies of every record.
   *
   * @returns The stored state.
   */
  load(): Promise<StoredState> {
    return Promise.resolve(structuredClone({
      clients: [...this.clients.values()],
      subscriptions: [...this.subscriptions.values()].flatMap((m) => [...m.values()]),
      inflight: [...this.inflight.values()].flatMap((m) => [...m.values()]),
      retained: [...this.retained.values()],
      sysInfo: this.sysInfo,
    }));
  }

  /** Nothing to close: the records stay for the next hook on this store. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  #apply(op: WriteOp): void {
    switch (op.op) {
      case "putClient":
        this.clients.set(op.record.id, structuredClone(op.record));
        break;
      case "deleteClient":
        this.clients.delete(op.clientId);
        this.subscriptions.delete(op.clientId);
        this.inflight.delete(op.clientId);
        break;
      case "putSubscription":
        inner(this.subscriptions, op.record.clientId).set(
          op.record.subscription.filter,
          structuredClone(op.record),
        );
        break;
      case "deleteSubscription":
        this.subscriptions.get(op.clientId)?.delete(op.filter);
        break;
      case "putInflight":
        inner(this.inflight, op.record.clientId).set(
          `${op.record.direction}:${inflightId(op.record)}`,
          structuredClone(op.record),
        );
        break;
      case "deleteInflight":
        this.inflight.get(op.clientId)?.delete(`${op.direction}:${op.id}`);
        break;
      case "putRetained":
        this.retained.set(op.message.topic, structuredClone(op.message));
        break;
      case "deleteRetained":
        this.retained.delete(op.topic);
        break;
      case "putSysInfo":
        this.sysInfo = { ...op.info };
        break;
    }
  }
}

function inner<V>(outer: Map<string, Map<string, V>>, key: string): Map<string, V> {
  let map = outer.get(key);
  if (!map) outer.set(key, map = new Map());
  return map;
}

/** Options of {@linkcode MemoryHook}. */
export interface MemoryHookOptions {
  /** The store to use; a new, empty one by default. */
  store?: MemoryStore;
  /** The hook id (default `memory-storage`). */
  id?: string;
}

/**
 * A storage hook that keeps everything in memory.
 *
 * @example A broker that remembers its state across `Server` restarts in one process
 * ```ts
 * import assert from "node:assert/strict";
 * import { AllowHook, Server } from "../../mod.ts";
 * import { MemoryHook, MemoryStore } from "./memory.ts";
 *
 * const store = new MemoryStore(); // outlives both servers
 *
 * const first = new Server({ inlineClient: true });
 * await first.addHook(new AllowHook());
 * await first.addHook(new MemoryHook({ store }));
 * await first.serve();
 * await first.publish("greeting", "hello", true, 0); // retained
 * await first.close();
 *
 * const second = new Server();
 * await second.addHook(new AllowHook());
 * await second.addHook(new MemoryHook({ store }));
 * await second.serve(); // restores sessions, subscriptions, in-flight and retained messages
 * assert.equal(second.topics.retainedMessages("greeting").length, 1);
 * await second.close();
 * ```
 */
export class MemoryHook extends StorageHook {
  /** Where the records are. */
  readonly store: MemoryStore;

  /**
   * Creates a memory storage hook.
   *
   * @param options The store to share, and the hook id.
   */
  constructor(options: MemoryHookOptions = {}) {
    const store = options.store ?? new MemoryStore();
    super(options.id ?? "memory-storage", store);
    this.store = store;
  }
}
