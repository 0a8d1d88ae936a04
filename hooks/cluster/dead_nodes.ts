/**
 * {@linkcode Reaper}: what the node that claimed a dead node does with it. It adopts the dead node's
 * sessions (expired ones end with their wills; persistent ones keep collecting messages here, their
 * wills after their delay), stores and announces their routes before the dead node's are dropped,
 * then delivers what was left in the dead node's inbox to the adopted sessions, and once more a lease
 * later (for forwards that were on their way). Only then is the claim released: until it is, the dead
 * node id cannot join again (a node that only stalled rejoins after that, as a new member, with an
 * empty inbox that nobody takes from it).
 *
 * @module
 */

import type { AdoptedSession, ClusterHost } from "../../src/cluster.ts";
import { logger } from "../../src/logger.ts";
import type { ClusterBus } from "./bus.ts";
import { sessionFromFields } from "./session_store.ts";
import { readRecords } from "./wire.ts";

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
  /** Resolves when everything queued so far is stored. */
  sync(): Promise<void>;
  /** Forgets a node's routes. */
  dropRoutes(node: string): void;
  /** Whether the node is stopping. */
  stopped(): boolean;
}

/** Cleans up after the dead nodes this node claimed. */
export class Reaper {
  readonly #bus: ClusterBus;
  readonly #node: ReaperNode;
  /** Second passes still to run, by dead node. */
  readonly #timers = new Map<string, ReturnType<typeof setTimeout>>();

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
    // This node forwards nothing more to the dead one: its wills and messages for the sessions adopted
    // here would come back to them from the dead node's inbox (delivered twice). The other nodes drop its
    // routes once this node's routes for the adopted sessions are announced (on leave, below).
    node.dropRoutes(dead);
    const adopted = new Set<string>();
    try {
      const sessions: AdoptedSession[] = [];
      for (const entry of await this.#bus.adoptSessions(dead, node.nodeId)) {
        node.own(entry.clientId, entry.epoch);
        const { record, snapshot } = sessionFromFields(entry.fields);
        if (record === undefined) node.sessionEnded(entry.clientId);
        else {
          sessions.push({ record, snapshot });
          adopted.add(entry.clientId);
        }
      }
      if (sessions.length > 0) node.host().adoptSessions(sessions, diedAt);
      await node.sync();
    } catch (error) {
      log.error("Could not adopt the sessions of {dead}: {error}", { dead, error: String(error) });
    }
    await this.#bus.leave(dead, true);
    const messages = await this.#deliverOrphans(dead, adopted);
    log.info("Adopted {sessions} sessions of {dead}, with {messages} messages left for them", {
      sessions: adopted.size,
      dead,
      messages,
    });
    const timer = setTimeout(async () => {
      if (!node.stopped()) await this.#deliverOrphans(dead, adopted);
      this.#timers.delete(dead);
      await this.#release(dead);
    }, node.leaseMs);
    this.#timers.set(dead, timer);
  }

  /** Releases the claims still held (the node is stopping): the second passes are skipped. */
  async close(): Promise<void> {
    for (const [dead, timer] of this.#timers) {
      clearTimeout(timer);
      await this.#release(dead);
    }
    this.#timers.clear();
  }

  async #release(dead: string): Promise<void> {
    try {
      await this.#bus.claimDone(dead);
    } catch (error) {
      log.debug("Could not release the claim of {dead}: {error}", { dead, error: String(error) });
    }
  }

  /** Delivers what is left in a dead node's inbox to the sessions adopted from it, then deletes it. */
  async #deliverOrphans(dead: string, only: ReadonlySet<string>): Promise<number> {
    let count = 0;
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
          host.deliver(message.packet, {
            node: entry.from,
            plain: message.plain,
            groups: message.groups,
            only,
          });
          count++;
        }
      }
      await host.syncLocal();
      await this.#bus.dropOrphans(dead);
    } catch (error) {
      log.error("Could not deliver the messages left for {dead}: {error}", { dead, error: String(error) });
    }
    return count;
  }
}
