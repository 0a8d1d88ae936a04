/**
 * The live dashboard and everything the stats listener serves beside it, as one composable
 * handler: {@linkcode observabilityHandler}.
 *
 * The page, script and style sheet are TypeScript modules exporting strings, so `deno compile` and
 * JSR packages carry them without reading files.
 *
 * @module
 */

import type { Server } from "../../server.ts";
import type { HistoryPoint, MetricsHook } from "../../../hooks/metrics.ts";
import { findMetricsHook, metricsResponse, sessionCounts } from "../prometheus.ts";
import { methodNotAllowed } from "../../../listeners/http.ts";
import {
  type AccessOptions,
  adminHandler,
  checkAccess,
  infoBody,
  json,
  type PartialHandler,
} from "../admin.ts";
import { INDEX_HTML } from "./index_html.ts";
import { type BridgeStatus, findBridges } from "../../../hooks/bridge/bridge.ts";
import type { ClusterView } from "../../system.ts";
import { DASHBOARD_JS } from "./dashboard_js.ts";
import { DASHBOARD_CSS } from "./dashboard_css.ts";

/** Options for {@linkcode observabilityHandler}. */
export interface ObservabilityOptions extends AccessOptions {
  /** The metrics hook; looked up among the server's hooks when omitted. */
  metrics?: MetricsHook;
  /** Serve the dashboard (`/`, its assets and `/api/live`); true by default. */
  dashboard?: boolean;
  /** Serve the admin API (`/api/clients...`, `/api/retained...`, `/api/bridges`); true by default. */
  admin?: boolean;
  /** Serve `/metrics`; true by default. */
  metricsEndpoint?: boolean;
  /** Put `/metrics` and `/api/info` behind the same access check; false by default (they are public). */
  protectMetrics?: boolean;
}

/** What `/api/live` answers. */
export interface LiveSnapshot {
  /** Now, ms since the epoch. */
  time: number;
  /** The broker version. */
  version: string;
  /** Seconds since start. */
  uptime: number;
  /** Connected now, most at once, and connected plus offline sessions. */
  clients: { connected: number; maximum: number; known: number };
  /** Sessions online and offline. */
  sessions: { online: number; offline: number };
  /** Message counters and queues. */
  messages: { received: number; sent: number; dropped: number; inflight: number; queued: number };
  /** Bytes received and sent. */
  bytes: { received: number; sent: number };
  /** Subscriptions, shared ones excluded. */
  subscriptions: number;
  /** Shared subscriptions. */
  sharedSubscriptions: number;
  /** Retained messages. */
  retained: number;
  /** Hook errors. */
  hookErrors: number;
  /** Process memory, bytes. */
  memory: { rss: number; heapUsed: number };
  /** The last event-loop lag sample in seconds (null without a metrics hook). */
  eventLoopLag: number | null;
  /** Each bridge's state and counters. */
  bridges: BridgeStatus[];
  /** In a cluster: this node's id and every node (alive, connections, messages per second). */
  cluster: { nodeId: string; nodes: ReturnType<ClusterView["nodes"]> } | null;
  /** Per-second points newer than the `since` query parameter. */
  history: HistoryPoint[];
}

const ASSETS: Record<string, [string, string]> = {
  "/": [INDEX_HTML, "text/html; charset=utf-8"],
  "/index.html": [INDEX_HTML, "text/html; charset=utf-8"],
  "/dashboard.js": [DASHBOARD_JS, "text/javascript; charset=utf-8"],
  "/dashboard.css": [DASHBOARD_CSS, "text/css; charset=utf-8"],
};

const HISTORY_WITHOUT_HOOK = 300;

/**
 * The handler behind the stats listener: the dashboard at `/` (browsers; other clients asking for
 * `/` get the info JSON as before), `/api/info` (the `$SYS` info with Mochi's field names),
 * `/api/live` (the dashboard's one-second JSON), the admin API (see `src/app/admin.ts`) and
 * `/metrics` (Prometheus). It returns undefined for other paths so a listener can answer them.
 *
 * The dashboard, `/api/live` and the admin API pass {@linkcode checkAccess}: basic auth when
 * `username` and `password` are set, loopback callers only otherwise. Pass the `Deno.serve`
 * handler info as the second argument so the caller's address is known.
 *
 * @param server The server.
 * @param options Credentials and which parts to serve.
 * @returns The handler.
 *
 * @example Serving it
 * ```ts
 * import assert from "node:assert/strict";
 * import { MetricsHook, Server } from "../../../mod.ts";
 * import { observabilityHandler } from "./dashboard.ts";
 *
 * const server = new Server();
 * await server.addHook(new MetricsHook());
 * const handler = observabilityHandler(server);
 * const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request, info) =>
 *   await handler(request, info) ?? new Response("Not Found", { status: 404 }));
 * const response = await fetch(`http://127.0.0.1:${http.addr.port}/metrics`);
 * assert.match(await response.text(), /^mqtt_clients_connected 0$/m);
 * await http.shutdown();
 * ```
 */
