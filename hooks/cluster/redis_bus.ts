/**
 * The {@linkcode ClusterBus} on Redis 7 (through `npm:ioredis`). Three connections per node: one for
 * commands, one blocked reading the node's inbox stream, one subscribed to announcements.
 *
 * Keys, under a prefix (default `mqtt:cluster:`):
 *
 * | key | type | holds |
 * | --- | --- | --- |
 * | `{prefix}nodes` | hash | node id → its incarnation (join time in ms and a random suffix): the registered nodes |
 * | `{prefix}lease:{node}` | string, PX | the node's report (JSON); expires unless renewed |
 * | `{prefix}claim:{node}` | string, PX | which survivor is cleaning up after a dead node (the id cannot join meanwhile) |
 * | `{prefix}routes:{node}` | hash | filter → local subscription count; `\0seq` → sequence number |
 * | `{prefix}inbox:{node}` | stream | entries `n` (sender), `m` (message records); deleted once delivered |
 * | `{prefix}retained` | hash | topic → message record |
 * | `{prefix}retained:version` | string | incremented by every retained change |
 * | `{prefix}generation` | string | random, set by the first join into an empty Redis: another value (or none) means Redis lost the cluster's data |
 * | `{prefix}retained:expiry` | sorted set | topic by expiry (ms), for retained messages that expire |
 * | `{prefix}owner:{clientId}` | hash | `node`, `epoch`: the node that owns the session |
 * | `{prefix}session:{clientId}` | hash | the session (see `session_store.ts`), written under the owner's epoch |
 * | `{prefix}sessions:{node}` | set | the client ids a node owns (what its claimer adopts) |
 * | `{prefix}orphan:{node}` | stream | a dead node's inbox, set aside while its claimer delivers it |
 *
 * Announcements go to the channel `{prefix}announce`, one message per change, first byte the kind:
 * `R` + JSON `[node, seq, filter, count]` (route), `D` + node (routes dropped), `T` + version `\0`
 * topic `\0` record (retained; an empty record clears). Retained changes run as one Lua script, so
 * their version order is the order of the announcements and of the hash's writes.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { Redis, type RedisOptions } from "ioredis";
import type {
  AdoptedEntry,
  Batch,
  BusListener,
  ClusterBus,
  InboxEntry,
  NodeEntry,
  Renewal,
  SessionClaim,
  SessionWrite,
  StoredRoutes,
} from "./bus.ts";
import { logger } from "../../src/logger.ts";
import { entryOf, ForwardCommand, InboxReader } from "./redis_streams.ts";
import { defineScripts, type ScriptedRedis } from "./redis_scripts.ts";

/** Where Redis is and how to log in, and the key prefix. */
export interface RedisBusOptions {
  /** `host:port` (default `127.0.0.1:6379`), or a `redis://[user:password@]host:port[/db]` URL. */
  address?: string;
  /** ACL user name. */
  username?: string;
  /** Password. */
  password?: string;
  /** Database number (default 0). */
  database?: number;
  /** Prefix of every key and channel (default `mqtt:cluster:`). */
  prefix?: string;
  /** ioredis options (`RedisOptions`), applied over the ones above. */
  options?: Record<string, unknown>;
}

const log = logger("cluster");
const SEQ_FIELD = "\u0000seq";

/** Fail at once while disconnected: the cluster retries (and withholds acks) itself. */
const FAIL_FAST: RedisOptions = {
  lazyConnect: true,
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  connectTimeout: 2000,
  retryStrategy: (times) => Math.min(50 * times, 500),
};

function fieldsOf(flat: string[]): Record<string, string> {
  const fields: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]] = flat[i + 1];
  return fields;
}

/**
 * A {@linkcode ClusterBus} on Redis.
 *
 * @example Not connected until the cluster starts
 * ```ts
 * import assert from "node:assert/strict";
 * import { RedisBus } from "./redis_bus.ts";
 * const bus = new RedisBus({ address: "redis://127.0.0.1:6390/2" });
 * assert.deepEqual(bus.address, "127.0.0.1:6390");
 * ```
 */
export class RedisBus implements ClusterBus {
  readonly #options: RedisBusOptions;
  readonly #prefix: string;
  readonly #channel: string;
  #redis: ScriptedRedis | undefined;
  #reader: Redis | undefined;
  /** The inbox reader on a plain connection (see `redis_streams.ts`); else `#reader` reads it. */
  #inbox: InboxReader | undefined;
  #subscriber: Redis | undefined;
  #down = false;
  /** The last error a connection reported (for a clearer message when connecting fails). */
  #lastError: string | undefined;
  /** The incarnation registered by the last join ("" before). */
  #incarnation = "";
  /** The cluster's generation at the last join (a Redis that lost its data has another one). */
  #generation = "";

