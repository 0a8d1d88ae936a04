/**
 * The subscription trie (with `+`, `#`, `$`-topics and `$share` groups) and the retained-message index.
 *
 * Both are tries of topic levels split on `/`. Empty levels are real levels: `a//b` has three levels and
 * `/a` has two, the first empty. Nothing here validates on the hot path: the server checks filters with
 * {@linkcode parseFilter} and topic names with `isValidTopicName` (packets/topic_rules.ts) before it calls the index.
 *
 * @module
 */

import type { Packet, QoS, Subscription } from "./packets/types.ts";
import { isValidTopicFilter, parseSharedFilter } from "./packets/topic_rules.ts";
import { TopicMatches } from "./topic_matches.ts";

const PLUS = 0x2b;
const HASH = 0x23;
const DOLLAR = 0x24;

/**
 * A subscription as stored for one client: the {@linkcode Subscription} fields with the defaults filled
 * in, plus who made it and, for a shared subscription, the share name.
 *
 * `filter` is the filter exactly as the client sent it (with any `$share/{group}/` prefix), so it round
 * trips to storage and to {@linkcode TopicsIndex.unsubscribe}; `topicFilter` is the filter that is matched
 * against topic names (the same as `filter` for a non-shared subscription). Treat stored objects as
 * read-only: the index hands out the objects it holds.
 */
export interface ClientSubscription extends Subscription {
  /** The client (session) that subscribed. */
  clientId: string;
  /** The ShareName of a shared subscription; absent for a non-shared one. */
  group?: string;
  /** The filter matched against topic names: `filter` without any `$share/{group}/` prefix. */
  topicFilter: string;
  /** Always set on stored subscriptions (false when the SUBSCRIBE left it out). */
  noLocal: boolean;
  /** Always set on stored subscriptions (false when the SUBSCRIBE left it out). */
  retainAsPublished: boolean;
  /** Always set on stored subscriptions (0 when the SUBSCRIBE left it out). */
  retainHandling: 0 | 1 | 2;
}

/** What one client gets for one message: its matching subscriptions merged into one delivery (one copy sent). */
export interface Delivery {
  /** The receiving client. */
  clientId: string;
  /** The highest maximum QoS of the matching subscriptions [MQTT-3.3.4-2]; cap the message's QoS with it. */
  qos: QoS;
  /**
   * True only when every matching subscription has No Local: one subscription without it is enough to
   * deliver the client's own publish [MQTT-3.8.3-3].
   */
  noLocal: boolean;
  /** True when any matching subscription has Retain As Published [MQTT-3.3.1-12] [MQTT-3.3.1-13]. */
  retainAsPublished: boolean;
  /**
   * The Subscription Identifiers of the matching subscriptions that have one, one entry per subscription,
   * in no particular order [MQTT-3.3.4-3] [MQTT-3.3.4-4]. Two subscriptions with the same identifier give
   * it twice, as the spec describes (3.3.4). Empty when none has an identifier. A fresh array per delivery:
   * the server may hand it to the outgoing PUBLISH's properties.
   */
  identifiers: number[];
  /** True when the delivery comes only from shared subscriptions (see {@linkcode TopicsIndex.selectShared}). */
  shared: boolean;
  /** The shared groups (`"{group}/{topicFilter}"`) that picked this client; undefined when none did. */
  groups?: string[];
}

/** Everything that matches one topic name, as returned by {@linkcode TopicsIndex.subscribers}. */
export interface Subscribers {
  /** Non-shared matches, merged into one delivery per client id. */
  subscriptions: Map<string, Delivery>;
  /**
   * Shared matches: one entry per matching group, keyed `"{group}/{topicFilter}"` (a ShareName has no `/`,
   * so the key is unambiguous and the same group name on two filters makes two groups). The value maps
   * client id to that member's subscription, in the order members joined. It is the group's live member
   * map, not a copy: read it, or replace the entry with a filtered `Map` to narrow the choice before
   * {@linkcode TopicsIndex.selectShared}; do not mutate it.
   */
  shared: Map<string, ReadonlyMap<string, ClientSubscription>>;
}

