/**
 * {@linkcode SessionStore}: the storage hook that keeps each session of a cluster node in the
 * engine, so that a session outlives its node. It is the storage hook of `hooks/storage/` (same
 * events, same group commit, acknowledgements wait for its `sync()`) on a backend that writes into
 * the engine, every write fenced by the session's ownership epoch: a node that lost a session (taken
 * over, or claimed after the node was thought dead) can no longer change it. A live owner asked to hand
 * the session over still writes until it does, so that the stored session is whole if the claiming node
 * dies before it reads the handoff.
 *
 * One engine hash per client id holds the session (`c`: the client record with its will; `s\0{filter}`:
 * a subscription; `o\0{sequence}`: an outbound message queued or in flight, or its PUBREL stage;
 * `i\0{packetId}`: an inbound QoS 2 id awaiting PUBREL; `h\0{epoch}\0{n}`: a message held for the session
 * while it moves to the node that claimed it at that epoch, see `SessionClaims`). The record with the will
 * is written by the session claim itself, before the CONNACK (see `ClusterBus.claimSession`).
 *
 * The node's inbox entries whose messages a commit stores are deleted in that same commit
 * ({@linkcode SessionStore.inboxDelivered}): a node that dies leaves each message in its inbox or in the
 * stored sessions, never both.
 *
 * @module
 */

import {
  type ClientRecord,
  type InflightRecord,
  messagePacket,
  type StoredMessage,
  storedMessage,
  type StoredState,
} from "../../src/storage.ts";
import type { Packet, Subscription } from "../../src/packets/types.ts";
import type { Client } from "../../src/client.ts";
import type { SessionSnapshot } from "../../src/cluster.ts";
import { type StorageBackend, StorageHook, type WriteOp } from "../storage/storage.ts";
import type { ClusterBus, SessionWrite } from "./bus.ts";
import { decodeJson, encodeJson } from "./wire.ts";

/** One write to a session's hash (see {@linkcode SessionWrite}). */
export type FieldOp = SessionWrite["ops"][number];

/** The field of a session hash holding the client record. */
export const CLIENT_FIELD = "c";

/** What the store needs from its node. */
export interface SessionOwner {
  /** The node id. */
  readonly nodeId: string;
  /** The ownership epoch of a session this node owns, or undefined. */
  epochOf(clientId: string): number | undefined;
  /** Writes to the engine started failing (the node logs the outage, once). */
  storeFailed?(error: unknown): void;
  /** Writes to the engine work again. */
  storeRecovered?(): void;
}

/** A note: this node's inbox entries whose messages the writes before it store (deleted with them). */
interface InboxDelivered {
  inboxDelivered: string[];
}

/** A note: writes to a session's hash made by the cluster itself (messages held during a move). */
interface FieldWrites {
  clientId: string;
  fields: FieldOp[];
}

/** A message held for a session moving to a node (see `SessionClaims`), as stored and read back. */
export interface HeldMessage {
  /** Its field in the session's hash. */
  field: string;
  /** The node that accepted it. */
  node: string;
  /** Its cluster-wide id, when it was forwarded. */
  id: string | undefined;
  /** The message. */
  packet: Packet;
}

/** How a held message is stored (the value of its `h` field). */
interface HeldRecord {
  node: string;
  id?: string;
  message: StoredMessage;
}

/**
 * A note where a commit of the node holding a will's or a hand-off's writes goes (see
 * {@linkcode SessionStore.atomically}): the writes before it are stored first (then `before` is called),
 * those after it only once that commit is stored (`until`). `passed` once the writes before it are stored:
 * a batch retried after a failure does not write them again over what that commit changed.
 */
interface Barrier {
  barrier: { before: () => void; until: Promise<void>; passed: boolean };
}

/**
 * The engine writes of storage ops: grouped per client, each under this node's current epoch of the session
 * (the ops of a session that is not, or no longer, this node's are dropped).
 *
 * @param ops The ops, in order.
 * @param owner The node.
 * @returns The session writes, and the inbox entries noted as delivered.
 */
