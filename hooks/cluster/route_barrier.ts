/**
 * {@linkcode RouteBarriers}: this node's routes known on every other node before a session's old owner
 * lets the session go, through the inboxes (no engine primitive of its own).
 *
 * Route changes reach the other nodes as announcements (pub/sub), which carry no acknowledgement: a
 * node whose event loop is busy, or that stalled, may route a message with a table that lacks a route
 * stored long before. For a session moving here that matters: such a message goes to the old owner
 * only, and if it lands in the old owner's inbox after the old owner let the session go, it is dropped
 * although its publisher was acknowledged. So before the release is asked for
 * ({@linkcode RouteBarriers.known}):
 *
 * 1. This node waits until its routes are stored (sequence S), reads the registered nodes from the
 *    engine, and queues `{kind: "barrier", node, seq: S, id}` into the inbox of every other one.
 * 2. A node reading a barrier ({@linkcode RouteBarriers.controlled}) makes sure its table holds this
 *    node's routes at S or later (reloading them from the engine if not), then queues
 *    `{kind: "barrier-ack", id, node}` into this node's inbox through its ordinary commits. Its commits
 *    are applied in order, so every message it routed before it knew the routes is in the old owner's
 *    inbox before the ack is in this node's; every message it routes after goes here too.
 * 3. Once every node answered, the release is asked for: it reaches the old owner after every such
 *    message, which is therefore in the session handed over.
 *
 * The old owner is one of the nodes asked, and answers like the others: it must have the route before
 * it lets the session go, or what its own publishers send right after the release would go nowhere
 * (its ack precedes the release, which this node sends only after every ack).
 *
 * A node that does not answer is waited for while it is registered with the same incarnation, even
 * without a lease: a node that stalled past its lease and is not claimed yet takes its lease again when
 * it wakes and acknowledges what it routed meanwhile. Once it is claimed (no longer registered, or
 * registered again as a new incarnation) it is no longer waited for: a claimed incarnation acknowledges
 * nothing more (its acknowledgements wait for a lease known current, and its renewal reports the claim),
 * and whatever it acknowledged before its claim was committed before that. A node that joins after the
 * registered nodes were read loads every node's routes from the engine as it starts (or joins again),
 * after S was stored: nothing to ask. The whole wait is bounded (four leases, as a handoff), with a
 * warning when the bound is hit; a node that stalls or dies holding its lease makes moves here wait
 * until it is claimed (about a lease), as a move from a dead owner does.
 *
 * Only what is not known everywhere yet is asked for: each route's creation (its sequence number when
 * its count went from 0 to 1) is compared with the highest sequence a barrier confirmed, so that a
 * route created by another claim's reservation or a SUBSCRIBE moments before is covered too, and a
 * route confirmed once is not asked for again. Claims that need a sequence a barrier in flight already
 * covers wait for that one.
 *
 * @module
 */

import { logger } from "../../src/logger.ts";
import type { NodeEntry } from "./bus.ts";
import { delay } from "./timing.ts";

const log = logger("cluster");

/** How often a barrier not yet answered by every node reads which nodes are still registered (ms). */
const BARRIER_CHECK_MS = 100;
/** A barrier that takes longer than this is logged at info (ms). */
const SLOW_BARRIER_MS = 500;

/** What the barriers need from their node. */
export interface BarrierNode {
  /** This node's id. */
  readonly nodeId: string;
  /** The lease (ms). */
  readonly leaseMs: number;
  /** Every registered node (read from the engine). */
  members(): Promise<NodeEntry[]>;
  /** Queues a control record for a node's inbox, in this node's commit order. */
  control(node: string, control: Record<string, unknown>): void;
  /** Resolves when everything queued so far is stored. */
  sync(): Promise<void>;
  /** The sequence number of this node's last route change (queued or stored). */
  routeSeq(): number;
  /** The sequence number of another node's routes in this node's table, if loaded. */
  appliedSeq(node: string): number | undefined;
  /** Reloads another node's routes from the engine (resolves once they are in the table, or it failed). */
  loadRoutes(node: string): Promise<void>;
  /** Whether this node stopped, or was claimed while it stalled (nothing more is waited for). */
  gone(): boolean;
}

/** A barrier this node sent, waiting for its answers. */
interface Pending {
  /** The nodes that have not answered yet. */
  waiting: Set<string>;
  /** Called on each answer. */
  answered: () => void;
}

/** The route barriers of one node: the ones it sends, and its answers to other nodes' ones. */
export class RouteBarriers {
  readonly #node: BarrierNode;
  /** The sequence number at which each route of this node was created (its count went from 0). */
  readonly #created = new Map<string, number>();
  /** Every node registered at the time had this node's routes at this sequence or later. */
  #confirmed = 0;
  /** Barriers in flight, with the sequence each confirms. */
  readonly #inFlight = new Set<{ seq: number; done: Promise<void> }>();
  /** Barriers sent, by id. */
  readonly #pending = new Map<string, Pending>();
  #count = 0;

  /**
   * Creates the barriers of a node.
   *
   * @param node The node.
   */
  constructor(node: BarrierNode) {
    this.#node = node;
  }

  /**
   * A route of this node was created (a filter's count went from 0 to 1).
   *
   * @param filter The filter.
   * @param seq The sequence number of the change.
   */
  created(filter: string, seq: number): void {
    this.#created.set(filter, seq);
  }

