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
 * | `{prefix}inflight:{clientId}` | hash | `out:{sequence}` or `in:{packetId}` | outbound: `[sequence, packetId, stage (0 publish, 1 pubrel), message id, QoS]`; inbound: {@linkcode InflightRecord} |
 * | `{prefix}messages` | hash | message id | {@linkcode StoredMessage} of queued and in-flight records |
 * | `{prefix}retained` | hash | topic | retained {@linkcode StoredMessage} |
 * | `{prefix}sys` | string | | $SYS counters |
 *
 * A message delivered to many sessions is stored once per commit, under an id that their in-flight
 * records refer to; it is deleted when no record refers to it any more (the references are counted
 * in memory, from a scan on open). Each batch of writes is one MULTI/EXEC transaction, with one HSET
 * and one HDEL per session that changed. Records of the previous layout (the message inside the
 * record) are still read. Commands fail at once while Redis is
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
import { inflightId, sameMessage, type StorageBackend, StorageHook, type WriteOp } from "./storage.ts";
import type { QoS } from "../../src/packets/types.ts";
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

/**
 * An outbound record as stored: the message as an id in `{prefix}messages` (`m`), and the QoS it is
 * delivered at (`q`; the deliveries of one message at QoS 1 and 2 share it).
 */
type StoredRecord = InflightRecord & { m?: number; q?: QoS };

/** The writes of one commit to a session's in-flight hash. */
interface SessionWrites {
  /** The hash is deleted first (the session was removed earlier in the batch). */
  drop: boolean;
  puts: Map<string, string>;
  dels: Set<string>;
}

/** The message ids that outbound records refer to, counted in memory. */
interface References {
  /** Client id -> sequence -> message id (0 for none). */
  sessions: Map<string, Map<number, number>>;
  /** Message id -> references. */
  counts: Map<number, number>;
  /** Ids of messages nothing refers to, deleted with the next commit. */
  orphans: number[];
}