/**
 * Told of every (client, filter) pair added to or removed from a {@linkcode TopicsIndex} (through its
 * `filterObserver`): a cluster keeps its route table with it (see `cluster.ts`).
 */
export interface FilterObserver {
  /**
   * A client subscribed to a filter it did not have.
   *
   * @param filter The filter as subscribed (with any `$share/{group}/` prefix).
   */
  filterAdded(filter: string): void;
  /**
   * A client's subscription to a filter was removed.
   *
   * @param filter The filter as subscribed.
   */
  filterRemoved(filter: string): void;
}

/** A filter split into its share name (if any) and the filter matched against topics. */
export interface ParsedFilter {
  /** The ShareName of a `$share/{ShareName}/{filter}` filter, or undefined for a non-shared filter. */
  group: string | undefined;
  /** The filter without any `$share/{ShareName}/` prefix. */
  topicFilter: string;
  /** True when `topicFilter` contains `+` or `#` (for Wildcard Subscription Available, reason 0xA2). */
  wildcard: boolean;
}

/**
 * Validates a topic filter from a SUBSCRIBE or UNSUBSCRIBE (the rules are in
 * `packets/topic_rules.ts`) and splits off any shared-subscription prefix.
 *
 * @param filter The filter as received.
 * @returns The parts of the filter, or undefined when it is invalid (reason code 0x8F).
 */
export function parseFilter(filter: string): ParsedFilter | undefined {
  if (!isValidTopicFilter(filter)) return undefined;
  const shared = parseSharedFilter(filter);
  const topicFilter = shared?.filter ?? filter;
  const wildcard = topicFilter.indexOf("+") >= 0 || topicFilter.indexOf("#") >= 0;
  return { group: shared?.group, topicFilter, wildcard };
}

/**
 * Tells whether a topic name matches a (non-shared, valid) topic filter, without building a trie: for
 * one-off checks such as ACL rules. Same rules as the index: `+` is one level, `#` this level and all below
 * including the parent (`a/#` matches `a`), and filters starting with a wildcard do not match topics
 * starting with `$` [MQTT-4.7.2-1].
 *
 * @param filter A valid topic filter without a `$share` prefix.
 * @param topic A topic name.
 * @returns True when `topic` matches `filter`.
 */
export function matchTopic(filter: string, topic: string): boolean {
  const first = filter.charCodeAt(0);
  if (topic.charCodeAt(0) === DOLLAR && (first === PLUS || first === HASH)) return false; // [MQTT-4.7.2-1]
  const filterLength = filter.length;
  const topicLength = topic.length;
  let f = 0;
  let t = 0;
  for (;;) {
    // f and t are at the start of a level in each string.
    let filterEnd = filter.indexOf("/", f);
    if (filterEnd < 0) filterEnd = filterLength;
    let topicEnd = topic.indexOf("/", t);
    if (topicEnd < 0) topicEnd = topicLength;
    const oneChar = filterEnd - f === 1;
    if (oneChar && filter.charCodeAt(f) === HASH) return true;
    if (!(oneChar && filter.charCodeAt(f) === PLUS)) {
      if (filterEnd - f !== topicEnd - t) return false;
      for (let i = f, j = t; i < filterEnd; i++, j++) {
        if (filter.charCodeAt(i) !== topic.charCodeAt(j)) return false;
      }
    }
    const filterDone = filterEnd === filterLength;
    if (topicEnd === topicLength) {
      // The topic is used up: the filter must be too, or end in "/#" (the parent level matches).
      return filterDone || (filterLength - filterEnd === 2 && filter.charCodeAt(filterEnd + 1) === HASH);
    }
    if (filterDone) return false;
    f = filterEnd + 1;
    t = topicEnd + 1;
  }
}

