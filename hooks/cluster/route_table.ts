/**
 * The route table: which other node has which filters, kept whole in memory on every node and
 * matched with the same trie as local subscriptions ({@linkcode TopicsIndex}, node ids standing in
 * for client ids). For each node it also keeps the route sequence number it has applied, so that a
 * missed announcement is noticed (the next one does not follow on) and the node's routes reloaded.
 *
 * @module
 */

import { type ClientSubscription, type Subscribers, TopicsIndex } from "../../src/topics.ts";

/** At most this many topics are remembered by {@linkcode RouteTable.plainNodes} (then it starts over). */
const PLAIN_CACHE_SIZE = 4096;

interface NodeRoutes {
  seq: number;
  filters: Map<string, number>;
}

/**
 * Other nodes' routes.
 *
 * @example Finding the nodes a topic goes to
 * ```ts
 * import assert from "node:assert/strict";
 * import { RouteTable } from "./route_table.ts";
 * const routes = new RouteTable();
 * routes.replace("b", 3, new Map([["a/+", 1]]));
 * assert.deepEqual([...routes.match("a/x").subscriptions.keys()], ["b"]);
 * assert.deepEqual(routes.match("z").subscriptions.size, 0);
 * ```
 */
export class RouteTable {
  readonly #index = new TopicsIndex();
  readonly #nodes = new Map<string, NodeRoutes>();
  #filters = 0;
  /**
   * Per topic, the nodes with a matching non-shared route when no shared route matches (null when
   * one does). Cleared on every change: routes change rarely, messages to the same topics repeat.
   */
  readonly #plain = new Map<string, readonly string[] | null>();
  /** Shared-group rotation counters, by group (see {@linkcode RouteTable.sharedNode}). */
  readonly #rotation = new Map<string, number>();
  /** Per node, this one included, its groups with members that are not connected: how many are. */
  readonly #online = new Map<string, ReadonlyMap<string, number>>();
  /** This node's id (its entry in `#online`). */
  readonly #self: string;

  /**
   * Creates an empty table.
   *
   * @param self This node's id.
   */
  constructor(self = "") {
    this.#self = self;
  }

  /** Whether no other node has any route (then nothing is ever forwarded). */
  get empty(): boolean {
    return this.#filters === 0;
  }

  /**
   * The route sequence number applied for a node.
   *
   * @param node The node.
   * @returns The number, or undefined when the node's routes were never loaded.
   */
  seq(node: string): number | undefined {
    return this.#nodes.get(node)?.seq;
  }

  /** The nodes with loaded routes. */
  nodes(): IterableIterator<string> {
    return this.#nodes.keys();
  }

  /**
   * Applies one change announced by a node.
   *
   * @param node The node.
   * @param seq Its sequence number after the change.
   * @param filter The filter.
   * @param count Its new count on that node (0 removes it).
   */
  apply(node: string, seq: number, filter: string, count: number): void {
    let routes = this.#nodes.get(node);
    if (!routes) this.#nodes.set(node, routes = { seq, filters: new Map() });
    routes.seq = seq;
    const had = routes.filters.has(filter);
    if (had !== count > 0) this.#plain.clear();
    if (count > 0) {
      routes.filters.set(filter, count);
      if (!had) {
        this.#index.subscribe(node, { filter, qos: 0 });
        this.#filters++;
      }
    } else if (had) {
      routes.filters.delete(filter);
      this.#index.unsubscribe(node, filter);
      this.#filters--;
    }
  }

  /**
   * Replaces a node's routes with what was loaded from the engine.
   *
   * @param node The node.
   * @param seq Its stored sequence number.
   * @param filters Filter to count.
   */
  replace(node: string, seq: number, filters: Map<string, number>): void {
    this.drop(node);
    for (const [filter, count] of filters) this.apply(node, seq, filter, count);
    const routes = this.#nodes.get(node);
    if (routes) routes.seq = seq;
    else this.#nodes.set(node, { seq, filters: new Map() });
  }

  /**
   * Forgets a node's routes.
   *
   * @param node The node.
   */
  drop(node: string): void {
    const routes = this.#nodes.get(node);
    if (!routes) return;
    this.#plain.clear();
    for (const filter of routes.filters.keys()) this.#index.unsubscribe(node, filter);
    this.#filters -= routes.filters.size;
    this.#nodes.delete(node);
    this.#online.delete(node);
  }

  /**
   * The nodes whose routes match a topic: `subscriptions` keyed by node id (non-shared routes) and
   * `shared` keyed by group, each member a node.
   *
   * @param topic A topic name.
   * @returns Fresh maps.
   */
  match(topic: string): Subscribers {
    return this.#index.subscribers(topic);
  }

