/**
 * `@x/broker/cluster`: many broker processes, one broker, on Redis. Add a {@linkcode RedisCluster}
 * to each server; they find each other through Redis. The engine-neutral node (`BusCluster`, on the
 * `ClusterBus` interface of `bus.ts`) and the Redis bus are in this folder for a second engine to reuse. It lives in its own entry point so that
 * programs without a cluster never load the Redis client.
 *
 * @example A node
 * ```ts ignore
 * import { Server } from "@x/broker";
 * import { RedisCluster } from "@x/broker/cluster";
 * const server = new Server();
 * await server.addCluster(new RedisCluster({ address: "127.0.0.1:6379" }));
 * ```
 *
 * @module
 */

export { RedisCluster, type RedisClusterOptions } from "./redis_cluster.ts";
export { BusCluster, type ClusterOptions } from "./cluster.ts";
export { defaultNodeId } from "./node_id.ts";
export { type FieldOp, type SessionOwner, SessionStore } from "./session_store.ts";
export { RedisBus, type RedisBusOptions } from "./redis_bus.ts";
export type {
  AdoptedEntry,
  Batch,
  BusListener,
  ClusterBus,
  InboxEntry,
  NodeEntry,
  Renewal,
  RetainedChange,
  RouteChange,
  SessionClaim,
  SessionWrite,
  StoredRoutes,
} from "./bus.ts";
export type {
  AdoptedSession,
  Cluster,
  ClusterHost,
  ClusterNodeInfo,
  HeldId,
  MessageOrigin,
  SessionSnapshot,
} from "../../src/cluster.ts";
export type { ClusterView } from "../../src/system.ts";
