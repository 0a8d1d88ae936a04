/**
 * Broker statistics: the counters behind the `$SYS` topics and the HTTP stats endpoint.
 *
 * @module
 */

/** The `$SYS` topic prefix. */
export const SYS_PREFIX = "$SYS";

/** What `$SYS` and the stats show of a cluster: this node's id and every node as last seen. */
export interface ClusterView {
  /** This node's id. */
  readonly nodeId: string;
  /** Every node of the cluster. */
  nodes(): { id: string; alive: boolean; connections: number; messagesPerSecond: number }[];
}

/**
 * Why a message was dropped: outbound (`queue_full`, `expired`, `too_large`, `offline`,
 * `packet_id_exhausted`), an inbound PUBLISH refused (`acl_denied`, `rejected`), or a message a shared
 * group's member gave back when it left and no other member was left to take (`no_member`).
 */
export type MessageDropReason =
  | "queue_full"
  | "expired"
  | "too_large"
  | "acl_denied"
  | "offline"
  | "packet_id_exhausted"
  | "rejected"
  | "no_member";

/** Every drop reason, in the order of {@linkcode Traffic.messagesDropped}. */
// deno-fmt-ignore
export const DROP_REASONS: readonly MessageDropReason[] = [
  "queue_full", "expired", "too_large", "acl_denied", "offline", "packet_id_exhausted", "rejected",
  "no_member",
];

/** v3 CONNACK return codes 1-5 as the v5 reason they stand for. */
const V3_CONNACK_REASONS = [0, 0x84, 0x85, 0x88, 0x86, 0x87];

const DROP_INDEX: Record<string, number> = Object.fromEntries(DROP_REASONS.map((r, i) => [r, i]));

/** Receives delivery latencies: `count` deliveries that each took `seconds`. */
export interface LatencyObserver {
  /** Records `count` observations of `seconds`. */
  observe(seconds: number, count: number): void;
}

/**
 * The traffic counters the core keeps as plain numbers (rendered at scrape time; no hook event
 * per packet): packets and bytes by packet type, PUBLISH packets by QoS, drops by QoS and reason,
 * and, when an observer is set, publish-to-delivery latency.
 *
 * @example Counting a dropped message
 * ```ts
 * import assert from "node:assert/strict";
 * import { DROP_REASONS, Traffic } from "./system.ts";
 * const traffic = new Traffic();
 * traffic.dropped(1, "queue_full");
 * assert.equal(traffic.messagesDropped[1 * DROP_REASONS.length], 1);
 * ```
 */
