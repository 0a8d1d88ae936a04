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
 * | `{prefix}inflight:{clientId}` | hash | `out:{sequence}` or `in:{packetId}` | {@linkcode InflightRecord} |
 * | `{prefix}retained` | hash | topic | retained {@linkcode StoredMessage} |
 * | `{prefix}sys` | string | | $SYS counters |
 *
 * Each batch of writes is one MULTI/EXEC transaction. Commands fail at once while Redis is
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

/** The {@linkcode StorageBackend} of {@linkcode RedisHook}. */
export class RedisBackend implements StorageBackend {
  #options: RedisHookOptions;
  #redis: Redis | undefined;
  #owned = false;

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
    const p = this.prefix;
    const multi = this.#client.multi();
    for (const op of ops) {
      switch (op.op) {
        case "putClient":
          multi.hset(`${p}clients`, op.record.id, encode(op.record));
          break;
        case "deleteClient":
          multi.hdel(`${p}clients`, op.clientId);
          multi.del(`${p}subs:${op.clientId}`, `${p}inflight:${op.clientId}`);
          break;
        case "putSubscription":
          multi.hset(`${p}subs:${op.record.clientId}`, op.record.subscription.filter, encode(op.record));
          break;
        case "deleteSubscription":
          multi.hdel(`${p}subs:${op.clientId}`, op.filter);
          break;
        case "putInflight":
          multi.hset(
            `${p}inflight:${op.record.clientId}`,
            `${op.record.direction}:${inflightId(op.record)}`,
            encode(op.record),
          );
          break;
        case "deleteInflight":
          multi.hdel(`${p}inflight:${op.clientId}`, `${op.direction}:${op.id}`);
          break;
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
    const inflight = await this.#scanHashes<InflightRecord>(`${p}inflight:`);
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

  async #scanHashes<T>(keyPrefix: string): Promise<T[]> {
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
      for (const [error, hash] of (await pipeline.exec()) ?? []) {
        if (error) throw error;
        for (const value of Object.values(hash as Record<string, string>)) out.push(decode<T>(value));
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