/** The {@linkcode StorageBackend} of {@linkcode RedisHook}. */
export class RedisBackend implements StorageBackend {
  /** Outbound in-flight writes are merged by the log (see the module docs). */
  readonly mergesOutbound = true;
  #options: RedisHookOptions;
  #redis: Redis | undefined;
  #owned = false;
  /** Undefined until the first commit, and after a failed one (read again from Redis). */
  #references: References | undefined;
  #nextId = 0;

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
      this.#references = undefined; // it may count writes that did not happen
      throw error;
    }
  }

  async #commit(ops: WriteOp[]): Promise<void> {
    const p = this.prefix;
    const refs = this.#references ??= await this.#scanReferences();
    const multi = this.#client.multi();
    const sessions = new Map<string, SessionWrites>();
    const of = (clientId: string): SessionWrites => {
      let writes = sessions.get(clientId);
      if (!writes) sessions.set(clientId, writes = { drop: false, puts: new Map(), dels: new Set() });
      return writes;
    };
    const messages: (string | number)[] = [];
    /** Messages stored by this commit, by payload (see `sameMessage`). */
    const placed = new Map<Uint8Array, [StoredMessage, number][]>();
    const unused: number[] = refs.orphans;
    refs.orphans = [];
    const count = (id: number, delta: number) => {
      if (id === 0) return;
      const n = (refs.counts.get(id) ?? 0) + delta;
      if (n > 0) refs.counts.set(id, n);
      else {
        refs.counts.delete(id);
        unused.push(id);
      }
    };
    for (const op of ops) {
      switch (op.op) {
        case "putClient":
          multi.hset(`${p}clients`, op.record.id, encode(op.record));
          break;
        case "deleteClient": {
          multi.hdel(`${p}clients`, op.clientId);
          multi.del(`${p}subs:${op.clientId}`);
          for (const id of refs.sessions.get(op.clientId)?.values() ?? []) count(id, -1);
          refs.sessions.delete(op.clientId);
          sessions.set(op.clientId, { drop: true, puts: new Map(), dels: new Set() });
          break;
        }
        case "putSubscription":
          multi.hset(`${p}subs:${op.record.clientId}`, op.record.subscription.filter, encode(op.record));
          break;
        case "deleteSubscription":
          multi.hdel(`${p}subs:${op.clientId}`, op.filter);
          break;
        case "putInflight": {
          const record = op.record;
          const field = `${record.direction}:${inflightId(record)}`;
          const writes = of(record.clientId);
          writes.dels.delete(field);
          if (record.direction === "in") {
            writes.puts.set(field, encode(record));
            break;
          }
          let ofSession = refs.sessions.get(record.clientId);
          if (!ofSession) refs.sessions.set(record.clientId, ofSession = new Map());
          const previous = ofSession.get(record.sequence) ?? 0;
          let id = 0;
          if (record.stage === "publish") {
            // A later record of a sequence is the same message: it keeps its id.
            id = previous;
            const message = record.message;
            if (id === 0 && message) {
              let variants = placed.get(message.payload);
              if (!variants) placed.set(message.payload, variants = []);
              for (const [other, otherId] of variants) if (sameMessage(other, message)) id = otherId;
              if (id === 0) {
                id = this.#nextId++;
                variants.push([message, id]);
                messages.push(id, encode(message));
              }
            }
          }
          count(id, 1);
          count(previous, -1);
          ofSession.set(record.sequence, id);
          // Compact (this runs per delivery): [sequence, packetId, stage (1: pubrel), message id, QoS].
          const qos = record.message?.qos ?? 0;
          writes.puts.set(
            field,
            `[${record.sequence},${record.packetId},${record.stage === "pubrel" ? 1 : 0},${id},${qos}]`,
          );
          break;
        }
        case "deleteInflight": {
          const field = `${op.direction}:${op.id}`;
          const writes = of(op.clientId);
          writes.puts.delete(field);
          writes.dels.add(field);
          if (op.direction === "in") break;
          const ofSession = refs.sessions.get(op.clientId);
          const id = ofSession?.get(op.id);
          if (id === undefined) break;
          ofSession!.delete(op.id);
          if (ofSession!.size === 0) refs.sessions.delete(op.clientId);
          count(id, -1);
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
    if (messages.length > 0) multi.hset(`${p}messages`, ...messages);
    for (const [clientId, writes] of sessions) {
      const key = `${p}inflight:${clientId}`;
      if (writes.drop) multi.del(key);
      if (writes.puts.size > 0) multi.hset(key, ...[...writes.puts].flat());
      if (writes.dels.size > 0) multi.hdel(key, ...writes.dels);
    }
    if (unused.length > 0) multi.hdel(`${p}messages`, ...unused.map(String));
    const results = await multi.exec();
    if (!results) throw new Error("Redis aborted the transaction");
    for (const [error] of results) if (error) throw error;
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
    // Messages before the records that refer to them: one written meanwhile is never missed.
    const messages = await redis.hgetall(`${p}messages`);
    const decoded = new Map<number, StoredMessage>();
    const inflight: InflightRecord[] = [];
    for (const { m, q, ...record } of await this.#scanInflight()) {
      if (m !== undefined) {
        let message = decoded.get(m);
        if (!message) {
          if (messages[m] === undefined) continue; // not restorable: only a record already done
          decoded.set(m, message = decode<StoredMessage>(messages[m]));
        }
        record.message = q === undefined || q === message.qos ? message : { ...message, qos: q };
      }
      inflight.push(record);
    }
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

  /** Counts the references of outbound records to stored messages. */
  async #scanReferences(): Promise<References> {
    const p = this.prefix;
    const ids = await this.#client.hkeys(`${p}messages`);
    const refs: References = { sessions: new Map(), counts: new Map(), orphans: [] };
    for (const record of await this.#scanInflight()) {
      if (record.direction !== "out") continue;
      let ofSession = refs.sessions.get(record.clientId);
      if (!ofSession) refs.sessions.set(record.clientId, ofSession = new Map());
      ofSession.set(record.sequence, record.m ?? 0);
      if (record.m) refs.counts.set(record.m, (refs.counts.get(record.m) ?? 0) + 1);
    }
    let highest = 0;
    for (const text of ids) {
      const id = Number(text);
      if (id > highest) highest = id;
      if (!refs.counts.has(id)) refs.orphans.push(id);
    }
    this.#nextId = Math.max(this.#nextId, Date.now() * 1000, highest + 1);
    return refs;
  }

  /** Every in-flight record: outbound ones in their compact form, others (and old ones) as JSON. */
  #scanInflight(): Promise<StoredRecord[]> {
    const keyPrefix = `${this.prefix}inflight:`;
    return this.#scanHashes<StoredRecord>(keyPrefix, (value, key) => {
      if (!value.startsWith("[")) return decode<StoredRecord>(value);
      const [sequence, packetId, stage, m, q] = JSON.parse(value) as number[];
      const record: StoredRecord = {
        clientId: key.slice(keyPrefix.length),
        direction: "out",
        sequence,
        packetId,
        stage: stage === 1 ? "pubrel" : "publish",
      };
      if (m !== 0) {
        record.m = m;
        record.q = q as QoS;
      }
      return record;
    });
  }

  async #scanHashes<T>(keyPrefix: string, read: (value: string, key: string) => T = decode): Promise<T[]> {
    const redis = this.#client;
    const match = keyPrefix.replace(/[*?[\]\\]/g, "\\$&") + "*";
    const out: T[] = [];
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
        for (const value of Object.values(hash as Record<string, string>)) out.push(read(value, keys[i]));
      }
    } while (cursor !== "0");
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