export class Traffic {
  /** Packets received, by packet type. */
  readonly packetsReceived: Float64Array = new Float64Array(16);
  /** Bytes received, by packet type (whole packets, fixed header included). */
  readonly bytesReceived: Float64Array = new Float64Array(16);
  /** Packets sent, by packet type. */
  readonly packetsSent: Float64Array = new Float64Array(16);
  /** Bytes sent, by packet type. */
  readonly bytesSent: Float64Array = new Float64Array(16);
  /** PUBLISH packets received, by QoS. */
  readonly messagesReceived: Float64Array = new Float64Array(3);
  /** PUBLISH packets sent, by QoS. */
  readonly messagesSent: Float64Array = new Float64Array(3);
  /** Messages dropped, by `qos * DROP_REASONS.length + reason index`. */
  readonly messagesDropped: Float64Array = new Float64Array(3 * DROP_REASONS.length);
  /** Connections refused with a CONNACK error, by v5 reason code (v3 return codes mapped to v5). */
  readonly connectionsRefused: Float64Array = new Float64Array(256);
  /** Where delivery latencies go; none are measured while unset. */
  latency: LatencyObserver | undefined;
  #groupCreated = 0;
  #groupCount = 0;
  #turnNow = 0;
  #scheduled = false;
  readonly #endTurn = (): void => {
    this.#scheduled = false;
    this.#flushGroup();
    this.#turnNow = 0;
  };

  /**
   * Counts a dropped message.
   *
   * @param qos The message's QoS.
   * @param reason Why it was dropped.
   */
  dropped(qos: number, reason: MessageDropReason): void {
    this.messagesDropped[qos * DROP_REASONS.length + DROP_INDEX[reason]]++;
  }

  /**
   * Counts a CONNACK that refused a connection.
   *
   * @param code The CONNACK's reason code (v5) or return code (v3).
   * @param v5 Whether the connection speaks MQTT 5.
   */
  refused(code: number, v5: boolean): void {
    if (code === 0) return;
    this.connectionsRefused[v5 ? code & 0xff : V3_CONNACK_REASONS[code] ?? 0x80]++;
  }

  /**
   * Notes that a message accepted at `created` was queued to a subscriber's socket. The deliveries
   * of one message in one turn (a fan-out) are observed together, with the clock read once a turn.
   *
   * @param created When the message was accepted (ms since epoch).
   */
  delivered(created: number): void {
    if (created === this.#groupCreated) {
      this.#groupCount++;
      return;
    }
    this.#flushGroup();
    this.#groupCreated = created;
    this.#groupCount = 1;
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(this.#endTurn);
    }
  }

  #flushGroup(): void {
    if (this.#groupCount === 0) return;
    if (this.#turnNow === 0) this.#turnNow = Date.now();
    this.latency?.observe(Math.max(0, this.#turnNow - this.#groupCreated) / 1000, this.#groupCount);
    this.#groupCount = 0;
    this.#groupCreated = 0;
  }
}

/** Counters and values describing the running broker (Mochi's `system.Info`, camelCased). */
export class Info {
  /** Traffic by packet type, QoS and drop reason (for metrics). */
  readonly traffic: Traffic = new Traffic();
  /** The broker version. */
  version = "";
  /** Start time, unix seconds. */
  started = 0;
  /** Current time, unix seconds (refreshed each tick). */
  time = 0;
  /** Seconds since start. */
  uptime = 0;
  /** Bytes received from clients. */
  bytesReceived = 0;
  /** Bytes sent to clients. */
  bytesSent = 0;
  /** Currently connected clients. */
  clientsConnected = 0;
  /** Persistent sessions whose client is disconnected. */
  clientsDisconnected = 0;
  /** Highest number of clients connected at once. */
  clientsMaximum = 0;
  /** Connected clients plus disconnected persistent sessions. */
  clientsTotal = 0;
  /** PUBLISH packets received. */
  messagesReceived = 0;
  /** PUBLISH packets sent. */
  messagesSent = 0;
  /** Messages dropped (slow or offline subscribers, too large, expired). */
  messagesDropped = 0;
  #counts: { readonly retainedCount: number; readonly subscriptionCount: number } | undefined;

  /** Retained messages held (read from the topic index given to {@linkcode Info.countFrom}). */
  get retained(): number {
    return this.#counts?.retainedCount ?? 0;
  }
  /** QoS 1/2 messages in flight. */
  inflight = 0;
  /** In-flight messages dropped. */
  inflightDropped = 0;
  /** Active subscriptions (read from the topic index given to {@linkcode Info.countFrom}). */
  get subscriptions(): number {
    return this.#counts?.subscriptionCount ?? 0;
  }

  /**
   * Reads `retained` and `subscriptions` from a topic index, so they are always current.
   *
   * @param topics The server's topic index.
   */
  countFrom(topics: { readonly retainedCount: number; readonly subscriptionCount: number }): void {
    this.#counts = topics;
  }
  /** Packets received. */
  packetsReceived = 0;
  /** Packets sent. */
  packetsSent = 0;
  /** Heap memory in use, bytes. */
  memoryAlloc = 0;
  /** Event-loop threads (always 1 in Deno, reported for Mochi compatibility). */
  threads = 1;
  /** The cluster this broker is a node of (set by `Server.addCluster`), for `$SYS/broker/cluster/...`. */
  cluster: ClusterView | undefined;

  /**
   * The info with Mochi's JSON field names.
   *
   * @returns A plain object for `JSON.stringify`.
   */
  toJSON(): Record<string, string | number> {
    return {
      version: this.version,
      started: this.started,
      time: this.time,
      uptime: this.uptime,
      bytes_received: this.bytesReceived,
      bytes_sent: this.bytesSent,
      clients_connected: this.clientsConnected,
      clients_disconnected: this.clientsDisconnected,
      clients_maximum: this.clientsMaximum,
      clients_total: this.clientsTotal,
      messages_received: this.messagesReceived,
      messages_sent: this.messagesSent,
      messages_dropped: this.messagesDropped,
      retained: this.retained,
      inflight: this.inflight,
      inflight_dropped: this.inflightDropped,
      subscriptions: this.subscriptions,
      packets_received: this.packetsReceived,
      packets_sent: this.packetsSent,
      memory_alloc: this.memoryAlloc,
      threads: this.threads,
    };
  }

  /**
   * Restores saved counters (Mochi's JSON names), keeping `version` and `started` as they are.
   *
   * @param saved Counters saved by a storage hook.
   */
  restore(saved: Record<string, string | number>): void {
    const num = (key: string) => (typeof saved[key] === "number" ? saved[key] as number : 0);
    this.bytesReceived = num("bytes_received");
    this.bytesSent = num("bytes_sent");
    this.clientsMaximum = num("clients_maximum");
    this.messagesReceived = num("messages_received");
    this.messagesSent = num("messages_sent");
    this.messagesDropped = num("messages_dropped");
    this.inflightDropped = num("inflight_dropped");
    this.packetsReceived = num("packets_received");
    this.packetsSent = num("packets_sent");
  }

  /**
   * The 20 `$SYS/broker/...` topics and their current values (Mochi's set).
   *
   * @returns Pairs of topic and value.
   */
  sysTopics(): [string, string][] {
    const b = `${SYS_PREFIX}/broker/`;
    return [
      [b + "version", this.version],
      [b + "time", String(this.time)],
      [b + "uptime", String(this.uptime)],
      [b + "started", String(this.started)],
      [b + "load/bytes/received", String(this.bytesReceived)],
      [b + "load/bytes/sent", String(this.bytesSent)],
      [b + "clients/connected", String(this.clientsConnected)],
      [b + "clients/disconnected", String(this.clientsDisconnected)],
      [b + "clients/maximum", String(this.clientsMaximum)],
      [b + "clients/total", String(this.clientsTotal)],
      [b + "packets/received", String(this.packetsReceived)],
      [b + "packets/sent", String(this.packetsSent)],
      [b + "messages/received", String(this.messagesReceived)],
      [b + "messages/sent", String(this.messagesSent)],
      [b + "messages/dropped", String(this.messagesDropped)],
      [b + "messages/inflight", String(this.inflight)],
      [b + "retained", String(this.retained)],
      [b + "subscriptions", String(this.subscriptions)],
      [b + "system/memory", String(this.memoryAlloc)],
      [b + "system/threads", String(this.threads)],
      ...this.#clusterTopics(b),
    ];
  }

  #clusterTopics(b: string): [string, string][] {
    if (!this.cluster) return [];
    const nodes = this.cluster.nodes();
    return [
      [b + "cluster/node_id", this.cluster.nodeId],
      [b + "cluster/nodes", JSON.stringify(nodes)],
      [b + "cluster/nodes/alive", String(nodes.filter((node) => node.alive).length)],
    ];
  }
}