/** Adds a matching subscription (picked by shared group `group`, if any) to the per-client deliveries. */
function mergeDelivery(deliveries: Map<string, Delivery>, sub: ClientSubscription, group?: string): void {
  const existing = deliveries.get(sub.clientId);
  if (existing === undefined) {
    deliveries.set(sub.clientId, {
      clientId: sub.clientId,
      qos: sub.qos,
      noLocal: sub.noLocal,
      retainAsPublished: sub.retainAsPublished,
      identifiers: sub.identifier === undefined ? [] : [sub.identifier],
      shared: group !== undefined,
      groups: group === undefined ? undefined : [group],
    });
    return;
  }
  if (group !== undefined) (existing.groups ??= []).push(group);
  else existing.shared = false;
  if (sub.qos > existing.qos) existing.qos = sub.qos; // [MQTT-3.3.4-2]
  if (!sub.noLocal) existing.noLocal = false;
  if (sub.retainAsPublished) existing.retainAsPublished = true;
  if (sub.identifier !== undefined) existing.identifiers.push(sub.identifier); // [MQTT-3.3.4-4]
}

/** Picks the first eligible candidate, else the first one: for groups the index no longer knows. */
function firstCandidate(
  candidates: ReadonlyMap<string, ClientSubscription>,
  eligible: ((clientId: string) => boolean) | undefined,
): ClientSubscription | undefined {
  let fallback: ClientSubscription | undefined;
  for (const sub of candidates.values()) {
    if (eligible === undefined || eligible(sub.clientId)) return sub;
    fallback ??= sub;
  }
  return fallback;
}

/** One shared-subscription group: the members of `$share/{name}/{topicFilter}` and its round-robin cursor. */
class SharedGroup {
  /** `"{name}/{topicFilter}"`, the key in {@linkcode Subscribers.shared}. */
  readonly key: string;
  /** Members by client id, in the order they joined (replacing a member keeps its place). */
  readonly members: Map<string, ClientSubscription> = new Map();
  /** Client ids in rotation order; a parallel list because a Map cannot be indexed. */
  readonly #order: string[] = [];
  /** Index in #order of the member to try first for the next message. */
  #cursor = 0;

  constructor(name: string, topicFilter: string) {
    this.key = `${name}/${topicFilter}`;
  }

  /** Adds or replaces a member; returns true when it was a member already. */
  set(sub: ClientSubscription): boolean {
    const existed = this.members.has(sub.clientId);
    this.members.set(sub.clientId, sub);
    if (!existed) this.#order.push(sub.clientId);
    return existed;
  }

