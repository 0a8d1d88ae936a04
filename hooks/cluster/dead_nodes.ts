/**
 * {@linkcode Reaper}: what the node that claimed a dead node does with it. It adopts the dead node's
 * sessions (expired ones end with their wills; persistent ones keep collecting messages here, their
 * wills after their delay), stores and announces their routes before the dead node's are dropped,
 * delivers into each the messages the dead node held for it while it moved there (stored in the session:
 * see `SessionClaims`), then what was left in the dead node's inbox to the adopted sessions, and once more a lease
 * later (for forwards that were on their way). Only then is the claim released: until it is, the dead
 * node id cannot join again (a node that only stalled rejoins after that, as a new member, with an
 * empty inbox that nobody takes from it).
 *
 * A message published while the other nodes still route to the dead node but already to the sessions
 * adopted here reaches this node twice (its own inbox, and the dead node's): from the adoption to the
 * release, a {@linkcode ClaimWindows} window gives each adopted session one copy of each message id, and
 * a batch written twice into the dead node's inbox (a retried write) is read once ({@linkcode OriginSequences}),
 * and a message an adopted session already holds (by its id) is not delivered to it again.
 *
 * @module
 */

import type { AdoptedSession, ClusterHost } from "../../src/cluster.ts";
import { type Client, holdWritesOf } from "../../src/client.ts";
import type { Packet } from "../../src/packets/types.ts";
import type { Subscribers } from "../../src/topics.ts";
import { logger } from "../../src/logger.ts";
import type { ClusterBus } from "./bus.ts";
import { type FieldOp, type HeldMessage, sessionFromFields } from "./session_store.ts";
import { readRecords } from "./wire.ts";
import { type ClaimWindow, type ClaimWindows, OriginSequences, stampedId } from "./delivered_once.ts";

const log = logger("cluster");

/** What the reaper needs from its node. */
export interface ReaperNode {
  /** This node's id. */
  readonly nodeId: string;
  /** The lease (ms). */
  readonly leaseMs: number;
  /** The server. */
  host(): ClusterHost;
  /** Records that this node owns a session at an epoch. */
  own(clientId: string, epoch: number): void;
  /** A session owned here ended. */
  sessionEnded(clientId: string): void;
  /** Queues writes to the stored session of a client id this node owns (see `SessionStore.writeFields`). */
  writeFields(clientId: string, fields: FieldOp[]): void;
  /**
   * Resolves when everything queued so far is committed (not waiting for {@linkcode Reaper.released}, nor
   * for the lease to be known current: the reaper runs in the renewal tick, so that would never come).
   */
  sync(): Promise<void>;
  /** Forgets a node's routes. */
  dropRoutes(node: string): void;
  /** Whether the node is stopping. */
  stopped(): boolean;
  /** The node's claim windows (shared with its inbox reader). */
  readonly windows: ClaimWindows;
  /** Counts a copy of a message that was not delivered again. */
  duplicate(): void;
}

/** One dead node being worked through. */
interface Reaping {
  /** The sessions adopted from it, by client id. */
  adopted: Set<string>;
  /** Its window (while sessions were adopted). */
  window: ClaimWindow | undefined;
  /** The last id read from each origin in its inbox. */
  sequences: OriginSequences;
  /** The adopted sessions that hold each message id already (stored with it: see `Packet.clusterId`). */
  holders: Map<string, Set<string>>;
  /** The shared groups that gave each message id to an adopted session already (they have had it). */
  groupsHad: Map<string, Set<string>>;
  /** The ids of the messages delivered to the adopted sessions' non-shared subscriptions. */
  delivered: Set<string>;
}

/** Cleans up after the dead nodes this node claimed. */
export class Reaper {
  readonly #bus: ClusterBus;
  readonly #node: ReaperNode;
  /** Second passes still to run, by dead node. */
  readonly #timers = new Map<string, { timer: ReturnType<typeof setTimeout>; reaping: Reaping }>();
  /** From an adoption until the dead node's leftovers are delivered: this node's own messages for them. */
  #holding: { ids: ReadonlySet<string>; held: Packet[]; done: PromiseWithResolvers<void> } | undefined;
  /** The dead nodes being worked through, until their claims are released. */
  readonly #active = new Set<Reaping>();

  /**
   * Creates the reaper.
   *
   * @param bus The engine.
   * @param node The node it works for.
   */
  constructor(bus: ClusterBus, node: ReaperNode) {
    this.#bus = bus;
    this.#node = node;
  }