  /**
   * A route of this node was removed.
   *
   * @param filter The filter.
   */
  removed(filter: string): void {
    this.#created.delete(filter);
  }

  /** This node's routes start over (it joined again): nothing is confirmed. */
  reset(): void {
    this.#created.clear();
    this.#confirmed = 0;
  }

  /**
   * Resolves once every other node has this node's routes for `filters` (their current ones, stored
   * or queued): at once when a barrier confirmed them already, else after a barrier (see the module).
   *
   * @param filters Filters of this node's routes.
   * @returns When they are known everywhere, or the wait's bound passed (logged).
   */
  known(filters: readonly string[]): Promise<void> {
    let needed = 0;
    for (const filter of filters) needed = Math.max(needed, this.#created.get(filter) ?? 0);
    if (needed <= this.#confirmed) return Promise.resolve();
    for (const barrier of this.#inFlight) if (barrier.seq >= needed) return barrier.done;
    const seq = this.#node.routeSeq();
    const barrier = { seq, done: this.#barrier(seq) };
    this.#inFlight.add(barrier);
    barrier.done.finally(() => this.#inFlight.delete(barrier)).catch(() => {});
    return barrier.done;
  }

  async #barrier(seq: number): Promise<void> {
    const node = this.#node;
    const started = Date.now();
    await node.sync();
    const members = await node.members();
    const incarnations = new Map<string, string | undefined>();
    for (const member of members) {
      if (member.id !== node.nodeId) incarnations.set(member.id, member.incarnation);
    }
    const id = `${node.nodeId}-${started.toString(36)}-${++this.#count}`;
    let answered = Promise.withResolvers<void>();
    const pending: Pending = { waiting: new Set(incarnations.keys()), answered: () => answered.resolve() };
    this.#pending.set(id, pending);
    try {
      for (const other of incarnations.keys()) {
        node.control(other, { kind: "barrier", node: node.nodeId, seq, id });
      }
      const deadline = started + 4 * node.leaseMs;
      const claimed: string[] = [];
      while (pending.waiting.size > 0) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          answered.promise,
          new Promise((resolve) => timer = setTimeout(resolve, BARRIER_CHECK_MS)),
        ]);
        clearTimeout(timer);
        answered = Promise.withResolvers<void>();
        if (pending.waiting.size === 0 || node.gone()) break;
        if (Date.now() > deadline) {
          log.warn(
            "Route barrier {id}: no answer from {nodes} within {ms} ms; asking for the release all the same",
            { id, nodes: [...pending.waiting].join(", "), ms: Date.now() - started },
          );
          return;
        }
        // Claimed (or joined again as a new incarnation) meanwhile: it acknowledges nothing it routed stale.
        const now = new Map<string, string | undefined>();
        for (const member of await node.members()) now.set(member.id, member.incarnation);
        for (const other of [...pending.waiting]) {
          if (!now.has(other) || now.get(other) !== incarnations.get(other)) {
            pending.waiting.delete(other);
            claimed.push(other);
          }
        }
      }
      if (node.gone()) return;
      this.#confirmed = Math.max(this.#confirmed, seq);
      const ms = Date.now() - started;
      // A slow one (a node stalled or dead, holding its lease) delays a client's CONNACK: said at info.
      const message =
        "Route barrier {id} at sequence {seq}: {nodes} nodes in {ms} ms ({claimed} claimed meanwhile)";
      const properties = { id, seq, nodes: incarnations.size, ms, claimed: claimed.join(", ") || "none" };
      if (ms > SLOW_BARRIER_MS) log.info(message, properties);
      else log.debug(message, properties);
    } finally {
      this.#pending.delete(id);
    }
  }

  /**
   * A control record read from this node's inbox: a barrier (answered once this node's table has the
   * sender's routes at the barrier's sequence) or an answer to one of this node's.
   *
   * @param control The record.
   * @returns Whether it was a barrier's (else it is someone else's to handle).
   */
  controlled(control: Record<string, unknown>): boolean {
    if (control.kind === "barrier-ack") {
      const pending = this.#pending.get(control.id as string);
      if (pending?.waiting.delete(control.node as string)) pending.answered();
      return true;
    }
    if (control.kind !== "barrier") return false;
    // Not awaited: the inbox goes on meanwhile (the answer's place in this node's commits is what counts).
    this.#answer(control.node as string, control.seq as number, control.id as string).catch((error) => {
      log.debug("Could not answer route barrier {id}: {error}", { id: control.id, error: String(error) });
    });
    return true;
  }

  async #answer(from: string, seq: number, id: string): Promise<void> {
    const node = this.#node;
    const deadline = Date.now() + 4 * node.leaseMs;
    while ((node.appliedSeq(from) ?? -1) < seq) {
      // Its routes as stored hold S (stored before the barrier was sent) unless it was claimed since.
      if (node.gone() || Date.now() > deadline) return;
      await node.loadRoutes(from);
      if ((node.appliedSeq(from) ?? -1) < seq) await delay(BARRIER_CHECK_MS);
    }
    if (node.gone()) return;
    node.control(from, { kind: "barrier-ack", id, node: node.nodeId });
  }
}