  /** Removes a member, keeping the rotation on the member that was due next. */
  delete(clientId: string): boolean {
    if (!this.members.delete(clientId)) return false;
    const index = this.#order.indexOf(clientId);
    this.#order.splice(index, 1);
    if (index < this.#cursor) this.#cursor--;
    if (this.#cursor >= this.#order.length) this.#cursor = 0;
    return true;
  }

  /**
   * Picks the next member in rotation among `candidates` (normally {@linkcode members} itself), preferring
   * eligible ones, and moves the cursor past it.
   */
  select(
    candidates: ReadonlyMap<string, ClientSubscription>,
    eligible: ((clientId: string) => boolean) | undefined,
  ): ClientSubscription | undefined {
    const order = this.#order;
    const size = order.length;
    const live = candidates === this.members;
    let chosen: ClientSubscription | undefined;
    let chosenIndex = 0;
    for (
      let step = 0, index = this.#cursor;
      step < size;
      step++, index = index + 1 === size ? 0 : index + 1
    ) {
      const clientId = order[index];
      const sub = live ? this.members.get(clientId) : candidates.get(clientId);
      if (sub === undefined) continue;
      if (eligible === undefined || eligible(clientId)) {
        chosen = sub;
        chosenIndex = index;
        break;
      }
      if (chosen === undefined) {
        // Nobody eligible so far: remember the first in rotation as the fallback.
        chosen = sub;
        chosenIndex = index;
      }
    }
    if (chosen !== undefined) this.#cursor = chosenIndex + 1 === size ? 0 : chosenIndex + 1;
    return chosen;
  }
}

/** A level of the subscription trie. Maps are created on first use: most nodes need only one or two. */
class SubscriptionNode {
  readonly key: string;
  readonly parent: SubscriptionNode | undefined;
  children: Map<string, SubscriptionNode> | undefined;
  /** Non-shared subscriptions whose topic filter ends here, by client id. */
  subscriptions: Map<string, ClientSubscription> | undefined;
  /** Shared groups whose topic filter ends here, by ShareName. */
  shared: Map<string, SharedGroup> | undefined;

  constructor(parent: SubscriptionNode | undefined, key: string) {
    this.parent = parent;
    this.key = key;
  }

  get empty(): boolean {
    return this.children === undefined && this.subscriptions === undefined && this.shared === undefined;
  }
}

/** A level of the retained-message trie. */
class RetainedNode {
  readonly key: string;
  readonly parent: RetainedNode | undefined;
  children: Map<string, RetainedNode> | undefined;
  /** The retained message whose topic name ends here. */
  packet: Packet | undefined;

  constructor(parent: RetainedNode | undefined, key: string) {
    this.parent = parent;
    this.key = key;
  }
}

/**
 * The subscription trie and the retained-message index of a broker.
 *
 * Subscriptions are unique per client and full filter (`$share/g/a` and `a` are two subscriptions of the
 * same client); subscribing again replaces the options [MQTT-3.8.4-3]. A topic name is matched against all
 * filters in one walk of the trie; {@linkcode subscribers} merges a client's overlapping non-shared
 * subscriptions into one {@linkcode Delivery}, and {@linkcode selectShared} then picks one member per shared
 * group, round robin, and merges it in the same way.
 *
 * The index does no validation on the hot path: check filters with {@linkcode parseFilter} and topic names
 * with `isValidTopicName` (packets/topic_rules.ts) first. It is synchronous and not safe to share between workers.
 *
 * @example Route a message
 * ```ts
 * import assert from "node:assert/strict";
 * import { PacketType } from "./packets/types.ts";
 * import { TopicsIndex } from "./topics.ts";
 *
 * const index = new TopicsIndex();
 * index.subscribe("c1", { filter: "sensors/+/temp", qos: 1, identifier: 7 });
 * index.subscribe("c1", { filter: "sensors/#", qos: 0 });
 * index.subscribe("w1", { filter: "$share/workers/sensors/#", qos: 2 });
 * index.subscribe("w2", { filter: "$share/workers/sensors/#", qos: 2 });
 *
 * const subs = index.subscribers("sensors/kitchen/temp");
 * index.selectShared(subs);
 * assert.equal(subs.subscriptions.get("c1")?.qos, 1); // the highest of the two
 * assert.deepEqual(subs.subscriptions.get("c1")?.identifiers, [7]);
 * assert.equal(subs.subscriptions.has("w1"), true); // w1 this time, w2 next time
 * assert.equal(subs.subscriptions.has("w2"), false);
 *
 * const payload = new Uint8Array([1]);
 * index.retain({ fixedHeader: { type: PacketType.Publish, retain: true }, topicName: "sensors/a", payload });
 * assert.equal(index.retainedMessages("sensors/+").length, 1);
 * ```
 */
export class TopicsIndex {
  readonly #root: SubscriptionNode = new SubscriptionNode(undefined, "");
  readonly #groups: Map<string, SharedGroup> = new Map();
  #nodeCount = 1;
  #subscriptionCount = 0;
  #sharedSubscriptionCount = 0;
  readonly #matches = new TopicMatches<Delivery, ReadonlyMap<string, ClientSubscription>>();

  readonly #retainedRoot: RetainedNode = new RetainedNode(undefined, "");
  #retainedNodeCount = 1;
  #retainedCount = 0;

  /** Told of every (client, filter) pair added or removed (not of option changes): a cluster's routes. */
  filterObserver: FilterObserver | undefined;

  /**
   * Adds a subscription, or replaces the options of the client's subscription with the same full filter
   * (including any `$share/{group}/` prefix) [MQTT-3.8.4-3]. A replaced shared member keeps its place in
   * the group's rotation. The index stores a normalised copy of `sub`.
   *
   * @param clientId The subscribing client.
   * @param sub The subscription; `sub.filter` must be valid (see {@linkcode parseFilter}).
   * @returns True when the subscription is new, false when it replaced one (for Retain Handling 1:
   *   send retained messages only if the subscription did not exist [MQTT-3.3.1-10]).
   * @throws {TypeError} When `sub.filter` is not a valid topic filter.
   */
  subscribe(clientId: string, sub: Subscription): boolean {
    const parsed = parseFilter(sub.filter);
    if (parsed === undefined) throw new TypeError(`Invalid topic filter: "${sub.filter}"`);
    const stored: ClientSubscription = {
      filter: sub.filter,
      topicFilter: parsed.topicFilter,
      clientId,
      qos: sub.qos,
      noLocal: sub.noLocal ?? false,
      retainAsPublished: sub.retainAsPublished ?? false,
      retainHandling: sub.retainHandling ?? 0,
    };
    if (sub.identifier !== undefined) stored.identifier = sub.identifier;
    this.#matches.clear();
    const node = this.#subscriptionNode(parsed.topicFilter);
    if (parsed.group === undefined) {
      const subscriptions = node.subscriptions ??= new Map();
      const existed = subscriptions.has(clientId);
      subscriptions.set(clientId, stored);
      if (!existed) {
        this.#subscriptionCount++;
        this.filterObserver?.filterAdded(sub.filter);
      }
      return !existed;
    }
    stored.group = parsed.group;
    const groups = node.shared ??= new Map();
    let group = groups.get(parsed.group);
    if (group === undefined) {
      group = new SharedGroup(parsed.group, parsed.topicFilter);
      groups.set(parsed.group, group);
      this.#groups.set(group.key, group);
    }
    const existed = group.set(stored);
    if (!existed) {
      this.#sharedSubscriptionCount++;
      this.filterObserver?.filterAdded(sub.filter);
    }
    return !existed;
  }

  /**
   * Removes a client's subscription and prunes trie levels left empty, so memory returns to what it was.
   * Removing a shared member mid-rotation keeps the rotation on the member that was due next.
   *
   * @param clientId The client.
   * @param filter The full filter as subscribed, including any `$share/{group}/` prefix.
   * @returns True when the subscription existed (UNSUBACK 0x00), false otherwise (0x11, or an invalid
   *   filter, which cannot have been subscribed).
   */
  unsubscribe(clientId: string, filter: string): boolean {
    const parsed = parseFilter(filter);
    if (parsed === undefined) return false;
    const node = this.#findSubscriptionNode(parsed.topicFilter);
    if (node === undefined) return false;
    if (parsed.group === undefined) {
      if (node.subscriptions === undefined || !node.subscriptions.delete(clientId)) return false;
      if (node.subscriptions.size === 0) node.subscriptions = undefined;
      this.#subscriptionCount--;
    } else {
      const group = node.shared?.get(parsed.group);
      if (group === undefined || !group.delete(clientId)) return false;
      if (group.members.size === 0) {
        node.shared!.delete(parsed.group);
        if (node.shared!.size === 0) node.shared = undefined;
        this.#groups.delete(group.key);
      }
      this.#sharedSubscriptionCount--;
    }
    this.#matches.clear();
    this.#pruneSubscriptions(node);
    this.filterObserver?.filterRemoved(filter);
    return true;
  }

  /**
   * Finds every subscription matching a topic name: `+` matches one level, `#` its level and all below
   * including the parent (`a/#` matches `a`), and filters starting with `+` or `#` do not match topic
   * names starting with `$` [MQTT-4.7.2-1]. Non-shared matches come back merged per client; shared groups
   * come back unselected: call {@linkcode selectShared} to pick their members.
   *
   * @param topic A valid topic name (no wildcards).
   * @returns Fresh maps of deliveries and of matching shared groups (an empty one may refuse entries).
   */
  subscribers(topic: string): Subscribers {
    const kept = this.#matches.match(topic);
    if (kept !== undefined) return kept;
    const result: Subscribers = { subscriptions: new Map(), shared: new Map() };
    if (this.#root.children === undefined) return result; // no subscriptions: nothing to split or walk
    this.#match(this.#root, topic.split("/"), 0, topic.charCodeAt(0) === DOLLAR, result);
    if (result.shared.size === 0) this.#matches.keep(topic, result.subscriptions);
    return result;
  }

  /**
   * Picks one member of each shared group in `subs.shared`, round robin within the group, and merges it
   * into `subs.subscriptions` (with the client's other matching subscriptions, like overlapping ones). Each
   * call advances the rotation of every group it selects from, so call it once per message. Members for
   * which `eligible` returns true are preferred (for example, connected clients); when none is, the next
   * member in rotation is picked anyway. `subs.shared` is left as it was.
   *
   * @param subs What {@linkcode subscribers} returned, possibly with `shared` entries removed or narrowed.
   * @param eligible Tells which clients should be preferred; all are when omitted.
   */
  selectShared(subs: Subscribers, eligible?: (clientId: string) => boolean): void {
    for (const [key, candidates] of subs.shared) {
      const group = this.#groups.get(key);
      const chosen = group === undefined
        ? firstCandidate(candidates, eligible)
        : group.select(candidates, eligible);
      if (chosen !== undefined) mergeDelivery(subs.subscriptions, chosen, key);
    }
  }

  /**
   * Every stored subscription, non-shared and shared, for persistence and introspection. Do not
   * subscribe or unsubscribe while iterating.
   *
   * @returns An iterator over the stored (read-only) subscriptions.
   */
  *allSubscriptions(): IterableIterator<ClientSubscription> {
    const stack: SubscriptionNode[] = [this.#root];
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (node.subscriptions !== undefined) yield* node.subscriptions.values();
      if (node.shared !== undefined) {
        for (const group of node.shared.values()) yield* group.members.values();
      }
      // A loop, not push(...spread): a level may have more children than a call has arguments.
      if (node.children !== undefined) { for (const child of node.children.values()) stack.push(child); }
    }
  }

  /** The number of non-shared subscriptions (client and filter pairs). */
  get subscriptionCount(): number {
    return this.#subscriptionCount;
  }

  /** The number of shared subscriptions (client, group and filter triples; each member counts). */
  get sharedSubscriptionCount(): number {
    return this.#sharedSubscriptionCount;
  }

  /** The shared groups (ShareName and filter pairs) by key, `"{name}/{topicFilter}"`; do not change them. */
  get sharedGroups(): ReadonlyMap<string, { readonly members: ReadonlyMap<string, ClientSubscription> }> {
    return this.#groups;
  }

  /** Diagnostics: the number of subscription-trie nodes, 1 (the root) when there are no subscriptions. */
  get nodeCount(): number {
    return this.#nodeCount;
  }

  /**
   * Stores, replaces or clears the retained message for `packet.topicName`. A message with an empty (or
   * absent) payload removes the retained message [MQTT-3.3.1-6] and is not stored [MQTT-3.3.1-7]; any
   * other replaces it [MQTT-3.3.1-5]. The packet object itself is kept: copy its payload out of the read
   * buffer first.
   *
   * @param packet A PUBLISH with a valid topic name.
   * @returns 1 when stored, -1 when an empty payload removed a retained message, 0 when it had nothing to
   *   remove.
   * @throws {TypeError} When the packet has no topic name.
   */
  retain(packet: Packet): 1 | 0 | -1 {
    const topic = packet.topicName;
    if (topic === undefined || topic.length === 0) {
      throw new TypeError("Cannot retain a message without a topic name");
    }
    if (packet.payload === undefined || packet.payload.length === 0) {
      const node = this.#findRetainedNode(topic);
      if (node === undefined || node.packet === undefined) return 0;
      node.packet = undefined;
      this.#retainedCount--;
      this.#pruneRetained(node);
      return -1;
    }
    let node = this.#retainedRoot;
    for (const level of topic.split("/")) {
      const children = node.children ??= new Map();
      let child = children.get(level);
      if (child === undefined) {
        child = new RetainedNode(node, level);
        children.set(level, child);
        this.#retainedNodeCount++;
      }
      node = child;
    }
    if (node.packet === undefined) this.#retainedCount++;
    node.packet = packet;
    return 1;
  }

  /**
   * Looks up the retained message of one topic name.
   *
   * @param topic A topic name.
   * @returns The retained packet, or undefined when there is none.
   */
  retained(topic: string): Packet | undefined {
    return this.#findRetainedNode(topic)?.packet;
  }

  /**
   * Finds the retained messages matching a topic filter, walking only the branches the filter can match:
   * `+` one level, `#` its level and all below (so `a/#` includes `a`). Filters starting with `+` or `#`
   * do not match topics starting with `$` [MQTT-4.7.2-1]. A shared filter (`$share/...`) matches nothing:
   * retained messages are sent when a new non-shared subscription is made (3.3.1.3), not for shared ones.
   *
   * @param filter A valid topic filter.
   * @returns The matching retained packets, in no particular order (empty for an invalid filter).
   */
  retainedMessages(filter: string): Packet[] {
    const out: Packet[] = [];
    const parsed = parseFilter(filter);
    if (parsed === undefined || parsed.group !== undefined) return out;
    this.#matchRetained(this.#retainedRoot, filter.split("/"), 0, out);
    return out;
  }

  /**
   * Every retained message, for persistence and introspection. Do not retain or clear while iterating.
   *
   * @returns An iterator over the retained packets.
   */
  *allRetained(): IterableIterator<Packet> {
    const stack: RetainedNode[] = [this.#retainedRoot];
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (node.packet !== undefined) yield node.packet;
      if (node.children !== undefined) { for (const child of node.children.values()) stack.push(child); }
    }
  }

  /** The number of retained messages. */
  get retainedCount(): number {
    return this.#retainedCount;
  }

  /** Diagnostics: the number of retained-trie nodes, 1 (the root) when nothing is retained. */
  get retainedNodeCount(): number {
    return this.#retainedNodeCount;
  }

  /** Finds or creates the trie node of a topic filter. */
  #subscriptionNode(topicFilter: string): SubscriptionNode {
    let node = this.#root;
    for (const level of topicFilter.split("/")) {
      const children = node.children ??= new Map();
      let child = children.get(level);
      if (child === undefined) {
        child = new SubscriptionNode(node, level);
        children.set(level, child);
        this.#nodeCount++;
      }
      node = child;
    }
    return node;
  }

  #findSubscriptionNode(topicFilter: string): SubscriptionNode | undefined {
    let node: SubscriptionNode | undefined = this.#root;
    for (const level of topicFilter.split("/")) {
      node = node.children?.get(level);
      if (node === undefined) return undefined;
    }
    return node;
  }

  /** Removes `node` and its ancestors while they hold nothing. */
  #pruneSubscriptions(node: SubscriptionNode): void {
    let current = node;
    while (current.parent !== undefined && current.empty) {
      const parent: SubscriptionNode = current.parent;
      parent.children!.delete(current.key);
      if (parent.children!.size === 0) parent.children = undefined;
      this.#nodeCount--;
      current = parent;
    }
  }

