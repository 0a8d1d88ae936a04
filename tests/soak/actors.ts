/**
 * The soak test's clients. Each actor is one client id driven by one sequential loop of random
 * actions (so nothing is in flight when it decides to drop, take over or disconnect, except in the
 * actions that do that on purpose). Raw actors speak MQTT through {@linkcode Wire} and keep their own
 * session state (inbound QoS 2 ids awaiting PUBREL, outgoing QoS 2 awaiting PUBCOMP) across
 * connections, as a real persistent client would; MQTT.js actors publish and receive at QoS 1.
 *
 * @module
 */

import mqtt from "../mqtt.ts";
import { type Packet, PacketType, type ProtocolVersion, type QoS } from "../../mod.ts";
import type { Rng } from "../fuzz/rng.ts";
import type { Ledger, Message, Subscriber } from "./ledger.ts";
import { Wire } from "./wire.ts";

/** How long any single wait may take before the action counts as failed. */
export const WAIT_MS = 10_000;
const SESSION_TAKEN_OVER = 0x8e;
const DISCONNECT_WITH_WILL = 0x04;
const NEVER_EXPIRES = 0xffffffff;

/** Event counters shared by all actors. */
export interface Events {
  /** Accepted CONNECTs. */
  connects: number;
  /** Connections replaced by a new one with the same client id while open. */
  takeovers: number;
  /** Connections closed without DISCONNECT. */
  drops: number;
  /** Normal DISCONNECTs. */
  disconnects: number;
  /** DISCONNECT 0x04 (with will). */
  disconnectsWithWill: number;
  /** Sessions ended on purpose (Clean Start 1 over an existing session). */
  sessionResets: number;
  /** Sessions found expired on reconnect (short Session Expiry). */
  sessionsExpired: number;
  /** Sessions resumed (Session Present 1). */
  sessionsResumed: number;
  /** SUBSCRIBEs acknowledged. */
  subscribes: number;
  /** UNSUBSCRIBEs acknowledged. */
  unsubscribes: number;
  /** Publisher retransmissions (DUP, or after reconnecting). */
  retries: number;
  /** Periods of withheld acknowledgements. */
  slowAckPeriods: number;
  /** Retained messages set / cleared. */
  retainedSets: number;
  /** Retained messages cleared. */
  retainedClears: number;
}

/** One retained topic's possible states (several while a publish's outcome is unknown). */
export interface RetainedTopic {
  /** The topic. */
  topic: string;
  /** Held by an actor publishing to it. */
  busy: boolean;
  /** Message ids (or null: no retained message) the broker may hold. */
  possible: Set<number | null>;
}

/** What actors share. */
export interface Context {
  /** The broker's port. */
  port: number;
  /** The model. */
  ledger: Ledger;
  /** Event counters. */
  events: Events;
  /** Names of dedicated subscribers (publish targets). */
  targets: string[];
  /** Retained topics. */
  retained: RetainedTopic[];
  /** Unexpected failures (timeouts, refused connections...). */
  errors: string[];
  /** Set when the load phase is over. */
  stopping: boolean;
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function recordError(ctx: Context, who: string, error: unknown): void {
  const text = `${who}: ${error instanceof Error ? error.message : String(error)}`;
  if (ctx.errors.length < 200) ctx.errors.push(text);
}

/** The common shape of every actor. */
export abstract class Actor {
  /** The client id. */
  readonly id: string;
  /** The role, for the report. */
  abstract readonly role: string;
  protected readonly ctx: Context;
  protected readonly rng: Rng;

  constructor(ctx: Context, id: string, rng: Rng) {
    this.ctx = ctx;
    this.id = id;
    this.rng = rng;
  }

  /** Runs random actions until the context is stopping. */
  async run(): Promise<void> {
    await sleep(this.rng.int(1000));
    while (!this.ctx.stopping) {
      try {
        await this.step();
      } catch (error) {
        recordError(this.ctx, this.id, error);
        await this.recover();
      }
      await sleep(this.rng.range(10, 200));
    }
  }