export function observabilityHandler(server: Server, options: ObservabilityOptions = {}): PartialHandler {
  const admin = options.admin === false ? undefined : adminHandler(server, options);
  const dashboard = options.dashboard !== false;
  const metricsEndpoint = options.metricsEndpoint !== false;
  const fallbackHistory: HistoryPoint[] = [];
  const metricsHook = () => options.metrics ?? findMetricsHook(server);

  return async (request, info) => {
    const url = new URL(request.url);
    const path = url.pathname;
    const method = request.method;
    const readOnly = method === "GET" || method === "HEAD";

    if (path === "/metrics" && metricsEndpoint) {
      if (!readOnly) return methodNotAllowed(request, READ_METHODS)!;
      if (options.protectMetrics) {
        const refused = checkAccess(request, info, options);
        if (refused) return refused;
      }
      return metricsResponse(server, metricsHook());
    }

    const wantsInfo = path === "/api/info" ||
      (path === "/" && !(request.headers.get("accept") ?? "").includes("text/html"));
    if (wantsInfo) {
      if (!readOnly) return methodNotAllowed(request, READ_METHODS)!;
      if (options.protectMetrics) {
        const refused = checkAccess(request, info, options);
        if (refused) return refused;
      }
      return json(infoBody(server.info));
    }

    if (dashboard && (path in ASSETS || path === "/api/live")) {
      const refused = checkAccess(request, info, options);
      if (refused) return refused;
      if (!readOnly) return methodNotAllowed(request, READ_METHODS)!;
      if (path === "/api/live") {
        const since = Number(url.searchParams.get("since") ?? 0) || 0;
        return json(liveSnapshot(server, metricsHook(), since, fallbackHistory));
      }
      const [body, type] = ASSETS[path];
      return new Response(body, { headers: { "content-type": type, "cache-control": "no-cache" } });
    }

    return admin ? await admin(request, info) : undefined;
  };
}

/**
 * The dashboard's snapshot. Without a metrics hook the history is sampled here, on request.
 *
 * @param server The server.
 * @param metrics The metrics hook, if any.
 * @param since Only history points newer than this (ms since the epoch).
 * @param fallbackHistory Where points are kept without a metrics hook.
 * @returns The snapshot.
 */
export function liveSnapshot(
  server: Server,
  metrics: MetricsHook | undefined,
  since = 0,
  fallbackHistory: HistoryPoint[] = [],
): LiveSnapshot {
  const info = server.info;
  const now = Date.now();
  const sessions = sessionCounts(server);
  const received = metrics ? metrics.messagesReceivedTotal : info.messagesReceived;
  const sent = metrics ? metrics.messagesSentTotal : info.messagesSent;
  let history: HistoryPoint[];
  if (metrics) history = metrics.history(since);
  else {
    const last = fallbackHistory[fallbackHistory.length - 1];
    if (!last || now - last.t >= 900) {
      fallbackHistory.push({ t: now, received, sent, connected: info.clientsConnected });
      if (fallbackHistory.length > HISTORY_WITHOUT_HOOK) fallbackHistory.splice(0, 1);
    }
    history = fallbackHistory.filter((p) => p.t > since);
  }
  const memory = Deno.memoryUsage();
  return {
    time: now,
    version: info.version,
    uptime: info.started ? Math.max(0, Math.floor(now / 1000) - info.started) : 0,
    clients: {
      connected: info.clientsConnected,
      maximum: info.clientsMaximum,
      known: sessions.online + sessions.offline,
    },
    sessions: { online: sessions.online, offline: sessions.offline },
    messages: {
      received,
      sent,
      dropped: metrics ? metrics.messagesDroppedTotal : info.messagesDropped,
      inflight: info.inflight,
      queued: sessions.queued,
    },
    bytes: { received: info.bytesReceived, sent: info.bytesSent },
    subscriptions: server.topics.subscriptionCount,
    sharedSubscriptions: server.topics.sharedSubscriptionCount,
    retained: server.topics.retainedCount,
    hookErrors: server.hooks.errors,
    memory: { rss: memory.rss, heapUsed: memory.heapUsed },
    eventLoopLag: metrics ? metrics.eventLoopLag : null,
    bridges: findBridges(server).map((bridge) => bridge.status()),
    cluster: info.cluster ? { nodeId: info.cluster.nodeId, nodes: info.cluster.nodes() } : null,
    history,
  };
}

const READ_METHODS = ["GET", "HEAD"];
