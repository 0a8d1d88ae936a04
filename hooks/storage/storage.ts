/**
 * The storage hook: {@linkcode StorageHook}, the base class every backend (memory, Deno KV, Redis)
 * shares, and the {@linkcode StorageBackend} contract a backend implements (the records themselves are
 * the core's, in `src/storage.ts`). The base class turns hook events into
 * writes, batches every write made while the broker handles one turn of work into one commit
 * (group commit; at most one commit in flight), retries failed commits with backoff (logging
 * once per outage), and answers `sync()`, which the server awaits before it acknowledges a QoS 1/2
 * publish, a retained message or a subscription.
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

/** One write. `deleteClient` removes a client record and every record of that client. */
export type WriteOp =
  | { op: "putClient"; record: ClientRecord }
  | { op: "deleteClient"; clientId: string }
  | { op: "putSubscription"; record: SubscriptionRecord }
  | { op: "deleteSubscription"; clientId: string; filter: string }
  | { op: "putInflight"; record: InflightRecord }
  | { op: "deleteInflight"; clientId: string; direction: "out" | "in"; id: number }
  | { op: "putRetained"; message: StoredMessage }
  | { op: "deleteRetained"; topic: string }
  | { op: "putSysInfo"; info: Record<string, string | number> };

/**
 * What a backend implements. `commit` applies a batch atomically where the store allows (in
 * order: every op on a client's records comes after any `deleteClient` of that client in the
 * same batch), and rejects if nothing or only part was written; the base class then retries the
 * whole batch, so every op must be idempotent.
 */
export interface StorageBackend {
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
  #queue: WriteOp[] = [];
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
   * Creates a storage hook.
   *
   * @param id The hook id.
   * @param backend Where records go.
   */
  constructor(id: string, backend: StorageBackend) {
    this.id = id;
    this.backend = backend;
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
    return this.#queue.length;
  }

  // Restore ------------------------------------------------------------------------------------

  async #state(): Promise<StoredState> {
    this.#loaded ??= await this.backend.load();
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

  /** Saves the session. */
  onSessionEstablished(client: Client): void {
    this.#write({ op: "putClient", record: clientRecord(client) });
  }

  /** Saves the session's disconnected state, or removes it when it ends. */
  onDisconnect(client: Client, _error: Error | undefined, expire: boolean): void {
    if (expire) this.#write({ op: "deleteClient", clientId: client.id });
    else this.#write({ op: "putClient", record: clientRecord(client) });
  }

  /** Removes an expired session and everything that belongs to it. */
  onClientExpired(client: Client): void {
    this.#write({ op: "deleteClient", clientId: client.id });
  }

  /** Saves granted subscriptions (never failed ones). */
  onSubscribed(client: Client, packet: Packet, reasonCodes: number[]): void {
    const filters = packet.filters ?? [];
    for (let i = 0; i < filters.length; i++) {
      if (reasonCodes[i] >= 0x80) continue;
      const stored = client.state.subscriptions.get(filters[i].filter) ?? filters[i];
      this.#write({ op: "putSubscription", record: { clientId: client.id, subscription: { ...stored } } });
    }
  }

  /** Removes subscriptions. */
  onUnsubscribed(client: Client, packet: Packet): void {
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
    if (client.state.connected || client.state.expiresAt !== 0) {
      this.#write({ op: "putClient", record: clientRecord(client) });
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
    const record = inflightRecord(client.id, packet);
    if (record) {
      this.#write({
        op: "deleteInflight",
        clientId: client.id,
        direction: record.direction,
        id: inflightId(record),
      });
    }
  }

  // Group commit -------------------------------------------------------------------------------

  #write(op: WriteOp): void {
    if (this.#stopped) return;
    this.#queue.push(op);
    this.#appended++;
    if (!this.#scheduled && !this.#committing && !this.#failing) {
      this.#scheduled = true;
      queueMicrotask(this.#commit);
    }
  }

  readonly #commit = async (): Promise<void> => {
    this.#scheduled = false;
    if (this.#committing || this.#queue.length === 0) return;
    this.#committing = true;
    const batch = this.#queue;
    const upTo = this.#appended;
    this.#queue = [];
    try {
      await this.backend.commit(batch);
      if (this.#failing) this.writeRecovered();
      this.#failing = false;
      this.#retryMs = RETRY_FIRST_MS;
      this.#committed = upTo;
      this.#wake();
    } catch (error) {
      if (!this.#failing) this.writeFailed(error);
      this.#failing = true;
      this.#queue = batch.concat(this.#queue); // nothing is dropped: retry everything, in order
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

function inflightRecord(clientId: string, packet: Packet): InflightRecord | undefined {
  switch (packet.fixedHeader.type) {
    case PacketType.Publish:
      return {
        clientId,
        direction: "out",
        sequence: packet.sequence ?? 0,
        packetId: packet.packetId ?? 0,
        stage: "publish",
        message: storedMessage(packet),
      };
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