function sessionWrites(
  ops: readonly WriteOp[],
  owner: SessionOwner,
): { writes: SessionWrite[]; delivered?: string[] } {
  const writes = new Map<string, SessionWrite>();
  const of = (clientId: string): SessionWrite | undefined => {
    let write = writes.get(clientId);
    if (write === undefined) {
      const epoch = owner.epochOf(clientId);
      if (epoch === undefined) return undefined; // not (or no longer) this node's session
      writes.set(clientId, write = { clientId, epoch, ops: [] });
    }
    return write;
  };
  let delivered: string[] | undefined;
  for (const op of ops) {
    switch (op.op) {
      case "note": {
        const note = op.note as Partial<InboxDelivered & FieldWrites & Barrier>;
        if (note.inboxDelivered !== undefined) (delivered ??= []).push(...note.inboxDelivered);
        else if (note.clientId !== undefined) of(note.clientId)?.ops.push(...note.fields!);
        break;
      }
      case "putClient":
        of(op.record.id)?.ops.push(["S", CLIENT_FIELD, encodeJson(op.record)]);
        break;
      case "deleteClient":
        of(op.clientId)?.ops.push(["D", "", ""]);
        break;
      case "putSubscription":
        of(op.record.clientId)?.ops.push(subscriptionOp(op.record.subscription));
        break;
      case "deleteSubscription":
        of(op.clientId)?.ops.push(["H", `s\0${op.filter}`, ""]);
        break;
      case "putInflight":
        of(op.record.clientId)?.ops.push(inflightOp(op.record));
        break;
      case "deleteInflight":
        of(op.clientId)?.ops.push(["H", `${op.direction === "out" ? "o" : "i"}\0${op.id}`, ""]);
        break;
      default:
        break; // retained messages and $SYS counters are not sessions
    }
  }
  return { writes: [...writes.values()], delivered };
}

/** Writes storage ops into the engine, grouped per client and fenced by epoch. */
class SessionBackend implements StorageBackend {
  readonly #bus: ClusterBus;
  readonly #owner: SessionOwner;

  constructor(bus: ClusterBus, owner: SessionOwner) {
    this.#bus = bus;
    this.#owner = owner;
  }

  open(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** Sessions are loaded one by one when claimed, never all at start. */
  load(): Promise<StoredState> {
    return Promise.resolve({ clients: [], subscriptions: [], inflight: [], retained: [] });
  }

  async commit(ops: WriteOp[]): Promise<void> {
    let from = 0;
    for (let i = ops.length - 1; i >= 0 && from === 0; i--) {
      const op = ops[i];
      if (op.op === "note" && (op.note as Partial<Barrier>).barrier?.passed) from = i + 1; // a retry
    }
    for (let i = from; i < ops.length; i++) {
      const op = ops[i];
      const barrier = op.op === "note" ? (op.note as Partial<Barrier>).barrier : undefined;
      if (barrier === undefined) continue;
      await this.#store(ops.slice(from, i));
      barrier.passed = true;
      barrier.before();
      await barrier.until;
      from = i + 1;
    }
    await this.#store(from === 0 ? ops : ops.slice(from));
  }

  async #store(ops: WriteOp[]): Promise<void> {
    const { writes, delivered } = sessionWrites(ops, this.#owner);
    if (writes.length > 0 || delivered) await this.#bus.storeSessions(this.#owner.nodeId, writes, delivered);
  }
}

/**
 * The storage hook of a cluster node's sessions (see the module docs). `BusCluster` creates it and
 * the server adds it with the cluster.
 */
export class SessionStore extends StorageHook {
  readonly #owner: SessionOwner;

  /**
   * Creates the store.
   *
   * @param bus The engine.
   * @param owner The node (its id and session epochs).
   */
  constructor(bus: ClusterBus, owner: SessionOwner) {
    super("cluster-sessions", new SessionBackend(bus, owner));
    this.sharedStore = true; // nodes share it; a dead node's wills are sent from it
    this.#owner = owner;
    this.retryMaxMs = 500; // acks wait for it: retry often, so they go out soon after the engine is back
  }

