/**
 * `@x/broker`: an embeddable, fast MQTT v5 broker for Deno, with v3.1.1 and v3.1 clients too.
 *
 * @example A broker that accepts everyone on TCP
 * ```ts
 * import { AllowHook, Server, TCP } from "./mod.ts";
 *
 * const server = new Server();
 * await server.addHook(new AllowHook());
 * await server.addListener(new TCP({ id: "t1", address: "127.0.0.1:0" }));
 * await server.serve();
 * // ... clients connect ...
 * await server.close();
 * ```
 *
 * @module
 */

export { Server, VERSION } from "./src/server.ts";
export type { InlineSubscribeHandler } from "./src/server.ts";
export type { Capabilities, Compatibilities, Options, ResolvedOptions } from "./src/options.ts";
export { defaultCapabilities, NEVER_EXPIRES, resolveOptions } from "./src/options.ts";
export { Client } from "./src/client.ts";
export type { ClientNet, ClientProperties, ClientState } from "./src/client.ts";
export { Clients } from "./src/clients.ts";
export { HOOK_EVENTS, Hooks } from "./src/hooks.ts";
export type { DropReason, Hook, HookEvent, MaybePromise, StorageEvents } from "./src/hooks.ts";
export { Inflight } from "./src/inflight.ts";
export { Info, SYS_PREFIX } from "./src/system.ts";
export { TopicsIndex } from "./src/topics.ts";
export type { ClientSubscription, Delivery, Subscribers } from "./src/topics.ts";
export * from "./src/packets/mod.ts";
export type { Connection, EstablishFn, Listener, ListenerConfig } from "./src/listener.ts";
export { TCP } from "./listeners/tcp.ts";
export { AllowHook } from "./hooks/auth/allow_all.ts";
export type { TCPConfig } from "./listeners/tcp.ts";
export { WebSocket, WEBSOCKET_SUBPROTOCOLS, WebSocketConnection } from "./listeners/websocket.ts";
export type { WebSocketConfig } from "./listeners/websocket.ts";
export { UnixSock } from "./listeners/unix.ts";
export type { UnixSockConfig } from "./listeners/unix.ts";
export { HTTPStats } from "./listeners/http_stats.ts";
export type { HTTPStatsConfig } from "./listeners/http_stats.ts";
export { HTTPHealthCheck } from "./listeners/http_health.ts";
export type { HTTPHealthCheckConfig } from "./listeners/http_health.ts";
export { HttpListener, methodNotAllowed } from "./listeners/http.ts";
export type { HttpListenerConfig } from "./listeners/http.ts";
export { connectionPair, MockListener } from "./listeners/mock.ts";
export { ConnectionCounter, formatHostPort, readPem } from "./listeners/net.ts";
export type { ConnectionPolicy, TlsConfig } from "./listeners/net.ts";
export {
  Access,
  AuthHook,
  CompiledLedger,
  filterCovers,
  filtersOverlap,
  hashPassword,
  LedgerError,
  loadLedger,
  parseLedger,
  parseStoredPassword,
  validateLedger,
  verifyPassword,
} from "./hooks/auth/mod.ts";
export type {
  AccessValue,
  ACLRule,
  AuthHookConfig,
  AuthRule,
  Filters,
  HashPasswordOptions,
  Identity,
  Ledger,
  PasswordAlgorithm,
  StoredPassword,
  UserRule,
} from "./hooks/auth/mod.ts";
export { DebugHook, formatBytes } from "./hooks/debug.ts";
export type { DebugHookConfig } from "./hooks/debug.ts";
export { KVBackend, KVHook, MemoryHook, MemoryStore, StorageHook } from "./hooks/storage/mod.ts";
export type {
  ClientRecord,
  InflightRecord,
  KVHookOptions,
  MemoryHookOptions,
  StorageBackend,
  StoredMessage,
  StoredState,
  SubscriptionRecord,
  WriteOp,
} from "./hooks/storage/mod.ts";
export {
  closeReason,
  DROP_REASONS,
  findMetricsHook,
  Histogram,
  LATENCY_BUCKETS,
  METRICS_CONTENT_TYPE,
  MetricsHook,
  metricsResponse,
  renderMetrics,
  sessionCounts,
} from "./src/metrics.ts";
export type { HistoryPoint, MessageDropReason, MetricsHookOptions, SessionCounts } from "./src/metrics.ts";
export {
  ADMIN_DISCONNECT_CODE,
  adminHandler,
  checkAccess,
  clientSession,
  clientSummary,
  deleteRetained,
  isLoopback,
} from "./src/admin.ts";
export type {
  AccessOptions,
  ClientSummary,
  PartialHandler,
  RequestInfo,
  RetainedSummary,
} from "./src/admin.ts";
export { liveSnapshot, observabilityHandler } from "./listeners/dashboard/dashboard.ts";
export type { LiveSnapshot, ObservabilityOptions } from "./listeners/dashboard/dashboard.ts";
export { Metrics } from "./listeners/metrics.ts";
export type { MetricsConfig } from "./listeners/metrics.ts";
