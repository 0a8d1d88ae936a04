/**
 * The storage hook: {@linkcode StorageHook}, the base class every backend (memory, Deno KV, Redis)
 * shares, and the {@linkcode StorageBackend} contract a backend implements (the records themselves are
 * the core's, in `src/storage.ts`). The base class turns hook events into
 * writes, batches every write made while the broker handles one turn of work into one commit
 * (group commit; at most one commit in flight), retries failed commits with backoff (logging
 * once per outage), and answers `sync()`, which the server awaits before it acknowledges a QoS 1/2
 * publish, a retained message or a subscription.
 *
 * Nothing a crash would discard anyway is written: a session that ends with its connection (clean
 * session, or session expiry 0) has no records at all, so its traffic costs no storage write; only a
 * record left by an earlier persistent session under the same client id is removed.
 *
 * @module
 */

import type { Packet } from "../../src/packets/types.ts";
import { PacketType } from "../../src/packets/types.ts";
import type { Hook } from "../../src/hooks.ts";
import type { Client, ClientProperties } from "../../src/client.ts";
import {
  type ClientRecord,
  type InflightRecord,
  STORED_CLIENT_PROPERTIES,
  type StoredMessage,
  storedMessage,
  type StoredState,
  type SubscriptionRecord,
} from "../../src/storage.ts";
import { type Info, SYS_PREFIX } from "../../src/system.ts";
import { logger } from "../../src/logger.ts";
import { OUTBOUND_DONE, OUTBOUND_PUBLISH, OUTBOUND_PUBREL, OutboundEvents } from "./outbound_events.ts";

export { OUTBOUND_DONE, OUTBOUND_PUBLISH, OUTBOUND_PUBREL, OutboundEvents };

/**
 * One write. `deleteClient` removes a client record and every record of that client. A `note` is data
 * for a backend that knows it, committed with the batch's writes (a cluster node's inbox entries whose
 * messages the batch stores); other backends ignore it. `outbound` carries the outbound in-flight
 * events `from` to `to` (exclusive) of {@linkcode OutboundEvents}, in place of their `putInflight`
 * and `deleteInflight` ops, to a backend that asks for them ({@linkcode StorageBackend.takesOutboundEvents}).
 */
export type WriteOp =
  | { op: "putClient"; record: ClientRecord }
  | { op: "deleteClient"; clientId: string }
  | { op: "putSubscription"; record: SubscriptionRecord }
  | { op: "deleteSubscription"; clientId: string; filter: string }
  | { op: "putInflight"; record: InflightRecord }
  | { op: "deleteInflight"; clientId: string; direction: "out" | "in"; id: number }
  | { op: "putRetained"; message: StoredMessage }
  | { op: "deleteRetained"; topic: string }
  | { op: "putSysInfo"; info: Record<string, string | number> }
  | { op: "note"; note: unknown }
  | { op: "outbound"; events: OutboundEvents; from: number; to: number };

/**
 * What a backend implements. `commit` applies a batch atomically where the store allows (in
 * order: every op on a client's records comes after any `deleteClient` of that client in the
 * same batch), and rejects if nothing or only part was written; the base class then retries the
 * whole batch, so every op must be idempotent.
 */
export interface StorageBackend {
  /**
   * Whether the backend merges outbound in-flight writes itself (a put and a delete of one record
   * in a batch, or a delete of a record never written, cost it nothing): then the base class leaves
   * them to it instead of coalescing them per batch.
   */
  readonly mergesOutbound?: boolean;
  /**
   * Whether the backend (one that {@linkcode StorageBackend.mergesOutbound}) takes the outbound
   * in-flight writes as `outbound` ops of {@linkcode OutboundEvents} rather than one `putInflight`
   * or `deleteInflight` op each.
   */
  readonly takesOutboundEvents?: boolean;
  /** Takes options given to `addHook(hook, options)`, merged over the constructor's (before `open`). */
  configure?(options: unknown): void;
  /** Opens the store. */
  open(): Promise<void>;
  /** Applies a batch of writes. */
  commit(ops: WriteOp[]): Promise<void>;
  /** Loads everything stored. */
  load(): Promise<StoredState>;
  /** Closes the store. */
  close(): Promise<void>;
}

/** Key of an in-flight record inside its client: outbound by sequence, inbound by packet id. */
export function inflightId(record: Pick<InflightRecord, "direction" | "sequence" | "packetId">): number {
  return record.direction === "out" ? record.sequence : record.packetId;
}

