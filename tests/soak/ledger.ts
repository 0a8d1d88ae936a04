/**
 * The soak test's model of what the broker must deliver: every message published, every
 * subscription that could receive it, and every delivery. It only asserts what MQTT 5 promises:
 *
 * - A QoS 1/2 message whose publisher got the broker's acknowledgement (PUBACK, or PUBREC for QoS 2:
 *   the broker owns the message from then on) must reach every subscription that existed, without a
 *   break, from before the PUBLISH was sent until the acknowledgement arrived, unless that
 *   subscription's session or the subscription itself ended before delivery (a session end discards
 *   queued messages [MQTT-4.1.0-2]; an unsubscribe may discard buffered ones [MQTT-3.10.4-3]).
 * - Delivered at QoS min(publish, subscription) [MQTT-3.8.4-8]; a QoS 2 message delivered at QoS 2
 *   reaches the receiver exactly once [MQTT-4.3.3], a QoS 0 one at most once; QoS 1 may repeat.
 * - Each receiving end is one client's dedicated filter (`soak/d/{client}/#`), one shared group
 *   (`$share/soak/soak/s/#`: one delivery for the whole group [MQTT-4.8.2]), or the will watcher
 *   (`soak/will/#`), so no two subscriptions overlap and no delivery is ambiguous.
 *
 * @module
 */

import type { QoS } from "../../mod.ts";
import type { Rng } from "../fuzz/rng.ts";

/** One receiving end: a subscription whose deliveries the ledger tracks. */
export class Subscriber {
  /** The client id (or "group"/"will" for the shared group and the will watcher). */
  readonly name: string;
  /** Client ids allowed to receive its messages (one, or the shared group's members). */
  readonly receivers: Set<string> = new Set();
  /** Increments whenever the subscription (or its session) ends. */
  epoch = 0;
  /** Whether the subscription exists and is acknowledged. */
  active = false;
  /** The granted QoS of the current subscription. */
  qos: QoS = 0;
  /** Expectations of the current epoch not yet delivered. */
  readonly open: Set<Expectation> = new Set();

  /**
   * @param name The subscriber's name.
   * @param receivers The client ids that may receive for it.
   */
  constructor(name: string, receivers: string[]) {
    this.name = name;
    for (const receiver of receivers) this.receivers.add(receiver);
  }
}

/** Whether a subscriber must receive a message. */
export type ExpectationStatus = "pending" | "required" | "optional" | "cancelled" | "lost";

/** What one subscriber should get of one message. */
export interface Expectation {
  /** The message. */
  message: Message;
  /** The subscriber. */
  subscriber: Subscriber;
  /** Its epoch when the message was published. */
  epoch: number;
  /** Its granted QoS then. */
  subscriptionQos: QoS;
  /** Pending until the publisher's acknowledgement (or its absence) decides. */
  status: ExpectationStatus;
  /** Deliveries so far (after the receiver's own QoS 2 de-duplication). */
  delivered: number;
  /**
   * Whether the broker routed the message through this epoch's subscription (so that the QoS and
   * duplicate checks apply): known once the expectation became required, or when it arrived before
   * the subscription changed. A message whose publish overlapped an unsubscribe and a new
   * subscribe may be routed through the new one, at its QoS.
   */
  routed: boolean;
}

/** How a publish ended, from the publisher's side. */
export type Outcome = "sending" | "acknowledged" | "uncertain" | "forbidden";

/** One application message. */
export interface Message {
  /** Unique id, the start of the payload. */
  id: number;
  /** The topic. */
  topic: string;
  /** The publish QoS. */
  qos: QoS;
  /** "publish", "will" or "retained". */
  kind: "publish" | "will" | "retained";
  /** The publisher's outcome. */
  outcome: Outcome;
  /** At most one per subscriber. */
  expectations: Expectation[];
  /**
   * Sent again as a new PUBLISH (QoS 1 with DUP): each copy is routed on its own, maybe through a
   * subscription made between the two, so its delivered QoS is not checked.
   */
  resent?: boolean;
}

