/**
 * {@linkcode deliverEntry}: one entry of a node's inbox delivered, message by message, as it is read.
 *
 * @module
 */

import type { ClusterHost, MessageOrigin } from "../../src/cluster.ts";
import { type Client, holdWritesOf } from "../../src/client.ts";
import { logger } from "../../src/logger.ts";
import type { InboxEntry } from "./bus.ts";
import type { SessionClaims } from "./session_claims.ts";
import type { RouteBarriers } from "./route_barrier.ts";
import { type ClaimWindows, type OriginSequences, stampedId } from "./delivered_once.ts";
import { NO_GROUPS, RecordReader } from "./wire.ts";

const log = logger("cluster");

/** What delivering an inbox entry needs from its node. */
export interface InboxNode {
  /** The server. */
  readonly host: ClusterHost;
  /** Session claims (control records; messages held for sessions moving here). */
  readonly claims: SessionClaims;
  /** Route barriers (control records: other nodes' barriers, answers to this node's). */
  readonly barriers: RouteBarriers;
  /** The last id read from each origin in this inbox (copies of a batch written twice are skipped). */
  readonly sequences: OriginSequences;
  /** The dead nodes' claims worked through here. */
  readonly windows: ClaimWindows;
  /** A message was read twice and delivered once. */
  duplicate(): void;
}

/**
 * Delivers an inbox entry's messages in order, each decoded only when its turn comes (nothing waits
 * decoded for a congested subscriber: it dies young once delivered). A bad record drops the rest of the
 * entry (logged).
 *
 * @param node The node.
 * @param entry The entry.
 * @param held The connections whose writes are held until the entry's deletion is committed (added to).
 */
export async function deliverEntry(node: InboxNode, entry: InboxEntry, held: Set<Client>): Promise<void> {
  const { host, claims, sequences, windows } = node;
  // One origin for the entry's messages to non-shared subscriptions (the usual record).
  const plainOrigin: MessageOrigin = { node: entry.from, plain: true, groups: NO_GROUPS };
  const records = new RecordReader(entry.records);
  for (;;) {
    // Like a local publisher, the inbox waits while a subscriber here is behind (else: drops).
    const congested = host.drained();
    if (congested) await congested;
    let message;
    try {
      message = records.next();
    } catch (error) {
      log.error("Dropped the rest of a bad inbox entry {id} from {node}: {error}", {
        id: entry.id,
        node: entry.from,
        error: String(error),
      });
      return;
    }
    if (message === undefined) return;
    if ("control" in message) {
      if (!node.barriers.controlled(message.control)) await claims.controlled(message.control);
    } else if (!sequences.fresh(entry.from, message.epoch, message.seq)) node.duplicate();
    else {
      const packet = message.packet;
      const id = stampedId(entry.from, message); // kept by the sessions here that store it
      const except = windows.active && id !== undefined ? windows.inbox(id, message.plain) : undefined;
      if (message.plain && claims.holding) claims.hold(packet, entry.from, false, packet.clusterId);
      const plainOnly = message.plain && message.groups.length === 0 && except === undefined;
      const outer = holdWritesOf(held);
      host.deliver(
        message.packet,
        plainOnly ? plainOrigin : { node: entry.from, plain: message.plain, groups: message.groups, except },
      );
      holdWritesOf(outer);
    }
  }
}