  /** One random action. */
  protected abstract step(): Promise<void>;
  /** After a failed action: get back to a known state (usually: drop the connection). */
  protected abstract recover(): Promise<void>;
  /** After the load: reconnect persistent sessions and make everything deliverable. */
  abstract settle(): Promise<void>;
  /** Syncs the connection (raw clients) so that everything sent before has been received. */
  abstract sync(): Promise<void>;
  /** Ends every session and closes every connection. */
  abstract cleanup(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Raw actors

/** Options of a raw actor's connections. */
interface RawOptions {
  version: ProtocolVersion;
  /** Session Expiry Interval (v5); for v3.1.1, > 0 means Clean Session 0. */
  sessionExpiry: number;
  receiveMaximum?: number;
}

/** A raw client with a session state that outlives its connections. */
abstract class RawActor extends Actor {
  protected wire: Wire | undefined;
  protected readonly options: RawOptions;
  /** Inbound QoS 2 packet ids awaiting PUBREL, with the message id delivered under each. */
  protected readonly awaitingRelease: Map<number, string> = new Map();
  /** Acknowledgements withheld while `slowAcks` is set. */
  protected heldAcks: Packet[] = [];
  protected slowAcks = false;
  /** Whether the broker should hold a session for us. */
  protected sessionExists = false;
  protected lastClosedAt = 0;
  protected offlineUntil = 0;
  #nextPacketId = 1;
  protected readonly usedIds: Set<number> = new Set();

  constructor(ctx: Context, id: string, rng: Rng, options: RawOptions) {
    super(ctx, id, rng);
    this.options = options;
  }

  protected get persistent(): boolean {
    return this.options.sessionExpiry > 0;
  }

  protected get connected(): boolean {
    return this.wire !== undefined && !this.wire.ended;
  }

  /** A free packet id for our own PUBLISH/SUBSCRIBE/UNSUBSCRIBE. */
  protected packetId(): number {
    for (;;) {
      const id = this.#nextPacketId;
      this.#nextPacketId = id === 0xffff ? 1 : id + 1;
      if (!this.usedIds.has(id)) return id;
    }
  }

  /** The will to arm with the next CONNECT, if any. */
  protected will(): { message: Message; payload: string } | undefined {
    return undefined;
  }

  /**
   * Connects, checks Session Present against what the spec says, and on a lost session resets the
   * session state (and calls {@linkcode sessionLost}).
   *
   * @returns Session Present.
   */
  protected async open(clean: boolean): Promise<boolean> {
    const v5 = this.options.version === 5;
    const takingOver = this.connected;
    const will = this.will();
    const sessionExpiry = this.options.sessionExpiry;
    let result;
    try {
      result = await Wire.connect(
        this.ctx.port,
        {
          protocolVersion: this.options.version,
          clean: v5 ? clean : clean || sessionExpiry === 0,
          keepAlive: 0,
          clientId: this.id,
          willFlag: will !== undefined,
          willTopic: will?.message.topic,
          willPayload: will ? new TextEncoder().encode(will.payload) : undefined,
          willQos: will?.message.qos,
          willRetain: false,
        },
        v5
          ? { sessionExpiryInterval: sessionExpiry, receiveMaximum: this.options.receiveMaximum }
          : undefined,
        WAIT_MS,
      );
    } catch (error) {
      if (will) this.ctx.ledger.uncertain(will.message);
      throw error;
    }
    const { wire, connack } = result;
    this.ctx.events.connects++;
    const present = connack.sessionPresent ?? false;
    const cleanSession = clean || (!v5 && sessionExpiry === 0);
    if (cleanSession) {
      if (present) this.#sessionViolation("Clean Start 1 got Session Present 1 [MQTT-3.2.2-2]");
    } else if (this.sessionExists) {
      const must = this.#mustHaveSession(takingOver);
      if (must === true && !present) {
        this.#sessionViolation(
          `session lost: Session Present 0 ${this.#offlineText(takingOver)} [MQTT-3.2.2-3]`,
        );
      } else if (must === false && present) {
        this.#sessionViolation(
          `session kept past its expiry ${this.#offlineText(takingOver)} [MQTT-4.1.0-2]`,
        );
      }
      if (present) this.ctx.events.sessionsResumed++;
      else this.ctx.events.sessionsExpired++;
    } else if (present) {
      this.#sessionViolation("Session Present 1 for a session that cannot exist [MQTT-3.2.2-3]");
    }
    // A new session has none of the old one's packet ids: also after taking over our own clean
    // session, whose QoS 2 deliveries may have been awaiting PUBREL.
    if (!present) this.#dropSessionState();
    if (!present) this.sessionLost();
    this.sessionExists = v5 ? sessionExpiry > 0 : !cleanSession;
    this.heldAcks = [];
    this.wire = wire;
    wire.onPacket = (packet) => this.onPacket(wire, packet); // also hands over what followed the CONNACK
    return present;
  }

  #offlineText(takingOver: boolean): string {
    return takingOver
      ? "on a takeover"
      : `after ${Date.now() - this.lastClosedAt} ms offline (expiry ${this.options.sessionExpiry} s)`;
  }