  /** Tells the node (which logs one line per outage). */
  protected override writeFailed(error: unknown): void {
    if (this.#owner.storeFailed) this.#owner.storeFailed(error);
    else super.writeFailed(error);
  }

  /** Tells the node. */
  protected override writeRecovered(): void {
    if (this.#owner.storeRecovered) this.#owner.storeRecovered();
    else super.writeRecovered();
  }

  /**
   * Deletes inbox entries of this node in the same commit as the session writes queued so far, which
   * store their messages: the stored sessions and the inbox never both hold one (a claimer would
   * deliver it again), nor neither. {@linkcode SessionStore.sync} tells when it is done.
   *
   * @param ids The inbox entries delivered.
   */
  inboxDelivered(ids: string[]): void {
    const note: InboxDelivered = { inboxDelivered: ids };
    this.queueNote(note);
  }

  /**
   * Writes fields of a session this node owns (at its current epoch), in order with the storage writes
   * queued so far and in the same commit as those queued next in this turn: messages held for a session
   * moving here ({@linkcode heldOp}), and their removal once delivered into it.
   *
   * @param clientId The client id.
   * @param fields The writes.
   */
  writeFields(clientId: string, fields: FieldOp[]): void {
    const note: FieldWrites = { clientId, fields };
    this.queueNote(note);
  }

  /**
   * Runs `work` (a will sent, messages a shared group's member gives back) so that the session writes it
   * makes here (the will removed from its record, the messages from their session, a will put in the
   * sessions here it reaches) are applied in the node's commit that holds what it forwards to other nodes:
   * one atomic engine write, so a node that dies at any moment has done all of it or none (its claimer would
   * otherwise send a will again, or pass a message again, or never). Order: the writes queued here before
   * `work` are stored before that commit is sent, those queued after it only once it is stored (a
   * {@linkcode Barrier}), so no older write undoes what it did and no newer one lands before it. Another
   * such `work` joining the same commit puts the writes queued between the two after it too (only a write
   * of the same session in that instant could matter).
   *
   * @param work The work (synchronous).
   * @param join Puts the writes into the node's commit gathering the work's forwards, to be sent once
   *   `before` resolves; returns when that commit is stored, or undefined when the work forwarded nothing
   *   (the writes then go through this store as usual).
   */
  atomically(
    work: () => void,
    join: (writes: SessionWrite[], before: Promise<void>) => Promise<void> | undefined,
  ): void {
    if (this.diverted !== undefined) return work(); // within another: part of it
    const ops: WriteOp[] = [];
    this.diverted = ops;
    try {
      work();
    } finally {
      this.diverted = undefined;
    }
    if (ops.length === 0) return;
    const { writes } = sessionWrites(ops, this.#owner);
    if (writes.length === 0) return this.queueWrites(ops); // none of them this node's sessions
    const before = Promise.withResolvers<void>();
    const until = join(writes, before.promise);
    if (until === undefined) return this.queueWrites(ops);
    const barrier: Barrier = { barrier: { before: before.resolve, until, passed: false } };
    if (!this.queueNote(barrier)) before.resolve(); // stopped: nothing is written here any more
  }

  /**
   * Stores the client's record without its will (it sent a clean DISCONNECT), before its socket closes.
   *
   * @param client The client (its will already removed).
   * @returns Resolves when stored.
   */
  storeCleanEnd(client: Client): Promise<void> {
    this.saveClient(client);
    return this.sync();
  }

  // A session that ends with its connection (expiry 0) needs only its record (for its will).
  /** Saves granted subscriptions of a persistent session. */
  override onSubscribed(client: Client, packet: Packet, reasonCodes: number[]): void {
    if (client.properties.sessionExpiryInterval !== 0) super.onSubscribed(client, packet, reasonCodes);
  }

  /** Removes subscriptions of a persistent session. */
  override onUnsubscribed(client: Client, packet: Packet): void {
    if (client.properties.sessionExpiryInterval !== 0) super.onUnsubscribed(client, packet);
  }

  /** Saves a message queued or in flight for a persistent session. */
  override onQosPublish(client: Client, packet: Packet): void {
    if (client.properties.sessionExpiryInterval !== 0) super.onQosPublish(client, packet);
  }

  /** Removes a completed message of a persistent session. */
  override onQosComplete(client: Client, packet: Packet): void {
    if (client.properties.sessionExpiryInterval !== 0) super.onQosComplete(client, packet);
  }

  /** Removes a dropped message of a persistent session. */
  override onQosDropped(client: Client, packet: Packet): void {
    if (client.properties.sessionExpiryInterval !== 0) super.onQosDropped(client, packet);
  }
}

/** The write that stores a subscription in its session's hash. */
function subscriptionOp(subscription: Subscription): FieldOp {
  return ["S", `s\0${subscription.filter}`, encodeJson(subscription)];
}

/** The write that stores an outbound message (or its PUBREL stage) or an inbound QoS 2 id. */
function inflightOp(record: InflightRecord): FieldOp {
  const field = record.direction === "out" ? `o\0${record.sequence}` : `i\0${record.packetId}`;
  return ["S", field, encodeJson(record)];
}

/**
 * The writes that store a whole session state in its hash: the inverse of {@linkcode sessionFromFields}
 * (for a session handed over, stored in the same write as its new record).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sessionFromFields, snapshotOps } from "./session_store.ts";
 *
 * const snapshot = { subscriptions: [{ filter: "a/#", qos: 1 as const }], inflight: [] };
 * const fields = Object.fromEntries(snapshotOps(snapshot).map(([, field, value]) => [field, value]));
 * assert.deepEqual(sessionFromFields(fields).snapshot, snapshot);
 * ```
 *
 * @param snapshot The session's subscriptions and messages.
 * @returns One set per subscription and per message.
 */
export function snapshotOps(snapshot: SessionSnapshot): FieldOp[] {
  return [...snapshot.subscriptions.map(subscriptionOp), ...snapshot.inflight.map(inflightOp)];
}

/**
 * The start of the fields of the messages held for a session by the node that claimed it at `epoch`.
 *
 * @param epoch The claim's ownership epoch.
 * @returns The prefix.
 */
export function heldPrefix(epoch: number): string {
  return `h\0${epoch}\0`;
}

/**
 * The write that stores a message held for a session moving to this node (see `SessionClaims`): the
 * `n`th of the claim at `epoch`, kept until it is delivered into the session.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { heldOp, sessionFromFields } from "./session_store.ts";
 * import { PacketType } from "../../src/packets/types.ts";
 *
 * const packet = {
 *   fixedHeader: { type: PacketType.Publish, qos: 1 as const },
 *   topicName: "a/b",
 *   payload: new Uint8Array([1]),
 * };
 * const [, field, value] = heldOp(7, 1, "node-a", packet, "node-a/1/2");
 * const [held] = sessionFromFields({ [field]: value }).held;
 * assert.equal(held.node, "node-a");
 * assert.equal(held.packet.topicName, "a/b");
 * ```
 *
 * @param epoch The claim's ownership epoch.
 * @param n The message's number in the claim (they are delivered in that order).
 * @param node The node that accepted the message.
 * @param packet The message.
 * @param id Its cluster-wide id, when it was forwarded.
 * @returns The write.
 */
export function heldOp(
  epoch: number,
  n: number,
  node: string,
  packet: Packet,
  id: string | undefined,
): FieldOp {
  return ["S", `${heldPrefix(epoch)}${n}`, encodeHeld(node, packet, id)];
}

/**
 * A message held for a session, encoded (see {@linkcode heldOp}; also how a node that passes a session on
 * sends what it held).
 *
 * @param node The node that accepted the message.
 * @param packet The message.
 * @param id Its cluster-wide id, when it was forwarded.
 * @returns The encoded message, for {@linkcode decodeHeld}.
 */
export function encodeHeld(node: string, packet: Packet, id: string | undefined): string {
  const record: HeldRecord = { node, message: storedMessage(packet) };
  if (id !== undefined) record.id = id;
  return encodeJson(record);
}

/**
 * Decodes what {@linkcode encodeHeld} wrote.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeHeld, encodeHeld } from "./session_store.ts";
 * import { PacketType } from "../../src/packets/types.ts";
 *
 * const packet = { fixedHeader: { type: PacketType.Publish, qos: 2 as const }, topicName: "t" };
 * const held = decodeHeld(encodeHeld("b", packet, undefined));
 * assert.equal(held.node, "b");
 * assert.equal(held.packet.fixedHeader.qos, 2);
 * ```
 *
 * @param value The encoded message.
 * @returns The node that accepted it, its cluster-wide id if any, and the message.
 */
export function decodeHeld(value: string): Omit<HeldMessage, "field"> {
  const { node, id, message } = decodeJson<HeldRecord>(value);
  return { node, id, packet: messagePacket(message) };
}

/**
 * Rebuilds a session from its stored hash.
 *
 * @param fields The hash's fields.
 * @returns The client record (if any), the session's subscriptions and messages in order, and the messages
 * held for it during a move that were never delivered into it (in the order they came).
 */
export function sessionFromFields(
  fields: Record<string, string>,
): { record: ClientRecord | undefined; snapshot: SessionSnapshot; held: HeldMessage[] } {
  let record: ClientRecord | undefined;
  const subscriptions: Subscription[] = [];
  const outbound: InflightRecord[] = [];
  const inbound: InflightRecord[] = [];
  const held: { epoch: number; n: number; message: HeldMessage }[] = [];
  for (const [field, value] of Object.entries(fields)) {
    if (field === CLIENT_FIELD) record = decodeJson<ClientRecord>(value);
    else if (field.startsWith("s\0")) subscriptions.push(decodeJson<Subscription>(value));
    else if (field.startsWith("o\0")) outbound.push(decodeJson<InflightRecord>(value));
    else if (field.startsWith("i\0")) inbound.push(decodeJson<InflightRecord>(value));
    else if (field.startsWith("h\0")) {
      const [, epoch, n] = field.split("\0");
      held.push({ epoch: Number(epoch), n: Number(n), message: { field, ...decodeHeld(value) } });
    }
  }
  outbound.sort((a, b) => a.sequence - b.sequence);
  held.sort((a, b) => a.epoch - b.epoch || a.n - b.n);
  return {
    record,
    snapshot: { subscriptions, inflight: [...outbound, ...inbound] },
    held: held.map(({ message }) => message),
  };
}
