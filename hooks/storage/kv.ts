/**
 * {@linkcode KVHook}: the default storage hook, on Deno KV (SQLite on disk, or `:memory:`).
 *
 * Key layout (every value is a structured-clone record, so payloads stay binary):
 *
 * | key | value |
 * | --- | --- |
 * | `["c", clientId]` | {@linkcode ClientRecord} |
 * | `["s", clientId, filter]` | {@linkcode SubscriptionRecord} |
 * | `["i", clientId, "out" \| "in", id]` | {@linkcode InflightRecord} (`id` from {@linkcode inflightId}) |
 * | `["r", topic]` | retained {@linkcode StoredMessage} |
 * | `["sys"]` | $SYS counters |
 * | `["x", ...key, version, n]` | chunk `n` of a record too large for one value (see below) |
 *
 * A record larger than about 48 KiB (a big payload or will) is serialized and split into 60 KB
 * chunks under `["x", ...key, version]`; the record's own key then holds `{ $blob, version }`.
 * A new version never overwrites the chunks of the old one, so a crash between two atomic
 * commits cannot leave a record pointing at half-written chunks. Strings longer than 800 bytes
 * (client ids, filters, topics) are replaced in keys by their SHA-256, since KV keys are at most
 * 2 KiB. A batch is written as one atomic operation, or several in order when it exceeds KV's
 * limits (1,000 mutations, 800 KiB); each op is idempotent, so a retried batch is harmless.
 *
 * @module
 */

import { deserialize, serialize } from "node:v8";
import type {
  ClientRecord,
  InflightRecord,
  StoredMessage,
  StoredState,
  SubscriptionRecord,
} from "../../src/storage.ts";
import { inflightId, type StorageBackend, StorageHook, type WriteOp } from "./storage.ts";
import { type AckValue, type ChunkValue, type GroupValue, OutboundLog, restoreLog } from "./outbound_log.ts";

/** Why {@linkcode KVHook} cannot open a store: Deno KV is unstable and needs a flag. */
const KV_UNAVAILABLE = 'Deno KV is not available: run Deno with --unstable-kv (or add "unstable": ' +
  '["kv"] to your deno.json) to use KVHook. A published package\'s "unstable" list does not ' +
  "reach the program that imports it.";

/**
 * Whether Deno KV can be used in this process: `Deno.openKv` exists only with `--unstable-kv` (or
 * `"unstable": ["kv"]` in the running program's own `deno.json`).
 *
 * @returns `true` when {@linkcode KVHook} can open a store.
 *
 * @example Checking before adding the hook
 * ```ts
 * import assert from "node:assert/strict";
 * import { kvAvailable } from "./kv.ts";
 * assert.equal(kvAvailable(), typeof Deno.openKv === "function");
 * ```
 */
export function kvAvailable(): boolean {
  return typeof (Deno as { openKv?: unknown }).openKv === "function";
}

/** Options of {@linkcode KVHook}. */
export interface KVHookOptions {
  /** The database file, or `:memory:` (default `./data/broker.kv`; its folder is created). */
  path?: string;
  /** An open database to use instead of `path`; the hook does not close it. */
  kv?: Deno.Kv;
}

const MAX_KEY_PART_BYTES = 800;
const INLINE_MAX_BYTES = 48 * 1024;
const CHUNK_BYTES = 60_000;
const ATOMIC_MAX_MUTATIONS = 900;
const ATOMIC_MAX_BYTES = 640 * 1024;
const ATOMIC_MAX_KEY_BYTES = 64 * 1024;
const LIST_BATCH = 500;

/** What a record's key holds when the record is stored in chunks. */
interface BlobPointer {
  $blob: number;
  version: string;
}

type Mutation = { key: Deno.KvKey; value?: unknown; bytes: number };

const encoder = new TextEncoder();

function isBlob(value: unknown): value is BlobPointer {
  return typeof value === "object" && value !== null && "$blob" in value;
}

function keyId(key: Deno.KvKey): string {
  return JSON.stringify(key);
}

function keyBytes(key: Deno.KvKey): number {
  let n = 8;
  for (const part of key) n += typeof part === "string" ? part.length * 3 + 2 : 10;
  return n;
}