/** Counters for one publish QoS. */
export interface QosCounters {
  /** Publishes started. */
  published: number;
  /** Acknowledged by the broker (QoS 0: sent). */
  acknowledged: number;
  /** Publisher lost its connection or timed out before the acknowledgement. */
  uncertain: number;
  /** Deliveries that had to happen. */
  required: number;
  /** ... and happened. */
  delivered: number;
  /** ... and did not (violations). */
  lost: number;
  /** Expectations cancelled by a session or subscription ending first (allowed losses). */
  cancelled: number;
  /** Every PUBLISH received for these messages. */
  deliveries: number;
  /** Repeated deliveries the spec allows (QoS 1 hops). */
  duplicates: number;
  /** Repeated deliveries it forbids. */
  forbiddenDuplicates: number;
}

/** Kinds of violation; each is one check of the report. */
export type ViolationKind =
  | "lost"
  | "duplicate"
  | "qos"
  | "routing"
  | "session"
  | "will"
  | "retained"
  | "protocol";

const PAD = "x".repeat(512);
const decoder = new TextDecoder();

/** The ledger of messages, subscribers and deliveries. */
export class Ledger {
  /** Every message by id. */
  readonly messages: Map<number, Message> = new Map();
  /** Dedicated subscribers by client id. */
  readonly dedicated: Map<string, Subscriber> = new Map();
  /** The shared group `$share/soak/soak/s/#`. */
  readonly group: Subscriber = new Subscriber("group", []);
  /** The will watcher `soak/will/#`. */
  readonly wills: Subscriber = new Subscriber("will", []);
  /** Counters by publish QoS. */
  readonly qos: [QosCounters, QosCounters, QosCounters] = [counters(), counters(), counters()];
  /** Violations by kind (the first few details are kept). */
  readonly violations: Map<ViolationKind, { count: number; details: string[] }> = new Map();
  #nextId = 1;

  /** Records a violation. */
  violation(kind: ViolationKind, detail: string): void {
    let entry = this.violations.get(kind);
    if (!entry) this.violations.set(kind, entry = { count: 0, details: [] });
    entry.count++;
    if (entry.details.length < 8) entry.details.push(detail);
  }

  /** The number of violations of one kind. */
  count(kind: ViolationKind): number {
    return this.violations.get(kind)?.count ?? 0;
  }

  /** Adds a dedicated subscriber for `soak/d/{clientId}/#`. */
  addDedicated(clientId: string): Subscriber {
    const subscriber = new Subscriber(clientId, [clientId]);
    this.dedicated.set(clientId, subscriber);
    return subscriber;
  }

  /** A random topic to publish to: a dedicated one, the shared group's, or one nobody subscribes to. */
  randomTopic(rng: Rng, names: string[]): string {
    const roll = rng.int(100);
    if (roll < 80 && names.length > 0) return `soak/d/${rng.pick(names)}/${rng.int(4)}`;
    if (roll < 92) return `soak/s/${rng.int(4)}`;
    return `soak/x/${rng.int(4)}`;
  }

  /** The subscriber whose filter a topic falls under, if any. */
  route(topic: string): Subscriber | undefined {
    if (topic.startsWith("soak/d/")) return this.dedicated.get(topic.split("/")[2]);
    if (topic.startsWith("soak/s/")) return this.group;
    if (topic.startsWith("soak/will/")) return this.wills;
    return undefined;
  }