  /**
   * The nodes a topic goes to when it matches no shared route: the common case, answered from a
   * cache (no trie walk, nothing allocated) until the routes change.
   *
   * @param topic A topic name.
   * @returns The nodes with a matching non-shared route (shared, do not change it), or undefined when
   *   a shared route matches too (use {@linkcode RouteTable.match}).
   *
   * @example A cached answer
   * ```ts
   * import assert from "node:assert/strict";
   * import { RouteTable } from "./route_table.ts";
   * const routes = new RouteTable();
   * routes.replace("b", 1, new Map([["a/+", 1], ["$share/g/s/+", 1]]));
   * assert.deepEqual(routes.plainNodes("a/x"), ["b"]);
   * assert.deepEqual(routes.plainNodes("s/x"), undefined); // a shared route: see match()
   * ```
   */
  plainNodes(topic: string): readonly string[] | undefined {
    let nodes = this.#plain.get(topic);
    if (nodes === undefined) {
      const matched = this.#index.subscribers(topic);
      nodes = matched.shared.size > 0 ? null : [...matched.subscriptions.keys()];
      if (this.#plain.size >= PLAIN_CACHE_SIZE) this.#plain.clear();
      this.#plain.set(topic, nodes);
    }
    return nodes ?? undefined;
  }

  /**
   * Records which of a node's shared groups have members that are not connected, and how many are (what
   * another node reports with its lease; none: every member is connected), or this node (for
   * {@linkcode RouteTable.sharedNode}'s `local`).
   *
   * @param node The node.
   * @param online Group (`"{ShareName}/{topicFilter}"`) to its connected members there.
   */
  online(node: string, online: Record<string, number> | undefined): void {
    if (online === undefined) this.#online.delete(node);
    else this.#online.set(node, new Map(Object.entries(online)));
  }

  /**
   * Where a shared group's member for the next message is: the group's next turn in a rotation over every
   * member of the group, this node's `local` members first, then each other node's as many times as it has
   * members (so the load spreads over members, not nodes). Connected members count, while the group has any
   * ({@linkcode RouteTable.online}): a node whose members are all disconnected (persistent sessions) gets no
   * turn while another node has one connected.
   *
   * @param group The group, `"{ShareName}/{topicFilter}"` (its rotation advances by one).
   * @param members The group's routes on other nodes, as {@linkcode RouteTable.match} gives them.
   * @param local How many members the group has on this node.
   * @returns The node to forward the message to, or undefined when it is this node's members' turn.
   *
   * @example Two members here and one on node b: every third message goes to b
   * ```ts
   * import assert from "node:assert/strict";
   * import { RouteTable } from "./route_table.ts";
   * const routes = new RouteTable();
   * routes.replace("b", 1, new Map([["$share/g/s/+", 1]]));
   * const members = routes.match("s/x").shared.get("g/s/+")!;
   * const picks = [0, 1, 2, 3].map(() => routes.sharedNode("g/s/+", members, 2));
   * assert.deepEqual(picks, [undefined, undefined, "b", undefined]);
   * ```
   */
  sharedNode(
    group: string,
    members: ReadonlyMap<string, ClientSubscription>,
    local: number,
  ): string | undefined {
    const turn = this.#rotation.get(group) ?? 0;
    this.#rotation.set(group, turn + 1);
    const localOnline = this.#online.get(this.#self)?.get(group) ?? local;
    let total = localOnline;
    for (const member of members.values()) total += this.#weight(member, group);
    if (total > 0) return this.#turn(turn % total, members, localOnline, group);
    // Nobody connected: every member's turn comes (its session keeps the message).
    total = local;
    for (const member of members.values()) total += this.#weight(member, undefined);
    return this.#turn(turn % total, members, local, undefined);
  }

  /** The node whose turn `pick` is: this node's `local` first, then each other node by its weight. */
  #turn(
    pick: number,
    members: ReadonlyMap<string, ClientSubscription>,
    local: number,
    group: string | undefined,
  ): string | undefined {
    if (pick < local) return undefined;
    pick -= local;
    for (const member of members.values()) {
      pick -= this.#weight(member, group);
      if (pick < 0) return member.clientId;
    }
    return undefined;
  }

  /** A node's weight in a group's rotation: its connected members of `group`, or (none given) all its members. */
  #weight(member: ClientSubscription, group: string | undefined): number {
    const online = group === undefined ? undefined : this.#online.get(member.clientId)?.get(group);
    return online ?? this.count(member.clientId, member.filter);
  }

  /**
   * How many subscriptions a node has to a filter (for a shared filter: the group's members there).
   *
   * @param node The node.
   * @param filter The filter.
   * @returns The count, 0 when none.
   */
  count(node: string, filter: string): number {
    return this.#nodes.get(node)?.filters.get(filter) ?? 0;
  }
}
