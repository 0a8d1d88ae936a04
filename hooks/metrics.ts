/**
 * Metrics: a {@linkcode MetricsHook} that counts from hook events; `src/app/prometheus.ts` renders
 * its counters, with what the server knows at scrape time, for Prometheus.
 *
 * Label cardinality is bounded: labels are packet types, QoS levels, reason names and hook ids,
 * never client ids or topics.
 *
 * @module
 */

import type { Packet } from "../src/packets/types.ts";
import { PacketType } from "../src/packets/types.ts";
import { reasonName } from "../src/packets/reason_codes.ts";
import { type DropReason, type Hook, HOOK_EVENTS } from "../src/hooks.ts";
import type { Client } from "../src/client.ts";
import type { Server } from "../src/server.ts";

/** Default histogram buckets for latencies, in seconds (0.5 ms to 10 s). */
// deno-fmt-ignore
export const LATENCY_BUCKETS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/**
 * A Prometheus histogram: counts of observations at or below each upper bound, their sum and count.
 *
 * @example Observing latencies
 * ```ts
 * import assert from "node:assert/strict";
 * import { Histogram } from "./metrics.ts";
 *
 * const h = new Histogram([0.01, 0.1, 1]);
 * h.observe(0.05);
 * h.observe(2); // above every bucket: counted only in the total
 * assert.deepEqual(h.cumulative(), [0, 1, 1]); // observations <= 0.01, <= 0.1, <= 1
 * assert.equal(h.count, 2);
 * assert.equal(h.sum, 2.05);
 * ```
 */
export class Histogram {
  /** The upper bounds, ascending (the implicit `+Inf` bucket is not listed). */
  readonly buckets: readonly number[];
  /** Observations per bucket (not cumulative); the last slot is the `+Inf` overflow. */
  readonly counts: Float64Array;
  /** The sum of all observations. */
  sum = 0;
  /** The number of observations. */
  count = 0;

  /**
   * Creates an empty histogram.
   *
   * @param buckets Ascending upper bounds; {@linkcode LATENCY_BUCKETS} by default.
   * @throws {RangeError} When the bounds are empty, not finite or not ascending.
   */
  constructor(buckets: readonly number[] = LATENCY_BUCKETS) {
    if (buckets.length === 0) throw new RangeError("A histogram needs at least one bucket");
    for (let i = 0; i < buckets.length; i++) {
      if (!Number.isFinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) {
        throw new RangeError(`Histogram buckets must be finite and ascending: "${buckets.join(",")}"`);
      }
    }
    this.buckets = [...buckets];
    this.counts = new Float64Array(buckets.length + 1);
  }

