/**
 * The bridge hook: an MQTT client inside the broker that connects to another broker and moves
 * messages both ways by Mosquitto-style `topic` rules.
 *
 * - Out: an inline subscription per `out`/`both` rule sees every accepted message (from clients,
 *   wills, inline publishes, other bridges); it is queued in order and sent within the remote's
 *   Receive Maximum (or `maxInflight` for v3 remotes) and Maximum Packet Size. A QoS 1/2 client
 *   publish is acknowledged only when the remote has acknowledged it (PUBACK, or PUBREC for QoS 2).
 * - In: one SUBSCRIBE on the remote (v5: No Local, Retain As Published); each message is injected
 *   through the server's normal publish path by the bridge's own inline client, then acknowledged
 *   to the remote (after the storage hook made it durable, when there is one).
 * - Loops: a message that came in over this bridge carries the bridge's client id as its origin and
 *   never goes back out over it; v5 No Local keeps the remote from echoing what we sent.
 * - Reconnects with exponential backoff and jitter; the queue (bounded, oldest dropped) and the
 *   in-flight messages survive, resent in order (as DUP when the remote resumed the session).
 *
 * @module
 */

import type { Server } from "../../src/server.ts";
import type { Client } from "../../src/client.ts";
import type { Hook } from "../../src/hooks.ts";
import type { Info } from "../../src/system.ts";
import { logger } from "../../src/logger.ts";
import { stripRoutingProperties } from "../../src/outbound.ts";
import { ReasonCode } from "../../src/packets/reason_codes.ts";
import { type Packet, PacketType, type QoS, type Subscription } from "../../src/packets/types.ts";
import { ConnectRefusedError, MqttConnection } from "./mqtt_client.ts";
import { Outbox, type OutgoingMessage } from "./outbox.ts";
import {
  type BridgeConfig,
  type BridgeTopic,
  reconnectDelay,
  resolveBridgeConfig,
  type ResolvedBridgeConfig,
  rewriteTopic,
  topicMatches,
} from "./rules.ts";
import { dial } from "./transport.ts";

const log = logger("bridge");

/** Where a bridge is in its life. */
export type BridgeState = "idle" | "connecting" | "connected" | "waiting" | "stopped";

/** A bridge's state and counters, as `$SYS`, `/metrics`, the admin API and the dashboard show them. */
export interface BridgeStatus {
  /** The bridge id. */
  id: string;
  /** The remote's address. */
  address: string;
  /** The client id at the remote. */
  clientId: string;
  /** The state. */
  state: BridgeState;
  /** Whether it is connected to the remote. */
  connected: boolean;
  /** Messages waiting to be sent. */
  queued: number;
  /** Bytes waiting to be sent. */
  queuedBytes: number;
  /** QoS 1/2 messages sent and not yet acknowledged by the remote. */
  inflight: number;
  /** Messages sent to the remote (QoS 1/2 counted when acknowledged). */
  sent: number;
  /** Messages received from the remote. */
  received: number;
  /** Messages dropped: queue full, or larger than the remote accepts. */
  dropped: number;
  /** Successful connections since start. */
  connects: number;
  /** The last connection error, "" if none. */
  lastError: string;
  /** When the current connection was made (ms since epoch), 0 while disconnected. */
  connectedAt: number;
}

/** Subscription ids of the bridges' inline subscriptions start here (one per rule). */
const SUBSCRIPTION_ID_BASE = 0x0b00_0000;
let bridgesCreated = 0;

/**
 * A bridge to another MQTT broker. Add it as a hook; it connects when the server starts serving
 * and needs the server's inline client (`inlineClient: true`).
 *
 * @example Bridging `sensors/#` out to a second broker
 * ```ts
 * import assert from "node:assert/strict";
 * import { AllowHook, Bridge, Server, TCP } from "../../mod.ts";
 * const remote = new Server();
 * await remote.addHook(new AllowHook());
 * const tcp = new TCP({ id: "t", address: "127.0.0.1:0" });
 * await remote.addListener(tcp);
 * await remote.serve();
 * const edge = new Server({ inlineClient: true });
 * const bridge = new Bridge(edge, { id: "cloud", address: `mqtt://${tcp.address}`, topics: ["sensors/# out 1"] });
 * await edge.addHook(bridge);
 * await edge.serve();
 * while (!bridge.status().connected) await new Promise((r) => setTimeout(r, 10));
 * assert.equal(bridge.status().state, "connected");
 * await edge.close();
 * await remote.close();
 * ```
 */