/** A string as a key part: itself, or its SHA-256 when too long for a KV key. */
function part(value: string): string | Promise<string> {
  if (value.length * 3 <= MAX_KEY_PART_BYTES) return value; // the common case: no need to encode
  return hashedPart(value);
}

async function hashedPart(value: string): Promise<string> {
  const bytes = encoder.encode(value);
  if (bytes.length <= MAX_KEY_PART_BYTES) return value;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return "\u0000sha256:" + Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A generous estimate of a record's encoded size, to choose between one value and chunks. */
function estimate(record: unknown): number {
  let n = 512;
  const visit = (value: unknown, depth: number): void => {
    if (value instanceof Uint8Array) n += value.byteLength + 8;
    else if (typeof value === "string") n += value.length * 3 + 4;
    else if (typeof value === "object" && value !== null && depth < 8) {
      for (const [k, v] of Object.entries(value)) {
        n += k.length + 4;
        visit(v, depth + 1);
      }
    } else n += 9;
  };
  visit(record, 0);
  return n;
}

/** A generous estimate of a message's encoded size, without walking it (once per message stored). */
function messageBytes(message: StoredMessage): number {
  return 256 + message.payload.byteLength + message.topic.length * 3 + message.origin.length * 3 +
    (message.properties ? estimate(message.properties) : 0);
}

/** The {@linkcode StorageBackend} of {@linkcode KVHook}. */
export class KVBackend implements StorageBackend {
  /** Outbound in-flight writes are merged by the log (see the module docs). */
  readonly mergesOutbound = true;
  /** They come as flat events (no record and op object per delivery). */
  readonly takesOutboundEvents = true;
  #options: KVHookOptions;
  #kv: Deno.Kv | undefined;
  #owned = false;
  /** Chunk versions present per record key (rare: only records over ~48 KiB). */
  #chunks = new Map<string, { key: Deno.KvKey; versions: Map<string, number> }>();
  #version = 0;
  /** The outbound log's index; undefined until open, and after a failed commit (rebuilt from KV). */
  #log: OutboundLog | undefined;

  /**
   * Creates a backend; nothing is opened before {@linkcode KVBackend.open}.
   *
   * @param options Where the database is.
   */
  constructor(options: KVHookOptions = {}) {
    this.#options = options;
  }

  /**
   * Changes the options (before `open`).
   *
   * @param options Options merged over the current ones.
   */
  configure(options: KVHookOptions): void {
    this.#options = { ...this.#options, ...options };
  }

  /** The open database. */
  get kv(): Deno.Kv {
    if (!this.#kv) throw new TypeError("The KV store is not open");
    return this.#kv;
  }

  /** Opens the database and indexes stored chunks. */
  async open(): Promise<void> {
    if (this.#kv) return;
    if (this.#options.kv) {
      this.#kv = this.#options.kv;
    } else {
      const path = this.#options.path ?? "./data/broker.kv";
      if (path !== ":memory:") {
        const folder = path.replace(/[\\/][^\\/]*$/, "");
        if (folder !== path && folder !== "") await Deno.mkdir(folder, { recursive: true });
      }
      if (!kvAvailable()) throw new Error(KV_UNAVAILABLE);
      this.#kv = await Deno.openKv(path);
      this.#owned = true;
    }
    this.#version = Date.now() * 1000;
    this.#chunks.clear();
    for await (const entry of this.kv.list({ prefix: ["x"] }, { batchSize: LIST_BATCH })) {
      const key = entry.key.slice(1, -2);
      const version = String(entry.key[entry.key.length - 2]);
      const index = Number(entry.key[entry.key.length - 1]);
      const id = keyId(key);
      let known = this.#chunks.get(id);
      if (!known) this.#chunks.set(id, known = { key, versions: new Map() });
      known.versions.set(version, Math.max(known.versions.get(version) ?? 0, index + 1));
    }
    this.#log = await this.#indexLog();
  }

  /** Builds the outbound log's index from what is stored. */
  async #indexLog(): Promise<OutboundLog> {
    const log = new OutboundLog(1); // small ids (above every stored one) keep keys and values small
    const ignored = new Set<string>();
    for await (const entry of this.kv.list<unknown>({ prefix: ["a"] }, { batchSize: LIST_BATCH })) {
      log.addAcks(String(entry.key[1]), await this.#value<AckValue>(entry.key, entry.value, ignored));
    }
    for await (const entry of this.kv.list<unknown>({ prefix: ["q"] }, { batchSize: LIST_BATCH })) {
      const value = await this.#value<ChunkValue>(entry.key, entry.value, ignored);
      log.addChunk(String(entry.key[1]), Number(entry.key[2]), value);
    }
    for await (const entry of this.kv.list({ prefix: ["i"] }, { batchSize: LIST_BATCH })) {
      if (entry.key[2] === "out") log.addLegacy(String(entry.key[1]), Number(entry.key[3]), entry.key);
    }
    const groups: number[] = [];
    for await (const entry of this.kv.list({ prefix: ["m"] }, { batchSize: LIST_BATCH })) {
      groups.push(Number(entry.key[1]));
    }
    log.settle(groups);
    return log;
  }

  /**
   * Writes a batch: one atomic operation, or several in order when it exceeds KV's limits.
   *
   * @param ops The writes.
   */
  async commit(ops: WriteOp[]): Promise<void> {
    try {
      await this.#commit(ops);
    } catch (error) {
      this.#log = undefined; // it may hold writes that did not happen: read it again from KV
      throw error;
    }
  }

  async #commit(ops: WriteOp[]): Promise<void> {
    this.#log ??= await this.#indexLog();
    const chunks = new Map(this.#chunks);
    const mutations = await this.#mutations(ops, chunks, this.#log);
    let atomic = this.kv.atomic();
    let count = 0;
    let bytes = 0;
    let keys = 0;
    for (const m of mutations) {
      const k = keyBytes(m.key);
      if (
        count > 0 && (count >= ATOMIC_MAX_MUTATIONS || bytes + m.bytes > ATOMIC_MAX_BYTES ||
          keys + k > ATOMIC_MAX_KEY_BYTES)
      ) {
        await this.#run(atomic);
        atomic = this.kv.atomic();
        count = bytes = keys = 0;
      }
      if (m.value === undefined) atomic.delete(m.key);
      else atomic.set(m.key, m.value);
      count++;
      bytes += m.bytes + k;
      keys += k;
    }
    if (count > 0) await this.#run(atomic);
    this.#chunks = chunks;
  }

  async #run(atomic: Deno.AtomicOperation): Promise<void> {
    const result = await atomic.commit();
    if (!result.ok) throw new Error("Deno KV refused an atomic write");
  }

  async #mutations(
    ops: WriteOp[],
    chunks: Map<string, { key: Deno.KvKey; versions: Map<string, number> }>,
    log: OutboundLog,
  ): Promise<Mutation[]> {
    const out: Mutation[] = [];
    /** Keys written earlier in this batch, per client key part (a later deleteClient removes them). */
    const written = new Map<string, Map<string, Deno.KvKey>>();
    const dropChunks = (key: Deno.KvKey) => {
      if (chunks.size === 0) return; // the common case: no record is stored in chunks
      const id = keyId(key);
      const known = chunks.get(id);
      if (!known) return;
      for (const [version, count] of known.versions) {
        for (let i = 0; i < count; i++) out.push({ key: ["x", ...key, version, i], bytes: 0 });
      }
      chunks.delete(id);
    };
    const put = (key: Deno.KvKey, record: unknown, clientPart?: string, size = estimate(record)) => {
      if (clientPart !== undefined) {
        let set = written.get(clientPart);
        if (!set) written.set(clientPart, set = new Map());
        set.set(keyId(key), key);
      }
      if (size <= INLINE_MAX_BYTES) {
        dropChunks(key);
        out.push({ key, value: record, bytes: size });
        return;
      }
      const bytes = serialize(record);
      const version = String(++this.#version);
      const count = Math.ceil(bytes.length / CHUNK_BYTES);
      for (let i = 0; i < count; i++) {
        const chunk = bytes.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES);
        out.push({ key: ["x", ...key, version, i], value: new Uint8Array(chunk), bytes: chunk.length });
      }
      const pointer: BlobPointer = { $blob: count, version };
      out.push({ key, value: pointer, bytes: 64 });
      dropChunks(key);
      chunks.set(keyId(key), { key, versions: new Map([[version, count]]) });
    };
    const del = (key: Deno.KvKey) => {
      out.push({ key, bytes: 0 });
      dropChunks(key);
    };
    for (const op of ops) {
      switch (op.op) {
        case "putClient": {
          const c = await part(op.record.id);
          put(["c", c], op.record, c);
          break;
        }
        case "deleteClient": {
          const c = await part(op.clientId);
          const keys = new Map<string, Deno.KvKey>([[keyId(["c", c]), ["c", c]], [keyId(["a", c]), [
            "a",
            c,
          ]]]);
          log.drop(c);
          for (const prefix of [["s", c], ["i", c], ["q", c]]) {
            for await (const entry of this.kv.list({ prefix }, { batchSize: LIST_BATCH })) {
              keys.set(keyId(entry.key), entry.key);
            }
          }
          for (const [id, key] of written.get(c) ?? []) keys.set(id, key);
          written.delete(c);
          for (const key of keys.values()) del(key);
          break;
        }
        case "putSubscription": {
          const c = await part(op.record.clientId);
          put(["s", c, await part(op.record.subscription.filter)], op.record, c);
          break;
        }
        case "deleteSubscription":
          del(["s", await part(op.clientId), await part(op.filter)]);
          break;
        case "putInflight": {
          let c = part(op.record.clientId); // not awaited unless hashed: this runs per delivery
          if (typeof c !== "string") c = await c;
          if (op.record.direction === "out") log.put(c, op.record, messageBytes);
          else put(["i", c, op.record.direction, inflightId(op.record)], op.record, c);
          break;
        }
        case "deleteInflight": {
          let c = part(op.clientId);
          if (typeof c !== "string") c = await c;
          if (op.direction === "out") log.complete(c, op.id);
          else del(["i", c, op.direction, op.id]);
          break;
        }
        case "outbound": {
          const events = op.events;
          let clientId: string | undefined;
          let c = "";
          for (let i = op.from; i < op.to; i++) {
            const id = events.clientOf(i);
            if (id !== clientId) {
              clientId = id;
              const p = part(id); // not awaited unless hashed: this runs per delivery
              c = typeof p === "string" ? p : await p;
            }
            log.apply(events, i, c, messageBytes);
          }
          break;
        }
        case "putRetained":
          put(["r", await part(op.message.topic)], op.message);
          break;
        case "deleteRetained":
          del(["r", await part(op.topic)]);
          break;
        case "putSysInfo":
          put(["sys"], op.info);
          break;
      }
    }
    for (const write of log.flush()) {
      if (write.value === undefined) del(write.key);
      else put(write.key, write.value, undefined, write.bytes);
    }
    return out;
  }

  /**
   * Reads every record (and removes chunks no record points at, left by an interrupted write).
   *
   * @returns The stored state.
   */
  async load(): Promise<StoredState> {
    const referenced = new Set<string>();
    const read = async <T>(prefix: Deno.KvKey): Promise<T[]> => {
      const out: T[] = [];
      for await (const entry of this.kv.list<unknown>({ prefix }, { batchSize: LIST_BATCH })) {
        out.push(await this.#value<T>(entry.key, entry.value, referenced));
      }
      return out;
    };
    const clients = await read<ClientRecord>(["c"]);
    const subscriptions = await read<SubscriptionRecord>(["s"]);
    const inflight = await this.#inflight(referenced);
    const retained = await read<StoredMessage>(["r"]);
    const sys = await this.kv.get<unknown>(["sys"]);
    const sysInfo = sys.value === null
      ? undefined
      : await this.#value<Record<string, string | number>>(sys.key, sys.value, referenced);
    await this.#collectGarbage(referenced);
    return { clients, subscriptions, inflight, retained, sysInfo };
  }

  /** In-flight records: inbound ones (and outbound ones of the old layout), then the outbound log. */
  async #inflight(referenced: Set<string>): Promise<InflightRecord[]> {
    const groups = new Map<number, GroupValue>();
    for await (const entry of this.kv.list<unknown>({ prefix: ["m"] }, { batchSize: LIST_BATCH })) {
      groups.set(Number(entry.key[1]), await this.#value<GroupValue>(entry.key, entry.value, referenced));
    }
    const acks = new Map<string, AckValue>();
    for await (const entry of this.kv.list<unknown>({ prefix: ["a"] }, { batchSize: LIST_BATCH })) {
      acks.set(String(entry.key[1]), await this.#value<AckValue>(entry.key, entry.value, referenced));
    }
    const logs = new Map<string, [number, ChunkValue][]>();
    for await (const entry of this.kv.list<unknown>({ prefix: ["q"] }, { batchSize: LIST_BATCH })) {
      const c = String(entry.key[1]);
      let chunks = logs.get(c);
      if (!chunks) logs.set(c, chunks = []);
      chunks.push([Number(entry.key[2]), await this.#value<ChunkValue>(entry.key, entry.value, referenced)]);
    }
    const records = new Map<string, InflightRecord>();
    const id = (r: InflightRecord) => `${r.clientId}\u0000${r.direction}\u0000${inflightId(r)}`;
    for await (const entry of this.kv.list<unknown>({ prefix: ["i"] }, { batchSize: LIST_BATCH })) {
      const record = await this.#value<InflightRecord>(entry.key, entry.value, referenced);
      records.set(id(record), record);
    }
    for (const [c, chunks] of logs) {
      for (const record of restoreLog(chunks, acks.get(c), groups).values()) records.set(id(record), record);
    }
    return [...records.values()];
  }

  async #value<T>(key: Deno.KvKey, value: unknown, referenced: Set<string>): Promise<T> {
    if (!isBlob(value)) return value as T;
    referenced.add(keyId([...key, value.version]));
    const parts: Uint8Array[] = [];
    for await (const entry of this.kv.list<Uint8Array>({ prefix: ["x", ...key, value.version] })) {
      parts.push(entry.value);
    }
    if (parts.length !== value.$blob) {
      throw new Error(`Record ${keyId(key)} has ${parts.length} of its ${value.$blob} chunks`);
    }
    const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let offset = 0;
    for (const p of parts) {
      bytes.set(p, offset);
      offset += p.length;
    }
    return deserialize(bytes) as T;
  }

  async #collectGarbage(referenced: Set<string>): Promise<void> {
    const orphans: Deno.KvKey[] = [];
    for (const [id, known] of this.#chunks) {
      for (const [version, count] of known.versions) {
        if (referenced.has(keyId([...known.key, version]))) continue;
        for (let i = 0; i < count; i++) orphans.push(["x", ...known.key, version, i]);
        known.versions.delete(version);
      }
      if (known.versions.size === 0) this.#chunks.delete(id);
    }
    for (let i = 0; i < orphans.length; i += ATOMIC_MAX_MUTATIONS) {
      const atomic = this.kv.atomic();
      for (const key of orphans.slice(i, i + ATOMIC_MAX_MUTATIONS)) atomic.delete(key);
      await this.#run(atomic);
    }
  }

  /** Closes the database, unless it was given open. */
  close(): Promise<void> {
    if (this.#owned) this.#kv?.close();
    this.#kv = undefined;
    this.#owned = false;
    return Promise.resolve();
  }
}

/**
 * Stores sessions, subscriptions, in-flight and queued messages, retained messages and the $SYS
 * counters in Deno KV, and restores them when the server starts. Needs `--unstable-kv` (or
 * `"unstable": ["kv"]` in deno.json).
 *
 * @example A broker that keeps its state in a KV file
 * ```ts
 * import assert from "node:assert/strict";
 * import { AllowHook, KVHook, Server } from "../../mod.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/broker.kv`; // ":memory:" for a database that dies with the hook
 *
 * const first = new Server({ inlineClient: true });
 * await first.addHook(new AllowHook());
 * await first.addHook(new KVHook(), { path });
 * await first.serve();
 * await first.publish("greeting", "hello", true, 0); // retained
 * await first.close(); // flushes the writes and closes the database
 *
 * const second = new Server();
 * await second.addHook(new AllowHook());
 * await second.addHook(new KVHook({ path })); // options in the constructor work too
 * await second.serve(); // restores from the file
 * const [message] = second.topics.retainedMessages("greeting");
 * assert.equal(new TextDecoder().decode(message.payload), "hello");
 * await second.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class KVHook extends StorageHook {
  /**
   * Creates a Deno KV storage hook. Options may also be given to `addHook` as its config.
   *
   * @param options Where the database is, and the hook id (default `kv-storage`).
   */
  constructor(options: KVHookOptions & { id?: string } = {}) {
    super(options.id ?? "kv-storage", new KVBackend(options));
  }
}
