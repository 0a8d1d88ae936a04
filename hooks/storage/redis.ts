/**
 * `@x/broker/redis`: {@linkcode RedisHook}, a storage hook on Redis (through `npm:ioredis`).
 * It lives in its own entry point so that programs without Redis never load the client.
 *
 * Key layout, under a prefix (default `mqtt:`); values are JSON with binary fields (payloads,
 * correlation data) as `{"$b64": "..."}`:
 *
 * | key | type | field | value |
 * | --- | --- | --- | --- |
 * | `{prefix}clients` | hash | client id | {@linkcode ClientRecord} |
 * | `{prefix}subs:{clientId}` | hash | filter | {@linkcode SubscriptionRecord} |
 * | `{prefix}inflight:{clientId}` | hash | `in:{packetId}` | inbound QoS 2 {@linkcode InflightRecord} awaiting PUBREL |
 * | `{prefix}log:{clientId}` | hash | `q:{chunkId}`, `a` | the session's outbound log: chunks of entries, acknowledgement map |
 * | `{prefix}messages` | hash | group id | messages of queued and in-flight records, each once per commit |
 * | `{prefix}retained` | hash | topic | retained {@linkcode StoredMessage} |
 * | `{prefix}sys` | string | | $SYS counters |
 *
 * Queued and in-flight outbound messages go through the outbound log the Deno KV backend uses
 * (`outbound_log.ts`): a message delivered to many sessions is stored once per commit, each session
 * gets one chunk of compact entries per commit, and acknowledgements are released per batch through
 * a per-session map, not one field each. Each batch of writes is one MULTI/EXEC transaction.
 * Outbound records of the previous layout (`out:{sequence}` fields in `{prefix}inflight:{clientId}`,
 * the message inside) are still read, and deleted once done. Commands fail at once while Redis is
 * unreachable (no offline queue, no silent resend); the base class keeps the writes, logs once,
 * and retries with backoff while ioredis reconnects on its own.
 *
 * @example A broker that keeps its state in Redis
 * ```ts ignore
 * import { AllowHook, Server, TCP } from "@x/broker";
 * import { RedisHook } from "@x/broker/redis";
 *
 * const server = new Server();
 * await server.addHook(new AllowHook());
 * await server.addHook(new RedisHook(), { address: "127.0.0.1:6379", prefix: "mqtt:" });
 * await server.addListener(new TCP({ id: "t1", address: ":1883" }));
 * await server.serve();
 * ```
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { Redis, type RedisOptions } from "ioredis";
import type {
  ClientRecord,
  InflightRecord,
  StoredMessage,
  StoredState,
  SubscriptionRecord,
} from "../../src/storage.ts";
import { inflightId, type StorageBackend, StorageHook, type WriteOp } from "./storage.ts";
import { type AckValue, type ChunkValue, type GroupValue, OutboundLog, restoreLog } from "./outbound_log.ts";
import { logger } from "../../src/logger.ts";

/** Options of {@linkcode RedisHook} (also accepted as the config of `addHook`). */
export interface RedisHookOptions {
  /** `host:port` (default `127.0.0.1:6379`), or a `redis://` / `rediss://` URL. */
  address?: string;
  /** ACL user name. */
  username?: string;
  /** Password. */
  password?: string;
  /** Database number (default 0). */
  database?: number;
  /** Prefix of every key (default `mqtt:`). */
  prefix?: string;
  /** ioredis options (`RedisOptions`), applied over the ones above. */
  options?: Record<string, unknown>;
  /** A connected client to use instead; the hook does not close it. */
  client?: object;
}

const log = logger("redis");

/** Options that make commands fail while disconnected, so that the storage hook's retries take over. */
const FAIL_FAST: RedisOptions = {
  lazyConnect: true,
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  connectTimeout: 2000,
  retryStrategy: (times) => Math.min(50 * times, 1000),
};

function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) {
    return { $b64: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64") };
  }
  return value;
}

function reviver(_key: string, value: unknown): unknown {
  if (typeof value === "object" && value !== null && "$b64" in value) {
    const bytes = Buffer.from((value as { $b64: string }).$b64, "base64");
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength).slice();
  }
  return value;
}

