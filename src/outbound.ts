/**
 * Outbound delivery to one client: QoS 0 writes, QoS 1/2 in flight and queued (offline, or over
 * the client's Receive Maximum), resends on reconnect, the client's acknowledgements, outbound
 * topic aliases and remaining message expiry, drop accounting, and backpressure (pausing the
 * publishers of a subscriber that is busy but still draining).
 *
 * @module
 */

import type { Packet, QoS } from "./packets/types.ts";
import { PacketType } from "./packets/types.ts";
import { ReasonCode } from "./packets/reason_codes.ts";
import type { Client } from "./client.ts";
import type { Clients } from "./clients.ts";
import type { DropReason, Hooks } from "./hooks.ts";
import type { Capabilities } from "./options.ts";
import type { Delivery } from "./topics.ts";
import type { Info } from "./system.ts";
import { messageBytes } from "./inflight.ts";
import { encodePacket } from "./packets/codec.ts";
import { ByteWriter } from "./packets/writer.ts";

/**
 * A subscriber whose socket write has waited this long is stalled, not busy: it slows no publisher, and
 * past its limits it loses messages (counted). 100 ms took a subscriber on a loaded machine (a benchmark
 * generator sharing 2 cores) for stalled and dropped acknowledged QoS 1 messages under fan-in; a second
 * keeps that for clients that really stopped reading, which the write timeout then disconnects.
 */
const STALL_MS = 1000;
/** How often congested subscribers are re-checked while publishers are paused for them. */
const CONGESTION_CHECK_MS = 50;
/** At most this many encodings of one message are kept while it is fanned out. */
const MAX_VARIANTS = 8;

/**
 * One encoding of the message being fanned out, shared by every subscriber that needs these bytes:
 * the same protocol family (v5 or not), QoS, retain flag and remaining expiry, no subscription
 * identifiers and no topic alias.
 */
interface EncodedVariant {
  v5: boolean;
  qos: number;
  retain: boolean;
  /** Remaining message expiry in seconds, -1 when the message has none. */
  expiry: number;
  bytes: Uint8Array;
  /** Where the packet identifier sits in `bytes` (QoS 1/2), -1 for QoS 0. */
  packetIdAt: number;
}

/**
 * Sends messages to clients and keeps their QoS 1/2 flows. One per server.
 */
export class Outbound {
  readonly #caps: Capabilities;
  readonly #info: Info;
  readonly #hooks: Hooks;
  readonly #clients: Clients;
  /** Subscribers that fell behind while still draining, and the publishers paused for each. */
  readonly #congested = new Map<Client, Set<Client>>();
  /** For each paused publisher, how many congested subscribers hold it (resumed at zero). */
  readonly #holds = new Map<Client, number>();
  #congestionTimer: ReturnType<typeof setInterval> | undefined;
  /** Waiting for every congested subscriber to catch up (see `drained`). */
  readonly #drainWaiters: (() => void)[] = [];
  /** The message being fanned out (between `startFanOut` and `endFanOut`), whose encodings are shared. */
  #fanOut: Packet | undefined;
  readonly #variants: EncodedVariant[] = [];
  readonly #scratch = new ByteWriter(256);

  /**
   * Creates the outbound side of a server.
   *
   * @param caps The server's capabilities.
   * @param info The server's counters.
   * @param hooks The server's hooks.
   * @param clients The server's clients (to find a message's publisher for backpressure).
   */
  constructor(caps: Capabilities, info: Info, hooks: Hooks, clients: Clients) {
    this.#caps = caps;
    this.#info = info;
    this.#hooks = hooks;
    this.#clients = clients;
  }

  /**
   * Starts fanning out `packet` to many subscribers: until {@linkcode Outbound.endFanOut}, each
   * distinct encoding of it is made once and copied to every subscriber that needs the same bytes
   * (a QoS 1/2 copy gets its own packet identifier patched in). A fan-out started inside another
   * (a hook publishing while a message is delivered) ends sharing for the outer one.
   *
   * @param packet The message about to be delivered.
   */
  startFanOut(packet: Packet): void {
    this.#variants.length = 0;
    // A hook that rewrites packets as they are encoded sees each one: nothing is shared then.
    this.#fanOut = this.#hooks.has("onPacketEncode") ? undefined : packet;
  }

