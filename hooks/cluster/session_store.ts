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
 * `i\0{packetId}`: an inbound QoS 2 id awaiting PUBREL). The record with the will is written by the
 * session claim itself, before the CONNACK (see `ClusterBus.claimSession`).
 *
 * The node's inbox entries whose messages a commit stores are deleted in that same commit
 * ({@linkcode SessionStore.inboxDelivered}): a node that dies leaves each message in its inbox or in the
 * stored sessions, never both.
 *
 * @module
 */

import type { ClientRecord, InflightRecord, StoredState } from "../../src/storage.ts";
import type { Packet, Subscription } from "../../src/packets/types.ts";
import type { Client } from "../../src/client.ts";
import type { SessionSnapshot } from "../../src/cluster.ts";
import { type StorageBackend, StorageHook, type WriteOp } from "../storage/storage.ts";
import type { ClusterBus, SessionWrite } from "./bus.ts";
import { decodeJson, encodeJson } from "./wire.ts";

/** One write to a session's hash (see {@linkcode SessionWrite}). */
type FieldOp = SessionWrite["ops"][number];

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
    const writes = new Map<string, SessionWrite>();
    const of = (clientId: string): SessionWrite | undefined => {
      let write = writes.get(clientId);
      if (write === undefined) {
        const epoch = this.#owner.epochOf(clientId);
        if (epoch === undefined) return undefined; // not (or no longer) this node's session
        writes.set(clientId, write = { clientId, epoch, ops: [] });
      }
      return write;
    };
    let delivered: string[] | undefined;
    for (const op of ops) {
      switch (op.op) {
        case "note":
          (delivered ??= []).push(...(op.note as InboxDelivered).inboxDelivered);
          break;
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
    if (writes.size > 0 || delivered) {
      await this.#bus.storeSessions(this.#owner.nodeId, [...writes.values()], delivered);
    }
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
 * Rebuilds a session from its stored hash.
 *
 * @param fields The hash's fields.
 * @returns The client record (if any) and the session's subscriptions and messages in order.
 */
export function sessionFromFields(
  fields: Record<string, string>,
): { record: ClientRecord | undefined; snapshot: SessionSnapshot } {
  let record: ClientRecord | undefined;
  const subscriptions: Subscription[] = [];
  const outbound: InflightRecord[] = [];
  const inbound: InflightRecord[] = [];
  for (const [field, value] of Object.entries(fields)) {
    if (field === CLIENT_FIELD) record = decodeJson<ClientRecord>(value);
    else if (field.startsWith("s\0")) subscriptions.push(decodeJson<Subscription>(value));
    else if (field.startsWith("o\0")) outbound.push(decodeJson<InflightRecord>(value));
    else if (field.startsWith("i\0")) inbound.push(decodeJson<InflightRecord>(value));
  }
  outbound.sort((a, b) => a.sequence - b.sequence);
  return { record, snapshot: { subscriptions, inflight: [...outbound, ...inbound] } };
}
