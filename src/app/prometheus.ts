/**
 * Prometheus rendering: {@linkcode renderMetrics} writes the text exposition format from the
 * {@linkcode MetricsHook}'s counters and what the server knows at scrape time (clients, sessions,
 * subscriptions, retained messages, storage queues, memory); {@linkcode metricsResponse} wraps it
 * for an HTTP handler.
 *
 * Label cardinality is bounded: labels are packet types, QoS levels, reason names and hook ids,
 * never client ids or topics.
 *
 * @module
 */

import { type BridgeStatus, findBridges } from "../../hooks/bridge/bridge.ts";
import type { Server } from "../server.ts";
import { DROP_REASONS, type Histogram, isStorage, MetricsHook, PACKET_NAMES } from "../../hooks/metrics.ts";

type Labels = Record<string, string>;

/** Writes metric families in the Prometheus text exposition format (version 0.0.4). */
class Exposition {
  #out: string[] = [];

  family(name: string, type: "counter" | "gauge", help: string, samples: [Labels, number][]): void {
    this.#header(name, type, help);
    for (const [labels, value] of samples) this.#line(name, labels, value);
  }

  one(name: string, type: "counter" | "gauge", help: string, value: number): void {
    this.family(name, type, help, [[{}, value]]);
  }

  histogram(name: string, help: string, h: Histogram): void {
    this.#header(name, "histogram", help);
    const cumulative = h.cumulative();
    for (let i = 0; i < h.buckets.length; i++) {
      this.#line(name + "_bucket", { le: String(h.buckets[i]) }, cumulative[i]);
    }
    this.#line(name + "_bucket", { le: "+Inf" }, h.count);
    this.#line(name + "_sum", {}, h.sum);
    this.#line(name + "_count", {}, h.count);
  }

  toString(): string {
    return this.#out.join("\n") + "\n";
  }

  #header(name: string, type: string, help: string): void {
    this.#out.push(`# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`);
    this.#out.push(`# TYPE ${name} ${type}`);
  }

  #line(name: string, labels: Labels, value: number): void {
    const keys = Object.keys(labels);
    let text = name;
    if (keys.length > 0) {
      text += "{" + keys.map((k) => `${k}="${escapeLabel(labels[k])}"`).join(",") + "}";
    }
    this.#out.push(`${text} ${formatValue(value)}`);
  }
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** The content type of {@linkcode renderMetrics}' output. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/**
 * The server's {@linkcode MetricsHook}, if one was added.
 *
 * @param server The server.
 * @returns The hook, or undefined.
 */
export function findMetricsHook(server: Server): MetricsHook | undefined {
  for (const hook of server.hooks.list) if (hook instanceof MetricsHook) return hook;
  return undefined;
}

/** What the server knows about its clients at one moment. */
export interface SessionCounts {
  /** Sessions with a live connection (inline clients excluded). */
  online: number;
  /** Remembered sessions without a connection. */
  offline: number;
  /** QoS 1/2 messages queued (waiting for a client's quota or for it to come back). */
  queued: number;
}

/**
 * Counts sessions and queued messages (one pass over the clients).
 *
 * @param server The server.
 * @returns The counts.
 */
export function sessionCounts(server: Server): SessionCounts {
  let online = 0, offline = 0, queued = 0;
  for (const client of server.clients.values()) {
    if (client.net.inline) continue;
    if (client.closed) offline++;
    else online++;
    queued += client.state.inflight.pending.length;
  }
  return { online, offline, queued };
}

/**
 * The `/metrics` HTTP response: the exposition text with its content type, never cached.
 *
 * @param server The server.
 * @param metrics The metrics hook; looked up among the server's hooks when omitted.
 * @returns The response.
 */
export function metricsResponse(server: Server, metrics?: MetricsHook): Response {
  return new Response(renderMetrics(server, metrics), {
    headers: { "content-type": METRICS_CONTENT_TYPE, "cache-control": "no-store" },
  });
}

/**
 * Renders the broker's metrics in the Prometheus text exposition format. With a
 * {@linkcode MetricsHook} (passed, or found among the server's hooks) the counters are broken down
 * by packet type, QoS and reason; without one, the `$SYS` totals are rendered.
 *
 * @param server The server.
 * @param metrics The metrics hook; looked up among the server's hooks when omitted.
 * @returns The exposition text (serve it with {@linkcode METRICS_CONTENT_TYPE}).
 *
 * @example Without a metrics hook
 * ```ts
 * import assert from "node:assert/strict";
 * import { Server } from "../../mod.ts";
 * import { renderMetrics } from "./prometheus.ts";
 *
 * const text = renderMetrics(new Server()); // the server's own counters, without latencies
 * assert.match(text, /^# TYPE mqtt_clients_connected gauge$/m);
 * ```
 */