  /**
   * Cleans up after a dead node this node claimed (see the module docs).
   *
   * @param dead The dead node.
   * @param diedAt When it died (ms since epoch).
   */
  async reap(dead: string, diedAt: number): Promise<void> {
    const node = this.#node;
    log.warn("Node {dead} stopped renewing its lease: claimed by {node}, its routes dropped", {
      dead,
      node: node.nodeId,
    });
    const adopted = new Set<string>();
    const holders = new Map<string, Set<string>>();
    const groupsHad = new Map<string, Set<string>>();
    const reaping: Reaping = {
      adopted,
      window: undefined,
      sequences: new OriginSequences(),
      holders,
      groupsHad,
      delivered: new Set(),
    };
    this.#active.add(reaping);
    try {
      const entries = await this.#bus.adoptSessions(dead, node.nodeId);
      // In the turn the sessions arrive here, this node stops forwarding to the dead one: what it accepted
      // before went to the dead node's inbox (delivered from there to the adopted sessions, which were not
      // here yet), what it accepts after reaches them here (from the dead node's inbox it would come twice,
      // wills included). The other nodes drop its routes once this node's routes for the adopted sessions
      // are announced (on leave, below); a message they send both ways meanwhile is delivered once.
      node.dropRoutes(dead);
      const sessions: AdoptedSession[] = [];
      const held = new Map<string, HeldMessage[]>();
      for (const entry of entries) {
        node.own(entry.clientId, entry.epoch);
        const { record, snapshot, held: kept } = sessionFromFields(entry.fields);
        if (record === undefined) node.sessionEnded(entry.clientId);
        else {
          sessions.push({ record, snapshot });
          if (kept.length > 0) held.set(entry.clientId, kept);
          adopted.add(entry.clientId);
          log.debug("Adopting {id} from {dead}: {subscriptions} subscriptions, {messages} messages", {
            id: entry.clientId,
            dead,
            subscriptions: snapshot.subscriptions.length,
            messages: snapshot.inflight.length,
          });
        }
      }
      if (sessions.length > 0) {
        node.host().adoptSessions(sessions, diedAt);
        // What they hold now (as stored, or, for one this node still had, as it is here).
        for (const clientId of adopted) {
          for (const { id, groups } of node.host().messageIds(clientId)) {
            const holding = holders.get(id);
            if (holding === undefined) holders.set(id, new Set([clientId]));
            else holding.add(clientId);
            if (groups === undefined) continue;
            const had = groupsHad.get(id);
            if (had === undefined) groupsHad.set(id, new Set(groups));
            else for (const group of groups) had.add(group);
          }
        }
        this.#deliverHeld(held, reaping);
        reaping.window = node.windows.open(adopted); // before any more of this node's inbox is delivered
        // This node's own messages for them wait for the leftovers.
        this.#holding = { ids: adopted, held: [], done: Promise.withResolvers() };
      }
      await node.sync(); // what this node forwarded to the dead one is in its inbox before it is set aside
    } catch (error) {
      node.dropRoutes(dead);
      log.error("Could not adopt the sessions of {dead}: {error}", { dead, error: String(error) });
    }
    let messages = 0;
    try {
      await this.#bus.leave(dead);
      messages = await this.#deliverOrphans(dead, reaping);
    } finally {
      const holding = this.#holding;
      this.#holding = undefined;
      for (const packet of holding?.held ?? []) {
        node.host().deliver(packet, { node: node.nodeId, plain: true, groups: [], only: holding!.ids });
      }
      holding?.done.resolve();
    }
    log.info("Adopted {sessions} sessions of {dead}, with {messages} messages left for them", {
      sessions: adopted.size,
      dead,
      messages,
    });
    const timer = setTimeout(async () => {
      if (!node.stopped()) await this.#deliverOrphans(dead, reaping);
      this.#timers.delete(dead);
      await this.#release(dead, reaping);
    }, node.leaseMs);
    this.#timers.set(dead, { timer, reaping });
  }

  /**
   * While messages are held for adopted sessions (see {@linkcode Reaper.hold}): resolves once they are
   * delivered to them. Acknowledgements wait for it, so nothing is acknowledged before it is in them.
   */
  get released(): Promise<void> | undefined {
    return this.#holding?.done.promise;
  }

  /**
   * A message accepted on this node while the sessions of a dead node are being adopted here: it waits for
   * them until what the dead node left for them is delivered, so that they get their messages in order.
   *
   * @param packet The message.
   * @param subscribers This node's matching subscribers (the adopted sessions are taken out).
   */
  hold(packet: Packet, subscribers: Subscribers): void {
    const holding = this.#holding;
    if (holding === undefined) return;
    let taken = false;
    for (const clientId of subscribers.subscriptions.keys()) {
      if (!holding.ids.has(clientId)) continue;
      subscribers.subscriptions.delete(clientId);
      taken = true;
    }
    if (taken) holding.held.push(packet);
  }

