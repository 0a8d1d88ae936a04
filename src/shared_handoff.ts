/**
 * Shared subscriptions: what a member that leaves its group passes on (MQTT 5.0 §4.8.2).
 *
 * A message a shared group gives one of its members is that member's to deliver. When the member's
 * session ends (a disconnect with session expiry 0, a clean-start takeover, its expiry) before its client
 * has the message, the message goes to another current member of the same group instead, chosen as any
 * message of the group is (round robin, connected members first among a node's members; in a cluster, on
 * whichever node the rotation picks), with the new member's granted QoS and DUP 0 (it never had it). What "before its client has
 * it" means follows the spec and EMQX:
 *
 * - a QoS 1 message sent and not PUBACKed goes on (the spec: SHOULD);
 * - a QoS 2 message sent and not yet PUBRECed does **not**: "If its Session terminates before the Client
 *   reconnects, the Server MUST NOT send the Application Message to any other subscribed Client"
 *   [MQTT-4.8.2-5] (EMQX passes on only QoS 1 in-flight messages for this reason); it ends with the session,
 *   and once PUBRECed it is the client's in any case;
 * - a message queued and never sent (over the client's Receive Maximum, or the client offline) goes on,
 *   whatever its QoS: nobody had started to deliver it.
 *
 * An UNSUBSCRIBE from the group passes on only what was queued for the group and not sent yet: the server
 * "MUST complete the delivery of any QoS 1 or QoS 2 messages which it has started to send to the Client"
 * [MQTT-3.10.4-3], so what is in flight stays with the client (and goes on as above if its session
 * then ends without an acknowledgement).
 *
 * While a member is only disconnected with a persistent session, its messages wait for it (the spec
 * allows both; EMQX waits too), and new messages of the group go to connected members first.
 *
 * A session's copy records the groups that picked it (`Packet.sharedGroups`, set only for a delivery
 * that came from shared subscriptions alone: a client that matched through a non-shared subscription as
 * well had the message anyway), and storage keeps them with the in-flight record (`InflightRecord.groups`;
 * the Deno KV and Redis backends' outbound log per chunk), so a restored or adopted session still knows them.
 *
 * In a cluster, a message given back leaves the member's stored session in the same engine write that
 * forwards it to the node of the group's next member ({@linkcode Cluster.atomically}): a node that dies
 * meanwhile leaves it in the session (for its claimer to pass on) or has passed it, never both or neither.
 *
 * @module
 */

import { type Packet, PacketType } from "./packets/types.ts";
import type { Client } from "./client.ts";
import type { Hooks } from "./hooks.ts";
import type { Inflight } from "./inflight.ts";
import type { Cluster, MessageOrigin } from "./cluster.ts";
import { parseFilter, type TopicsIndex } from "./topics.ts";
import type { Info } from "./system.ts";
import { logger } from "./logger.ts";

const log = logger("shared");

/** What the hand-off needs from its server. */
export interface HandoffHost {
  /** The topic index (the groups' current members). */
  readonly topics: TopicsIndex;
  /** The hooks (storage forgets a queued message an UNSUBSCRIBE passes on). */
  readonly hooks: Hooks;
  /** Counters (a message no member is left for is a drop, reason `no_member`). */
  readonly info: Info;
  /** The cluster this server is a node of, if any. */
  readonly cluster: Cluster | undefined;
  /** The routing function, restricted to `from`'s groups. */
  publishToSubscribers(packet: Packet, from: MessageOrigin): number;
}

/**
 * The messages a member whose session ends gives back to their groups, in the order the session got
 * them: its QoS 1 messages sent and not PUBACKed, and its messages queued and never sent, that shared
 * groups alone gave it. Sent QoS 2 messages stay out [MQTT-4.8.2-5].
 *
 * @param inflight The session's in-flight state (read, not changed).
 * @returns The messages, each with its `sharedGroups`; empty when there are none.
 *
 * @example A QoS 1 message in flight and a queued one go back; a sent QoS 2 one does not
 * ```ts
 * import assert from "node:assert/strict";
 * import { Inflight } from "./inflight.ts";
 * import { type Packet, PacketType } from "./packets/types.ts";
 * import { returnedMessages } from "./shared_handoff.ts";
 *
 * const inflight = new Inflight();
 * const groups = ["g/t"];
 * const message = (qos: 1 | 2, sequence: number): Packet => ({
 *   fixedHeader: { type: PacketType.Publish, qos }, topicName: "t", payload: new Uint8Array([sequence]), sequence,
 *   sharedGroups: groups,
 * });
 * inflight.outbound.set(1, { ...message(1, 1), packetId: 1 });
 * inflight.outbound.set(2, { ...message(2, 2), packetId: 2 });
 * inflight.pending.push(message(2, 3));
 * inflight.pending.push({ ...message(1, 4), sharedGroups: undefined }); // a non-shared delivery
 * assert.deepEqual(returnedMessages(inflight).map((m) => m.sequence), [1, 3]);
 * ```
 */
export function returnedMessages(inflight: Inflight): Packet[] {
  const returned: Packet[] = [];
  if (inflight.size === 0) return returned;
  for (const packet of inflight.outbound.values()) {
    // A PUBREL (past PUBREC) is the client's; a sent QoS 2 PUBLISH may go to nobody else [MQTT-4.8.2-5].
    if (packet.sharedGroups !== undefined && packet.fixedHeader.qos === 1) returned.push(packet);
  }
  for (const packet of inflight.pending) {
    if (packet.sharedGroups !== undefined) returned.push(packet);
  }
  return returned.sort((a, b) => (a.sequence ?? 0) - (b.sequence ?? 0));
}

