/**
 * {@linkcode RedisCluster}: the cluster on Redis 7. Several broker processes that add a
 * `RedisCluster` with the same Redis (and prefix) act as one MQTT broker; see `cluster.ts` for what
 * each node does and `redis_bus.ts` for what is kept in Redis.
 *
 * @module
 */

import { BusCluster } from "./cluster.ts";
import { RedisBus, type RedisBusOptions } from "./redis_bus.ts";

/** Options of {@linkcode RedisCluster}: where Redis is, and this node. */
export interface RedisClusterOptions extends RedisBusOptions {
  /** This node's id, unique in the cluster (default: `{hostname}-{pid}-{random}`). */
  nodeId?: string;
  /** How long a node's lease lasts without renewal, in ms (default 2500). */
  leaseMs?: number;
}

/**
 * One node of a cluster whose engine is Redis: add it to a server before `serve()`.
 *
 * @example Two processes, one broker
 * ```ts ignore
 * import { AllowHook, Server, TCP } from "@x/broker";
 * import { RedisCluster } from "@x/broker/cluster";
 *
 * const server = new Server();
 * await server.addHook(new AllowHook());
 * await server.addCluster(new RedisCluster({ address: "redis://127.0.0.1:6379", nodeId: "a" }));
 * await server.addListener(new TCP({ id: "t1", address: ":1883" }));
 * await server.serve();
 * ```
 *
 * @example Configured, not connected
 * ```ts
 * import assert from "node:assert/strict";
 * import { RedisCluster } from "./redis_cluster.ts";
 * const cluster = new RedisCluster({ address: "redis://127.0.0.1:6379/1", nodeId: "node-a" });
 * assert.deepEqual(cluster.nodeId, "node-a");
 * assert.deepEqual(cluster.address, "127.0.0.1:6379");
 * ```
 */
export class RedisCluster extends BusCluster {
  /**
   * Creates a node; it connects when added to a server.
   *
   * @param options Where Redis is, and this node's id.
   */
  constructor(options: RedisClusterOptions = {}) {
    super(new RedisBus(options), { nodeId: options.nodeId, leaseMs: options.leaseMs });
  }
}