const log = logger("storage");
const RETRY_FIRST_MS = 50;
const RETRY_MAX_MS = 5000;
const SYS_INFO_SAVE_EVERY_MS = 10_000;
const SYS_TOPIC_PREFIX = SYS_PREFIX + "/";

/**
 * A storage hook on any {@linkcode StorageBackend}. Subclasses pick the backend.
 */
export class StorageHook implements Hook {
  /** The hook id. */
  readonly id: string;
  /** The backend. */
  protected readonly backend: StorageBackend;
  /** Called after each successful commit with its duration and size (a metrics hook sets it). */
  commitObserver: ((seconds: number, writes: number) => void) | undefined = undefined;
  #queue: WriteOp[] = [];
  /** Whether outbound in-flight writes go to {@linkcode OutboundEvents} (see the backend's flag). */
  readonly #flat: boolean;
  /** The queued batch's outbound events, and its `outbound` op that is last in the queue, if any. */
  #events: OutboundEvents | undefined;
  /** Events of a committed batch, emptied for reuse (a batch of events takes its arrays' full room). */
  #spareEvents: OutboundEvents | undefined;
  #run: { op: "outbound"; events: OutboundEvents; from: number; to: number } | undefined;
  /** A batch whose commit failed: retried as it is (it was coalesced already), before newer writes. */
  #retrying: WriteOp[] | undefined;
  #appended = 0;
  #committed = 0;
  #committing = false;
  #scheduled = false;
  #failing = false;
  #retryMs = RETRY_FIRST_MS;
  /** The longest wait between two attempts of a failed commit, in ms (a subclass may shorten it). */
  protected retryMaxMs: number = RETRY_MAX_MS;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #waiters: { target: number; resolve: () => void }[] = [];
  #loaded: StoredState | undefined;
  #lastSysSave = 0;
  #sysInfo: Info | undefined;
  #stopped = false;
  /**
   * Whether other nodes share the store (a cluster): records may exist that this hook neither wrote
   * nor loaded, so every delete is written; and sessions that end with their connection still get
   * their client record (not their subscriptions or messages), to send a dead node's wills.
   */
  protected sharedStore = false;
  /**
   * While set, every write goes here instead of the queue (a cluster node's session store takes the writes
   * of a will or a shared hand-off into the engine write that holds its forwards: see `session_store.ts`).
   * Only for a backend that takes no outbound events (their writes bypass it).
   */
  protected diverted: WriteOp[] | undefined = undefined;
  /** In-flight records written (or being written), by client: deletes of others are not written. */
  readonly #written: InflightIndex = new Map();
  /** Client ids that have a client record in the store (loaded or written). */
  readonly #stored = new Set<string>();

  /**
   * Creates a storage hook.
   *
   * @param id The hook id.
   * @param backend Where records go.
   */
  constructor(id: string, backend: StorageBackend) {
    this.id = id;
    this.backend = backend;
    this.#flat = backend.mergesOutbound === true && backend.takesOutboundEvents === true;
  }

  /**
   * Opens the backend.
   *
   * @param config Options given to `addHook`, passed to the backend's `configure`.
   */
  async init(config?: unknown): Promise<void> {
    if (config !== undefined) this.backend.configure?.(config);
    await this.backend.open();
  }