  /**
   * Records one observation.
   *
   * @param value The value, in the histogram's unit (seconds for latencies).
   */
  observe(value: number): void {
    const buckets = this.buckets;
    let i = 0;
    while (i < buckets.length && value > buckets[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }

  /**
   * The cumulative counts per listed bucket (`le` semantics), without `+Inf` (which is `count`).
   *
   * @returns One number per bucket.
   */
  cumulative(): number[] {
    const out: number[] = [];
    let total = 0;
    for (let i = 0; i < this.buckets.length; i++) out.push(total += this.counts[i]);
    return out;
  }
}

/**
 * Why a message was dropped (the `reason` label of `mqtt_messages_dropped_total`): what the
 * server reports for outbound drops, plus inbound publishes refused by the ACL or a hook.
 */
export type MessageDropReason = DropReason | "acl_denied" | "rejected";

/** Every drop reason, in label order. */
// deno-fmt-ignore
export const DROP_REASONS: readonly MessageDropReason[] = [
  "queue_full", "expired", "too_large", "acl_denied", "offline", "packet_id_exhausted", "rejected",
];

/** Packet type names for the `type` label, indexed by packet type. */
export const PACKET_NAMES: readonly string[] = (
  "reserved connect connack publish puback pubrec pubrel pubcomp subscribe suback unsubscribe unsuback " +
  "pingreq pingresp disconnect auth"
).split(" ");

/** v3 CONNACK return codes 1-5 as the v5 reason they stand for. */
const V3_CONNACK_REASONS = [0, 0x84, 0x85, 0x88, 0x86, 0x87];

/** A reason code as a label value: `"not_authorized"`. */
function reasonLabel(code: number): string {
  if (code === 0) return "normal_disconnection";
  return reasonName(code).replace(/[^a-z0-9]+/g, "_");
}

/** Reason names as they appear in the server's close messages, back to labels. */
const REASON_BY_NAME = new Map<string, string>();
for (let code = 0; code <= 0xa2; code++) {
  const name = reasonName(code);
  if (!name.startsWith("unknown")) REASON_BY_NAME.set(name, reasonLabel(code));
}
REASON_BY_NAME.set("success", "normal_disconnection");

/**
 * The `reason` label for a closed connection, from the error the server closed it with.
 *
 * The server closes with plain `Error`s whose messages name the reason code (`"Disconnected by the
 * server: session taken over"`, `"Client disconnected: normal disconnection"`); an `MqttError`
 * carries its code. Anything else is a lost connection.
 *
 * @param error The close cause (`client.state.stopCause` or the `onDisconnect` error).
 * @returns A bounded label value.
 */
export function closeReason(error: Error | undefined): string {
  if (!error) return "connection_lost";
  const code = (error as { reasonCode?: unknown }).reasonCode;
  if (typeof code === "number") return reasonLabel(code);
  const message = error.message;
  const colon = message.lastIndexOf(": ");
  if (
    colon > 0 &&
    (message.startsWith("Disconnected by the server") || message.startsWith("Client disconnected"))
  ) {
    const label = REASON_BY_NAME.get(message.slice(colon + 2));
    if (label) return label;
  }
  switch (message) {
    case "Keep alive timeout":
      return "keep_alive_timeout";
    case "Session taken over":
      return "session_taken_over";
    case "Write timeout: the client stopped reading":
      return "write_timeout";
    case "Server is shutting down":
      return "server_shutting_down";
    default:
      return "connection_lost";
  }
}

/** A hook that queues storage writes: `StorageHook` and its subclasses. */
export interface StorageLike extends Hook {
  readonly queueDepth: number;
  sync?(): Promise<void>;
  /** Optional: called after each successful commit with its duration (see the module notes). */
  commitObserver?: ((seconds: number, writes: number) => void) | undefined;
}

/**
 * Whether a hook queues storage writes (has a `queueDepth`).
 *
 * @param hook Any hook.
 * @returns True for storage hooks.
 */
export function isStorage(hook: Hook): hook is StorageLike {
  return typeof (hook as Partial<StorageLike>).queueDepth === "number";
}

/** One point of the per-second history the dashboard charts. */
export interface HistoryPoint {
  /** Time, ms since the epoch. */
  t: number;
  /** PUBLISH packets received so far. */
  received: number;
  /** PUBLISH packets sent so far. */
  sent: number;
  /** Clients connected at that time. */
  connected: number;
}

/** Options for {@linkcode MetricsHook}. */
export interface MetricsHookOptions {
  /** The hook id; `"metrics"` by default. */
  id?: string;
  /** How often the event-loop lag and the history are sampled, in ms; 1000 by default. */
  sampleIntervalMs?: number;
  /** How many history points are kept; 300 (five minutes at 1 s) by default. */
  historySize?: number;
  /** Buckets of the latency histograms, in seconds. */
  latencyBuckets?: readonly number[];
}

const DROP_INDEX: Record<string, number> = Object.fromEntries(DROP_REASONS.map((r, i) => [r, i]));

/**
 * Counts what happens in the broker, from hook events: packets and bytes by type, messages by QoS,
 * drops by reason, connections opened, refused and closed by reason, publish-to-deliver latency,
 * storage write latency, and the event-loop lag (a timer-drift sampler started in `onStarted`
 * and stopped in `stop`/`onStopped`). Add it after any storage hook, then serve
 * {@linkcode renderMetrics} (the `Metrics` listener and the stats listener's `/metrics` do).
 *
 * @example Counting and rendering
 * ```ts
 * import assert from "node:assert/strict";
 * import { AllowHook, MetricsHook, PacketType, Server } from "../mod.ts";
 * import { renderMetrics } from "../src/app/metrics.ts";
 * import { MockListener } from "../listeners/mock.ts";
 *
 * const server = new Server();
 * await server.addHook(new AllowHook());
 * const metrics = new MetricsHook();
 * await server.addHook(metrics);
 * const mock = new MockListener({ id: "mock" });
 * await server.addListener(mock);
 * await server.serve();
 *
 * const conn = mock.connect();
 * // CONNECT: "MQTT", v5, clean start, keep alive 60 s, no properties, client id "c1".
 * await conn.write(new Uint8Array([0x10, 15, 0, 4, 77, 81, 84, 84, 5, 2, 0, 60, 0, 0, 2, 99, 49]));
 * await conn.read(new Uint8Array(64)); // CONNACK
 * assert.equal(metrics.connectionsOpened, 1);
 * assert.equal(metrics.packetsReceived[PacketType.Connect], 1);
 * assert.match(renderMetrics(server), /^mqtt_clients_connected 1$/m);
 * conn.close();
 * await server.close();
 * ```
 */
export class MetricsHook implements Hook {
  /** The hook id. */
  readonly id: string;
  /** Packets received, by packet type. */
  readonly packetsReceived: Float64Array = new Float64Array(16);
  /** Bytes received, by packet type (only when the server reports packet sizes). */
  readonly bytesReceived: Float64Array = new Float64Array(16);
  /** Packets sent, by packet type. */
  readonly packetsSent: Float64Array = new Float64Array(16);
  /** Bytes sent, by packet type. */
  readonly bytesSent: Float64Array = new Float64Array(16);
  #now = 0;
  #nowValid = false;
  readonly #expireNow = (): void => {
    this.#nowValid = false;
  };
  /** PUBLISH packets received, by QoS. */
  readonly messagesReceived: Float64Array = new Float64Array(3);
  /** PUBLISH packets sent, by QoS. */
  readonly messagesSent: Float64Array = new Float64Array(3);
  /** Messages dropped, by `qos * DROP_REASONS.length + reason index`. */
  readonly messagesDropped: Float64Array = new Float64Array(3 * DROP_REASONS.length);
  /** In-flight or queued QoS 1/2 messages dropped (expired, or their session ended). */
  inflightDropped = 0;
  /** Connections accepted (CONNACK success). */
  connectionsOpened = 0;
  /** Connections refused with a CONNACK error, by reason label. */
  readonly connectionsRefused: Map<string, number> = new Map();
  /** Accepted connections that closed, by reason label. */
  readonly connectionsClosed: Map<string, number> = new Map();
  /** Clients connected now (opened minus closed). */
  connected = 0;
  /** Wills sent. */
  willsSent = 0;
  /** Seconds from a message's acceptance to its PUBLISH being queued to a subscriber's socket. */
  readonly deliveryLatency: Histogram;
  /** Seconds a storage write waits until it is durable. */
  readonly storageWriteLatency: Histogram;
  /** The last event-loop lag sample, in seconds. */
  eventLoopLag = 0;

  readonly #interval: number;
  readonly #historySize: number;
  readonly #history: HistoryPoint[] = [];
  #historyStart = 0;
  readonly #lagWindow: number[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;
  #lastTick = 0;
  /** Clients whose current PUBLISH reached `onPublished` (accepted). */
  readonly #accepted = new WeakSet<Client>();
  /** Clients whose last PUBACK/PUBREC refused with "not authorized". */
  readonly #deniedAck = new WeakSet<Client>();
  /** Clients whose next drop is for want of a packet id. */
  #storage: StorageLike[] = [];
  #boundTo: Server | undefined;
  #probing = false;

  /**
   * Creates the hook.
   *
   * @param options Id, sampling interval, history size and histogram buckets.
   */
  constructor(options: MetricsHookOptions = {}) {
    this.id = options.id ?? "metrics";
    this.#interval = options.sampleIntervalMs ?? 1000;
    if (!(this.#interval > 0)) {
      throw new RangeError(`sampleIntervalMs must be positive, got "${options.sampleIntervalMs}"`);
    }
    this.#historySize = Math.max(2, options.historySize ?? 300);
    this.deliveryLatency = new Histogram(options.latencyBuckets);
    this.storageWriteLatency = new Histogram(options.latencyBuckets);
    // A server that reports packet sizes (`onPacketReceived`) makes `onPacketRead` unnecessary:
    // hide it so the dispatcher does not chain through it for every packet.
    if ((HOOK_EVENTS as readonly string[]).includes("onPacketReceived")) {
      (this as { onPacketRead?: unknown }).onPacketRead = undefined;
    }
  }

  /**
   * Lets the hook find the server's storage hooks (for write latency). `renderMetrics` and the
   * HTTP handlers call it; call it yourself to measure storage before the first scrape.
   *
   * @param server The server this hook was added to.
   */
  bind(server: Server): void {
    if (this.#boundTo === server) return;
    this.#boundTo = server;
    this.#storage = server.hooks.list.filter(isStorage);
    for (const hook of this.#storage) {
      if ("commitObserver" in hook) {
        hook.commitObserver = (seconds: number) => this.storageWriteLatency.observe(seconds);
      }
    }
  }

  /** Starts the sampler (the server calls this through `onStarted`). Idempotent. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#lastTick = performance.now();
    this.#sample(Date.now());
    const timer = setInterval(this.#tick, this.#interval);
    Deno.unrefTimer(timer as unknown as number);
    this.#timer = timer;
  }

  /** Stops the sampler. Idempotent. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Starts the sampler. */
  onStarted(): void {
    this.start();
  }

  /** Stops the sampler. */
  onStopped(): void {
    this.stop();
  }

  /** The largest event-loop lag among the last ten samples, in seconds. */
  get eventLoopLagMax(): number {
    let max = 0;
    for (const lag of this.#lagWindow) if (lag > max) max = lag;
    return max;
  }

  /**
   * The per-second history, oldest first.
   *
   * @param since Only points newer than this time (ms since the epoch).
   * @returns The points.
   */
  history(since = 0): HistoryPoint[] {
    const out: HistoryPoint[] = [];
    const n = this.#history.length;
    for (let i = 0; i < n; i++) {
      const point = this.#history[(this.#historyStart + i) % n];
      if (point.t > since) out.push(point);
    }
    return out;
  }

  /** PUBLISH packets received, all QoS. */
  get messagesReceivedTotal(): number {
    return this.messagesReceived[0] + this.messagesReceived[1] + this.messagesReceived[2];
  }

  /** PUBLISH packets sent, all QoS. */
  get messagesSentTotal(): number {
    return this.messagesSent[0] + this.messagesSent[1] + this.messagesSent[2];
  }

  /** Messages dropped, all QoS and reasons. */
  get messagesDroppedTotal(): number {
    let total = 0;
    for (const n of this.messagesDropped) total += n;
    return total;
  }

  readonly #tick = (): void => {
    const now = performance.now();
    const lag = Math.max(0, now - this.#lastTick - this.#interval) / 1000;
    this.#lastTick = now;
    this.eventLoopLag = lag;
    this.#lagWindow.push(lag);
    if (this.#lagWindow.length > 10) this.#lagWindow.shift();
    this.#sample(Date.now());
    this.#probeStorage();
  };

  #sample(t: number): void {
    const point = {
      t,
      received: this.messagesReceivedTotal,
      sent: this.messagesSentTotal,
      connected: this.connected,
    };
    if (this.#history.length < this.#historySize) this.#history.push(point);
    else {
      this.#history[this.#historyStart] = point;
      this.#historyStart = (this.#historyStart + 1) % this.#historySize;
    }
  }

  // Packets ------------------------------------------------------------------------------------

  /** Counts an inbound packet (used when the server has no `onPacketReceived` event). */
  onPacketRead(_client: Client, packet: Packet): Packet {
    const type = packet.fixedHeader.type;
    this.packetsReceived[type]++;
    if (type === PacketType.Publish) this.messagesReceived[packet.fixedHeader.qos ?? 0]++;
    return packet;
  }

  /**
   * Counts an inbound packet with its size, for servers that report it (see the module notes).
   *
   * @param _client The client.
   * @param header The fixed header's first byte.
   * @param size The packet's size in bytes.
   */
  onPacketReceived(_client: Client, header: number, size: number): void {
    const type = header >> 4;
    this.packetsReceived[type]++;
    this.bytesReceived[type] += size;
    if (type === PacketType.Publish) this.messagesReceived[(header >> 1) & 3]++;
  }

  /**
   * The time, read once per turn of the event loop: a fan-out delivers one message to every
   * subscriber in one turn, and reading the clock for each delivery would cost more than the rest.
   */
  #clock(): number {
    if (!this.#nowValid) {
      this.#now = Date.now();
      this.#nowValid = true;
      queueMicrotask(this.#expireNow);
    }
    return this.#now;
  }

  /** Counts an outbound packet; times deliveries; notes refusals. */
  onPacketSent(client: Client, packet: Packet, bytes: Uint8Array): void {
    const type = packet.fixedHeader.type;
    this.packetsSent[type]++;
    this.bytesSent[type] += bytes.length;
    switch (type) {
      case PacketType.Publish: {
        const header = packet.fixedHeader;
        this.messagesSent[header.qos ?? 0]++;
        // Resends and retained messages sent on subscribe would only measure their age.
        if (packet.created && !header.dup && !header.retain) {
          this.deliveryLatency.observe(Math.max(0, this.#clock() - packet.created) / 1000);
        }
        break;
      }
      case PacketType.Connack: {
        let code = packet.reasonCode ?? 0;
        if (code === 0) break;
        if (client.properties.protocolVersion !== 5) code = V3_CONNACK_REASONS[code] ?? 0x80;
        const label = reasonLabel(code);
        this.connectionsRefused.set(label, (this.connectionsRefused.get(label) ?? 0) + 1);
        break;
      }
      case PacketType.Puback:
      case PacketType.Pubrec:
        if (packet.reasonCode === 0x87) this.#deniedAck.add(client);
        break;
    }
  }

  /** Classifies an inbound PUBLISH that was not accepted as dropped. */
  onPacketProcessed(client: Client, packet: Packet): void {
    if (packet.fixedHeader.type !== PacketType.Publish) return;
    if (this.#accepted.delete(client)) return;
    const qos = packet.fixedHeader.qos ?? 0;
    if (qos === 2 && packet.fixedHeader.dup) return; // a re-sent QoS 2 publish, acknowledged again
    const denied = this.#deniedAck.delete(client) || (packet.topicName?.startsWith("$") ?? false);
    this.#drop(qos, denied ? "acl_denied" : "rejected");
  }

  // Connections --------------------------------------------------------------------------------

  /** Counts an accepted connection. */
  onSessionEstablished(): void {
    this.connectionsOpened++;
    this.connected++;
    this.#probeStorage();
  }

  /** Counts a closed connection by reason. */
  onDisconnect(client: Client, error: Error | undefined): void {
    this.connected--;
    const label = closeReason(client.state.stopCause ?? error);
    this.connectionsClosed.set(label, (this.connectionsClosed.get(label) ?? 0) + 1);
    this.#probeStorage();
  }

  // Messages -----------------------------------------------------------------------------------

  /** Notes that the client's PUBLISH was accepted. */
  onPublished(client: Client): void {
    this.#accepted.add(client);
    this.#probeStorage();
  }

  /** Probes storage latency after a subscription change. */
  onSubscribed(): void {
    this.#probeStorage();
  }

  /**
   * Counts a dropped message, by QoS and the reason the server gives.
   */
  onPublishDropped(_client: Client, packet: Packet, reason: DropReason): void {
    this.#drop(packet.fixedHeader.qos ?? 0, reason);
  }

  /** Counts a dropped in-flight or queued message. */
  onQosDropped(_client: Client, packet: Packet): void {
    if (packet.fixedHeader.type === PacketType.Publish) this.inflightDropped++;
  }

  /** Counts a will sent. */
  onWillSent(): void {
    this.willsSent++;
  }

  #drop(qos: number, reason: MessageDropReason): void {
    this.messagesDropped[qos * DROP_REASONS.length + DROP_INDEX[reason]]++;
  }

  /** Times the next storage commit when writes are waiting and no probe is under way. */
  #probeStorage(): void {
    if (this.#probing) return;
    for (const hook of this.#storage) {
      if (hook.commitObserver !== undefined || !hook.sync || hook.queueDepth === 0) continue;
      this.#probing = true;
      const start = performance.now();
      hook.sync().then(
        () => {
          this.storageWriteLatency.observe((performance.now() - start) / 1000);
          this.#probing = false;
        },
        () => this.#probing = false,
      );
      return;
    }
  }
}
