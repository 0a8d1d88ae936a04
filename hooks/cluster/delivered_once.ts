/**
 * Each forwarded message delivered once per session, by its id (see `wire.ts`): the ways a node
 * could get one message twice.
 *
 * - **A batch written twice.** A commit whose reply was lost (Redis crashed or the connection dropped
 *   after it applied the write) is retried, so one inbox can hold a batch twice. One origin process's ids
 *   only increase in an inbox (it forwards in order, one commit after another), so a record whose id is
 *   not above the last one read from that origin is such a copy: {@linkcode OriginSequences} drops it,
 *   with one number compared per message and nothing allocated.
 * - **A dead node's claim.** A survivor that claims a dead node adopts its sessions and stores routes for
 *   them; until every node has dropped the dead node's routes, a message published meanwhile goes to both,
 *   so the claimer reads it in its own inbox and again in the dead node's (which it delivers to the
 *   sessions it adopted). Both copies meet on the claimer: while a claim is worked through,
 *   {@linkcode ClaimWindows} remembers which ids reached the adopted sessions either way, and the second
 *   copy skips them. Outside a claim this costs one length check per message.
 * - **A session moving during a claim.** A forwarded QoS 1/2 message keeps its id in every session that
 *   stores it (`Packet.clusterId`: set by the node that forwards it and by each node that reads it). So
 *   the node a session moves to does not deliver again a copy it held for it that the session was handed
 *   over with (`session_claims.ts`), and a dead node's claimer does not deliver from the dead node's inbox
 *   a message that an adopted session already holds (`dead_nodes.ts`), such as one the session's previous
 *   owner put in it before it handed the session to the node that died.
 *
 * @module
 */

import type { Packet } from "../../src/packets/types.ts";

/** The last id read from each origin node, in one stream. */
export class OriginSequences {
  readonly #last = new Map<string, { epoch: number; seq: number }>();

  /**
   * Whether a message is new in this stream (and notes it).
   *
   * @param node The node that wrote the stream entry.
   * @param epoch The origin process's epoch (0: a record without an id, always new).
   * @param seq Its sequence number.
   * @returns False for a copy of a message already read from this stream.
   */
  fresh(node: string, epoch: number, seq: number): boolean {
    if (epoch === 0) return true;
    const last = this.#last.get(node);
    if (last === undefined) {
      this.#last.set(node, { epoch, seq });
      return true;
    }
    if (last.epoch === epoch && seq <= last.seq) return false;
    // Another epoch: the origin node's id started a new process (its ids start again).
    last.epoch = epoch;
    last.seq = seq;
    return true;
  }
}

/** One claim being worked through: the sessions adopted, and which message ids reached them how. */
export interface ClaimWindow {
  /** The client ids of the sessions adopted from the dead node. */
  readonly adopted: ReadonlySet<string>;
  /** Ids delivered from this node's own inbox to its non-shared subscriptions since the adoption. */
  readonly inbox: Set<string>;
  /** Ids delivered from the dead node's inbox to the adopted sessions' non-shared subscriptions. */
  readonly orphans: Set<string>;
}

/** The claims this node is working through (see the module docs). */
export class ClaimWindows {
  readonly #open: ClaimWindow[] = [];

  /** Whether a claim is being worked through (else nothing needs remembering). */
  get active(): boolean {
    return this.#open.length > 0;
  }

  /**
   * Opens a window when sessions are adopted (in the same turn, before any more inbox delivery).
   *
   * @param adopted The adopted sessions' client ids.
   * @returns The window, to pass to {@linkcode ClaimWindows.orphan} and {@linkcode ClaimWindows.close}.
   */
  open(adopted: ReadonlySet<string>): ClaimWindow {
    const window: ClaimWindow = { adopted, inbox: new Set(), orphans: new Set() };
    this.#open.push(window);
    return window;
  }

  /**
   * Closes a window (the claim is released: every copy left for the dead node was delivered).
   *
   * @param window The window.
   */
  close(window: ClaimWindow): void {
    const at = this.#open.indexOf(window);
    if (at >= 0) this.#open.splice(at, 1);
  }

  /**
   * A message from this node's own inbox, about to be delivered (call only while active).
   *
   * @param key The message's id as a key (see {@linkcode idKey}).
   * @param plain Whether it is for this node's non-shared subscriptions.
   * @returns The adopted sessions that already have it from the dead node's inbox (to be skipped), if any.
   */
  inbox(key: string, plain: boolean): ReadonlySet<string> | undefined {
    if (!plain) return undefined;
    let except: Set<string> | undefined;
    for (const window of this.#open) {
      if (window.orphans.has(key)) {
        except ??= new Set();
        for (const id of window.adopted) except.add(id);
      } else window.inbox.add(key);
    }
    return except;
  }

  /**
   * A message from the dead node's inbox, about to be delivered to the adopted sessions.
   *
   * @param window The claim's window.
   * @param key The message's id as a key.
   * @param plain Whether the dead node was to deliver it to its non-shared subscriptions.
   * @returns Whether to deliver it to the non-shared subscriptions (false: they have it already).
   */
  orphan(window: ClaimWindow, key: string, plain: boolean): boolean {
    if (!plain) return false;
    if (window.inbox.has(key)) return false;
    window.orphans.add(key);
    return true;
  }
}

/**
 * A message id as a key for {@linkcode ClaimWindows}.
 *
 * @param node The origin node (the stream entry's sender).
 * @param epoch The origin process's epoch.
 * @param seq The sequence number.
 * @returns The key.
 */
export function idKey(node: string, epoch: number, seq: number): string {
  return `${node}\u0000${epoch}\u0000${seq}`;
}

/**
 * The id a forwarded message read from a stream carries, as a key; set as its `Packet.clusterId` when it
 * is QoS 1/2, so that the sessions that store it keep it (see the module docs).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Packet, PacketType } from "../../src/packets/types.ts";
 * import { idKey, stampedId } from "./delivered_once.ts";
 *
 * const packet: Packet = { fixedHeader: { type: PacketType.Publish, qos: 1 }, topicName: "t" };
 * assert.equal(stampedId("a", { packet, epoch: 7, seq: 3 }), idKey("a", 7, 3));
 * assert.equal(packet.clusterId, idKey("a", 7, 3));
 * assert.equal(stampedId("a", { packet, epoch: 0, seq: 0 }), undefined); // a record without an id
 * ```
 *
 * @param node The node that wrote the stream entry.
 * @param message The message read, with its origin process's epoch and sequence number.
 * @returns The key, or undefined for a record without an id.
 */
export function stampedId(
  node: string,
  message: { packet: Packet; epoch: number; seq: number },
): string | undefined {
  if (message.epoch === 0) return undefined;
  const id = idKey(node, message.epoch, message.seq);
  if (message.packet.fixedHeader.qos) message.packet.clusterId = id;
  return id;
}