/** Encodes a record as JSON, binary fields as base64. */
function encode(value: unknown): string {
  return JSON.stringify(value, replacer);
}

/** Decodes a record written by {@linkcode encode}. */
function decode<T>(text: string): T {
  return JSON.parse(text, reviver) as T;
}

/** A generous estimate of a message's encoded size (base64 payload), without walking it. */
function messageBytes(message: StoredMessage): number {
  return 256 + Math.ceil(message.payload.byteLength * 4 / 3) + message.topic.length * 3 +
    message.origin.length * 3 + (message.properties ? JSON.stringify(message.properties).length * 2 : 0);
}

/** The {@linkcode StorageBackend} of {@linkcode RedisHook}. */
export class RedisBackend implements StorageBackend {
  /** Outbound in-flight writes are merged by the log (see the module docs). */
  readonly mergesOutbound = true;
  /** They come as flat events (no record and op object per delivery). */
  readonly takesOutboundEvents = true;
  #options: RedisHookOptions;
  #redis: Redis | undefined;
  #owned = false;
  /** The outbound log's index: undefined until the first commit, and after a failed one (read again). */
  #log: OutboundLog | undefined;

  /**
   * Creates a backend; nothing connects before {@linkcode RedisBackend.open}.
   *
   * @param options Where Redis is, and the key prefix.
   */
  constructor(options: RedisHookOptions = {}) {
    this.#options = options;
  }

  /**
   * Changes the options (before `open`).
   *
   * @param options Options merged over the current ones.
   */
  configure(options: RedisHookOptions): void {
    this.#options = { ...this.#options, ...options };
  }

  /** The key prefix. */
  get prefix(): string {
    return this.#options.prefix ?? "mqtt:";
  }

  /** The Redis client (once open). */
  get #client(): Redis {
    if (!this.#redis) throw new TypeError("The Redis connection is not open");
    return this.#redis;
  }