  /** Releases the claims still held (the node is stopping): the second passes are skipped. */
  async close(): Promise<void> {
    for (const [dead, { timer, reaping }] of this.#timers) {
      clearTimeout(timer);
      await this.#release(dead, reaping);
    }
    this.#timers.clear();
  }

  /**
   * The ids of the messages delivered to a session adopted here from a dead node's inbox (or held for it
   * there), while that node's claim lasts: a session handed over names them (see `SessionClaims`).
   *
   * @param clientId The client id.
   * @returns The ids (none when the session was not adopted lately).
   */
  deliveredTo(clientId: string): string[] {
    const ids: string[] = [];
    for (const reaping of this.#active) if (reaping.adopted.has(clientId)) ids.push(...reaping.delivered);
    return ids;
  }

  async #release(dead: string, reaping: Reaping): Promise<void> {
    this.#active.delete(reaping);
    if (reaping.window) this.#node.windows.close(reaping.window);
    try {
      await this.#bus.claimDone(dead);
    } catch (error) {
      log.debug("Could not release the claim of {dead}: {error}", { dead, error: String(error) });
    }
  }

  /**
   * Delivers into adopted sessions what was held for them while they moved (by the dead node, or by the
   * live node that was claiming one from it), before the inbox's leftovers, which came after; and removes
   * every held message from where it was kept, in the same commit. A held message is stored until the
   * commit that puts it in the session removes it: one still stored is in no session (but by its id).
   */
  #deliverHeld(held: Map<string, HeldMessage[]>, reaping: Reaping): void {
    const host = this.#node.host();
    const holders = reaping.holders;
    for (const [clientId, messages] of held) {
      const only = new Set([clientId]);
      for (const { packet, node, id } of messages) {
        if (id !== undefined) {
          // Not again: it has it already, or it has it now (its copy left in the inbox is skipped).
          const holding = holders.get(id);
          if (holding?.has(clientId)) continue;
          if (holding === undefined) holders.set(id, new Set([clientId]));
          else holding.add(clientId);
          reaping.delivered.add(id);
        }
        host.deliver(packet, { node, plain: true, groups: [], only });
      }
      this.#node.writeFields(clientId, messages.map(({ field }): FieldOp => ["H", field, ""]));
      log.debug("Delivered {count} messages held for {id}", { count: messages.length, id: clientId });
    }
  }

  /**
   * Delivers what is left in a dead node's inbox to the sessions adopted from it, then deletes it. As
   * the inbox does, the connections of persistent sessions get the messages only once they are stored and
   * deleted there: were this node to die before, its claimer delivers them again, and a QoS 2 message
   * the client had completed meanwhile would reach it twice.
   */
  async #deliverOrphans(dead: string, reaping: Reaping): Promise<number> {
    const only = reaping.adopted;
    let count = 0;
    const held = new Set<Client>();
    try {
      const entries = await this.#bus.orphans(dead);
      if (entries.length === 0) return 0;
      const host = this.#node.host();
      for (const entry of entries) {
        if (only.size === 0) break;
        let messages;
        try {
          messages = readRecords(entry.records);
        } catch {
          continue;
        }
        for (const message of messages) {
          if ("control" in message) continue;
          if (!reaping.sequences.fresh(entry.from, message.epoch, message.seq)) {
            this.#node.duplicate();
            continue;
          }
          // Stored with its id: a node the session moves to may hold a copy of its own (`SessionClaims`).
          const id = stampedId(entry.from, message);
          // The adopted sessions' copy may have come (or come later) through this node's own inbox.
          const plain = reaping.window && id !== undefined
            ? this.#node.windows.orphan(reaping.window, id, message.plain)
            : message.plain;
          // Not to a group whose member here has it already (a group gives a message to one member).
          const had = id === undefined ? undefined : reaping.groupsHad.get(id);
          const groups = had === undefined
            ? message.groups
            : message.groups.filter((group) => !had.has(group));
          if (!plain && groups.length === 0) {
            if (message.plain || message.groups.length > 0) this.#node.duplicate();
            continue;
          }
          // Not again to a session that has it: the node that handed it to the dead one put it there
          // before its handoff, or the dead node stored it.
          const except = id === undefined ? undefined : reaping.holders.get(id);
          if (plain && id !== undefined) reaping.delivered.add(id);
          const outer = holdWritesOf(held);
          host.deliver(message.packet, { node: entry.from, plain, groups, only, except });
          holdWritesOf(outer);
          count++;
        }
      }
      await host.syncLocal();
      await this.#bus.dropOrphans(dead);
    } catch (error) {
      log.error("Could not deliver the messages left for {dead}: {error}", { dead, error: String(error) });
    } finally {
      for (const client of held) client.releaseWrites();
    }
    return count;
  }
}