  /** True: the session must still exist; false: it must have expired; undefined: either. */
  #mustHaveSession(takingOver: boolean): boolean | undefined {
    const expiry = this.options.sessionExpiry;
    if (takingOver || this.options.version !== 5 || expiry === NEVER_EXPIRES || expiry >= 600) {
      return true;
    }
    const offline = Date.now() - this.lastClosedAt;
    if (offline < expiry * 1000 - 700) return true;
    if (offline > expiry * 1000 + 1000) return false;
    return undefined;
  }

  #sessionViolation(detail: string): void {
    this.ctx.ledger.violation("session", `${this.id}: ${detail}`);
  }

  #dropSessionState(): void {
    this.awaitingRelease.clear();
    this.usedIds.clear();
  }

  /** The session is new (Session Present 0): subscriptions and queued messages are gone. */
  protected sessionLost(): void {}

  /** Handles a packet nobody waited for: deliveries, PUBREL, stray acknowledgements. */
  protected onPacket(wire: Wire, packet: Packet): void {
    switch (packet.fixedHeader.type) {
      case PacketType.Publish:
        return this.#receive(wire, packet);
      case PacketType.Pubrel:
        this.awaitingRelease.delete(packet.packetId!);
        return this.ack(wire, {
          fixedHeader: { type: PacketType.Pubcomp },
          packetId: packet.packetId,
          reasonCode: 0,
        });
      case PacketType.Puback:
      case PacketType.Pubrec:
      case PacketType.Pubcomp:
        return; // a second answer to a retransmission, or one that arrived after a timeout
      case PacketType.Disconnect:
        return recordError(
          this.ctx,
          this.id,
          `broker sent DISCONNECT 0x${(packet.reasonCode ?? 0).toString(16)}`,
        );
      default:
        this.ctx.ledger.violation(
          "protocol",
          `${this.id} got an unexpected packet type ${packet.fixedHeader.type}`,
        );
    }
  }

  #receive(wire: Wire, packet: Packet): void {
    const qos = (packet.fixedHeader.qos ?? 0) as QoS;
    const deliver = () =>
      this.ctx.ledger.deliver(
        this.id,
        packet.topicName!,
        packet.payload ?? new Uint8Array(),
        qos,
        packet.fixedHeader.retain ?? false,
      );
    if (qos === 0) return deliver();
    const id = packet.packetId!;
    if (qos === 1) {
      deliver();
      return this.ack(wire, { fixedHeader: { type: PacketType.Puback }, packetId: id, reasonCode: 0 });
    }
    const payload = new TextDecoder().decode(packet.payload);
    const messageId = payload.slice(0, payload.indexOf("|"));
    const held = this.awaitingRelease.get(id);
    if (held === undefined) {
      this.awaitingRelease.set(id, messageId);
      deliver();
    } else if (held !== messageId || !packet.fixedHeader.dup) {
      // A packet id still awaiting our PUBCOMP... no: awaiting its PUBREL, reused for another message.
      this.ctx.ledger.violation(
        "protocol",
        `${this.id}: packet id ${id} reused (message ${messageId}, dup ${packet.fixedHeader.dup}) while message ` +
          `${held} under it awaits PUBREL [MQTT-2.2.1-3]`,
      );
    }
    this.ack(wire, { fixedHeader: { type: PacketType.Pubrec }, packetId: id, reasonCode: 0 });
  }

  /** Sends an acknowledgement, or holds it while acknowledgements are withheld. */
  protected ack(wire: Wire, packet: Packet): void {
    if (wire !== this.wire) return; // an abandoned connection: the broker resends on the new one
    if (this.slowAcks) this.heldAcks.push(packet);
    else wire.send(packet);
  }

  protected releaseAcks(): void {
    this.slowAcks = false;
    const held = this.heldAcks;
    this.heldAcks = [];
    for (const packet of held) this.wire?.send(packet);
  }

  /** Closes the connection without DISCONNECT. */
  protected async drop(offlineMs: number): Promise<void> {
    const wire = this.wire;
    if (!wire) return;
    wire.abandon();
    await wire.close();
    this.#closed(offlineMs);
    this.ctx.events.drops++;
  }

  /** Sends DISCONNECT and waits for the broker to close the connection. */
  protected async disconnect(
    offlineMs: number,
    reasonCode = 0,
    properties?: Packet["properties"],
  ): Promise<void> {
    const wire = this.wire;
    if (!wire) return;
    this.releaseAcks();
    await wire.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode, properties });
    wire.abandon();
    await wire.closed(WAIT_MS);
    this.#closed(offlineMs);
    if (reasonCode === DISCONNECT_WITH_WILL) this.ctx.events.disconnectsWithWill++;
    else this.ctx.events.disconnects++;
  }

  #closed(offlineMs: number): void {
    this.wire = undefined;
    this.heldAcks = [];
    this.slowAcks = false;
    this.lastClosedAt = Date.now();
    this.offlineUntil = this.lastClosedAt + offlineMs;
    if (!this.persistent) {
      this.sessionExists = false;
      this.#dropSessionState();
      this.sessionLost();
    }
  }

  /** Connects again with the same client id while connected; the broker must close the old connection. */
  protected async takeover(clean: boolean): Promise<void> {
    const old = this.wire!;
    old.abandon();
    this.heldAcks = [];
    this.slowAcks = false;
    try {
      await this.open(clean);
    } finally {
      const closedByBroker = await old.closed(WAIT_MS);
      if (!closedByBroker) {
        this.ctx.ledger.violation(
          "session",
          `${this.id}: the taken-over connection stayed open [MQTT-3.1.4-3]`,
        );
      } else if (this.options.version === 5 && old.disconnectCode !== SESSION_TAKEN_OVER) {
        this.ctx.ledger.violation(
          "session",
          `${this.id}: taken-over connection got DISCONNECT ${old.disconnectCode} instead of 0x8E [MQTT-3.1.4-3]`,
        );
      }
    }
    this.ctx.events.takeovers++;
  }

  /** Subscribes and records the new subscription. */
  protected async subscribe(filter: string, qos: QoS, subscriber: Subscriber): Promise<void> {
    const wire = this.wire!;
    const packetId = this.packetId();
    const suback = await wire.request(
      { fixedHeader: { type: PacketType.Subscribe, qos: 1 }, packetId, filters: [{ filter, qos }] },
      (p) => p.fixedHeader.type === PacketType.Suback && p.packetId === packetId,
      WAIT_MS,
    );
    if (!suback) throw new Error(`connection closed before SUBACK for ${filter}`);
    if (suback.reasonCodes?.[0] !== qos) {
      this.ctx.ledger.violation(
        "protocol",
        `${this.id}: SUBACK ${suback.reasonCodes} for ${filter} at QoS ${qos}`,
      );
      return;
    }
    this.ctx.events.subscribes++;
    this.ctx.ledger.subscribed(subscriber, qos);
  }

  /** Unsubscribes; the subscription's undelivered messages may be discarded. */
  protected async unsubscribe(filter: string, subscriber: Subscriber): Promise<void> {
    const wire = this.wire!;
    const packetId = this.packetId();
    this.ctx.ledger.ended(subscriber);
    const unsuback = await wire.request(
      { fixedHeader: { type: PacketType.Unsubscribe, qos: 1 }, packetId, filters: [{ filter, qos: 0 }] },
      (p) => p.fixedHeader.type === PacketType.Unsuback && p.packetId === packetId,
      WAIT_MS,
    );
    if (!unsuback) throw new Error(`connection closed before UNSUBACK for ${filter}`);
    if (this.options.version === 5 && unsuback.reasonCodes?.[0] !== 0) {
      this.ctx.ledger.violation("protocol", `${this.id}: UNSUBACK ${unsuback.reasonCodes} for ${filter}`);
    }
    this.ctx.events.unsubscribes++;
  }

  protected async recover(): Promise<void> {
    if (this.wire) await this.drop(this.rng.range(100, 1000));
  }

  async sync(): Promise<void> {
    if (!this.connected) return;
    this.releaseAcks();
    await this.wire!.sync(WAIT_MS);
  }

  /**
   * Ends the session: v5 sets Session Expiry 0 on DISCONNECT; v3.1.1 reconnects with Clean
   * Session 1 and disconnects.
   */
  async cleanup(): Promise<void> {
    if (this.connected) {
      if (this.options.version === 5) {
        const expiry = this.persistent ? { sessionExpiryInterval: 0 } : undefined;
        await this.disconnect(0, 0, expiry);
        this.sessionExists = false;
        this.sessionLost();
        return;
      }
      await this.disconnect(0);
    }
    if (this.persistent) {
      await this.open(true);
      await this.disconnect(0);
      this.sessionExists = false;
    }
  }
}