  /** Connects; rejects when Redis cannot be reached now (ioredis reconnects by itself later). */
  async open(): Promise<void> {
    if (this.#redis) return;
    const o = this.#options;
    if (o.client) {
      this.#redis = o.client as Redis;
      return;
    }
    const base: RedisOptions = {
      ...FAIL_FAST,
      username: o.username,
      password: o.password,
      db: o.database ?? 0,
    };
    const address = o.address ?? "127.0.0.1:6379";
    let redis: Redis;
    if (/^rediss?:\/\//.test(address)) {
      redis = new Redis(address, { ...base, ...o.options });
    } else {
      const colon = address.lastIndexOf(":");
      const host = (colon > 0 ? address.slice(0, colon) : address).replace(/^\[|\]$/g, "") || "127.0.0.1";
      const port = colon >= 0 ? Number(address.slice(colon + 1)) : 6379;
      if (!Number.isInteger(port) || port <= 0 || port > 65535) {
        throw new RangeError(`Redis address "${address}" has no valid port`);
      }
      redis = new Redis({ ...base, host, port, ...o.options });
    }
    // The storage hook logs failed writes once per outage; connection errors only at debug level.
    redis.on(
      "error",
      (error: Error) => log.debug("Redis connection error: {error}", { error: error.message }),
    );
    try {
      await redis.connect();
    } catch (error) {
      redis.disconnect();
      // ioredis says only "Connection is closed." or "connect ECONNREFUSED": name Redis and where.
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(`Cannot connect to Redis at ${address}: ${reason}`, { cause: error });
    }
    this.#redis = redis;
    this.#owned = true;
  }

  /**
   * Writes a batch as one MULTI/EXEC transaction.
   *
   * @param ops The writes.
   */
  async commit(ops: WriteOp[]): Promise<void> {
    try {
      await this.#commit(ops);
    } catch (error) {
      this.#log = undefined; // it may hold writes that did not happen: read it again
      throw error;
    }
  }

  async #commit(ops: WriteOp[]): Promise<void> {
    const p = this.prefix;
    const log = this.#log ??= await this.#indexLog();
    const multi = this.#client.multi();
    for (const op of ops) {
      switch (op.op) {
        case "putClient":
          multi.hset(`${p}clients`, op.record.id, encode(op.record));
          break;
        case "deleteClient":
          multi.hdel(`${p}clients`, op.clientId);
          multi.del(`${p}subs:${op.clientId}`, `${p}inflight:${op.clientId}`, `${p}log:${op.clientId}`);
          log.drop(op.clientId);
          break;
        case "putSubscription":
          multi.hset(`${p}subs:${op.record.clientId}`, op.record.subscription.filter, encode(op.record));
          break;
        case "deleteSubscription":
          multi.hdel(`${p}subs:${op.clientId}`, op.filter);
          break;
        case "putInflight":
          if (op.record.direction === "out") log.put(op.record.clientId, op.record, messageBytes);
          else {multi.hset(
              `${p}inflight:${op.record.clientId}`,
              `in:${op.record.packetId}`,
              encode(op.record),
            );}
          break;
        case "deleteInflight":
          if (op.direction === "out") log.complete(op.clientId, op.id);
          else multi.hdel(`${p}inflight:${op.clientId}`, `in:${op.id}`);
          break;
        case "outbound": {
          const events = op.events;
          for (let i = op.from; i < op.to; i++) log.apply(events, i, events.clientOf(i), messageBytes);
          break;
        }
        case "putRetained":
          multi.hset(`${p}retained`, op.message.topic, encode(op.message));
          break;
        case "deleteRetained":
          multi.hdel(`${p}retained`, op.topic);
          break;
        case "putSysInfo":
          multi.set(`${p}sys`, encode(op.info));
          break;
      }
    }
    // The log's writes as hash fields, in its order (within one transaction the order is moot).
    for (const { key, value } of log.flush()) {
      let hash: string;
      let field: string;
      if (key[0] === "m") [hash, field] = [`${p}messages`, String(key[1])];
      else if (key[0] === "q") [hash, field] = [`${p}log:${String(key[1])}`, `q:${String(key[2])}`];
      else if (key[0] === "a") [hash, field] = [`${p}log:${String(key[1])}`, "a"];
      else [hash, field] = [`${p}inflight:${String(key[1])}`, `out:${String(key[3])}`]; // an old-layout record
      if (value === undefined) multi.hdel(hash, field);
      else multi.hset(hash, field, key[0] === "m" ? encode(value) : JSON.stringify(value));
    }
    const results = await multi.exec();
    if (!results) throw new Error("Redis aborted the transaction");
    for (const [error] of results) if (error) throw error;
  }