/**
 * Passes on what members leaving their shared groups held: one per server.
 *
 * @example A message given back goes to the group's other member, or is dropped when none is left
 * ```ts
 * import assert from "node:assert/strict";
 * import { Hooks } from "./hooks.ts";
 * import { type Packet, PacketType } from "./packets/types.ts";
 * import { Info } from "./system.ts";
 * import { TopicsIndex } from "./topics.ts";
 * import { SharedHandoff } from "./shared_handoff.ts";
 *
 * const topics = new TopicsIndex();
 * const info = new Info();
 * const routed: string[] = [];
 * const handoff = new SharedHandoff({
 *   topics,
 *   hooks: new Hooks(),
 *   info,
 *   cluster: undefined,
 *   publishToSubscribers: (packet, from) => routed.push(`${packet.topicName} to ${from.groups}`),
 * });
 * const given: Packet = { fixedHeader: { type: PacketType.Publish, qos: 1, dup: true }, packetId: 7, topicName: "t" };
 * handoff.pass([{ ...given, sharedGroups: ["g/t"] }]); // member "a" left; nobody else is in g
 * assert.equal(info.messagesDropped, 1);
 * topics.subscribe("b", { filter: "$share/g/t", qos: 1 });
 * handoff.pass([{ ...given, sharedGroups: ["g/t"] }]);
 * assert.deepEqual(routed, ["t to g/t"]); // to b, through the routing function, as a new message
 * ```
 */
export class SharedHandoff {
  readonly #host: HandoffHost;

  /**
   * Creates the hand-off of a server.
   *
   * @param host The server's parts it uses.
   */
  constructor(host: HandoffHost) {
    this.#host = host;
  }

  /**
   * Passes messages that a member gave back (see {@linkcode returnedMessages}) to their groups. Call it
   * once the member is out of its groups (its subscriptions removed), so that it is not picked again.
   *
   * @param messages The messages, in order.
   */
  pass(messages: readonly Packet[]): void {
    for (const message of messages) {
      for (const group of message.sharedGroups!) this.#passOne(message, group);
    }
  }

  /**
   * A client unsubscribed from a shared subscription: what that group queued for it and it was not sent
   * yet goes to another member (what is in flight stays: [MQTT-3.10.4-3]).
   *
   * @param client The client (already out of the group).
   * @param filter The filter it unsubscribed from (`$share/{ShareName}/{filter}`).
   */
  unsubscribed(client: Client, filter: string): void {
    const inflight = client.state.inflight;
    if (inflight.pending.length === 0) return;
    const parsed = parseFilter(filter);
    if (parsed?.group === undefined) return;
    const group = `${parsed.group}/${parsed.topicFilter}`;
    const queued = [...inflight.pending];
    if (!queued.some((packet) => packet.sharedGroups?.includes(group))) return;
    // What the session loses and what the group gets, in one cluster write (see `Cluster.atomically`).
    const cluster = this.#host.cluster;
    if (cluster?.atomically) cluster.atomically(() => this.#unsubscribed(client, group, queued));
    else this.#unsubscribed(client, group, queued);
  }

  #unsubscribed(client: Client, group: string, queued: Packet[]): void {
    const inflight = client.state.inflight;
    const { hooks } = this.#host;
    const passed: Packet[] = [];
    inflight.pending.clear();
    for (const packet of queued) {
      const groups = packet.sharedGroups;
      if (groups === undefined || !groups.includes(group)) {
        inflight.pending.push(packet);
        continue;
      }
      passed.push(packet);
      if (groups.length === 1) {
        inflight.release(packet);
        hooks.onQosDropped(client, packet);
        continue;
      }
      // Other groups gave it too: it stays for them, and this group's copy goes on.
      packet.sharedGroups = groups.filter((g) => g !== group);
      inflight.pending.push(packet);
      hooks.onQosPublish(client, packet, 0, 0);
    }
    for (const packet of passed) this.#passOne(packet, group);
  }

  /** Gives one group's copy of a message to another member of the group, here or on another node. */
  #passOne(message: Packet, group: string): void {
    const { topics, info } = this.#host;
    const qos = message.fixedHeader.qos ?? 0;
    // A fresh message: the member that had it may have given it a packet id, DUP, or a QoS 2 stage.
    const packet: Packet = {
      fixedHeader: { type: PacketType.Publish, qos, retain: message.fixedHeader.retain ?? false },
      topicName: message.topicName,
      payload: message.payload,
      properties: message.properties,
      created: message.created,
      expiry: message.expiry,
      origin: message.origin,
    };
    const local = topics.subscribers(packet.topicName!).shared.get(group)?.size ?? 0;
    if (this.#host.cluster?.handOff?.(packet, group, local)) return; // a member on another node
    const delivered = local === 0
      ? 0
      : this.#host.publishToSubscribers(packet, { node: "", plain: false, groups: [group] });
    if (delivered > 0) return;
    info.messagesDropped++;
    info.traffic.dropped(qos, "no_member");
    log.debug("No member of shared group {group} is left for a message on {topic}: dropped", {
      group,
      topic: packet.topicName,
    });
  }
}