  /**
   * Records a publish about to be sent (or a will about to be armed): expectations for the
   * subscriber whose subscription exists now.
   */
  publish(topic: string, qos: QoS, kind: Message["kind"] = "publish"): Message {
    const message: Message = { id: this.#nextId++, topic, qos, kind, outcome: "sending", expectations: [] };
    this.messages.set(message.id, message);
    if (kind !== "will") this.qos[qos].published++;
    const subscriber = this.route(topic);
    if (subscriber?.active) {
      const expectation: Expectation = {
        message,
        subscriber,
        epoch: subscriber.epoch,
        subscriptionQos: subscriber.qos,
        status: "pending",
        delivered: 0,
        routed: qos === 0, // delivered at QoS 0 and routed once, whichever subscription it went through
      };
      message.expectations.push(expectation);
      subscriber.open.add(expectation);
    }
    return message;
  }

  /** A payload naming the message, padded to a random length. */
  payload(message: Message, rng: Rng): string {
    return `${message.id}|${PAD.slice(0, rng.int(PAD.length))}`;
  }

  /** The publisher got the acknowledgement (or, for a will, the broker must send it). */
  acknowledged(message: Message): void {
    if (message.outcome !== "sending") return;
    message.outcome = "acknowledged";
    if (message.kind !== "will") this.qos[message.qos].acknowledged++;
    if (message.qos === 0) return this.#release(message, "optional"); // at most once: nothing is required
    for (const expectation of message.expectations) {
      if (expectation.status !== "pending") continue;
      const subscriber = expectation.subscriber;
      const unbroken = subscriber.active && subscriber.epoch === expectation.epoch;
      if (unbroken) expectation.routed = true;
      if (unbroken && expectation.subscriptionQos > 0) {
        expectation.status = "required";
        if (expectation.delivered > 0) subscriber.open.delete(expectation);
      } else {
        expectation.status = "optional";
        subscriber.open.delete(expectation);
      }
    }
  }

  /** The publisher does not know whether the broker took the message: nothing is required. */
  uncertain(message: Message): void {
    if (message.outcome !== "sending") return;
    message.outcome = "uncertain";
    if (message.kind !== "will") this.qos[message.qos].uncertain++;
    this.#release(message, "optional");
  }

  /** The broker must never send this message (a will discarded by a normal DISCONNECT). */
  forbid(message: Message): void {
    if (message.outcome !== "sending") return;
    message.outcome = "forbidden";
    this.#release(message, "optional");
    for (const expectation of message.expectations) {
      if (expectation.delivered > 0) {
        this.violation("will", `will ${message.id} on ${message.topic} was sent before a normal DISCONNECT`);
      }
    }
  }

  #release(message: Message, status: ExpectationStatus): void {
    for (const expectation of message.expectations) {
      if (expectation.status !== "pending") continue;
      expectation.status = status;
      expectation.subscriber.open.delete(expectation);
    }
  }

  /** A subscription was acknowledged (SUBACK): a new epoch starts. */
  subscribed(subscriber: Subscriber, qos: QoS): void {
    if (subscriber.active) return; // the shared group: several members, one subscription
    subscriber.epoch++;
    subscriber.active = true;
    subscriber.qos = qos;
  }

  /**
   * The subscription is about to end (UNSUBSCRIBE, or its session ends): what was not delivered
   * may be discarded. `freeze` only stops new expectations (the subscription still exists).
   */
  ended(subscriber: Subscriber): void {
    subscriber.active = false;
    subscriber.epoch++;
    for (const expectation of subscriber.open) {
      if (expectation.status === "required" || expectation.status === "pending") {
        expectation.status = "cancelled";
      }
    }
    subscriber.open.clear();
  }

  /** Stops new expectations for a subscriber whose subscription still exists (before a check). */
  freeze(subscriber: Subscriber): void {
    subscriber.active = false;
  }

  /** How many required deliveries to `subscriber` are still missing. */
  missing(subscriber: Subscriber): number {
    let n = 0;
    for (const expectation of subscriber.open) {
      if (expectation.status === "required" && expectation.delivered === 0) n++;
    }
    return n;
  }

  /** Every required delivery to `subscriber` must have happened by now: the rest are lost. */
  check(subscriber: Subscriber, when: string): void {
    for (const expectation of subscriber.open) {
      if (expectation.status !== "required" || expectation.delivered > 0) continue;
      expectation.status = "lost";
      const message = expectation.message;
      this.violation(
        message.kind === "will" ? "will" : "lost",
        `${message.kind} ${message.id} (QoS ${message.qos}, ${message.topic}) never reached ` +
          `${subscriber.name} (subscription QoS ${expectation.subscriptionQos}) ${when}`,
      );
    }
  }

