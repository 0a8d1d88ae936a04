/**
 * `@x/broker`: an embeddable, fast MQTT v5 broker for Deno, with v3.1.1 and v3.1 clients too.
 *
 * This entry point is what a broker user needs: the {@linkcode Server} and its options, the
 * {@linkcode Hook} interface and the built-in hooks, the listeners and their contract, and the packet
 * types, reason codes and errors a hook touches. Specialised parts are subpath exports:
 * `@x/broker/packets` (the codec), `@x/broker/storage` (storage contract and backends),
 * `@x/broker/redis` (Redis storage), `@x/broker/auth` (ledger tools), `@x/broker/metrics`
 * (Prometheus rendering, dashboard and admin API handlers), `@x/broker/testing` (in-memory
 * listener) and `@x/broker/cli` (the command-line program).
 *
 * @example A broker that accepts everyone on TCP
 * ```ts
 * import assert from "node:assert/strict";
 * import { AllowHook, Server, TCP } from "./mod.ts";
 *
 * const server = new Server();
 * await server.addHook(new AllowHook());
 * const tcp = new TCP({ id: "t1", address: "127.0.0.1:0" }); // ":1883" in production
 * await server.addListener(tcp);
 * await server.serve();
 *
 * const port = Number(tcp.address.split(":")[1]);
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port });
 * // CONNECT: "MQTT", v5, clean start, keep alive 60 s, no properties, client id "c1".
 * await conn.write(new Uint8Array([0x10, 15, 0, 4, 77, 81, 84, 84, 5, 2, 0, 60, 0, 0, 2, 99, 49]));
 * const reply = new Uint8Array(64);
 * assert.ok((await conn.read(reply) ?? 0) >= 4);
 * assert.equal(reply[0], 0x20); // CONNACK
 * assert.equal(reply[3], 0x00); // Success
 * conn.close();
 * await server.close();
 * ```
 *
 * @example Publishing and subscribing from the server itself
 * ```ts
 * import assert from "node:assert/strict";
 * import { Server } from "./mod.ts";
 *
 * const server = new Server({ inlineClient: true });
 * await server.serve();
 * const received: string[] = [];
 * await server.subscribe("direct/#", 1, (_client, _subscription, packet) => {
 *   received.push(`${packet.topicName}: ${new TextDecoder().decode(packet.payload)}`);
 * });
 * await server.publish("direct/hello", "world", false, 0);
 * assert.deepEqual(received, ["direct/hello: world"]);
 * await server.close();
 * ```
 *
 * @module
 */

// The server and its options.
export { Server, VERSION } from "./src/server.ts";
export type { InlineSubscribeHandler, InlineSubscribeOptions } from "./src/inline.ts";
export { NEVER_EXPIRES } from "./src/options.ts";
export type { Capabilities, Compatibilities, Options, ResolvedOptions } from "./src/options.ts";
// What a hook sees of the server: read through `server.clients`, `.topics`, `.info`, `.hooks`; never built by users.
export type {
  Client,
  ClientEvents,
  ClientNet,
  ClientProperties,
  ClientState,
  FrameHandler,
} from "./src/client.ts";
export type { Clients } from "./src/clients.ts";
export type { Hooks } from "./src/hooks.ts";
export type { ClientSubscription, FilterObserver, TopicsIndex } from "./src/topics.ts";
export type { Info } from "./src/system.ts";
export type { Inflight } from "./src/inflight.ts";
export type { Queue } from "./src/queue.ts";
export type { SysInfoRecord } from "./src/storage.ts";

// Hooks.
export { HOOK_EVENTS } from "./src/hooks.ts";
export type { DropReason, Hook, HookEvent, MaybePromise, StorageEvents, StoredRecords } from "./src/hooks.ts";
export type { Delivery, Subscribers } from "./src/topics.ts";
export { AllowHook } from "./hooks/auth/allow_all.ts";
export { AuthHook } from "./hooks/auth/auth.ts";
export type { AuthHookConfig } from "./hooks/auth/auth.ts";
export { Access, LedgerError } from "./hooks/auth/ledger.ts";
export type { AccessValue, ACLRule, AuthRule, Filters, Ledger, UserRule } from "./hooks/auth/ledger.ts";
export { DebugHook } from "./hooks/debug.ts";
export type { DebugHookConfig } from "./hooks/debug.ts";
export { KVHook } from "./hooks/storage/kv.ts";
export type { KVHookOptions } from "./hooks/storage/kv.ts";
export { MemoryHook } from "./hooks/storage/memory.ts";
export type { MemoryHookOptions } from "./hooks/storage/memory.ts";
export { MetricsHook } from "./hooks/metrics.ts";
export type { HistoryPoint, MessageDropReason, MetricsHookOptions } from "./hooks/metrics.ts";

// Listeners.
export type { Connection, EstablishFn, Listener, ListenerConfig } from "./src/listener.ts";
export type { ConnectionCounter, ConnectionPolicy, PortSharing, TlsConfig } from "./listeners/net.ts";
export { TCP } from "./listeners/tcp.ts";
export type { TCPConfig } from "./listeners/tcp.ts";
export { WebSocket } from "./listeners/websocket.ts";
export type { WebSocketConfig } from "./listeners/websocket.ts";
export { UnixSock } from "./listeners/unix.ts";
export type { UnixSockConfig } from "./listeners/unix.ts";
export { HTTPHealthCheck } from "./listeners/http_health.ts";
export type { HTTPHealthCheckConfig } from "./listeners/http_health.ts";
export type { HttpListener, HttpListenerConfig } from "./listeners/http.ts";
export { HTTPStats } from "./src/app/http_stats.ts";
export type { HTTPStatsConfig } from "./src/app/http_stats.ts";
export { Metrics } from "./src/app/http_metrics.ts";
export type { MetricsConfig } from "./src/app/http_metrics.ts";
export type { AccessOptions } from "./src/app/admin.ts";
export type { ObservabilityOptions } from "./src/app/dashboard/dashboard.ts";

// Packets, reason codes and errors a hook touches.
export { MqttError, ReasonCode, reasonName } from "./src/packets/reason_codes.ts";
export { PacketType } from "./src/packets/types.ts";
export type {
  ConnectParams,
  FixedHeader,
  Packet,
  Properties,
  ProtocolVersion,
  QoS,
  Subscription,
  UserProperty,
} from "./src/packets/types.ts";

// Bridges to other brokers (the rest of the bridge API: `@x/broker/bridge`).
export { Bridge, BridgeConfigError, findBridges } from "./hooks/bridge/mod.ts";
export type { BridgeConfig, BridgeStatus, BridgeTls } from "./hooks/bridge/mod.ts";