/** Subscribes to its own `soak/d/{id}/#` with a persistent session (or the shared group, or wills). */
export class PersistentSubscriber extends RawActor {
  readonly role: string;
  readonly #filter: string;
  readonly #subscriber: Subscriber;
  readonly #mayReset: boolean;
  #subscribedQos: QoS = 2;

  /**
   * @param kind "dedicated", "shared" or "wills".
   */
  constructor(
    ctx: Context,
    id: string,
    rng: Rng,
    options: RawOptions,
    kind: "dedicated" | "shared" | "wills",
  ) {
    super(ctx, id, rng, options);
    this.role = kind === "dedicated"
      ? options.version === 5 && options.sessionExpiry < 60
        ? "raw subscriber, session expiry 2 s"
        : "raw subscriber, persistent"
      : kind === "shared"
      ? "raw shared-group member"
      : "will watcher";
    if (kind === "dedicated") {
      this.#filter = `soak/d/${id}/#`;
      this.#subscriber = ctx.ledger.addDedicated(id);
      ctx.targets.push(id);
    } else if (kind === "shared") {
      this.#filter = "$share/soak/soak/s/#";
      this.#subscriber = ctx.ledger.group;
      this.#subscriber.receivers.add(id);
    } else {
      this.#filter = "soak/will/#";
      this.#subscriber = ctx.ledger.wills;
      this.#subscriber.receivers.add(id);
    }
    this.#mayReset = kind === "dedicated";
  }