  /** `host:port` of the Redis server (no credentials). */
  readonly address: string;

  /**
   * Creates the bus; nothing connects before {@linkcode RedisBus.connect}.
   *
   * @param options Where Redis is.
   */
  constructor(options: RedisBusOptions = {}) {
    this.#options = options;
    this.#prefix = options.prefix ?? "mqtt:cluster:";
    this.#channel = `${this.#prefix}announce`;
    const address = options.address ?? "127.0.0.1:6379";
    if (/^rediss?:\/\//.test(address)) {
      const url = new URL(address);
      this.address = `${url.hostname}:${url.port || 6379}`;
    } else this.address = address;
  }

  /** Whether the last command failed for lack of a connection. */
  get down(): boolean {
    return this.#down;
  }

  #client(name: string): Redis {
    const o = this.#options;
    const base: RedisOptions = {
      ...FAIL_FAST,
      username: o.username,
      password: o.password,
      db: o.database ?? 0,
      connectionName: name,
    };
    const address = o.address ?? "127.0.0.1:6379";
    let redis: Redis;
    if (/^rediss?:\/\//.test(address)) {
      const url = new URL(address);
      const db = Number(url.pathname.slice(1) || o.database || 0);
      redis = new Redis(address, { ...base, db, ...(o.options as RedisOptions) });
    } else {
      const colon = address.lastIndexOf(":");
      const host = (colon > 0 ? address.slice(0, colon) : address).replace(/^\[|\]$/g, "") || "127.0.0.1";
      const port = colon >= 0 ? Number(address.slice(colon + 1)) : 6379;
      if (!Number.isInteger(port) || port <= 0 || port > 65535) {
        throw new RangeError(`Redis address "${address}" has no valid port`);
      }
      redis = new Redis({ ...base, host, port, ...(o.options as RedisOptions) });
    }
    redis.on("error", (error: Error) => {
      this.#lastError = error.message;
      log.debug("Redis {name}: {error}", { name, error: error.message });
    });
    return redis;
  }

  /** The inbox reader on a plain connection, unless TLS or ioredis options are asked for. */
  #inboxReader(): InboxReader | undefined {
    const o = this.#options;
    const address = o.address ?? "127.0.0.1:6379";
    if (o.options !== undefined || address.startsWith("rediss:")) return undefined;
    const url = new URL(/^redis:\/\//.test(address) ? address : `redis://${address}`);
    return new InboxReader({
      hostname: url.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1",
      port: Number(url.port || 6379),
      username: o.username ?? (decodeURIComponent(url.username) || undefined),
      password: o.password ?? (decodeURIComponent(url.password) || undefined),
      database: Number(url.pathname.slice(1) || o.database || 0),
    });
  }

  async connect(listener: BusListener): Promise<void> {
    const redis = this.#client("broker-cluster") as ScriptedRedis;
    const inbox = this.#inboxReader();
    const reader = inbox ? undefined : this.#client("broker-cluster-inbox");
    const subscriber = this.#client("broker-cluster-announce");
    try {
      await Promise.all([redis.connect(), reader?.connect(), subscriber.connect()]);
      defineScripts(redis);
      subscriber.on(
        "messageBuffer",
        (_channel: Buffer, message: Buffer) => this.#announced(listener, message),
      );
      await subscriber.subscribe(this.#channel);
    } catch (error) {
      redis.disconnect();
      reader?.disconnect();
      subscriber.disconnect();
      const reason = error instanceof Error ? error.message : String(error);
      const last = this.#lastError ?? "";
      if (/NOAUTH|WRONGPASS|invalid password|invalid username|AUTH/i.test(last)) {
        throw new Error(`The cluster's Redis at ${this.address} refused the credentials: ${last}`);
      }
      throw new Error(`Cannot reach the cluster's Redis at ${this.address}: ${last || reason}`);
    }
    let first = true;
    subscriber.on("ready", () => {
      if (first) return;
      listener.reconnected();
    });
    first = false;
    this.#redis = redis;
    this.#reader = reader;
    this.#inbox = inbox;
    this.#subscriber = subscriber;
    await this.#warnIfVolatile(redis);
  }

  /**
   * Warns when Redis keeps its writes in memory only (`appendonly no`): what the cluster acknowledges then
   * outlives any node's death, but not a restart of Redis (a node finds the data gone and starts over).
   * A Redis that does not allow `CONFIG` (a managed one) is not checked.
   */
  async #warnIfVolatile(redis: Redis): Promise<void> {
    let appendonly: string | undefined;
    try {
      appendonly = ((await redis.config("GET", "appendonly")) as string[])[1];
    } catch (error) {
      log.debug("Could not read the persistence settings of {address}: {error}", {
        address: this.address,
        error: String(error),
      });
    }
    if (appendonly !== "no") return;
    log.warn(
      "The cluster's Redis at {address} runs with appendonly no: acknowledged messages and sessions " +
        "outlive a node's death but not a restart of Redis; set appendonly yes (appendfsync everysec or always)",
      { address: this.address },
    );
  }

  #announced(listener: BusListener, message: Buffer): void {
    const kind = message[0];
    try {
      if (kind === 0x52) { // R
        const [node, seq, filter, count] = JSON.parse(message.subarray(1).toString("utf8"));
        listener.route(node, { filter, count, seq });
      } else if (kind === 0x44) { // D
        listener.routesDropped(message.subarray(1).toString("utf8"));
      } else if (kind === 0x54) { // T
        const first = message.indexOf(0, 1);
        const second = message.indexOf(0, first + 1);
        const version = Number(message.subarray(1, first).toString("latin1"));
        const topic = message.subarray(first + 1, second).toString("utf8");
        const record = message.subarray(second + 1);
        listener.retained(version, topic, record.length === 0 ? undefined : new Uint8Array(record));
      }
    } catch (error) {
      log.error("Bad cluster announcement: {error}", { error: String(error) });
    }
  }

  async close(): Promise<void> {
    this.#inbox?.close();
    this.#inbox = undefined;
    for (const redis of [this.#subscriber, this.#reader, this.#redis]) {
      if (!redis) continue;
      try {
        await redis.quit();
      } catch {
        redis.disconnect();
      }
    }
    this.#redis = this.#reader = this.#subscriber = undefined;
  }

  get #r(): ScriptedRedis {
    if (!this.#redis) throw new Error("The cluster bus is not connected");
    return this.#redis;
  }

  /** Runs a command, noting whether Redis is reachable. */
  async #run<T>(command: Promise<T>): Promise<T> {
    try {
      const result = await command;
      this.#down = false;
      return result;
    } catch (error) {
      this.#down = this.#r.status !== "ready";
      throw error;
    }
  }

  #key(kind: string, node: string): string {
    return `${this.#prefix}${kind}:${node}`;
  }

  async join(node: string, value: string, ttlMs: number): Promise<boolean> {
    const incarnation = `${Date.now()}-${crypto.randomUUID().slice(0, 8)}`;
    const result = await this.#run(
      this.#r.clusterJoin(
        this.#key("lease", node),
        `${this.#prefix}nodes`,
        this.#key("claim", node),
        `${this.#prefix}generation`,
        node,
        value,
        ttlMs,
        incarnation,
        crypto.randomUUID(),
      ),
    );
    if (result === 0) return false;
    this.#incarnation = incarnation;
    this.#generation = String(result);
    return true;
  }

  async renew(node: string, value: string, ttlMs: number): Promise<Renewal> {
    const result = await this.#run(
      this.#r.clusterRenew(
        this.#key("lease", node),
        `${this.#prefix}nodes`,
        `${this.#prefix}generation`,
        node,
        value,
        ttlMs,
        this.#incarnation,
        this.#generation,
      ),
    );
    return result === 1 ? "renewed" : result === 0 ? "lapsed" : result === -1 ? "claimed" : "lost";
  }

  async leave(node: string): Promise<void> {
    const keys = [this.#key("routes", node), this.#key("lease", node)];
    await this.#run(
      this.#r.multi()
        .hdel(`${this.#prefix}nodes`, node)
        .del(...keys)
        .publish(this.#channel, `D${node}`)
        .exec(),
    );
  }

  async retire(node: string): Promise<boolean> {
    const key = (kind: string) => this.#key(kind, "");
    const result = await this.#run(
      this.#r.clusterRetire(
        `${this.#prefix}nodes`,
        node,
        key("lease"),
        key("routes"),
        key("inbox"),
        key("claim"),
        this.#channel,
      ),
    );
    return result === 1;
  }

  async claimDone(dead: string): Promise<void> {
    await this.#run(this.#r.del(this.#key("claim", dead)));
  }

  async members(): Promise<NodeEntry[]> {
    const registered = Object.entries(await this.#run(this.#r.hgetall(`${this.#prefix}nodes`)));
    if (registered.length === 0) return [];
    const leases = await this.#run(this.#r.mget(...registered.map(([id]) => this.#key("lease", id))));
    return registered.map(([id, incarnation], i) => ({ id, lease: leases[i] ?? undefined, incarnation }));
  }

  async claim(dead: string, by: string): Promise<boolean> {
    const result = await this.#run(
      this.#r.clusterClaim(
        this.#key("lease", dead),
        `${this.#prefix}nodes`,
        this.#key("claim", dead),
        dead,
        by,
      ),
    );
    return result === 1;
  }

  async claimSession(clientId: string, node: string, clean: boolean, record: string): Promise<SessionClaim> {
    const [previous, alive, epoch, stored, wait, filters] = await this.#run(
      this.#r.clusterClaimSession(
        this.#key("owner", clientId),
        this.#key("session", clientId),
        `${this.#prefix}nodes`,
        node,
        `${this.#prefix}lease:`,
        clean ? "1" : "0",
        record,
        `${this.#prefix}sessions:`,
        clientId,
        `${this.#prefix}claim:`,
        this.#incarnation,
      ),
    );
    return {
      previous: previous === "" ? undefined : previous,
      previousAlive: alive === 1,
      wait: wait === 1,
      epoch,
      stored: stored.length > 0 ? fieldsOf(stored) : undefined,
      filters: filters ?? [],
    };
  }

  async storeSessions(node: string, writes: SessionWrite[], delivered?: string[]): Promise<void> {
    const multi = this.#r.multi();
    if (delivered !== undefined && delivered.length > 0) {
      // deno-lint-ignore no-explicit-any
      (multi as any).clusterDelivered(
        this.#key("inbox", node),
        `${this.#prefix}nodes`,
        node,
        this.#incarnation,
        ...delivered,
      );
    }
    for (const write of writes) this.#storeSession(multi, node, write);
    const results = await this.#run(multi.exec());
    for (const [error] of results ?? []) {
      if (error) throw error;
    }
  }

  async storedSession(clientId: string): Promise<Record<string, string> | undefined> {
    const fields = await this.#run(this.#r.hgetall(this.#key("session", clientId)));
    return Object.keys(fields).length > 0 ? fields : undefined;
  }

  /** Queues one session's writes ({@linkcode SessionWrite}) on `multi`; returns the reply's promise. */
  // deno-lint-ignore no-explicit-any
  #storeSession(multi: any, node: string, { clientId, epoch, ops, from }: SessionWrite): Promise<unknown> {
    const handedOver = from === undefined ? [] : ["F", this.#key("sessions", from), clientId];
    const [owner, session] = [this.#key("owner", clientId), this.#key("session", clientId)];
    return multi.clusterStoreSession(owner, session, node, epoch, ...handedOver, ...ops.flat());
  }

  async sessionEpoch(clientId: string, node: string): Promise<number | undefined> {
    const [owner, epoch] = await this.#run(this.#r.hmget(this.#key("owner", clientId), "node", "epoch"));
    return owner === node && epoch !== null ? Number(epoch) : undefined;
  }

  async adoptSessions(dead: string, by: string): Promise<AdoptedEntry[]> {
    const adopted = await this.#run(
      this.#r.clusterAdoptSessions(
        this.#key("sessions", dead),
        this.#key("sessions", by),
        dead,
        by,
        `${this.#prefix}owner:`,
        `${this.#prefix}session:`,
        `${this.#prefix}sessions:`,
      ),
    );
    return adopted.map(([clientId, epoch, flat]) => ({ clientId, epoch, fields: fieldsOf(flat) }));
  }

  async orphans(dead: string): Promise<InboxEntry[]> {
    const orphan = this.#key("orphan", dead);
    await this.#run(this.#r.clusterSetAside(this.#key("inbox", dead), orphan));
    const items = await this.#run(this.#r.xrangeBuffer(orphan, "-", "+"));
    return items.map(([id, fields]) => entryOf(id, fields));
  }

  async dropOrphans(dead: string): Promise<void> {
    await this.#run(this.#r.del(this.#key("orphan", dead)));
  }

  async commit(node: string, batch: Batch): Promise<void> {
    const commands = batch.forwards.size + batch.routes.length + batch.retained.length +
      batch.endedSessions.length + batch.sessions.length + (batch.delivered.length > 0 ? 1 : 0);
    if (commands === 0) return;
    if (commands === 1 && batch.forwards.size === 1) {
      // The usual batch under load: one node's forwards, written from the batch itself.
      const [[destination, records]] = batch.forwards;
      const command = new ForwardCommand(this.#key("inbox", destination), node, records);
      this.#r.sendCommand(command);
      await this.#run(command.promise);
      return;
    }
    // One command is atomic alone: sent without MULTI/EXEC (the usual batch under load: one node's
    // forwards, or one inbox deletion), which saves Redis two commands and ioredis a copy of the batch.
    const single = commands === 1;
    // deno-lint-ignore no-explicit-any
    const multi: any = single ? this.#r : this.#r.multi();
    let reply: Promise<unknown> | undefined;
    for (const [destination, records] of batch.forwards) {
      // A view, not a copy: a batch's records are never written again.
      const bytes = Buffer.from(records.buffer, records.byteOffset, records.byteLength);
      reply = multi.xadd(this.#key("inbox", destination), "*", "n", node, "m", bytes);
    }
    const routes = this.#key("routes", node);
    const nodes = `${this.#prefix}nodes`;
    for (const change of batch.routes) {
      reply = multi.clusterRoute(
        routes,
        nodes,
        node,
        this.#incarnation,
        SEQ_FIELD,
        change.seq,
        change.filter,
        change.count,
        this.#channel,
      );
    }
    for (const change of batch.retained) {
      reply = multi.clusterRetain(
        `${this.#prefix}retained`,
        `${this.#prefix}retained:version`,
        `${this.#prefix}retained:expiry`,
        change.topic,
        change.record ? Buffer.from(change.record) : "",
        this.#channel,
        change.expiry ?? 0,
      );
    }
    for (const write of batch.sessions) reply = this.#storeSession(multi, node, write);
    for (const { clientId, epoch } of batch.endedSessions) {
      reply = multi.clusterEndSession(
        this.#key("owner", clientId),
        this.#key("session", clientId),
        this.#key("sessions", node),
        node,
        epoch,
        clientId,
      );
    }
    if (batch.delivered.length > 0) {
      reply = multi.clusterDelivered(
        this.#key("inbox", node),
        nodes,
        node,
        this.#incarnation,
        ...batch.delivered,
      );
    }
    if (single) {
      await this.#run(reply!);
      return;
    }
    const results: [Error | null, unknown][] | null = await this.#run(multi.exec());
    for (const [error] of results ?? []) {
      if (error) throw error;
    }
  }

  async routes(node: string): Promise<StoredRoutes> {
    const all = await this.#run(this.#r.hgetall(this.#key("routes", node)));
    const filters = new Map<string, number>();
    let seq = 0;
    for (const [field, value] of Object.entries(all)) {
      if (field === SEQ_FIELD) seq = Number(value);
      else filters.set(field, Number(value));
    }
    return { seq, filters };
  }

  async read(node: string, after: string, count: number, blockMs: number): Promise<InboxEntry[]> {
    if (this.#inbox !== undefined) {
      return await this.#inbox.read(this.#key("inbox", node), after, count, blockMs);
    }
    const reader = this.#reader;
    if (!reader) throw new Error("The cluster bus is not connected");
    const result = await reader.xreadBuffer(
      "COUNT",
      count,
      "BLOCK",
      blockMs,
      "STREAMS",
      this.#key("inbox", node),
      after,
    );
    if (!result) return [];
    const entries: InboxEntry[] = [];
    for (const [, items] of result) {
      for (const [id, fields] of items) entries.push(entryOf(id, fields));
    }
    return entries;
  }

  async expireRetained(now: number): Promise<number> {
    return await this.#run(
      this.#r.clusterExpireRetained(
        `${this.#prefix}retained`,
        `${this.#prefix}retained:version`,
        `${this.#prefix}retained:expiry`,
        now,
        this.#channel,
      ),
    );
  }

  async retainedVersion(): Promise<number> {
    return Number(await this.#run(this.#r.get(`${this.#prefix}retained:version`)) ?? 0);
  }

  async retainedAll(): Promise<{ version: number; records: Map<string, Uint8Array> }> {
    const results = await this.#run(
      this.#r.multi()
        .get(`${this.#prefix}retained:version`)
        .hgetallBuffer(`${this.#prefix}retained`)
        .exec(),
    );
    const [[versionError, version], [hashError, hash]] = results as [Error | null, unknown][];
    if (versionError || hashError) throw versionError ?? hashError;
    const records = new Map<string, Uint8Array>();
    for (const [topic, record] of Object.entries(hash as Record<string, Buffer>)) {
      records.set(topic, new Uint8Array(record));
    }
    return { version: Number(version ?? 0), records };
  }
}
