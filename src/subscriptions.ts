/**
 * SUBSCRIBE and UNSUBSCRIBE handling: hooks and the ACL per filter, the server's limits and
 * capabilities, the topic index, the durable SUBACK/UNSUBACK, and retained messages after the
 * SUBACK (Retain Handling). Retained messages that expired are cleared here too.
 *
 * @module
 */

import type { Cluster } from "./cluster.ts";
import type { Packet, QoS, Subscription } from "./packets/types.ts";
import { PacketType } from "./packets/types.ts";
import { ReasonCode } from "./packets/reason_codes.ts";
import { isValidTopicFilter } from "./packets/topic_rules.ts";
import type { Client } from "./client.ts";
import type { Hooks } from "./hooks.ts";
import { type Delivery, parseFilter, type TopicsIndex, withinTopicLimits } from "./topics.ts";
import { obscureNotAuthorized, type ResolvedOptions } from "./options.ts";
import type { SharedHandoff } from "./shared_handoff.ts";

/** What subscription handling needs from the server. */
export interface SubscriptionHost {
  /** The server's options. */
  readonly options: ResolvedOptions;
  /** The hook dispatcher. */
  readonly hooks: Hooks;
  /** Subscriptions and retained messages. */
  readonly topics: TopicsIndex;
  /** Disconnects a client with a reason code. */
  disconnectClient(client: Client, code: number): void;
  /** Sends an acknowledgement once what it promises is durable; `after` runs once it is sent. */
  sendDurable(client: Client, packet: Packet, after?: () => void): void;
  /** Delivers a message to a client after the ACL allows it. */
  deliverChecked(client: Client, delivery: Delivery, packet: Packet, retained: boolean): void;
  /** The cluster this server is a node of, if any. */
  cluster(): Cluster | undefined;
  /** Passes on what a shared group queued for a member that unsubscribes from it. */
  readonly handoff?: SharedHandoff;
}

/**
 * Handles SUBSCRIBE and UNSUBSCRIBE packets for one server.
 *
 * @example Subscriptions made through the server land in its topic index
 * ```ts
 * import assert from "node:assert/strict";
 * import { AllowHook, Server } from "../mod.ts";
 * import { MockListener } from "../listeners/mock.ts";
 *
 * const server = new Server();
 * await server.addHook(new AllowHook());
 * const mock = new MockListener({ id: "mock" });
 * await server.addListener(mock);
 * await server.serve();
 *
 * const conn = mock.connect();
 * const reply = new Uint8Array(64);
 * // CONNECT: "MQTT", v5, clean start, keep alive 60 s, no properties, client id "c1".
 * await conn.write(new Uint8Array([0x10, 15, 0, 4, 77, 81, 84, 84, 5, 2, 0, 60, 0, 0, 2, 99, 49]));
 * await conn.read(reply); // CONNACK
 * // SUBSCRIBE: packet id 1, no properties, filter "a/b" at QoS 1.
 * await conn.write(new Uint8Array([0x82, 9, 0, 1, 0, 0, 3, 97, 47, 98, 1]));
 * const length = await conn.read(reply);
 * // SUBACK: packet id 1, no properties, reason code 1 (Granted QoS 1).
 * assert.deepEqual(reply.subarray(0, length ?? 0), new Uint8Array([0x90, 4, 0, 1, 0, 1]));
 * assert.equal(server.topics.subscriptionCount, 1);
 * conn.close();
 * await server.close();
 * ```
 */
export class SubscriptionHandler {
  readonly #host: SubscriptionHost;

  /**
   * Creates the handler.
   *
   * @param host The server's parts it uses.
   */
  constructor(host: SubscriptionHost) {
    this.#host = host;
  }