  /**
   * Collects matches below `node` for `levels[depth..]`. Follows the exact level in a loop and recurses
   * only into `+` branches, so the common case walks without recursion or allocation.
   */
  #match(
    node: SubscriptionNode,
    levels: string[],
    depth: number,
    dollar: boolean,
    out: Subscribers,
  ): void {
    const length = levels.length;
    for (;;) {
      const children = node.children;
      if (depth === length) {
        collect(node, out);
        // "#" also matches the parent level: "a/#" matches "a".
        const hash = children?.get("#");
        if (hash !== undefined) collect(hash, out);
        return;
      }
      if (children === undefined) return;
      // [MQTT-4.7.2-1] wildcards in the first level do not match "$" topics.
      if (depth > 0 || !dollar) {
        const hash = children.get("#");
        if (hash !== undefined) collect(hash, out);
        const plus = children.get("+");
        if (plus !== undefined) this.#match(plus, levels, depth + 1, dollar, out);
      }
      const level = levels[depth];
      // A topic name has no wildcards; looking "+" or "#" up literally would double-match the wildcards.
      if (level === "+" || level === "#") return;
      const next = children.get(level);
      if (next === undefined) return;
      node = next;
      depth++;
    }
  }

  #findRetainedNode(topic: string): RetainedNode | undefined {
    let node: RetainedNode | undefined = this.#retainedRoot;
    for (const level of topic.split("/")) {
      node = node.children?.get(level);
      if (node === undefined) return undefined;
    }
    return node;
  }

  #pruneRetained(node: RetainedNode): void {
    let current = node;
    while (current.parent !== undefined && current.packet === undefined && current.children === undefined) {
      const parent: RetainedNode = current.parent;
      parent.children!.delete(current.key);
      if (parent.children!.size === 0) parent.children = undefined;
      this.#retainedNodeCount--;
      current = parent;
    }
  }

  /** Collects retained messages below `node` matching the filter levels `levels[depth..]`. */
  #matchRetained(node: RetainedNode, levels: string[], depth: number, out: Packet[]): void {
    const length = levels.length;
    for (;;) {
      if (depth === length) {
        if (node.packet !== undefined) out.push(node.packet);
        return;
      }
      const level = levels[depth];
      if (level === "#") {
        collectRetained(node, depth === 0, out);
        return;
      }
      const children = node.children;
      if (children === undefined) return;
      if (level === "+") {
        for (const [key, child] of children) {
          if (depth === 0 && key.charCodeAt(0) === DOLLAR) continue; // [MQTT-4.7.2-1]
          this.#matchRetained(child, levels, depth + 1, out);
        }
        return;
      }
      const next = children.get(level);
      if (next === undefined) return;
      node = next;
      depth++;
    }
  }
}