  /** Every session's outbound log, by client id: its chunks (by id) and acknowledgement map. */
  async #logs(): Promise<Map<string, { chunks: [number, ChunkValue][]; acks?: AckValue }>> {
    const keyPrefix = `${this.prefix}log:`;
    const out = new Map<string, { chunks: [number, ChunkValue][]; acks?: AckValue }>();
    await this.#scan(keyPrefix, (key, hash) => {
      const session: { chunks: [number, ChunkValue][]; acks?: AckValue } = { chunks: [] };
      for (const [field, value] of Object.entries(hash)) {
        if (field === "a") session.acks = JSON.parse(value);
        else session.chunks.push([Number(field.slice(2)), JSON.parse(value)]);
      }
      session.chunks.sort((a, b) => a[0] - b[0]);
      out.set(key.slice(keyPrefix.length), session);
    });
    return out;
  }

  /** Builds the outbound log's index from what is stored. */
  async #indexLog(): Promise<OutboundLog> {
    const p = this.prefix;
    const groups = (await this.#client.hkeys(`${p}messages`)).map(Number);
    const log = new OutboundLog(1);
    for (const [clientId, { chunks, acks }] of await this.#logs()) {
      if (acks) log.addAcks(clientId, acks);
      for (const [id, chunk] of chunks) log.addChunk(clientId, id, chunk);
    }
    for (const record of await this.#scanHashes<InflightRecord>(`${p}inflight:`)) {
      if (record.direction === "out") {
        log.addLegacy(record.clientId, record.sequence, ["i", record.clientId, "out", record.sequence]);
      }
    }
    log.settle(groups);
    return log;
  }

  /**
   * Reads every record (SCAN over the subscription and in-flight hashes, so that nothing stored
   * is missed, even records of a client whose session record is gone).
   *
   * @returns The stored state.
   */
  async load(): Promise<StoredState> {
    const p = this.prefix;
    const redis = this.#client;
    const clients = Object.values(await redis.hgetall(`${p}clients`)).map((v) => decode<ClientRecord>(v));
    const subscriptions = await this.#scanHashes<SubscriptionRecord>(`${p}subs:`);
    // Groups before the logs that refer to them: one written meanwhile is never missed.
    const groups = new Map<number, GroupValue>();
    for (const [id, value] of Object.entries(await redis.hgetall(`${p}messages`))) {
      groups.set(Number(id), decode<GroupValue>(value));
    }
    const records = new Map<string, InflightRecord>();
    const id = (r: InflightRecord) => `${r.clientId}\u0000${r.direction}\u0000${inflightId(r)}`;
    // Inbound records, and outbound ones of the previous layout; then the logs.
    for (const record of await this.#scanHashes<InflightRecord>(`${p}inflight:`)) {
      records.set(id(record), record);
    }
    for (const { chunks, acks } of (await this.#logs()).values()) {
      for (const record of restoreLog(chunks, acks, groups).values()) records.set(id(record), record);
    }
    const inflight = [...records.values()];
    const retained = Object.values(await redis.hgetall(`${p}retained`)).map((v) => decode<StoredMessage>(v));
    const sys = await redis.get(`${p}sys`);
    return {
      clients,
      subscriptions,
      inflight,
      retained,
      sysInfo: sys === null ? undefined : decode<Record<string, string | number>>(sys),
    };
  }

  /** Calls `each` with every hash whose key starts with `keyPrefix` (SCAN, then HGETALL per batch). */
  async #scan(keyPrefix: string, each: (key: string, hash: Record<string, string>) => void): Promise<void> {
    const redis = this.#client;
    const match = keyPrefix.replace(/[*?[\]\\]/g, "\\$&") + "*";
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", match, "COUNT", 1000);
      cursor = next;
      if (keys.length === 0) continue;
      const pipeline = redis.pipeline();
      for (const key of keys) pipeline.hgetall(key);
      const results = (await pipeline.exec()) ?? [];
      for (let i = 0; i < results.length; i++) {
        const [error, hash] = results[i];
        if (error) throw error;
        each(keys[i], hash as Record<string, string>);
      }
    } while (cursor !== "0");
  }

  async #scanHashes<T>(keyPrefix: string): Promise<T[]> {
    const out: T[] = [];
    await this.#scan(keyPrefix, (_key, hash) => {
      for (const value of Object.values(hash)) out.push(decode<T>(value));
    });
    return out;
  }

  /** Closes the connection, unless it was given connected. */
  async close(): Promise<void> {
    const redis = this.#redis;
    this.#redis = undefined;
    if (!redis || !this.#owned) return;
    this.#owned = false;
    try {
      await redis.quit();
    } catch {
      // unreachable: just stop reconnecting
    }
    redis.disconnect();
  }
}

/**
 * Stores sessions, subscriptions, in-flight and queued messages, retained messages and the $SYS
 * counters in Redis, and restores them when the server starts.
 *
 * @example Options in the constructor or in addHook
 * ```ts
 * import assert from "node:assert/strict";
 * import { RedisHook } from "./redis.ts";
 *
 * // Nothing connects before the server calls the hook's `init`.
 * const hook = new RedisHook({ address: "10.0.0.5:6379", password: "secret", database: 2, prefix: "edge1:" });
 * assert.equal(hook.id, "redis-storage");
 * // Or: await server.addHook(new RedisHook(), { address: "10.0.0.5:6379", prefix: "edge1:" });
 * ```
 */
export class RedisHook extends StorageHook {
  /**
   * Creates a Redis storage hook. Options may also be given to `addHook` as its config.
   *
   * @param options Where Redis is, the key prefix, and the hook id (default `redis-storage`).
   */
  constructor(options: RedisHookOptions & { id?: string } = {}) {
    super(options.id ?? "redis-storage", new RedisBackend(options));
  }
}