  /**
   * Handles a SUBSCRIBE: hooks, ACL per filter, limits, the SUBACK (durable), then retained messages.
   *
   * @param client The client.
   * @param packet Its SUBSCRIBE.
   * @returns A Promise only when a hook answered asynchronously.
   */
  subscribe(client: Client, packet: Packet): void | Promise<void> {
    const hooked = this.#host.hooks.onSubscribe(client, packet);
    if (hooked instanceof Promise) return hooked.then((p) => this.#checkSubscribe(client, p));
    return this.#checkSubscribe(client, hooked);
  }

  /** Asks the ACL about every filter; waits only if a hook answered with a Promise. */
  #checkSubscribe(client: Client, packet: Packet | number): void | Promise<void> {
    if (typeof packet === "number") return this.#host.disconnectClient(client, packet);
    const filters = packet.filters ?? [];
    const allowed = filters.map((sub) =>
      isValidTopicFilter(sub.filter) ? this.#host.hooks.onACLCheck(client, sub.filter, false) : false
    );
    const cluster = this.#host.cluster();
    if (cluster !== undefined) {
      // Retained messages acknowledged anywhere before this SUBSCRIBE must be in the local mirror.
      return Promise.all([cluster.retainedReady(), ...allowed]).then(([, ...results]) =>
        this.#add(client, packet, results as boolean[])
      );
    }
    if (allowed.some((a) => a instanceof Promise)) {
      return Promise.all(allowed).then((results) => this.#add(client, packet, results));
    }
    return this.#add(client, packet, allowed as boolean[]);
  }

  #add(client: Client, packet: Packet, allowed: boolean[]): void {
    const caps = this.#host.options.capabilities;
    const v5 = client.properties.protocolVersion === 5;
    const filters = packet.filters ?? [];
    const codes: number[] = [];
    const retainedToSend: [Subscription, Packet[]][] = [];
    for (let i = 0; i < filters.length; i++) {
      const sub = filters[i];
      const parsed = parseFilter(sub.filter);
      if (parsed?.group !== undefined && sub.noLocal) {
        return this.#host.disconnectClient(client, ReasonCode.ProtocolError); // [MQTT-3.8.3-4]
      }
      let code: number;
      if (!parsed || !withinTopicLimits(parsed.topicFilter, caps)) code = ReasonCode.TopicFilterInvalid;
      else if (
        caps.maximumSubscriptionsPerClient > 0 && !client.state.subscriptions.has(sub.filter) &&
        client.state.subscriptions.size >= caps.maximumSubscriptionsPerClient
      ) {
        code = ReasonCode.QuotaExceeded;
      } else if (parsed.group !== undefined && !caps.sharedSubAvailable) {
        code = ReasonCode.SharedSubscriptionsNotSupported;
      } else if (parsed.wildcard && !caps.wildcardSubAvailable) {
        code = ReasonCode.WildcardSubscriptionsNotSupported;
      } else if (sub.identifier !== undefined && !caps.subIdAvailable) {
        code = ReasonCode.SubscriptionIdentifiersNotSupported;
      } else if (!allowed[i]) {
        code = obscureNotAuthorized(ReasonCode.NotAuthorized, caps.compatibilities);
      } else {
        const granted = Math.min(sub.qos, caps.maximumQos) as QoS;
        const stored: Subscription = { ...sub, qos: granted };
        const isNew = this.#host.topics.subscribe(client.id, stored);
        client.state.subscriptions.set(sub.filter, stored);
        code = granted;
        // [MQTT-3.3.1-9/10/11] Retain Handling; never for shared subscriptions (spec 3.3.1.3).
        const handling = sub.retainHandling ?? 0;
        if (parsed.group === undefined && (handling === 0 || (handling === 1 && isNew))) {
          retainedToSend.push([stored, this.#host.topics.retainedMessages(sub.filter)]);
        }
      }
      codes.push(v5 || code < 0x80 ? code : 0x80);
    }
    const sendRetained = () => this.#sendRetained(client, retainedToSend);
    this.#host.sendDurable(client, {
      fixedHeader: { type: PacketType.Suback },
      packetId: packet.packetId,
      reasonCodes: codes,
    }, retainedToSend.length > 0 ? sendRetained : undefined);
    this.#host.hooks.onSubscribed(client, packet, codes);
  }

  /** Sends the retained messages matching new subscriptions (after the SUBACK). */
  #sendRetained(client: Client, retainedToSend: [Subscription, Packet[]][]): void {
    for (const [sub, messages] of retainedToSend) {
      const delivery: Delivery = {
        clientId: client.id,
        qos: sub.qos,
        noLocal: false,
        retainAsPublished: true,
        identifiers: sub.identifier ? [sub.identifier] : [],
        shared: false,
      };
      for (const message of messages) {
        if (message.expiry && Date.now() >= message.expiry) {
          this.expireRetained(message);
          continue;
        }
        this.#host.deliverChecked(client, delivery, message, true);
        this.#host.hooks.onRetainPublished(client, message);
      }
    }
  }

  /**
   * Expires the retained messages whose Message Expiry Interval has passed.
   *
   * @param now The current time in ms.
   */
  expireRetainedMessages(now: number): void {
    for (const message of [...this.#host.topics.allRetained()]) {
      if (
        message.expiry && now >= message.expiry && message.properties?.messageExpiryInterval !== undefined
      ) {
        this.expireRetained(message);
      }
    }
  }

  /**
   * Clears an expired retained message and fires `onRetainedExpired`.
   *
   * @param message The retained message.
   */
  expireRetained(message: Packet): void {
    this.#host.topics.retain({ ...message, payload: new Uint8Array() });
    this.#host.hooks.onRetainedExpired(message.topicName!);
  }

  /**
   * Handles an UNSUBSCRIBE: hooks, removal, the UNSUBACK (durable).
   *
   * @param client The client.
   * @param packet Its UNSUBSCRIBE.
   * @returns A Promise only when a hook answered asynchronously.
   */
  unsubscribe(client: Client, packet: Packet): void | Promise<void> {
    const hooked = this.#host.hooks.onUnsubscribe(client, packet);
    if (hooked instanceof Promise) return hooked.then((p) => this.#remove(client, p));
    return this.#remove(client, hooked);
  }

  #remove(client: Client, packet: Packet | number): void {
    if (typeof packet === "number") return this.#host.disconnectClient(client, packet);
    const codes: number[] = [];
    for (const { filter } of packet.filters ?? []) {
      // The same filter syntax as SUBSCRIBE [MQTT-4.7.1-1] [MQTT-4.7.3-1]; v3 UNSUBACK has no codes.
      if (!isValidTopicFilter(filter)) {
        codes.push(ReasonCode.TopicFilterInvalid);
        continue;
      }
      const existed = this.#host.topics.unsubscribe(client.id, filter);
      client.state.subscriptions.delete(filter);
      if (existed && filter.startsWith("$share/")) this.#host.handoff?.unsubscribed(client, filter);
      codes.push(existed ? ReasonCode.Success : ReasonCode.NoSubscriptionExisted);
    }
    this.#host.sendDurable(client, {
      fixedHeader: { type: PacketType.Unsuback },
      packetId: packet.packetId,
      reasonCodes: codes,
    });
    this.#host.hooks.onUnsubscribed(client, packet);
  }
}