  /** Connects and subscribes (before the load starts, for the will watcher and the group). */
  async start(): Promise<void> {
    await this.open(false);
    await this.subscribe(this.#filter, 2, this.#subscriber);
  }

  protected override sessionLost(): void {
    // The group's subscription lives on in the other members; a member never loses its session.
    if (this.#mayReset && this.#subscriber.active) this.ctx.ledger.ended(this.#subscriber);
  }

  async #resubscribe(): Promise<void> {
    this.#subscribedQos = this.#mayReset ? this.rng.pick([1, 2, 2, 0] as QoS[]) : 2;
    await this.subscribe(this.#filter, this.#subscribedQos, this.#subscriber);
  }

  #offlineMs(): number {
    return this.options.sessionExpiry < 60 ? this.rng.range(100, 4500) : this.rng.range(100, 3000);
  }

  protected async step(): Promise<void> {
    if (!this.connected) {
      if (this.wire) {
        recordError(this.ctx, this.id, "the broker closed the connection");
        await this.drop(0);
      }
      if (Date.now() < this.offlineUntil) return;
      const present = await this.open(false);
      if (!present) await this.#resubscribe();
      return;
    }
    if (this.role === "will watcher") {
      if (this.rng.chance(0.2)) await this.sync();
      return;
    }
    if (this.#mayReset && !this.#subscriber.active) return await this.#resubscribe(); // after a failure
    const roll = this.rng.int(100);
    if (roll < 30) return;
    if (roll < 45) return await this.sync();
    if (roll < 53) return await this.drop(this.#offlineMs());
    if (roll < 59) return await this.disconnect(this.#offlineMs());
    if (roll < 65) {
      await this.takeover(false);
      return;
    }
    if (roll < 77) {
      if (this.slowAcks) return this.releaseAcks();
      this.slowAcks = true;
      this.ctx.events.slowAckPeriods++;
      return;
    }
    if (roll < 80 && this.#mayReset) {
      // A new session over the old one: Clean Start 1 (v5 keeps its expiry); v3.1.1 needs a clean
      // connection and then a persistent one.
      this.ctx.ledger.ended(this.#subscriber);
      this.ctx.events.sessionResets++;
      await this.takeover(true);
      if (this.options.version !== 5) {
        await this.disconnect(0);
        await this.open(false);
      }
      return await this.#resubscribe();
    }
    if (roll < 83 && this.#mayReset) {
      this.releaseAcks();
      await this.unsubscribe(this.#filter, this.#subscriber);
      return await this.#resubscribe();
    }
    if (roll < 86 && this.#subscribedQos === 0 && this.#mayReset) {
      // A QoS 0 subscription is not much of a test: come back at QoS 1 or 2 now and then.
      await this.unsubscribe(this.#filter, this.#subscriber);
      return await this.#resubscribe();
    }
  }

  async settle(): Promise<void> {
    this.releaseAcks();
    if (this.connected) return;
    if (this.wire) await this.drop(0);
    const present = await this.open(false);
    if (!present && this.#mayReset) await this.#resubscribe();
  }
}

/** A clean-session subscriber on `soak/d/{id}/#` that stays connected for a while, then leaves. */
export class CleanSubscriber extends RawActor {
  readonly role = "raw subscriber, clean session";
  readonly #subscriber: Subscriber;
  #leaveAt = 0;

  constructor(ctx: Context, id: string, rng: Rng, version: ProtocolVersion) {
    super(ctx, id, rng, { version, sessionExpiry: 0 });
    this.#subscriber = ctx.ledger.addDedicated(id);
    ctx.targets.push(id);
  }

  protected override sessionLost(): void {
    if (this.#subscriber.active) this.ctx.ledger.ended(this.#subscriber);
  }

  async #begin(): Promise<void> {
    await this.open(true);
    this.#leaveAt = Date.now() + this.rng.range(1000, 6000);
    await this.subscribe(`soak/d/${this.id}/#`, this.rng.pick([0, 1, 2, 2] as QoS[]), this.#subscriber);
  }

  /**
   * Leaves gracefully: stops new expectations, waits (syncing) until every required message has
   * arrived (the subscription and the connection are still there, so all must), then unsubscribes
   * or not and disconnects.
   */
  async #leave(): Promise<void> {
    const ledger = this.ctx.ledger;
    ledger.freeze(this.#subscriber);
    const end = Date.now() + WAIT_MS;
    while (ledger.missing(this.#subscriber) > 0 && Date.now() < end && this.connected) {
      await this.wire!.sync(WAIT_MS);
      if (ledger.missing(this.#subscriber) > 0) await sleep(20);
    }
    ledger.check(this.#subscriber, "while subscribed and connected (clean session, before DISCONNECT)");
    if (this.rng.chance(0.5)) await this.unsubscribe(`soak/d/${this.id}/#`, this.#subscriber);
    await this.disconnect(this.rng.range(50, 1000));
  }

  protected async step(): Promise<void> {
    if (!this.connected) {
      if (this.wire) {
        recordError(this.ctx, this.id, "the broker closed the connection");
        await this.drop(0);
      }
      if (Date.now() >= this.offlineUntil) await this.#begin();
      return;
    }
    if (Date.now() < this.#leaveAt) {
      if (this.rng.chance(0.3)) await this.sync();
      return;
    }
    const roll = this.rng.int(100);
    if (roll < 50) return await this.#leave();
    if (roll < 80) return await this.drop(this.rng.range(50, 1000));
    // Take over our own clean session: the old session ends with it.
    this.sessionLost();
    await this.takeover(true);
    this.#leaveAt = Date.now() + this.rng.range(1000, 6000);
    await this.subscribe(`soak/d/${this.id}/#`, this.rng.pick([0, 1, 2, 2] as QoS[]), this.#subscriber);
  }

  async settle(): Promise<void> {
    if (this.connected) await this.#leave();
    else if (this.wire) await this.drop(0);
  }
}

/** Connects with a will, stays a while, then leaves in one of the ways that do or do not send it. */
export class WillClient extends RawActor {
  readonly role = "raw client with a will";
  #armed: Message | undefined;
  #leaveAt = 0;

  constructor(ctx: Context, id: string, rng: Rng, version: ProtocolVersion) {
    super(ctx, id, rng, { version, sessionExpiry: 0 });
  }

  protected override will(): { message: Message; payload: string } {
    const message = this.ctx.ledger.publish(`soak/will/${this.id}`, 1, "will");
    this.#armed = message;
    return { message, payload: this.ctx.ledger.payload(message, this.rng) };
  }

  protected async step(): Promise<void> {
    if (!this.connected) {
      if (this.wire) {
        recordError(this.ctx, this.id, "the broker closed the connection");
        await this.drop(0);
      }
      if (Date.now() < this.offlineUntil) return;
      await this.open(true);
      this.#leaveAt = Date.now() + this.rng.range(200, 3000);
      return;
    }
    if (Date.now() < this.#leaveAt) {
      if (this.rng.chance(0.3)) await this.sync();
      return;
    }
    const ledger = this.ctx.ledger;
    const armed = this.#armed!;
    const roll = this.rng.int(100);
    if (roll < 35) {
      ledger.forbid(armed); // [MQTT-3.1.2-10] a normal DISCONNECT deletes the will
      return await this.disconnect(this.rng.range(50, 1000));
    }
    if (roll < 70 || (roll < 85 && this.options.version !== 5)) {
      await this.drop(this.rng.range(50, 1000));
      return ledger.acknowledged(armed); // network loss: the will must be published [MQTT-3.1.2-8]
    }
    if (roll < 85) {
      await this.disconnect(this.rng.range(50, 1000), DISCONNECT_WITH_WILL);
      return ledger.acknowledged(armed);
    }
    // A takeover: whether the old connection's will goes out is not pinned down by the spec.
    ledger.uncertain(armed);
    await this.takeover(true);
    this.#leaveAt = Date.now() + this.rng.range(200, 3000);
  }

  protected override async recover(): Promise<void> {
    if (this.#armed) this.ctx.ledger.uncertain(this.#armed);
    await super.recover();
  }

  async settle(): Promise<void> {
    if (this.connected) {
      this.ctx.ledger.forbid(this.#armed!);
      await this.disconnect(0);
    } else if (this.wire) await this.drop(0);
  }
}

/** Publishes at QoS 0/1/2 with a persistent session, including retransmissions across reconnects. */
export class RawPublisher extends RawActor {
  readonly role = "raw publisher, persistent";
  /** Outgoing QoS 2 flows whose PUBREC arrived but whose PUBCOMP did not (session state). */
  readonly #awaitingComplete: Set<number> = new Set();

  constructor(ctx: Context, id: string, rng: Rng, version: ProtocolVersion) {
    super(ctx, id, rng, { version, sessionExpiry: version === 5 ? 3600 : NEVER_EXPIRES });
  }

  protected override sessionLost(): void {
    this.#awaitingComplete.clear();
  }

  async #connect(): Promise<void> {
    const present = await this.open(false);
    if (!present) return;
    // Finish QoS 2 flows the broker owns: PUBREL again [MQTT-4.4.0-1].
    for (const id of [...this.#awaitingComplete]) await this.#release(id);
  }

  async #release(packetId: number): Promise<void> {
    const pubcomp = await this.wire!.request(
      { fixedHeader: { type: PacketType.Pubrel, qos: 1 }, packetId, reasonCode: 0 },
      (p) => p.fixedHeader.type === PacketType.Pubcomp && p.packetId === packetId,
      WAIT_MS,
    );
    if (!pubcomp) return; // the connection ended: try again after reconnecting
    this.#awaitingComplete.delete(packetId);
    this.usedIds.delete(packetId);
    if ((pubcomp.reasonCode ?? 0) !== 0) {
      this.ctx.ledger.violation(
        "session",
        `${this.id}: PUBCOMP 0x${
          pubcomp.reasonCode!.toString(16)
        } for packet id ${packetId} the broker had acknowledged with PUBREC (its session lost the id)`,
      );
    }
  }

  #publishPacket(message: Message, packetId: number, dup: boolean, retain = false, payload?: string): Packet {
    return {
      fixedHeader: { type: PacketType.Publish, qos: message.qos, retain, dup },
      topicName: message.topic,
      packetId: message.qos > 0 ? packetId : undefined,
      payload: new TextEncoder().encode(payload ?? this.ctx.ledger.payload(message, this.rng)),
    };
  }

  /** Waits for the acknowledgement of a QoS 1/2 publish and records it. */
  async #acknowledgement(message: Message, packetId: number): Promise<boolean> {
    const type = message.qos === 1 ? PacketType.Puback : PacketType.Pubrec;
    let ack: Packet | undefined;
    try {
      ack = await this.wire!.waitFor((p) => p.fixedHeader.type === type && p.packetId === packetId, WAIT_MS);
    } catch (error) {
      this.ctx.ledger.uncertain(message);
      this.usedIds.delete(packetId);
      throw error;
    }
    if (!ack) return false;
    if ((ack.reasonCode ?? 0) >= 0x80) {
      this.ctx.ledger.violation(
        "protocol",
        `${this.id}: publish to ${message.topic} refused with 0x${ack.reasonCode!.toString(16)}`,
      );
      this.ctx.ledger.uncertain(message);
      this.usedIds.delete(packetId);
      return true;
    }
    this.ctx.ledger.acknowledged(message);
    if (message.qos === 1) this.usedIds.delete(packetId);
    else this.#awaitingComplete.add(packetId);
    return true;
  }

  /** A normal publish: PUBLISH, acknowledgement, and PUBREL/PUBCOMP for QoS 2. */
  async #publish(topic: string, qos: QoS, retain = false, payloadOverride?: string): Promise<Message> {
    const message = this.ctx.ledger.publish(topic, qos, retain ? "retained" : "publish");
    const packetId = qos > 0 ? this.packetId() : 0;
    if (qos > 0) this.usedIds.add(packetId);
    const packet = this.#publishPacket(message, packetId, false, retain, payloadOverride);
    const done = qos > 0 ? this.#acknowledgement(message, packetId) : undefined;
    this.wire!.send(packet);
    if (!done) {
      this.ctx.ledger.acknowledged(message);
      return message;
    }
    if (!await done) {
      this.ctx.ledger.uncertain(message);
      this.usedIds.delete(packetId);
      return message;
    }
    if (qos === 2 && this.#awaitingComplete.has(packetId)) await this.#release(packetId);
    return message;
  }

  /** A publish retransmitted with DUP, before or after a reconnect. */
  async #retry(kind: number): Promise<void> {
    const qos: QoS = kind === 0 || kind === 4 ? 1 : 2;
    const message = this.ctx.ledger.publish(this.ctx.ledger.randomTopic(this.rng, this.ctx.targets), qos);
    const payload = this.ctx.ledger.payload(message, this.rng);
    const packetId = this.packetId();
    this.usedIds.add(packetId);
    this.ctx.events.retries++;
    message.resent = qos === 1;
    if (kind <= 1) {
      // DUP retransmission on the same connection: the broker must not deliver a QoS 2 twice.
      const done = this.#acknowledgement(message, packetId);
      this.wire!.send(this.#publishPacket(message, packetId, false, false, payload));
      this.wire!.send(this.#publishPacket(message, packetId, true, false, payload));
      if (!await done) return this.ctx.ledger.uncertain(message);
      if (qos === 2) await this.#release(packetId);
      return;
    }
    if (kind === 2) {
      // PUBREC, then the connection drops before PUBREL: finish after reconnecting.
      const done = this.#acknowledgement(message, packetId);
      this.wire!.send(this.#publishPacket(message, packetId, false, false, payload));
      if (!await done) return this.ctx.ledger.uncertain(message);
      await this.drop(this.rng.range(0, 300));
      await sleep(this.rng.range(0, 300));
      await this.#connect();
      return;
    }
    // The connection drops right after the PUBLISH: send it again with DUP after reconnecting.
    await this.wire!.send(this.#publishPacket(message, packetId, false, false, payload));
    await this.drop(this.rng.range(0, 300));
    await sleep(this.rng.range(0, 300));
    const present = await this.open(false);
    if (!present) return this.ctx.ledger.uncertain(message);
    for (const id of [...this.#awaitingComplete]) await this.#release(id);
    this.usedIds.add(packetId);
    const done = this.#acknowledgement(message, packetId);
    this.wire!.send(this.#publishPacket(message, packetId, true, false, payload));
    if (!await done) return this.ctx.ledger.uncertain(message);
    if (qos === 2) await this.#release(packetId);
  }

  async #retained(): Promise<void> {
    const free = this.ctx.retained.filter((t) => !t.busy);
    if (free.length === 0) return;
    const topic = this.rng.pick(free);
    topic.busy = true;
    try {
      const clear = this.rng.chance(0.3);
      const qos = this.rng.pick([0, 1, 2] as QoS[]);
      const message = await this.#publish(topic.topic, qos, true, clear ? "" : undefined);
      if (qos === 0) {
        // No acknowledgement: a PINGRESP proves the broker handled the PUBLISH.
        if (!await this.wire!.sync(WAIT_MS)) message.outcome = "uncertain";
      }
      const state = clear ? null : message.id;
      if (message.outcome === "acknowledged") topic.possible = new Set([state]);
      else topic.possible.add(state);
      if (clear) this.ctx.events.retainedClears++;
      else this.ctx.events.retainedSets++;
    } finally {
      topic.busy = false;
    }
  }

  protected async step(): Promise<void> {
    if (!this.connected) {
      if (this.wire) {
        recordError(this.ctx, this.id, "the broker closed the connection");
        await this.drop(0);
      }
      if (Date.now() >= this.offlineUntil) await this.#connect();
      return;
    }
    const ledger = this.ctx.ledger;
    const roll = this.rng.int(100);
    if (roll < 55) {
      await this.#publish(ledger.randomTopic(this.rng, this.ctx.targets), this.rng.pick([0, 1, 2] as QoS[]));
    } else if (roll < 65) {
      const count = this.rng.range(5, 30);
      const flows = [];
      for (let i = 0; i < count; i++) {
        flows.push(
          this.#publish(ledger.randomTopic(this.rng, this.ctx.targets), this.rng.pick([0, 1, 2] as QoS[])),
        );
      }
      await Promise.all(flows);
    } else if (roll < 72) await this.#retained();
    else if (roll < 82) await this.#retry(this.rng.int(5));
    else if (roll < 86) await this.takeover(false);
    else if (roll < 90) await this.drop(this.rng.range(50, 1500));
    else if (roll < 94) await this.disconnect(this.rng.range(50, 1500));
  }

  async settle(): Promise<void> {
    if (!this.connected) {
      if (this.wire) await this.drop(0);
      await this.#connect();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// MQTT.js actors

function mqttOpen(
  port: number,
  options: mqtt.IClientOptions,
  onMessage?: (topic: string, payload: Uint8Array, packet: mqtt.IPublishPacket) => void,
): Promise<{ client: mqtt.MqttClient; connack: mqtt.IConnackPacket }> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      reconnectPeriod: 0,
      connectTimeout: WAIT_MS,
      keepalive: 0,
      ...options,
    });
    if (onMessage) client.on("message", onMessage);
    const fail = (error: Error) => {
      client.removeAllListeners("connect");
      client.end(true, () => reject(error));
    };
    client.once("error", fail);
    client.once("close", () => fail(new Error(`MQTT.js ${options.clientId}: closed before CONNACK`)));
    client.once("connect", (connack) => {
      client.removeListener("error", fail);
      client.removeAllListeners("close");
      client.on("error", () => {}); // a taken-over or closed client reports it here; the actor notices
      resolve({ client, connack });
    });
  });
}

/**
 * The broker must close a taken-over connection [MQTT-3.1.4-3]; then the old client is ended. The
 * socket's own state is what counts: under Deno, a v3.1.1 MQTT.js client whose socket the broker
 * closed sometimes never emits "close" (its stream is destroyed and closed, `connected` stays true,
 * and `end()` never calls back), so such a client is ended without waiting.
 */
async function takenOver(ctx: Context, id: string, old: mqtt.MqttClient): Promise<void> {
  const socketClosed = () => (old.stream as unknown as { closed?: boolean }).closed === true;
  const end = Date.now() + WAIT_MS;
  while (old.connected && !socketClosed() && Date.now() < end) await sleep(20);
  if (old.connected && !socketClosed()) {
    ctx.ledger.violation(
      "session",
      `${id}: the taken-over MQTT.js connection stayed open [MQTT-3.1.4-3] (${describe(old)})`,
    );
  }
  if (old.connected && socketClosed()) {
    old.end(true);
    return;
  }
  await withTimeout(old.endAsync(true), () => `end(force) ${id}: ${describe(old)}`);
}

function describe(client: mqtt.MqttClient): string {
  const stream = client.stream as unknown as Record<string, unknown>;
  return `connected ${client.connected}, disconnecting ${client.disconnecting}, reconnecting ${client.reconnecting}, ` +
    `v${client.options.protocolVersion}, stream destroyed ${stream.destroyed} readableEnded ${stream.readableEnded} ` +
    `writableEnded ${stream.writableEnded} writableFinished ${stream.writableFinished} closed ${stream.closed}`;
}

function withTimeout<T>(promise: Promise<T>, what: string | (() => string)): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Timed out after ${WAIT_MS} ms: ${typeof what === "string" ? what : what()}`)),
      WAIT_MS,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** An MQTT.js publisher with a clean session. */
export class MqttPublisher extends Actor {
  readonly role = "MQTT.js publisher, clean session";
  readonly #version: 4 | 5;
  #client: mqtt.MqttClient | undefined;
  #offlineUntil = 0;

  constructor(ctx: Context, id: string, rng: Rng, version: 4 | 5) {
    super(ctx, id, rng);
    this.#version = version;
  }

  async #connect(): Promise<void> {
    const { client } = await mqttOpen(this.ctx.port, {
      clientId: this.id,
      protocolVersion: this.#version,
      clean: true,
    });
    this.ctx.events.connects++;
    this.#client = client;
  }

  async #publish(topic: string, qos: QoS, retain = false, clear = false): Promise<Message> {
    const ledger = this.ctx.ledger;
    const message = ledger.publish(topic, qos, retain ? "retained" : "publish");
    const payload = clear ? "" : ledger.payload(message, this.rng);
    try {
      await withTimeout(this.#client!.publishAsync(topic, payload, { qos, retain }), `publish to ${topic}`);
      ledger.acknowledged(message);
    } catch {
      ledger.uncertain(message);
    }
    return message;
  }

  async #end(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    if (client) await withTimeout(client.endAsync(), () => `end ${this.id}: ${describe(client)}`);
  }

  protected async step(): Promise<void> {
    if (!this.#client?.connected) {
      const closed = this.#client;
      if (closed) {
        recordError(this.ctx, this.id, "the broker closed the connection");
        this.#client = undefined;
        await withTimeout(closed.endAsync(true), () => `end(force) ${this.id}: ${describe(closed)}`);
      }
      if (Date.now() >= this.#offlineUntil) await this.#connect();
      return;
    }
    const ledger = this.ctx.ledger;
    const roll = this.rng.int(100);
    if (roll < 60) {
      await this.#publish(ledger.randomTopic(this.rng, this.ctx.targets), this.rng.pick([0, 1, 2] as QoS[]));
    } else if (roll < 72) {
      const flows = [];
      for (let i = this.rng.range(5, 30); i > 0; i--) {
        flows.push(
          this.#publish(ledger.randomTopic(this.rng, this.ctx.targets), this.rng.pick([0, 1, 2] as QoS[])),
        );
      }
      await Promise.all(flows);
    } else if (roll < 80) {
      const free = this.ctx.retained.filter((t) => !t.busy);
      if (free.length === 0) return;
      const topic = this.rng.pick(free);
      topic.busy = true;
      try {
        const clear = this.rng.chance(0.3);
        const message = await this.#publish(topic.topic, this.rng.pick([1, 2] as QoS[]), true, clear);
        const state = clear ? null : message.id;
        if (message.outcome === "acknowledged") topic.possible = new Set([state]);
        else topic.possible.add(state);
        if (clear) this.ctx.events.retainedClears++;
        else this.ctx.events.retainedSets++;
      } finally {
        topic.busy = false;
      }
    } else if (roll < 84) {
      await this.#end();
      this.ctx.events.disconnects++;
      this.#offlineUntil = Date.now() + this.rng.range(50, 1500);
    } else if (roll < 87) {
      const old = this.#client;
      this.#client = undefined;
      await this.#connect();
      await takenOver(this.ctx, this.id, old);
      this.ctx.events.takeovers++;
    }
  }

  protected async recover(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    if (client) {
      await withTimeout(client.endAsync(true), () => `end(force) ${this.id}: ${describe(client)}`).catch(
        () => {},
      );
    }
  }

  async settle(): Promise<void> {
    await this.#end();
  }

  async sync(): Promise<void> {}

  async cleanup(): Promise<void> {
    await this.#end();
  }
}

/** An MQTT.js subscriber with a persistent session at QoS 1 on `soak/d/{id}/#`. */
export class MqttSubscriber extends Actor {
  readonly role = "MQTT.js subscriber, persistent QoS 1";
  readonly #version: 4 | 5;
  readonly #subscriber: Subscriber;
  #client: mqtt.MqttClient | undefined;
  #offlineUntil = 0;
  #sessionExists = false;

  constructor(ctx: Context, id: string, rng: Rng, version: 4 | 5) {
    super(ctx, id, rng);
    this.#version = version;
    this.#subscriber = ctx.ledger.addDedicated(id);
    ctx.targets.push(id);
  }

  #options(clean: boolean): mqtt.IClientOptions {
    return {
      clientId: this.id,
      protocolVersion: this.#version,
      clean,
      properties: this.#version === 5 ? { sessionExpiryInterval: clean ? 0 : 3600 } : undefined,
    };
  }

  readonly #onMessage = (topic: string, payload: Uint8Array, packet: mqtt.IPublishPacket): void => {
    this.ctx.ledger.deliver(this.id, topic, payload, packet.qos as QoS, packet.retain);
  };

  /** Connects (resuming the session); a new session subscribes. */
  async #connect(): Promise<mqtt.MqttClient> {
    const { client, connack } = await mqttOpen(this.ctx.port, this.#options(false), this.#onMessage);
    this.ctx.events.connects++;
    const present = connack.sessionPresent;
    if (this.#sessionExists && !present) {
      this.ctx.ledger.violation("session", `${this.id}: session lost: Session Present 0 [MQTT-3.2.2-3]`);
      this.ctx.ledger.ended(this.#subscriber);
    } else if (!this.#sessionExists && present) {
      this.ctx.ledger.violation("session", `${this.id}: Session Present 1 for a session that cannot exist`);
    }
    if (present) this.ctx.events.sessionsResumed++;
    if (!present) {
      const granted = await withTimeout(
        client.subscribeAsync(`soak/d/${this.id}/#`, { qos: 1 }),
        `subscribe ${this.id}`,
      );
      if (granted[0]?.qos !== 1) {
        this.ctx.ledger.violation("protocol", `${this.id}: SUBACK ${granted[0]?.qos} for QoS 1`);
      } else {
        this.ctx.events.subscribes++;
        this.ctx.ledger.subscribed(this.#subscriber, 1);
      }
    }
    this.#sessionExists = true;
    return client;
  }

  protected async step(): Promise<void> {
    if (!this.#client?.connected) {
      const closed = this.#client;
      if (closed) {
        recordError(this.ctx, this.id, "the broker closed the connection");
        this.#client = undefined;
        await withTimeout(closed.endAsync(true), () => `end(force) ${this.id}: ${describe(closed)}`);
        this.#offlineUntil = 0;
      }
      if (Date.now() >= this.#offlineUntil) this.#client = await this.#connect();
      return;
    }
    const roll = this.rng.int(100);
    if (roll < 8) {
      const client = this.#client;
      this.#client = undefined;
      await withTimeout(client.endAsync(), () => `end ${this.id}: ${describe(client)}`);
      this.ctx.events.disconnects++;
      this.#offlineUntil = Date.now() + this.rng.range(100, 2500);
    } else if (roll < 13) {
      const old = this.#client;
      this.#client = undefined;
      this.#client = await this.#connect();
      await takenOver(this.ctx, this.id, old);
      this.ctx.events.takeovers++;
    }
  }

  protected async recover(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    if (client) {
      await withTimeout(client.endAsync(true), () => `end(force) ${this.id}: ${describe(client)}`).catch(
        () => {},
      );
    }
  }

  async settle(): Promise<void> {
    if (this.#client?.connected) return;
    await this.recover();
    this.#client = await this.#connect();
  }

  async sync(): Promise<void> {}

  /** Ends the session by reconnecting with Clean Start 1, then disconnecting. */
  async cleanup(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    if (client) await withTimeout(client.endAsync(), () => `end ${this.id}: ${describe(client)}`);
    const { client: clean } = await mqttOpen(this.ctx.port, this.#options(true));
    await withTimeout(clean.endAsync(), () => `end ${this.id}: ${describe(clean)}`);
    this.#sessionExists = false;
    this.ctx.ledger.ended(this.#subscriber);
  }
}