  /** Ends the fan-out started by {@linkcode Outbound.startFanOut} and drops its encodings. */
  endFanOut(): void {
    this.#fanOut = undefined;
    this.#variants.length = 0;
  }

  /** Resumes every paused publisher (the server is closing). */
  close(): void {
    for (const target of [...this.#congested.keys()]) this.resumePublishers(target, true);
  }

  /**
   * Backpressure for messages with no local publisher to pause (those a cluster node receives from
   * the others): `undefined` when no subscriber is congested, else a promise that resolves once every
   * congested subscriber has caught up (or left, or stalled, or the server closed). The cluster stops
   * reading its inbox meanwhile, as a local publisher would be paused.
   *
   * @returns A promise while some subscriber is congested.
   */
  drained(): Promise<void> | undefined {
    if (this.#congested.size === 0) return undefined;
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#drainWaiters.push(resolve);
    return promise;
  }

  /**
   * Delivers a message to one subscriber: QoS capped by the subscription, Retain As Published,
   * subscription identifiers; QoS 0 is written (or dropped for a slow or offline client), QoS 1/2
   * is sent in flight or queued (offline, or over the client's Receive Maximum).
   *
   * @param client The subscriber.
   * @param delivery What its matching subscriptions ask for.
   * @param packet The message.
   * @param retained True for retained messages sent on subscribe (they keep the retain flag and
   *   pass the slow-consumer limits: the client asked for them).
   */
  deliver(client: Client, delivery: Delivery, packet: Packet, retained: boolean): void {
    const qos = Math.min(packet.fixedHeader.qos ?? 0, delivery.qos) as QoS;
    // [MQTT-3.3.1-12/13] retained on subscribe keep the flag; otherwise Retain As Published decides.
    const retain = retained || (delivery.retainAsPublished && (packet.fixedHeader.retain ?? false));
    let properties = stripRoutingProperties(packet.properties);
    if (delivery.identifiers.length > 0) {
      properties = { ...properties, subscriptionIdentifier: delivery.identifiers };
    }
    const out: Packet = {
      fixedHeader: { type: PacketType.Publish, qos, retain, dup: false },
      topicName: packet.topicName,
      payload: packet.payload,
      properties,
      created: packet.created,
      expiry: packet.expiry,
      origin: packet.origin,
      clusterId: packet.clusterId,
      // A copy only shared groups gave this client goes to another member if its session ends first.
      sharedGroups: delivery.shared ? delivery.groups : undefined,
    };
    // Subscription identifiers make the bytes this subscriber's own; otherwise they may be shared.
    const shared = this.#fanOut === packet && delivery.identifiers.length === 0;
    if (qos === 0) {
      // Retained messages on subscribe were asked for: they pass the slow-consumer limits.
      if (client.closed) this.#dropped(client, out, "offline");
      else if (!this.#transmit(client, out, retained, false, shared)) {
        this.#dropped(client, out, this.#refusal(client, out));
      } else if (!retained && client.backlogged) this.#slowDown(client, packet);
      return;
    }
    const inflight = client.state.inflight;
    const limit = this.#caps.maximumInflight;
    const byteLimit = this.#caps.maximumSessionBytes;
    const bytes = inflight.bytes + messageBytes(out);
    let congested = false;
    if (!retained && (inflight.size >= limit || bytes > byteLimit)) {
      // A subscriber that is online and draining gets up to twice the limits while its publishers
      // are paused; an offline or stalled one loses what exceeds them (counted).
      if (
        client.closed || inflight.size >= 2 * limit || bytes > 2 * byteLimit ||
        client.writeStalledFor(Date.now()) > STALL_MS
      ) {
        return this.#dropped(client, out, "queue_full");
      }
      congested = true;
    }
    out.sequence = inflight.nextSequence();
    inflight.hold(out);
    if (
      !client.closed && inflight.outbound.size < client.properties.receiveMaximum &&
      inflight.pending.length === 0
    ) {
      this.#sendInflight(client, out, shared);
    } else {
      inflight.pending.push(out); // over the client's Receive Maximum, or offline: sent later in order
      this.#hooks.onQosPublish(client, out, 0, 0);
    }
    if (congested) this.#slowDown(client, packet);
  }

  /**
   * Backpressure: pauses reading from the publisher of `packet` while `target`, a subscriber that
   * is busy but still draining, catches up (as a single-threaded broker gets for free). A stalled
   * subscriber pauses nobody: it gets the drop and write-timeout rules instead.
   */
  #slowDown(target: Client, packet: Packet): void {
    // No local publisher (a message from another cluster node, or the server's own): the subscriber
    // is still marked congested, for `drained`.
    const origin = packet.origin === undefined ? undefined : this.#clients.get(packet.origin);
    if (origin === target || origin?.closed || target.writeStalledFor(Date.now()) > STALL_MS) return;
    // Writes held (see `holdWritesOf`) cannot drain before they are released: waiting would never end.
    if (target.writesHeld > 0) return;
    // A subscriber that is behind must keep being read (its acknowledgements drain it), so it is
    // never paused: this keeps two clients that publish to each other from waiting on each other.
    if (origin && this.#congested.has(origin)) return;
    let origins = this.#congested.get(target);
    if (!origins) {
      this.#congested.set(target, origins = new Set());
      target.onDrained = this.#onDrained;
      target.resumeReading();
    }
    if (origin && !origins.has(origin)) {
      origins.add(origin);
      this.#holds.set(origin, (this.#holds.get(origin) ?? 0) + 1);
    }
    origin?.pauseReading();
    this.#congestionTimer ??= setInterval(this.#checkCongestion, CONGESTION_CHECK_MS);
  }

  readonly #onDrained = (target: Client): void => this.resumePublishers(target, false);

  /**
   * Resumes the publishers paused for `target` once it has caught up (or at once with `force`,
   * for example when it disconnects).
   *
   * @param target A subscriber.
   * @param force Resume whatever its backlog.
   */
  resumePublishers(target: Client, force: boolean): void {
    const origins = this.#congested.get(target);
    if (!origins) return;
    if (
      !force &&
      (target.backlogged || target.state.inflight.size > this.#caps.maximumInflight / 2 ||
        target.state.inflight.bytes > this.#caps.maximumSessionBytes / 2)
    ) {
      return;
    }
    this.#congested.delete(target);
    target.onDrained = undefined;
    // A publisher held by other congested subscribers stays paused (a count, not a scan of them all:
    // a fan-out to many subscribers congests many at once).
    for (const origin of origins) {
      const holds = (this.#holds.get(origin) ?? 1) - 1;
      if (holds > 0) this.#holds.set(origin, holds);
      else {
        this.#holds.delete(origin);
        origin.resumeReading();
      }
    }
    if (this.#congested.size === 0) {
      clearInterval(this.#congestionTimer);
      this.#congestionTimer = undefined;
      for (const resolve of this.#drainWaiters.splice(0)) resolve();
    }
  }

  /** While publishers are paused: release them for subscribers that caught up, left or stalled. */
  readonly #checkCongestion = (): void => {
    const now = Date.now();
    for (const target of [...this.#congested.keys()]) {
      this.resumePublishers(target, target.closed || target.writeStalledFor(now) > STALL_MS);
    }
  };

  #dropped(client: Client, packet: Packet, reason: DropReason): void {
    this.#info.messagesDropped++;
    this.#info.traffic.dropped(packet.fixedHeader.qos ?? 0, reason);
    this.#hooks.onPublishDropped(client, packet, reason);
  }

  /** Why `#transmit` refused a message: it expired, or the client's `send` said why. */
  #refusal(client: Client, packet: Packet): DropReason {
    return packet.expiry && Date.now() >= packet.expiry ? "expired" : client.lastRefusal;
  }

  /** A QoS 1/2 message that had entered the session (maybe stored as queued) was dropped. */
  #droppedQos(client: Client, packet: Packet, reason: DropReason): void {
    client.state.inflight.release(packet);
    this.#dropped(client, packet, reason);
    this.#hooks.onQosDropped(client, packet);
  }

  /** A message in flight (with a packet id) is dropped: its id and quota are freed, and it is counted. */
  #discardInflight(client: Client, packet: Packet): void {
    client.state.inflight.outbound.delete(packet.packetId!);
    this.#info.inflight--;
    this.#droppedQos(client, packet, "too_large");
  }

  /** Sends a QoS 1/2 message with a new packet id and keeps it in flight. */
  #sendInflight(client: Client, packet: Packet, shared = false): void {
    const inflight = client.state.inflight;
    if (packet.expiry && Date.now() >= packet.expiry) return this.#droppedQos(client, packet, "expired");
    const id = inflight.nextPacketId();
    if (id === 0) {
      this.#hooks.onPacketIDExhausted(client, packet);
      return this.#droppedQos(client, packet, "packet_id_exhausted");
    }
    packet.packetId = id;
    if (!this.#transmit(client, packet, false, false, shared)) {
      packet.packetId = undefined;
      return this.#droppedQos(client, packet, this.#refusal(client, packet));
    }
    inflight.outbound.set(id, packet);
    this.#info.inflight++;
    this.#hooks.onQosPublish(client, packet, Date.now(), 0);
  }

  /**
   * Encodes a PUBLISH for one client: remaining expiry, outbound topic alias. With `shared` (a
   * fan-out in progress, no subscription identifiers) the bytes are encoded once per variant.
   */
  #transmit(client: Client, packet: Packet, force = false, resend = false, shared = false): boolean {
    let out = packet;
    const expiry = packet.properties?.messageExpiryInterval;
    let remainingSeconds = -1;
    if (expiry !== undefined && packet.expiry) {
      const remaining = Math.ceil((packet.expiry - Date.now()) / 1000);
      // [MQTT-3.3.2-5] an expired message is not delivered, unless its delivery already started.
      if (remaining <= 0 && !resend) return false;
      remainingSeconds = Math.max(1, remaining);
      out = {
        ...packet,
        properties: { ...packet.properties, messageExpiryInterval: remainingSeconds },
      };
    }
    const aliasMax = client.properties.topicAliasMaximum;
    const v5 = client.properties.protocolVersion === 5;
    if (shared && !(aliasMax > 0 && v5)) {
      return this.#transmitShared(client, out, force, v5, remainingSeconds);
    }
    if (aliasMax > 0 && v5) {
      const aliases = client.state.outboundAliases ??= new Map();
      const alias = aliases.get(packet.topicName!);
      if (alias !== undefined) {
        out = { ...out, topicName: "", properties: { ...out.properties, topicAlias: alias } };
      } else if (aliases.size < aliasMax) {
        const next = aliases.size + 1;
        out = { ...out, properties: { ...out.properties, topicAlias: next } };
        // Spec 3.3.2.3.4: the mapping exists only once the client has received it; a PUBLISH left
        // unsent (too large, queue full) must not set it up, or later empty-topic PUBLISHes are unknown.
        const sent = client.send(out, force);
        if (sent) aliases.set(packet.topicName!, next);
        return sent;
      }
    }
    return client.send(out, force);
  }

  /** Sends the shared encoding of the message being fanned out, encoding it on first use. */
  #transmitShared(client: Client, packet: Packet, force: boolean, v5: boolean, expiry: number): boolean {
    const qos = packet.fixedHeader.qos ?? 0;
    const retain = packet.fixedHeader.retain ?? false;
    const variants = this.#variants;
    let variant: EncodedVariant | undefined;
    for (let i = 0; i < variants.length; i++) {
      const v = variants[i];
      if (v.v5 === v5 && v.qos === qos && v.retain === retain && v.expiry === expiry) {
        variant = v;
        break;
      }
    }
    if (variant === undefined) {
      if (variants.length >= MAX_VARIANTS) return client.send(packet, force);
      const scratch = this.#scratch;
      scratch.reset();
      const size = encodePacket(packet, client.properties.protocolVersion, scratch);
      const bytes = scratch.buffer.slice(0, size);
      let packetIdAt = -1;
      if (qos > 0) {
        // After the fixed header (type byte, Remaining Length) comes the topic, then the packet id.
        let at = 1;
        while (bytes[at] & 0x80) at++;
        at++;
        packetIdAt = at + 2 + ((bytes[at] << 8) | bytes[at + 1]);
      }
      variant = { v5, qos, retain, expiry, bytes, packetIdAt };
      variants.push(variant);
    }
    return client.sendEncoded(packet, variant.bytes, variant.packetIdAt, force);
  }