  /** Saves the latest $SYS counters, flushes every queued write, then closes the backend. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    if (this.#sysInfo) this.#write({ op: "putSysInfo", info: this.#sysInfo.toJSON() });
    await this.sync();
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    await this.backend.close();
  }

  /** Resolves when every write queued before the call is durable. */
  sync(): Promise<void> {
    if (this.#committed >= this.#appended) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiters.push({ target: this.#appended, resolve });
    return promise;
  }

  /** Writes waiting to be committed (for metrics). */
  get queueDepth(): number {
    return this.#queue.length + (this.#events?.length ?? 0) + (this.#retrying?.length ?? 0);
  }

  // Restore ------------------------------------------------------------------------------------

  async #state(): Promise<StoredState> {
    if (!this.#loaded) {
      this.#loaded = await this.backend.load();
      for (const record of this.#loaded.clients) this.#stored.add(record.id);
      for (const record of this.#loaded.inflight) {
        if (this.backend.mergesOutbound && record.direction === "out") continue; // the backend's business
        indexAdd(this.#written, record.clientId, inflightKey(record));
      }
    }
    return this.#loaded;
  }

  /** Stored sessions. */
  async storedClients(): Promise<ClientRecord[]> {
    return (await this.#state()).clients;
  }

  /** Stored subscriptions. */
  async storedSubscriptions(): Promise<SubscriptionRecord[]> {
    return (await this.#state()).subscriptions;
  }

  /** Stored in-flight messages, outbound ones in their original order. */
  async storedInflightMessages(): Promise<InflightRecord[]> {
    return [...(await this.#state()).inflight].sort((a, b) => a.sequence - b.sequence);
  }

  /** Stored retained messages. */
  async storedRetainedMessages(): Promise<StoredMessage[]> {
    return (await this.#state()).retained;
  }

  /** Stored $SYS counters. */
  async storedSysInfo(): Promise<Record<string, string | number> | undefined> {
    return (await this.#state()).sysInfo;
  }

  // Events -------------------------------------------------------------------------------------

  /** Saves the session (a session that ends with its connection only clears an older record). */
  onSessionEstablished(client: Client): void {
    if (ephemeral(client) && !this.sharedStore) this.#deleteClient(client.id);
    else this.#putClient(client);
  }

  /** Saves the session's disconnected state, or removes it when it ends. */
  onDisconnect(client: Client, _error: Error | undefined, expire: boolean): void {
    if (expire) this.#deleteClient(client.id);
    else this.#putClient(client);
  }

  /** Removes an expired session and everything that belongs to it. */
  onClientExpired(client: Client): void {
    this.#deleteClient(client.id);
  }

  /**
   * Queues the client's record as it is now (e.g. its will dropped); {@linkcode StorageHook.sync} tells
   * when it is stored.
   *
   * @param client The client.
   */
  protected saveClient(client: Client): void {
    this.#putClient(client);
  }

  /**
   * Queues a note for the backend, committed with the writes queued so far (see {@linkcode WriteOp}).
   *
   * @param note The note.
   * @returns False when the hook has stopped (the note is dropped).
   */
  protected queueNote(note: unknown): boolean {
    this.#write({ op: "note", note });
    return !this.#stopped;
  }

  /**
   * Queues writes as if the hook had made them now (writes taken by {@linkcode StorageHook.diverted} that
   * go to the store after all).
   *
   * @param ops The writes, in order.
   */
  protected queueWrites(ops: readonly WriteOp[]): void {
    for (const op of ops) this.#write(op);
  }

  #putClient(client: Client): void {
    this.#stored.add(client.id);
    this.#write({ op: "putClient", record: clientRecord(client) });
  }

  /** Removes a client's records, if it has any. */
  #deleteClient(clientId: string): void {
    if (!this.#stored.delete(clientId) && !this.sharedStore) return;
    this.#write({ op: "deleteClient", clientId });
  }

  /** Saves granted subscriptions (never failed ones). */
  onSubscribed(client: Client, packet: Packet, reasonCodes: number[]): void {
    if (ephemeral(client)) return;
    const filters = packet.filters ?? [];
    for (let i = 0; i < filters.length; i++) {
      if (reasonCodes[i] >= 0x80) continue;
      const stored = client.state.subscriptions.get(filters[i].filter) ?? filters[i];
      this.#write({ op: "putSubscription", record: { clientId: client.id, subscription: { ...stored } } });
    }
  }

  /** Removes subscriptions. */
  onUnsubscribed(client: Client, packet: Packet): void {
    if (ephemeral(client)) return;
    for (const { filter } of packet.filters ?? []) {
      this.#write({ op: "deleteSubscription", clientId: client.id, filter });
    }
  }

  /** Saves or clears a retained message ($SYS topics are the broker's own, rewritten every tick: never saved). */
  onRetainMessage(_client: Client, packet: Packet, result: number): void {
    if (packet.topicName!.startsWith(SYS_TOPIC_PREFIX)) return;
    if (result > 0) this.#write({ op: "putRetained", message: storedMessage(packet) });
    else this.#write({ op: "deleteRetained", topic: packet.topicName! });
  }

  /** Removes an expired retained message. */
  onRetainedExpired(topic: string): void {
    this.#write({ op: "deleteRetained", topic });
  }

  /** Saves an in-flight or queued message (or the PUBREL/PUBREC stage of a QoS 2 flow). */
  onQosPublish(client: Client, packet: Packet): void {
    if (ephemeral(client)) return;
    if (this.#flat) {
      const type = packet.fixedHeader.type;
      if (type === PacketType.Publish) {
        const message = sharedStoredMessage(packet);
        return this.#outbound(
          client.id,
          packet.sequence ?? 0,
          packet.packetId ?? 0,
          OUTBOUND_PUBLISH,
          message,
          packet.sharedGroups,
        );
      }
      if (type === PacketType.Pubrel) {
        return this.#outbound(client.id, packet.sequence ?? 0, packet.packetId!, OUTBOUND_PUBREL, undefined);
      }
    }
    const record = inflightRecord(client.id, packet);
    if (record) this.#write({ op: "putInflight", record });
  }

  /** Removes a completed in-flight message. */
  onQosComplete(client: Client, packet: Packet): void {
    this.#deleteInflight(client, packet);
  }

  /** Removes a dropped in-flight message. */
  onQosDropped(client: Client, packet: Packet): void {
    this.#deleteInflight(client, packet);
  }

  /** The will was sent: save the session without it. */
  onWillSent(client: Client): void {
    const kept = !ephemeral(client) || this.sharedStore;
    if ((client.state.connected || client.state.expiresAt !== 0) && kept) {
      this.#putClient(client);
    }
  }

  /** Saves the $SYS counters every 10 seconds at most. */
  onSysInfoTick(info: Info): void {
    this.#sysInfo = info;
    const now = Date.now();
    if (now - this.#lastSysSave < SYS_INFO_SAVE_EVERY_MS) return;
    this.#lastSysSave = now;
    this.#write({ op: "putSysInfo", info: info.toJSON() });
  }

  #deleteInflight(client: Client, packet: Packet): void {
    if (ephemeral(client)) return;
    // The record's key only: building the record would store the message again, per acknowledgement.
    switch (packet.fixedHeader.type) {
      case PacketType.Publish:
      case PacketType.Pubrel:
        if (this.#flat) return this.#outbound(client.id, packet.sequence ?? 0, 0, OUTBOUND_DONE, undefined);
        this.#write({
          op: "deleteInflight",
          clientId: client.id,
          direction: "out",
          id: packet.sequence ?? 0,
        });
        break;
      case PacketType.Pubrec:
        this.#write({ op: "deleteInflight", clientId: client.id, direction: "in", id: packet.packetId! });
        break;
    }
  }

  // Group commit -------------------------------------------------------------------------------

  #write(op: WriteOp): void {
    if (this.#stopped) return;
    if (this.diverted !== undefined) {
      this.diverted.push(op);
      return;
    }
    this.#queue.push(op);
    this.#run = undefined;
    this.#appended++;
    if (!this.#scheduled && !this.#committing && !this.#failing) {
      this.#scheduled = true;
      queueMicrotask(this.#commit);
    }
  }

  /** Queues an outbound in-flight event (consecutive ones share one `outbound` op). */
  #outbound(
    clientId: string,
    sequence: number,
    packetId: number,
    kind: number,
    message: StoredMessage | undefined,
    groups?: readonly string[],
  ): void {
    if (this.#stopped) return;
    let events = this.#events;
    if (events === undefined) {
      this.#events = events = this.#spareEvents ?? new OutboundEvents();
      this.#spareEvents = undefined;
    }
    let run = this.#run;
    if (run === undefined) {
      const at = events.length;
      this.#queue.push(this.#run = run = { op: "outbound", events, from: at, to: at });
    }
    events.push(clientId, sequence, packetId, kind, message, groups);
    run.to++;
    this.#appended++;
    if (!this.#scheduled && !this.#committing && !this.#failing) {
      this.#scheduled = true;
      queueMicrotask(this.#commit);
    }
  }

  readonly #commit = async (): Promise<void> => {
    this.#scheduled = false;
    if (this.#committing || (this.#queue.length === 0 && !this.#retrying)) return;
    this.#committing = true;
    // Deletes of records never written are dropped too, once the stored state is known (loaded).
    const fresh = coalesce(
      this.#queue,
      this.#loaded && !this.sharedStore ? this.#written : undefined,
      this.backend.mergesOutbound,
    );
    const batch = this.#retrying ? this.#retrying.concat(fresh) : fresh;
    this.#retrying = undefined;
    const upTo = this.#appended;
    this.#queue = [];
    const events = this.#events;
    this.#events = this.#run = undefined; // the batch keeps its events (a retry needs them)
    try {
      const started = performance.now();
      await this.backend.commit(batch);
      this.commitObserver?.((performance.now() - started) / 1000, batch.length);
      if (this.#failing) this.writeRecovered();
      this.#failing = false;
      this.#retryMs = RETRY_FIRST_MS;
      this.#committed = upTo;
      if (events !== undefined) {
        events.clear(); // the batch is done with them
        this.#spareEvents = events;
      }
      this.#wake();
    } catch (error) {
      if (!this.#failing) this.writeFailed(error);
      this.#failing = true;
      this.#retrying = batch; // nothing is dropped: retry everything, in order
      this.#committing = false;
      if (!this.#stopped) {
        this.#retryTimer = setTimeout(this.#commit, this.#retryMs);
        this.#retryMs = Math.min(this.#retryMs * 2, this.retryMaxMs);
      }
      return;
    }
    this.#committing = false;
    if (this.#queue.length > 0) this.#commit();
  };

  /**
   * Reports that commits started failing (once per outage; they are retried until they work).
   * Logs an error; a subclass whose owner reports outages itself may override it.
   *
   * @param error The first failure.
   */
  protected writeFailed(error: unknown): void {
    log.error("Storage {id} write failed, retrying until it works: {error}", {
      id: this.id,
      error: String(error),
    });
  }

  /** Reports that commits work again after {@linkcode StorageHook.writeFailed}. */
  protected writeRecovered(): void {
    log.info("Storage {id} is writing again", { id: this.id });
  }

  #wake(): void {
    const committed = this.#committed;
    const still: { target: number; resolve: () => void }[] = [];
    for (const waiter of this.#waiters) {
      if (waiter.target <= committed) waiter.resolve();
      else still.push(waiter);
    }
    this.#waiters = still;
  }
}

/**
 * Drops the writes of a batch that later writes in the same batch make pointless: an in-flight
 * record written and then deleted or rewritten (a message delivered and acknowledged, or moved on to
 * its PUBREL stage, while the previous commit was under way) is not written at all. The delete
 * stays (the record may exist from an earlier commit); order is kept.
 *
 * @param ops The queued writes, in order.
 * @returns The writes to commit.
 */
export function coalesce(ops: WriteOp[], written?: InflightIndex, inboundOnly = false): WriteOp[] {
  // Position of the last in-flight put per client, by record id (outbound ids as is, inbound as -id - 1).
  let puts: Map<string, Map<number, number>> | undefined;
  let dropped = 0;
  const kept: (WriteOp | undefined)[] = ops;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i];
    let clientId: string;
    let id: number;
    if (op.op === "putInflight") {
      const record = op.record;
      if (inboundOnly && record.direction === "out") continue;
      clientId = record.clientId;
      id = record.direction === "out" ? record.sequence : -record.packetId - 1;
    } else if (op.op === "deleteInflight") {
      if (inboundOnly && op.direction === "out") continue;
      clientId = op.clientId;
      id = op.direction === "out" ? op.id : -op.id - 1;
    } else continue;
    puts ??= new Map();
    let ofClient = puts.get(clientId);
    if (!ofClient) puts.set(clientId, ofClient = new Map());
    const earlier = ofClient.get(id);
    if (earlier !== undefined) {
      kept[earlier] = undefined;
      dropped++;
    }
    if (op.op === "putInflight") ofClient.set(id, i);
    else ofClient.delete(id);
  }
  if (written) dropped += dropUnwritten(kept, written, inboundOnly);
  if (dropped === 0) return ops;
  return kept.filter((op): op is WriteOp => op !== undefined);
}

/** In-flight record keys by client id (outbound: sequence; inbound: -packetId - 1). */
export type InflightIndex = Map<string, Set<number>>;

function inflightKey(record: Pick<InflightRecord, "direction" | "sequence" | "packetId">): number {
  return record.direction === "out" ? record.sequence : -record.packetId - 1;
}

function indexAdd(index: InflightIndex, clientId: string, key: number): void {
  let keys = index.get(clientId);
  if (!keys) index.set(clientId, keys = new Set());
  keys.add(key);
}

/**
 * Drops the in-flight deletes of records that were never written (nor are being written), and
 * records what the remaining writes leave in the store.
 *
 * @returns How many writes were dropped.
 */
function dropUnwritten(ops: (WriteOp | undefined)[], written: InflightIndex, inboundOnly: boolean): number {
  let dropped = 0;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i];
    if (op === undefined) continue;
    if (
      inboundOnly &&
      (op.op === "putInflight" ? op.record.direction : op.op === "deleteInflight" ? op.direction : "") ===
        "out"
    ) {
      continue;
    }
    if (op.op === "putInflight") indexAdd(written, op.record.clientId, inflightKey(op.record));
    else if (op.op === "deleteInflight") {
      const keys = written.get(op.clientId);
      const key = op.direction === "out" ? op.id : -op.id - 1;
      if (keys?.delete(key)) {
        if (keys.size === 0) written.delete(op.clientId);
      } else {
        ops[i] = undefined;
        dropped++;
      }
    } else if (op.op === "deleteClient") written.delete(op.clientId);
  }
  return dropped;
}

/**
 * Whether a client's session ends with its connection (clean session, or session expiry 0): then
 * nothing of it outlives a crash either, and nothing of it is written.
 */
function ephemeral(client: Client): boolean {
  return client.properties?.sessionExpiryInterval === 0;
}

/**
 * A client's session as stored.
 *
 * @param client The client.
 * @returns Its record.
 */
export function clientRecord(client: Client): ClientRecord {
  const p = client.properties;
  const kept = Object.fromEntries(STORED_CLIENT_PROPERTIES.map((key) => [key, p[key]]));
  return {
    ...kept as Pick<ClientProperties, typeof STORED_CLIENT_PROPERTIES[number]>,
    id: client.id,
    listener: client.net.listener,
    remote: client.net.remote,
    properties: p.props,
    will: p.will ? storedMessage(p.will) : undefined,
    connectedAt: client.state.connectedAt,
    disconnectedAt: client.closed ? client.state.disconnectedAt || Date.now() : 0,
  };
}

/** The last message stored for a delivery, per QoS, and the packet properties they were made from. */
const lastMessages: (StoredMessage | undefined)[] = [undefined, undefined, undefined];
let lastProperties: Packet["properties"];

/**
 * The stored form of a delivered message, shared by the deliveries of one message to many
 * subscribers (their packets differ only in what the record does not hold, or hold the same). The
 * variants of one message for different QoS share everything but their `qos`, so that backends
 * can tell them apart from other messages by {@linkcode sameMessage}.
 */
function sharedStoredMessage(packet: Packet): StoredMessage {
  const header = packet.fixedHeader;
  const qos = header.qos ?? 0;
  const m = lastMessages[qos];
  if (m !== undefined && lastProperties === packet.properties && matches(m, packet)) return m;
  for (const other of lastMessages) {
    if (other !== undefined && lastProperties === packet.properties && matches(other, packet)) {
      return lastMessages[qos] = { ...other, qos };
    }
  }
  lastProperties = packet.properties;
  lastMessages.fill(undefined);
  return lastMessages[qos] = storedMessage(packet);
}

function matches(m: StoredMessage, packet: Packet): boolean {
  return m.payload === packet.payload && m.topic === packet.topicName &&
    m.retain === (packet.fixedHeader.retain ?? false) && m.created === (packet.created ?? 0) &&
    m.expiry === (packet.expiry ?? 0) && m.origin === (packet.origin ?? "");
}

/**
 * Whether two stored messages are one message, delivered at the same or at different QoS: the
 * deliveries of one publish share their payload and properties objects (a cheap test that never
 * says yes to two different messages).
 *
 * @param a A message.
 * @param b Another.
 * @returns True if they differ at most in `qos`.
 */
export function sameMessage(a: StoredMessage, b: StoredMessage): boolean {
  return a.payload === b.payload && a.properties === b.properties && a.topic === b.topic &&
    a.retain === b.retain && a.created === b.created && a.expiry === b.expiry && a.origin === b.origin;
}

function inflightRecord(clientId: string, packet: Packet): InflightRecord | undefined {
  switch (packet.fixedHeader.type) {
    case PacketType.Publish: {
      const record: InflightRecord = {
        clientId,
        direction: "out",
        sequence: packet.sequence ?? 0,
        packetId: packet.packetId ?? 0,
        stage: "publish",
        message: sharedStoredMessage(packet),
      };
      if (packet.sharedGroups !== undefined) record.groups = packet.sharedGroups;
      return record;
    }
    case PacketType.Pubrel:
      return {
        clientId,
        direction: "out",
        sequence: packet.sequence ?? 0,
        packetId: packet.packetId!,
        stage: "pubrel",
      };
    case PacketType.Pubrec:
      return { clientId, direction: "in", sequence: 0, packetId: packet.packetId!, stage: "pubrec" };
    default:
      return undefined;
  }
}
