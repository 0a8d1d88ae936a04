/**
 * Storage hooks: {@linkcode KVHook} (Deno KV, the default) and {@linkcode MemoryHook}, with the
 * storage contract they share. The Redis hook is in `@x/broker/redis`, so that programs without
 * Redis never load its client.
 *
 * @example Choosing a storage hook
 * ```ts
 * import assert from "node:assert/strict";
 * import { AllowHook, Server } from "../../mod.ts";
 * import { KVHook } from "./mod.ts";
 *
 * const server = new Server();
 * await server.addHook(new AllowHook());
 * // A real broker gives a file path ("./data/broker.kv"); tests use ":memory:" or a MemoryHook.
 * await server.addHook(new KVHook({ path: ":memory:" }));
 * // Add a storage hook before serving: the server restores from it, and saves through it.
 * assert.equal(server.hooks.has("storedRetainedMessages"), true);
 * assert.equal(server.hooks.has("onRetainMessage"), true);
 * await server.serve();
 * await server.close();
 * ```
 *
 * @module
 */

export { KVBackend, KVHook, type KVHookOptions } from "./kv.ts";
export { MemoryHook, type MemoryHookOptions, MemoryStore } from "./memory.ts";
export {
  inflightId,
  OUTBOUND_DONE,
  OUTBOUND_PUBLISH,
  OUTBOUND_PUBREL,
  OutboundEvents,
  type StorageBackend,
  StorageHook,
  type WriteOp,
} from "./storage.ts";
export {
  type ClientRecord,
  type InflightRecord,
  messagePacket,
  STORED_CLIENT_PROPERTIES,
  type StoredMessage,
  storedMessage,
  type StoredState,
  type SubscriptionRecord,
  type SysInfoRecord,
} from "../../src/storage.ts";