  /**
   * Resends a resumed session's unacknowledged messages (PUBLISH with DUP, or PUBREL) in their
   * original order, then what was queued.
   *
   * @param client The client that reconnected.
   */
  resend(client: Client): void {
    const inflight = client.state.inflight;
    const now = Date.now();
    for (const packet of inflight.outbound.values()) {
      if (packet.fixedHeader.type === PacketType.Pubrel) {
        packet.fixedHeader.dup = true; // written only for MQTT 3.1, which marks re-sent PUBRELs
        client.send(packet);
        continue;
      }
      // [MQTT-4.4.0-1] resend unacknowledged PUBLISH packets with DUP, in the original order. Their
      // delivery has started, so they go out even if they expired meanwhile [MQTT-3.3.2-5]: the
      // client may hold the packet id of a QoS 2 message, and a new message under it would be lost.
      packet.fixedHeader = { ...packet.fixedHeader, dup: true };
      if (!this.#transmit(client, packet, false, true)) {
        // Larger than the Maximum Packet Size this connection gave: discarded, as if sent
        // [MQTT-3.1.2-25], which frees its id. Offline meanwhile: it stays for the next resume.
        if (client.lastRefusal === "too_large") this.#discardInflight(client, packet);
        continue;
      }
      this.#hooks.onQosPublish(client, packet, now, 1);
    }
    this.#drainPending(client);
  }