/** Adds the subscriptions ending at one node to the result. */
function collect(node: SubscriptionNode, out: Subscribers): void {
  if (node.subscriptions !== undefined) {
    for (const sub of node.subscriptions.values()) mergeDelivery(out.subscriptions, sub);
  }
  if (node.shared !== undefined) {
    for (const group of node.shared.values()) out.shared.set(group.key, group.members);
  }
}

/**
 * Collects the retained message at `node` and everything below it (for `#`), iteratively so that deep
 * topic trees cannot overflow the stack. At the root, `$` topics are skipped [MQTT-4.7.2-1].
 */
function collectRetained(node: RetainedNode, skipDollar: boolean, out: Packet[]): void {
  if (node.packet !== undefined) out.push(node.packet);
  if (node.children === undefined) return;
  const stack: RetainedNode[] = [];
  for (const [key, child] of node.children) {
    if (skipDollar && key.charCodeAt(0) === DOLLAR) continue;
    stack.push(child);
  }
  while (stack.length > 0) {
    const current = stack.pop()!;
    if (current.packet !== undefined) out.push(current.packet);
    if (current.children !== undefined) {
      for (const child of current.children.values()) stack.push(child);
    }
  }
}

/**
 * Whether a topic name or filter is within a server's length and depth limits.
 *
 * @param topic The topic name or filter.
 * @param limits The maximum length in characters and the maximum number of levels.
 * @returns True when it is within both.
 *
 * @example Depth limits
 * ```ts
 * import assert from "node:assert/strict";
 * import { withinTopicLimits } from "./topics.ts";
 * const limits = { maximumTopicLength: 100, maximumTopicLevels: 2 };
 * assert.equal(withinTopicLimits("a/b", limits), true);
 * assert.equal(withinTopicLimits("a/b/c", limits), false);
 * ```
 */
export function withinTopicLimits(
  topic: string,
  limits: { maximumTopicLength: number; maximumTopicLevels: number },
): boolean {
  if (topic.length > limits.maximumTopicLength) return false;
  if (topic.length < limits.maximumTopicLevels) return true; // n characters make at most n + 1 levels
  let levels = 1;
  for (let i = topic.indexOf("/"); i >= 0; i = topic.indexOf("/", i + 1)) {
    if (++levels > limits.maximumTopicLevels) return false;
  }
  return true;
}