export function renderMetrics(
  server: Server,
  metrics: MetricsHook | undefined = findMetricsHook(server),
): string {
  metrics?.bind(server);
  const info = server.info;
  const sessions = sessionCounts(server);
  const out = new Exposition();

  out.family("mqtt_build_info", "gauge", "The broker version.", [[{ version: info.version }, 1]]);
  out.one("mqtt_start_time_seconds", "gauge", "When the broker started, unix seconds.", info.started);
  out.one("mqtt_clients_connected", "gauge", "Clients connected now.", info.clientsConnected);
  out.one("mqtt_clients_maximum", "gauge", "Most clients connected at once.", info.clientsMaximum);
  out.one(
    "mqtt_clients_known",
    "gauge",
    "Connected clients plus remembered offline sessions (clients_total in $SYS).",
    sessions.online + sessions.offline,
  );
  const cluster = info.cluster;
  if (cluster) {
    const nodes = cluster.nodes();
    out.family("mqtt_cluster_node_info", "gauge", "This broker's node id in its cluster.", [[{
      node: cluster.nodeId,
    }, 1]]);
    out.family(
      "mqtt_cluster_node_alive",
      "gauge",
      "Nodes of the cluster: 1 while the lease is current.",
      nodes.map((node) => [{ node: node.id }, node.alive ? 1 : 0]),
    );
    out.family(
      "mqtt_cluster_node_connections",
      "gauge",
      "Connected clients per node, as each last reported.",
      nodes.map((node) => [{ node: node.id }, node.connections]),
    );
    out.family(
      "mqtt_cluster_node_messages_per_second",
      "gauge",
      "Messages received per second per node, as each last reported.",
      nodes.map((node) => [{ node: node.id }, node.messagesPerSecond]),
    );
  }
  out.family("mqtt_sessions", "gauge", "Sessions by state.", [
    [{ state: "online" }, sessions.online],
    [{ state: "offline" }, sessions.offline],
  ]);

  if (metrics) {
    out.one("mqtt_connections_opened_total", "counter", "Connections accepted.", metrics.connectionsOpened);
    out.family(
      "mqtt_connections_refused_total",
      "counter",
      "Connections refused with a CONNACK error, by reason.",
      mapSamples(metrics.connectionsRefused),
    );
    out.family(
      "mqtt_connections_closed_total",
      "counter",
      "Accepted connections that ended, by reason.",
      mapSamples(metrics.connectionsClosed),
    );
    out.family(
      "mqtt_packets_received_total",
      "counter",
      "Packets received, by type.",
      typeSamples(metrics.packetsReceived),
    );
    out.family(
      "mqtt_packets_sent_total",
      "counter",
      "Packets sent, by type.",
      typeSamples(metrics.packetsSent),
    );
    if (metrics.bytesReceived.some((n) => n > 0)) {
      out.family(
        "mqtt_received_bytes_total",
        "counter",
        "Bytes received in packets, by type.",
        typeSamples(metrics.bytesReceived),
      );
    } else {
      out.one("mqtt_received_bytes_total", "counter", "Bytes received.", info.bytesReceived);
    }
    out.family(
      "mqtt_sent_bytes_total",
      "counter",
      "Bytes sent, by packet type.",
      typeSamples(metrics.bytesSent),
    );
    out.family(
      "mqtt_messages_received_total",
      "counter",
      "PUBLISH packets received, by QoS.",
      qosSamples(metrics.messagesReceived),
    );
    out.family(
      "mqtt_messages_sent_total",
      "counter",
      "PUBLISH packets sent, by QoS.",
      qosSamples(metrics.messagesSent),
    );
    const dropped: [Labels, number][] = [];
    for (let qos = 0; qos < 3; qos++) {
      for (let r = 0; r < DROP_REASONS.length; r++) {
        const n = metrics.messagesDropped[qos * DROP_REASONS.length + r];
        if (n > 0) dropped.push([{ qos: String(qos), reason: DROP_REASONS[r] }, n]);
      }
    }
    out.family("mqtt_messages_dropped_total", "counter", "Messages dropped, by QoS and reason.", dropped);
    out.one(
      "mqtt_inflight_messages_dropped_total",
      "counter",
      "In-flight or queued QoS 1/2 messages dropped (expired, or their session ended).",
      metrics.inflightDropped,
    );
    out.one("mqtt_wills_sent_total", "counter", "Will messages sent.", metrics.willsSent);
  } else {
    out.one("mqtt_packets_received_total", "counter", "Packets received.", info.packetsReceived);
    out.one("mqtt_packets_sent_total", "counter", "Packets sent.", info.packetsSent);
    out.one("mqtt_received_bytes_total", "counter", "Bytes received.", info.bytesReceived);
    out.one("mqtt_sent_bytes_total", "counter", "Bytes sent.", info.bytesSent);
    out.one("mqtt_messages_received_total", "counter", "PUBLISH packets received.", info.messagesReceived);
    out.one("mqtt_messages_sent_total", "counter", "PUBLISH packets sent.", info.messagesSent);
    out.one("mqtt_messages_dropped_total", "counter", "Messages dropped.", info.messagesDropped);
  }

  out.one(
    "mqtt_messages_inflight",
    "gauge",
    "QoS 1/2 messages sent and not yet acknowledged.",
    info.inflight,
  );
  out.one("mqtt_messages_queued", "gauge", "QoS 1/2 messages waiting to be sent.", sessions.queued);
  out.one("mqtt_retained_messages", "gauge", "Retained messages held.", server.topics.retainedCount);
  out.one(
    "mqtt_subscriptions",
    "gauge",
    "Subscriptions (client and filter pairs), shared ones excluded.",
    server.topics.subscriptionCount,
  );
  out.one(
    "mqtt_shared_subscriptions",
    "gauge",
    "Shared subscriptions ($share/...).",
    server.topics.sharedSubscriptionCount,
  );
  out.one("mqtt_hook_errors_total", "counter", "Errors thrown or rejected by hooks.", server.hooks.errors);

  const storage: [Labels, number][] = [];
  for (const hook of server.hooks.list) {
    if (isStorage(hook)) storage.push([{ hook: hook.id }, hook.queueDepth]);
  }
  if (storage.length > 0) {
    out.family(
      "mqtt_storage_queue_depth",
      "gauge",
      "Storage writes waiting to be committed, by hook.",
      storage,
    );
  }
  if (metrics) {
    if (storage.length > 0) {
      out.histogram(
        "mqtt_storage_write_duration_seconds",
        "Time from a storage write being queued until it is durable.",
        metrics.storageWriteLatency,
      );
    }
    out.histogram(
      "mqtt_publish_delivery_seconds",
      "Time from a message being accepted to its PUBLISH being queued to a subscriber's socket.",
      metrics.deliveryLatency,
    );
  }

  const bridges = findBridges(server).map((bridge) => bridge.status());
  if (bridges.length > 0) {
    const each = (value: (s: BridgeStatus) => number): [Labels, number][] =>
      bridges.map((s) => [{ bridge: s.id }, value(s)]);
    out.family(
      "mqtt_bridge_connected",
      "gauge",
      "1 while a bridge is connected to its remote.",
      each((s) => s.connected ? 1 : 0),
    );
    out.family(
      "mqtt_bridge_queued_messages",
      "gauge",
      "Messages a bridge has queued for its remote.",
      each((s) => s.queued),
    );
    out.family(
      "mqtt_bridge_inflight_messages",
      "gauge",
      "QoS 1/2 messages a bridge awaits acks for.",
      each((s) => s.inflight),
    );
    out.family(
      "mqtt_bridge_messages_sent_total",
      "counter",
      "Messages a bridge sent to its remote.",
      each((s) => s.sent),
    );
    out.family(
      "mqtt_bridge_messages_received_total",
      "counter",
      "Messages a bridge received from its remote.",
      each((s) => s.received),
    );
    out.family(
      "mqtt_bridge_messages_dropped_total",
      "counter",
      "Messages a bridge dropped (queue full, too large).",
      each((s) => s.dropped),
    );
    out.family(
      "mqtt_bridge_connects_total",
      "counter",
      "Successful connections of a bridge.",
      each((s) => s.connects),
    );
  }

  const memory = Deno.memoryUsage();
  out.one("process_resident_memory_bytes", "gauge", "Resident set size.", memory.rss);
  out.one("deno_heap_total_bytes", "gauge", "V8 heap size.", memory.heapTotal);
  out.one("deno_heap_used_bytes", "gauge", "V8 heap in use.", memory.heapUsed);
  out.one("deno_external_memory_bytes", "gauge", "Memory held by V8 external objects.", memory.external);
  if (metrics) {
    out.one(
      "deno_eventloop_lag_seconds",
      "gauge",
      "Event-loop lag at the last sample.",
      metrics.eventLoopLag,
    );
    out.one(
      "deno_eventloop_lag_max_seconds",
      "gauge",
      "Largest event-loop lag among the last ten samples.",
      metrics.eventLoopLagMax,
    );
  }
  return out.toString();
}

function mapSamples(map: Map<string, number>): [Labels, number][] {
  return [...map].sort(([a], [b]) => a < b ? -1 : 1).map(([reason, n]) => [{ reason }, n]);
}

function typeSamples(counts: Float64Array): [Labels, number][] {
  const out: [Labels, number][] = [];
  for (let type = 1; type < 16; type++) {
    if (counts[type] > 0) out.push([{ type: PACKET_NAMES[type] }, counts[type]]);
  }
  return out;
}

function qosSamples(counts: Float64Array): [Labels, number][] {
  return [0, 1, 2].map((qos) => [{ qos: String(qos) }, counts[qos]]);
}