  #drainPending(client: Client): void {
    const inflight = client.state.inflight;
    while (
      !client.closed && inflight.pending.length > 0 &&
      inflight.outbound.size < client.properties.receiveMaximum
    ) {
      this.#sendInflight(client, inflight.pending.shift()!);
    }
  }

  /**
   * A PUBACK, PUBREC or PUBCOMP from the client, for an outbound QoS 1/2 flow. Each must answer
   * what is in flight under its id (type, QoS, stage); one that answers a flow of another kind or
   * stage is a protocol violation [3.1.1 §4.8, 5.0 §4.13].
   *
   * @param client The client.
   * @param packet The acknowledgement.
   * @returns 0, or 0x82 Protocol Error: the caller closes the connection.
   */
  acknowledged(client: Client, packet: Packet): number {
    return packet.fixedHeader.type === PacketType.Pubrec
      ? this.#pubrec(client, packet)
      : this.#completed(client, packet);
  }

  /**
   * A PUBACK or PUBCOMP: that outbound flow is complete; queued messages may go. PUBACK answers
   * only a QoS 1 PUBLISH, PUBCOMP only a PUBREL: 0x82 for a QoS 2 message answered with PUBACK, or
   * with PUBCOMP before PUBREC, or a QoS 1 one with PUBCOMP. An unknown id is ignored.
   */
  #completed(client: Client, packet: Packet): number {
    const inflight = client.state.inflight;
    const held = inflight.outbound.get(packet.packetId!);
    if (!held) return 0; // an unknown or stale id (a duplicate ack, say): nothing to complete
    const type = held.fixedHeader.type;
    if (
      packet.fixedHeader.type === PacketType.Puback
        ? type !== PacketType.Publish || held.fixedHeader.qos !== 1
        : type !== PacketType.Pubrel
    ) {
      return ReasonCode.ProtocolError;
    }
    this.#complete(client, held);
    return 0;
  }

  /** Ends an outbound flow: frees its packet id and quota, and sends what waited for the quota. */
  #complete(client: Client, held: Packet): void {
    const inflight = client.state.inflight;
    inflight.outbound.delete(held.packetId!);
    inflight.release(held);
    this.#info.inflight--;
    this.#hooks.onQosComplete(client, held);
    this.#drainPending(client);
    if (this.#congested.size > 0) this.resumePublishers(client, false);
  }

  /**
   * A PUBREC: answer PUBREL (kept in flight in the same place), or end the flow when the PUBREC
   * carries a failure (>= 0x80): then the id is free and no PUBREL follows [5.0 §4.3.3]. A PUBREC
   * again after our PUBREL gets the PUBREL again. 0x82 when it answers a QoS 1 message, or fails a
   * flow it had already accepted.
   */
  #pubrec(client: Client, packet: Packet): number {
    const inflight = client.state.inflight;
    const id = packet.packetId!;
    const held = inflight.outbound.get(id);
    const failed = (packet.reasonCode ?? 0) >= 0x80;
    if (!held) {
      // Unknown id: a successful PUBREC gets PUBREL 0x92 so that the client can end its side
      // (v5 3.6.2.1); a failed one has ended the flow at the client already: nothing to answer.
      if (!failed) {
        client.send({
          fixedHeader: { type: PacketType.Pubrel },
          packetId: id,
          reasonCode: ReasonCode.PacketIdentifierNotFound,
        });
      }
      return 0;
    }
    if (held.fixedHeader.type === PacketType.Pubrel) {
      if (failed) return ReasonCode.ProtocolError;
      client.send(held);
      return 0;
    }
    if (held.fixedHeader.qos !== 2) return ReasonCode.ProtocolError; // a QoS 1 message has no PUBREC
    if (failed) {
      this.#complete(client, held);
      return 0;
    }
    inflight.release(held); // past PUBREC only the packet id is kept
    const pubrel: Packet = {
      fixedHeader: { type: PacketType.Pubrel, qos: 2 },
      packetId: id,
      reasonCode: 0,
      sequence: held.sequence,
    };
    inflight.outbound.set(id, pubrel); // same key: keeps its place in the resend order
    this.#hooks.onQosPublish(client, pubrel, Date.now(), 0);
    // The client forgets the id at PUBREL: a session resumed from storage (after a crash, or on another
    // cluster node) must not resend the PUBLISH then, so a stored session's PUBREL waits for its stage.
    if (client.properties.sessionExpiryInterval === 0 || !this.#hooks.has("sync")) client.send(pubrel);
    else if (this.#pubrels.push([client, pubrel]) === 1) queueMicrotask(this.#sendStoredPubrels);
    return 0;
  }

  /** PUBRELs waiting for their stage to be stored (one storage sync per turn for all of them). */
  #pubrels: [Client, Packet][] = [];

  readonly #sendStoredPubrels = (): void => {
    const batch = this.#pubrels;
    this.#pubrels = [];
    this.#hooks.sync().then(() => {
      for (const [client, pubrel] of batch) {
        if (client.state.inflight.outbound.get(pubrel.packetId!) === pubrel) client.send(pubrel);
      }
    });
  };
}

/**
 * Removes the properties that belong to one hop (topic alias, subscription identifiers).
 *
 * @param properties A message's properties.
 * @returns The properties to forward or store.
 */
export function stripRoutingProperties(properties: Packet["properties"]): Packet["properties"] {
  if (
    !properties || (properties.topicAlias === undefined && properties.subscriptionIdentifier === undefined)
  ) {
    return properties;
  }
  const { topicAlias: _alias, subscriptionIdentifier: _ids, ...rest } = properties;
  return rest;
}
