/**
 * The server's own subscriptions (the inline client): handlers registered with `Server.subscribe`,
 * kept in the topic index under ids no network client can have, and called for every matching
 * message. A subscription made with `holdAcks` may hold the publisher's acknowledgement (a bridge
 * acknowledges only once the remote broker has the message).
 *
 * @module
 */

import type { Packet, Subscription } from "./packets/types.ts";
import type { Client } from "./client.ts";
import { type Delivery, parseFilter, type TopicsIndex } from "./topics.ts";
import { logger } from "./logger.ts";

const log = logger("server");
/** Inline subscriptions live in the topic index under ids no network client can have (U+0000 is not allowed in client ids). */
const INLINE_SUBSCRIBER_PREFIX = "\u0000inline\u0000";

/**
 * Receives messages for an inline subscription: the inline client, the subscription and the message.
 * Its result is ignored, unless the subscription was made with `holdAcks` (see
 * {@linkcode InlineSubscribeOptions}).
 */
export type InlineSubscribeHandler = (client: Client, subscription: Subscription, packet: Packet) => unknown;

/** Options of an inline subscription. */
export interface InlineSubscribeOptions {
  /**
   * Let the handler hold the publisher's acknowledgement: when a network client's QoS 1/2 PUBLISH
   * reaches the handler and it returns a Promise, the PUBACK (or PUBREC) is sent only once that
   * Promise has settled, and in the order the client's publishes arrived (later acks to that client
   * wait too). A Promise that resolves to a reason code of 0x80 or more gives that code to a v5
   * publisher's ack (for example 0x97 Quota Exceeded when a bridge dropped the message); a rejection
   * gives 0x80. This is how a bridge acknowledges a message only once the remote broker has it.
   */
  holdAcks?: boolean;
}

/** An acknowledgement waits for these (inline subscribers' holds, and the client's earlier held acks). */
export type AckHold = Promise<number | void>;

interface InlineSubscriber {
  subscription: Subscription;
  handler: InlineSubscribeHandler;
  holdAcks: boolean;
}

/**
 * The inline subscriptions of one server.
 *
 * @example A handler gets the messages its filter matches
 * ```ts
 * import assert from "node:assert/strict";
 * import { Server } from "../mod.ts";
 * const server = new Server({ inlineClient: true });
 * const topics: string[] = [];
 * await server.subscribe("a/#", 1, (_client, _sub, packet) => void topics.push(packet.topicName!));
 * await server.publish("a/b", "x", false, 0);
 * assert.deepEqual(topics, ["a/b"]);
 * ```
 */
export class InlineSubscribers {
  readonly #topics: TopicsIndex;
  readonly #client: () => Client;
  readonly #byId = new Map<string, InlineSubscriber>();
  /** Subscriptions made with `holdAcks`. */
  #holders = 0;

  /**
   * Creates the registry.
   *
   * @param topics The topic index the subscriptions go into.
   * @param client The inline client handlers receive.
   */
  constructor(topics: TopicsIndex, client: () => Client) {
    this.#topics = topics;
    this.#client = client;
  }

  /** Whether any subscription may hold acknowledgements. */
  get holdingAcks(): boolean {
    return this.#holders > 0;
  }

  /**
   * Adds (or replaces) a subscription and delivers the retained messages it matches at once.
   *
   * @param filter The topic filter.
   * @param subscriptionId Identifies this subscription (with the filter).
   * @param handler Called for each message.
   * @param options `holdAcks`: the handler may hold publishers' acknowledgements.
   * @throws {TypeError} When the filter is not valid.
   */
  add(
    filter: string,
    subscriptionId: number,
    handler: InlineSubscribeHandler,
    options: InlineSubscribeOptions,
  ): void {
    const parsed = parseFilter(filter);
    if (!parsed) throw new TypeError(`Topic filter "${filter}" is not valid`);
    const key = subscriberId(filter, subscriptionId);
    const subscription: Subscription = { filter, qos: 2, identifier: subscriptionId };
    this.#topics.subscribe(key, subscription);
    const holdAcks = options.holdAcks === true;
    if (this.#byId.get(key)?.holdAcks) this.#holders--;
    if (holdAcks) this.#holders++;
    this.#byId.set(key, { subscription, handler, holdAcks });
    if (parsed.group === undefined) {
      for (const message of this.#topics.retainedMessages(filter)) {
        if (message.expiry && Date.now() >= message.expiry) continue;
        handler(this.#client(), subscription, message);
      }
    }
  }

  /**
   * Removes a subscription.
   *
   * @param filter The topic filter it was made with.
   * @param subscriptionId The id it was made with.
   */
  remove(filter: string, subscriptionId: number): void {
    const key = subscriberId(filter, subscriptionId);
    this.#topics.unsubscribe(key, filter);
    if (this.#byId.get(key)?.holdAcks) this.#holders--;
    this.#byId.delete(key);
  }

  /**
   * Calls the handler of one matching subscription; a failing handler is logged, never thrown.
   *
   * @param delivery The match (its client id is the subscription's key).
   * @param packet The message.
   * @param holds Where a `holdAcks` handler's Promise goes, while a client publish is routed.
   */
  deliver(delivery: Delivery, packet: Packet, holds: AckHold[] | undefined): void {
    const subscriber = this.#byId.get(delivery.clientId);
    if (!subscriber) return;
    try {
      const hold = subscriber.handler(this.#client(), subscriber.subscription, packet);
      if (subscriber.holdAcks && hold instanceof Promise && holds !== undefined) holds.push(hold as AckHold);
    } catch (error) {
      log.error("Inline subscriber for {filter} failed: {error}", {
        filter: subscriber.subscription.filter,
        error: String(error),
      });
    }
  }
}

/**
 * Whether a subscriber id in the topic index is an inline subscription's.
 *
 * @param clientId A subscriber id from the topic index.
 * @returns True for inline subscriptions.
 */
export function isInlineSubscriber(clientId: string): boolean {
  return clientId.charCodeAt(0) === 0;
}

function subscriberId(filter: string, subscriptionId: number): string {
  return `${INLINE_SUBSCRIBER_PREFIX}${subscriptionId}\u0000${filter}`;
}