export class Bridge implements Hook {
  /** The hook id, `bridge:<id>`. */
  readonly id: string;
  /** The settings in use. */
  readonly config: ResolvedBridgeConfig;
  readonly #server: Server;
  readonly #outbox: Outbox;
  /** The inline client that injects incoming messages; its id marks them as having come over this bridge. */
  #inject: Client | undefined;
  readonly #marker: string;
  readonly #subscriptionBase: number;
  #subscribed: [filter: string, id: number][] = [];
  #conn: MqttConnection | undefined;
  #state: BridgeState = "idle";
  #running: Promise<void> | undefined;
  #stopping = false;
  #wake: (() => void) | undefined;
  #sleepTimer: ReturnType<typeof setTimeout> | undefined;
  /** Incoming QoS 2 packet ids delivered locally and awaiting the remote's PUBREL. */
  readonly #inboundQos2 = new Set<number>();
  /** Incoming messages are handled one after another, so their acks go in order. */
  #inbound: Promise<void> = Promise.resolve();
  #lastOut: Packet | undefined;
  #sent = 0;
  #received = 0;
  #tooLarge = 0;
  #connects = 0;
  #lastError = "";
  #connectedAt = 0;

  /**
   * Creates a bridge; nothing happens until it is added to the server and the server serves.
   *
   * @param server The broker.
   * @param config The settings.
   * @throws {TypeError} A `BridgeConfigError` naming the setting that is not valid.
   */
  constructor(server: Server, config: BridgeConfig) {
    this.config = resolveBridgeConfig(config);
    this.id = `bridge:${this.config.id}`;
    this.#server = server;
    this.#outbox = new Outbox(this.config.queueMaxMessages, this.config.queueMaxBytes);
    // U+0000 cannot appear in a network client's id, so no client can pass for the bridge.
    this.#marker = `\u0000bridge\u0000${this.config.id}`;
    this.#subscriptionBase = SUBSCRIPTION_ID_BASE + (bridgesCreated++ % 4096) * 256;
  }