  /**
   * A client received a PUBLISH (after its own QoS 2 de-duplication).
   *
   * @param receiver The client id.
   * @param topic The topic name.
   * @param payload The payload.
   * @param qos The QoS it arrived with.
   * @param retain The RETAIN flag it arrived with.
   */
  deliver(receiver: string, topic: string, payload: Uint8Array | string, qos: QoS, retain: boolean): void {
    const text = typeof payload === "string" ? payload : decoder.decode(payload);
    const id = Number(text.slice(0, text.indexOf("|")));
    const message = this.messages.get(id);
    if (!message) return this.violation("routing", `${receiver} got an unknown payload on ${topic}`);
    if (message.topic !== topic) {
      return this.violation("routing", `${receiver} got message ${id} of ${message.topic} on ${topic}`);
    }
    const subscriber = this.route(topic);
    if (!subscriber || !subscriber.receivers.has(receiver)) {
      return this.violation("routing", `${receiver} got message ${id} on ${topic}, not subscribed to it`);
    }
    if (retain) {
      this.violation("protocol", `${receiver} got ${topic} with RETAIN 1 on a live delivery [MQTT-3.3.1-13]`);
    }
    if (message.kind !== "will") this.qos[message.qos].deliveries++;
    if (message.outcome === "forbidden") {
      this.violation(
        "will",
        `will ${id} on ${topic} was sent although the client sent a normal DISCONNECT [MQTT-3.1.2-10]`,
      );
    }
    const expectation = message.expectations.find((e) => e.subscriber === subscriber);
    if (!expectation) return; // subscribed after the publish started: allowed either way
    expectation.delivered++;
    if (expectation.status !== "pending") subscriber.open.delete(expectation);
    if (expectation.status === "pending" && subscriber.active && subscriber.epoch === expectation.epoch) {
      expectation.routed = true;
    }
    if (!expectation.routed || (message.qos === 1 && message.resent)) return;
    const effective = Math.min(message.qos, expectation.subscriptionQos);
    if (qos !== effective) {
      this.violation(
        "qos",
        `${receiver} got message ${id} at QoS ${qos}: published at ${message.qos}, subscribed at ` +
          `${expectation.subscriptionQos} [MQTT-3.8.4-8]`,
      );
    }
    if (expectation.delivered > 1) {
      const counters = this.qos[message.qos];
      // A QoS 1 publish may reach the broker twice (publisher retry), a QoS 1 hop may repeat.
      if (effective === 2 || (effective === 0 && message.qos !== 1)) {
        if (message.kind !== "will") counters.forbiddenDuplicates++;
        this.violation(
          "duplicate",
          `${subscriber.name} got message ${id} (QoS ${message.qos}, subscription ${expectation.subscriptionQos}) ` +
            `${expectation.delivered} times [MQTT-4.3.3]`,
        );
      } else if (message.kind !== "will") counters.duplicates++;
    }
  }

  /** After the final drain: every required delivery must have happened; counts the totals. */
  finish(): void {
    for (const subscriber of [...this.dedicated.values(), this.group, this.wills]) {
      this.check(subscriber, "after the final drain");
    }
    for (const message of this.messages.values()) {
      if (message.kind === "will") continue;
      const counters = this.qos[message.qos];
      for (const expectation of message.expectations) {
        if (expectation.status === "required") {
          counters.required++;
          counters.delivered++;
        } else if (expectation.status === "lost") {
          counters.required++;
          counters.lost++;
        } else if (expectation.status === "cancelled" && expectation.delivered === 0) counters.cancelled++;
      }
    }
  }

  /** Counts of wills: armed, required, received when required, forbidden, optional. */
  willCounts(): { armed: number; required: number; received: number; forbidden: number; optional: number } {
    const out = { armed: 0, required: 0, received: 0, forbidden: 0, optional: 0 };
    for (const message of this.messages.values()) {
      if (message.kind !== "will") continue;
      out.armed++;
      const expectation = message.expectations[0];
      if (message.outcome === "forbidden") out.forbidden++;
      else if (expectation?.status === "required" || expectation?.status === "lost") {
        out.required++;
        if (expectation.delivered > 0) out.received++;
      } else out.optional++;
    }
    return out;
  }
}

function counters(): QosCounters {
  return {
    published: 0,
    acknowledged: 0,
    uncertain: 0,
    required: 0,
    delivered: 0,
    lost: 0,
    cancelled: 0,
    deliveries: 0,
    duplicates: 0,
    forbiddenDuplicates: 0,
  };
}
