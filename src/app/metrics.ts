/**
 * `@x/broker/metrics`: Prometheus rendering and the HTTP handlers behind the stats listener — the
 * live dashboard, the admin API and `/metrics` — for a program that serves them from its own HTTP
 * server instead of the `HTTPStats` listener.
 *
 * @example The metrics of a broker with a metrics hook, rendered as Prometheus text
 * ```ts
 * import assert from "node:assert/strict";
 * import { MetricsHook, Server } from "../../mod.ts";
 * import { renderMetrics } from "./metrics.ts";
 *
 * const server = new Server();
 * await server.addHook(new MetricsHook());
 * assert.match(renderMetrics(server), /mqtt_clients_connected 0/);
 * ```
 *
 * @module
 */

export {
  findMetricsHook,
  METRICS_CONTENT_TYPE,
  metricsResponse,
  renderMetrics,
  type SessionCounts,
  sessionCounts,
} from "./prometheus.ts";
export { closeReason, DROP_REASONS, Histogram, LATENCY_BUCKETS } from "../../hooks/metrics.ts";
export {
  type LiveSnapshot,
  liveSnapshot,
  observabilityHandler,
  type ObservabilityOptions,
} from "./dashboard/dashboard.ts";
export {
  type AccessOptions,
  ADMIN_DISCONNECT_CODE,
  adminHandler,
  checkAccess,
  clientSession,
  type ClientSummary,
  clientSummary,
  deleteRetained,
  isLoopback,
  type PartialHandler,
  type RequestInfo,
  type RetainedSummary,
} from "./admin.ts";