  /** Subscribes locally to the `out` rules (messages are queued from now on). */
  async init(): Promise<void> {
    if (!this.#server.options.inlineClient) {
      throw new TypeError(`Bridge "${this.config.id}" needs the server option inlineClient: true`);
    }
    this.#inject = this.#server.newClient(null, "bridge", this.#marker, true);
    const rules = this.config.topics;
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i];
      if (rule.direction === "in") continue;
      const filter = rule.localPrefix + rule.pattern;
      const id = this.#subscriptionBase + i;
      await this.#server.subscribe(filter, id, (_c, _s, packet) => this.#outgoing(rule, packet), {
        holdAcks: true,
      });
      this.#subscribed.push([filter, id]);
    }
  }

  /** Starts connecting to the remote. */
  onStarted(): void {
    if (this.#running || this.#stopping) return;
    this.#running = this.#run();
  }

  /** Disconnects from the remote and releases every held acknowledgement. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#state = "stopped";
    clearTimeout(this.#sleepTimer);
    this.#wake?.();
    this.#conn?.close(new Error("The bridge stopped"));
    await this.#running;
    for (const [filter, id] of this.#subscribed) await this.#server.unsubscribe(filter, id).catch(() => {});
    this.#subscribed = [];
    for (const message of this.#outbox.clear()) message.settle?.(ReasonCode.UnspecifiedError);
  }

  /** Publishes the bridge's state and counters under `$SYS/broker/bridges/<id>/`. */
  onSysInfoTick(_info: Info): void {
    const status = this.status();
    const base = `$SYS/broker/bridges/${status.id}/`;
    const values: [string, string | number][] = [
      ["state", status.state],
      ["connected", status.connected ? 1 : 0],
      ["queued", status.queued],
      ["inflight", status.inflight],
      ["sent", status.sent],
      ["received", status.received],
      ["dropped", status.dropped],
      ["last_error", status.lastError],
    ];
    for (const [name, value] of values) {
      this.#server.publish(base + name, String(value), true, 0).catch(() => {});
    }
  }

  /**
   * The bridge's state and counters.
   *
   * @returns A snapshot.
   */
  status(): BridgeStatus {
    return {
      id: this.config.id,
      address: this.config.address,
      clientId: this.config.clientId,
      state: this.#state,
      connected: this.#state === "connected",
      queued: this.#outbox.queued,
      queuedBytes: this.#outbox.queuedBytes,
      inflight: this.#outbox.inflight.size,
      sent: this.#sent,
      received: this.#received,
      dropped: this.#outbox.dropped + this.#tooLarge,
      connects: this.#connects,
      lastError: this.#lastError,
      connectedAt: this.#connectedAt,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Out: local to remote

  /** The inline subscription's handler; returns the hold on the publisher's ack for QoS 1/2. */
  #outgoing(rule: BridgeTopic, packet: Packet): Promise<number | void> | undefined {
    if (packet.origin === this.#marker) return undefined; // came in over this bridge: never back out
    if (packet === this.#lastOut) return undefined; // several rules match: send it once
    this.#lastOut = packet;
    const qos = Math.min(packet.fixedHeader.qos ?? 0, rule.qos) as QoS;
    const message: OutgoingMessage = {
      topic: rewriteTopic(packet.topicName!, rule.localPrefix, rule.remotePrefix),
      payload: packet.payload ? packet.payload.slice() : new Uint8Array(),
      qos,
      retain: packet.fixedHeader.retain === true,
      properties: stripRoutingProperties(packet.properties),
      packetId: 0,
      released: false,
    };
    let hold: Promise<number | void> | undefined;
    if (qos > 0) {
      const { promise, resolve } = Promise.withResolvers<number | void>();
      message.settle = resolve;
      hold = promise;
    }
    for (const dropped of this.#outbox.push(message)) {
      dropped.settle?.(ReasonCode.QuotaExceeded);
      log.warn("Bridge {id}: queue full, dropped the oldest message ({topic})", {
        id: this.config.id,
        topic: dropped.topic,
      });
    }
    if (this.#conn) this.#drain(this.#conn);
    return hold;
  }

  /** Sends queued messages while the remote's window has room. */
  #drain(conn: MqttConnection): void {
    const outbox = this.#outbox;
    const window = this.config.protocolVersion === 5 ? conn.receiveMaximum : this.config.maxInflight;
    for (let message = outbox.peek(); message !== undefined; message = outbox.peek()) {
      if (conn.isClosed) return;
      const qos = Math.min(message.qos, conn.maximumQoS) as QoS;
      if (qos > 0 && outbox.inflight.size >= window) return;
      outbox.shift();
      message.qos = qos;
      if (qos > 0) {
        message.packetId = outbox.nextPacketId();
        outbox.inflight.set(message.packetId, message);
      }
      if (!conn.send(this.#publishPacket(conn, message, false))) {
        if (qos > 0) outbox.inflight.delete(message.packetId);
        if (conn.isClosed) {
          outbox.unshift([message]);
          return;
        }
        this.#tooLarge++;
        message.settle?.(ReasonCode.PacketTooLarge);
        log.warn("Bridge {id}: a message for {topic} is larger than the remote accepts; dropped", {
          id: this.config.id,
          topic: message.topic,
        });
        continue;
      }
      if (qos === 0) {
        this.#sent++;
        message.settle?.();
      }
    }
  }

  #publishPacket(conn: MqttConnection, message: OutgoingMessage, dup: boolean): Packet {
    return {
      fixedHeader: {
        type: PacketType.Publish,
        qos: message.qos,
        retain: message.retain && conn.retainAvailable,
        dup,
      },
      topicName: message.topic,
      packetId: message.qos > 0 ? message.packetId : undefined,
      payload: message.payload,
      properties: message.properties,
    };
  }

  /** PUBACK, PUBREC, PUBCOMP from the remote. */
  #acknowledged(conn: MqttConnection, packet: Packet): void {
    const id = packet.packetId!;
    const message = this.#outbox.inflight.get(id);
    if (!message) return;
    const code = packet.reasonCode ?? 0;
    const type = packet.fixedHeader.type;
    if (type === PacketType.Pubrec && code < 0x80) {
      message.released = true;
      message.settle?.(); // the remote has it
      message.settle = undefined;
      conn.send({ fixedHeader: { type: PacketType.Pubrel }, packetId: id, reasonCode: 0 });
      return;
    }
    this.#outbox.inflight.delete(id);
    if (code >= 0x80) {
      log.warn("Bridge {id}: the remote refused a message for {topic}: 0x{code}", {
        id: this.config.id,
        topic: message.topic,
        code: code.toString(16),
      });
      message.settle?.(code);
    } else {
      this.#sent++;
      message.settle?.();
    }
    this.#drain(conn);
  }

  /** After CONNACK: resend what was in flight (as DUP if the session resumed), in order. */
  #resume(conn: MqttConnection): void {
    const inflight = [...this.#outbox.inflight.values()];
    if (conn.sessionPresent) {
      for (const message of inflight) {
        if (message.released) {
          conn.send({ fixedHeader: { type: PacketType.Pubrel }, packetId: message.packetId, reasonCode: 0 });
        } else conn.send(this.#publishPacket(conn, message, true));
      }
      return;
    }
    // The remote lost the session: what it had acknowledged with PUBREC is its own now; the rest
    // goes again, first.
    this.#outbox.inflight.clear();
    this.#inboundQos2.clear();
    const again = inflight.filter((m) => !m.released);
    for (const message of again) message.packetId = 0;
    this.#outbox.unshift(again);
  }

  // ---------------------------------------------------------------------------------------------
  // In: remote to local

  #onPacket(conn: MqttConnection, packet: Packet): void {
    switch (packet.fixedHeader.type) {
      case PacketType.Publish:
        this.#inbound = this.#inbound.then(() => this.#incoming(conn, packet));
        break;
      case PacketType.Puback:
      case PacketType.Pubrec:
      case PacketType.Pubcomp:
        this.#acknowledged(conn, packet);
        break;
      case PacketType.Pubrel: {
        const id = packet.packetId!;
        this.#inbound = this.#inbound.then(() => {
          this.#inboundQos2.delete(id);
          conn.send({ fixedHeader: { type: PacketType.Pubcomp }, packetId: id, reasonCode: 0 });
        });
        break;
      }
      case PacketType.Suback:
        (packet.reasonCodes ?? []).forEach((code, i) => {
          if (code >= 0x80) {
            log.warn("Bridge {id}: the remote refused subscription {index}: 0x{code}", {
              id: this.config.id,
              index: i,
              code: code.toString(16),
            });
          }
        });
        break;
      default:
        break;
    }
  }

  async #incoming(conn: MqttConnection, packet: Packet): Promise<void> {
    const qos = packet.fixedHeader.qos ?? 0;
    const id = packet.packetId!;
    if (qos === 2 && this.#inboundQos2.has(id)) {
      conn.send({ fixedHeader: { type: PacketType.Pubrec }, packetId: id, reasonCode: 0 });
      return;
    }
    const topic = packet.topicName!;
    const rule = this.config.topics.find((r) =>
      r.direction !== "out" && topicMatches(r.remotePrefix + r.pattern, topic) &&
      topic.startsWith(r.remotePrefix)
    );
    if (rule) {
      try {
        await this.#server.injectPacket(this.#inject!, {
          fixedHeader: { type: PacketType.Publish, qos, retain: packet.fixedHeader.retain === true },
          topicName: rewriteTopic(topic, rule.remotePrefix, rule.localPrefix),
          payload: packet.payload ?? new Uint8Array(),
          properties: stripRoutingProperties(packet.properties),
        });
        // With a storage hook, acknowledge only what is durable.
        if (qos > 0 && this.#server.options.durability === "sync" && this.#server.hooks.has("sync")) {
          await this.#server.hooks.sync();
        }
        this.#received++;
      } catch (error) {
        log.error("Bridge {id}: could not deliver a message for {topic}: {error}", {
          id: this.config.id,
          topic,
          error: String(error),
        });
        return; // not acknowledged: the remote sends it again
      }
    }
    if (qos === 1) conn.send({ fixedHeader: { type: PacketType.Puback }, packetId: id, reasonCode: 0 });
    else if (qos === 2) {
      this.#inboundQos2.add(id);
      conn.send({ fixedHeader: { type: PacketType.Pubrec }, packetId: id, reasonCode: 0 });
    }
  }

  #subscribeRemote(conn: MqttConnection): void {
    const filters: Subscription[] = this.config.topics
      .filter((rule) => rule.direction !== "out")
      .map((rule) => ({
        filter: rule.remotePrefix + rule.pattern,
        qos: Math.min(rule.qos, conn.maximumQoS) as QoS,
        noLocal: conn.protocolVersion === 5 ? true : undefined,
        retainAsPublished: conn.protocolVersion === 5 ? true : undefined,
      }));
    if (filters.length === 0) return;
    conn.send({
      fixedHeader: { type: PacketType.Subscribe },
      packetId: this.#outbox.nextPacketId(),
      filters,
    });
  }

  // ---------------------------------------------------------------------------------------------
  // The connection loop

  async #run(): Promise<void> {
    let attempt = 0;
    const c = this.config;
    while (!this.#stopping) {
      this.#state = "connecting";
      try {
        const raw = await dial(c.url, c.tls, c.connectTimeout * 1000);
        if (this.#stopping) {
          raw.close();
          break;
        }
        const conn = await MqttConnection.open(raw, {
          protocolVersion: c.protocolVersion,
          clientId: c.clientId,
          username: c.username,
          password: c.password,
          cleanStart: c.cleanStart,
          sessionExpiry: c.sessionExpiry,
          keepAlive: c.keepAlive,
          connectTimeout: c.connectTimeout * 1000,
        });
        this.#conn = conn;
        this.#state = "connected";
        this.#connectedAt = Date.now();
        this.#connects++;
        attempt = 0;
        log.info("Bridge {id} connected to {address} (session {session})", {
          id: c.id,
          address: c.address,
          session: conn.sessionPresent ? "resumed" : "new",
        });
        this.#subscribeRemote(conn);
        this.#resume(conn);
        conn.start((packet) => this.#onPacket(conn, packet));
        this.#drain(conn);
        if (this.#stopping) conn.close(new Error("The bridge stopped"));
        const reason = await conn.closed;
        this.#conn = undefined;
        this.#connectedAt = 0;
        if (this.#stopping) break;
        this.#lastError = reason.message;
        log.warn("Bridge {id} lost its connection to {address}: {reason}", {
          id: c.id,
          address: c.address,
          reason: reason.message,
        });
      } catch (error) {
        this.#conn = undefined;
        const message = error instanceof Error ? error.message : String(error);
        this.#lastError = message;
        if (this.#stopping) break;
        const level = error instanceof ConnectRefusedError ? "error" : "warn";
        log[level]("Bridge {id} could not connect to {address}: {reason}", {
          id: c.id,
          address: c.address,
          reason: message,
        });
      }
      if (this.#stopping) break;
      this.#state = "waiting";
      await this.#sleep(reconnectDelay(attempt++, c.reconnectDelayMin, c.reconnectDelayMax));
    }
    this.#state = "stopped";
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#sleepTimer = setTimeout(resolve, ms);
    });
  }
}

/**
 * The bridges added to a server as hooks, in the order added.
 *
 * @param server The server.
 * @returns Its bridges.
 *
 * @example No bridges
 * ```ts
 * import assert from "node:assert/strict";
 * import { findBridges, Server } from "../../mod.ts";
 * assert.deepEqual(findBridges(new Server()), []);
 * ```
 */
export function findBridges(server: Server): Bridge[] {
  return server.hooks.list.filter((hook): hook is Bridge => hook instanceof Bridge);
}
