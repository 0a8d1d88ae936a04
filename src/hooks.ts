/**
 * The hook interface and its dispatcher. Every broker feature beyond the protocol itself (auth,
 * storage, logging, metrics) is a hook.
 *
 * A hook is an object with an `id` and any subset of the event methods below. The dispatcher
 * finds which methods a hook has when it is added and keeps one array per event, so an event
 * that no hook implements costs one length check.
 *
 * Events that may change the outcome (`onConnectAuthenticate`, `onACLCheck`, `onConnect`,
 * `onAuthPacket`, `onPacketRead`, `onSubscribe`, `onUnsubscribe`, `onPublish`, `onWill`) may
 * return a Promise; the broker waits for it without reordering that client's packets. The
 * other events are notifications: they run synchronously, and a Promise they return is not
 * waited for (a rejection is logged).
 *
 * @module
 */

import type { Packet } from "./packets/types.ts";
import { MqttError } from "./packets/reason_codes.ts";
import type { Subscribers } from "./topics.ts";
import type { Client } from "./client.ts";
import type { Info } from "./system.ts";
import { logger } from "./logger.ts";
import type {
  ClientRecord,
  InflightRecord,
  StoredMessage,
  SubscriptionRecord,
  SysInfoRecord,
} from "./storage.ts";

/** Why a message for a client was dropped, as `onPublishDropped` reports it. */
export type DropReason = "queue_full" | "expired" | "too_large" | "offline" | "packet_id_exhausted";

/** A value or a Promise of it. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * What a storage hook adds: the `stored*` events answered on `serve()` to restore state (the records
 * of `storage.ts`), and `sync()`.
 */
export interface StorageEvents {
  /**
   * Resolves when every write queued before the call is durable. With `durability: "sync"` the
   * server waits for it before acknowledging QoS 1/2 publishes and (un)subscriptions.
   */
  sync?(): Promise<void>;
  /** Stored client sessions. */
  storedClients?(): MaybePromise<ClientRecord[]>;
  /** Stored subscriptions. */
  storedSubscriptions?(): MaybePromise<SubscriptionRecord[]>;
  /** Stored in-flight messages. */
  storedInflightMessages?(): MaybePromise<InflightRecord[]>;
  /** Stored retained messages. */
  storedRetainedMessages?(): MaybePromise<StoredMessage[]>;
  /** Stored $SYS counters (Mochi's JSON names). */
  storedSysInfo?(): MaybePromise<SysInfoRecord | undefined>;
}

/** What each `stored*` event returns. */
export interface StoredRecords {
  /** Sessions. */
  storedClients: ClientRecord;
  /** Subscriptions. */
  storedSubscriptions: SubscriptionRecord;
  /** In-flight and queued messages. */
  storedInflightMessages: InflightRecord;
  /** Retained messages. */
  storedRetainedMessages: StoredMessage;
}

/**
 * A broker hook. Implement any subset of the methods; see the module doc for which may be async.
 * Hooks run in the order they were added.
 */
export interface Hook extends StorageEvents {
  /** A unique, human-readable id. */
  readonly id: string;
  /** Called by `addHook` with its config; a throw or rejection makes `addHook` fail. */
  init?(config: unknown): MaybePromise<void>;
  /** Called in order by `server.close()`. */
  stop?(): MaybePromise<void>;
  /** The server has started serving. */
  onStarted?(): void;
  /** The server has stopped. */
  onStopped?(): void;
  /** Authenticate a CONNECT; the client is allowed if ANY hook returns true (none: denied). */
  onConnectAuthenticate?(client: Client, packet: Packet): MaybePromise<boolean>;
  /** May the client read (`write` false) or publish to (`write` true) a topic? Allowed if ANY hook says so. */
  onACLCheck?(client: Client, topic: string, write: boolean): MaybePromise<boolean>;
  /** The $SYS info was refreshed (every `sysTopicResendInterval`). */
  onSysInfoTick?(info: Info): void;
  /** A client sent a valid CONNECT; throw an {@linkcode MqttError} to refuse it with that code. */
  onConnect?(client: Client, packet: Packet): MaybePromise<void>;
  /** A session is about to be established (after authentication). */
  onSessionEstablish?(client: Client, packet: Packet): void;
  /** A session was established and CONNACK sent. */
  onSessionEstablished?(client: Client, packet: Packet): void;
  /** A client disconnected; `expire` is true when its session ends now. */
  onDisconnect?(client: Client, error: Error | undefined, expire: boolean): void;
  /** An AUTH packet arrived; return the AUTH packet to answer with, or throw an MqttError. */
  onAuthPacket?(client: Client, packet: Packet): MaybePromise<Packet>;
  /** A packet was read, before validation; return it (possibly changed) or throw to close the connection. */
  onPacketRead?(client: Client, packet: Packet): MaybePromise<Packet>;
  /** A packet is about to be encoded for a client; return it, possibly changed. Synchronous. */
  onPacketEncode?(client: Client, packet: Packet): Packet;
  /** A packet's bytes were queued for the client's socket. */
  onPacketSent?(client: Client, packet: Packet, bytes: Uint8Array): void;
  /** A packet from a client has been handled; `error` is set when handling failed. */
  onPacketProcessed?(client: Client, packet: Packet, error?: Error): void;
  /** A SUBSCRIBE is about to be processed; return it, possibly changed. */
  onSubscribe?(client: Client, packet: Packet): MaybePromise<Packet>;
  /** A SUBSCRIBE was processed with these reason codes. */
  onSubscribed?(client: Client, packet: Packet, reasonCodes: number[]): void;
  /** Subscribers of a message were found; return them, possibly changed. Synchronous. */
  onSelectSubscribers?(subscribers: Subscribers, packet: Packet): Subscribers;
  /** An UNSUBSCRIBE is about to be processed; return it, possibly changed. */
  onUnsubscribe?(client: Client, packet: Packet): MaybePromise<Packet>;
  /** An UNSUBSCRIBE was processed. */
  onUnsubscribed?(client: Client, packet: Packet): void;
  /**
   * A PUBLISH arrived (after the ACL check). Return it, possibly changed. Throw an
   * {@linkcode MqttError}: with a code >= 0x80 to reject it (v5 acks carry the code), with a
   * code below 0x80 to acknowledge it but neither deliver nor retain it.
   */
  onPublish?(client: Client, packet: Packet): MaybePromise<Packet>;
  /** A PUBLISH was delivered to its subscribers. */
  onPublished?(client: Client, packet: Packet): void;
  /** A message for this client was dropped, and why (queue full, too large, expired, ...). */
  onPublishDropped?(client: Client, packet: Packet, reason: DropReason): void;
  /** A retained message was stored (`result` 1) or cleared (-1). */
  onRetainMessage?(client: Client, packet: Packet, result: number): void;
  /** A retained message was sent to a client on subscribe. */
  onRetainPublished?(client: Client, packet: Packet): void;
  /**
   * A step of a QoS 1/2 flow is pending for a client: an outbound PUBLISH sent (`sent` is the
   * time) or queued for later (`sent` 0: offline, or over the client's Receive Maximum), its
   * PUBREL, or an inbound QoS 2 PUBREC awaiting the client's PUBREL. `resends` counts redeliveries.
   */
  onQosPublish?(client: Client, packet: Packet, sent: number, resends: number): void;
  /** A QoS 1/2 flow completed: an outbound message acknowledged, or an inbound QoS 2 PUBREL received. */
  onQosComplete?(client: Client, packet: Packet): void;
  /** An in-flight or queued message was dropped (expired, or its session ended). */
  onQosDropped?(client: Client, packet: Packet): void;
  /** No packet id was free for a client; the message was dropped. */
  onPacketIDExhausted?(client: Client, packet: Packet): void;
  /** A will is about to be sent; return it, possibly changed, or throw to cancel it. */
  onWill?(client: Client, will: Packet): MaybePromise<Packet>;
  /** A will was sent. */
  onWillSent?(client: Client, packet: Packet): void;
  /** A disconnected client's session expired. */
  onClientExpired?(client: Client): void;
  /** A retained message expired. */
  onRetainedExpired?(topic: string): void;
}

/** Every event method name, in the order of DESIGN.md. */
export const HOOK_EVENTS = [
  "onStarted",
  "onStopped",
  "onConnectAuthenticate",
  "onACLCheck",
  "onSysInfoTick",
  "onConnect",
  "onSessionEstablish",
  "onSessionEstablished",
  "onDisconnect",
  "onAuthPacket",
  "onPacketRead",
  "onPacketEncode",
  "onPacketSent",
  "onPacketProcessed",
  "onSubscribe",
  "onSubscribed",
  "onSelectSubscribers",
  "onUnsubscribe",
  "onUnsubscribed",
  "onPublish",
  "onPublished",
  "onPublishDropped",
  "onRetainMessage",
  "onRetainPublished",
  "onQosPublish",
  "onQosComplete",
  "onQosDropped",
  "onPacketIDExhausted",
  "onWill",
  "onWillSent",
  "onClientExpired",
  "onRetainedExpired",
  "storedClients",
  "storedSubscriptions",
  "storedInflightMessages",
  "storedRetainedMessages",
  "storedSysInfo",
  "sync",
] as const;

/** The name of a hook event. */
export type HookEvent = typeof HOOK_EVENTS[number];

const log = logger("hooks");

/**
 * Runs hooks. Holds, for each event, the hooks that implement it, in the order added.
 *
 * @example Adding and calling a hook
 * ```ts
 * import assert from "node:assert/strict";
 * import { Hooks } from "./hooks.ts";
 *
 * const hooks = new Hooks();
 * let started = 0;
 * await hooks.add({ id: "counter", onStarted: () => void started++ });
 * hooks.onStarted();
 * assert.equal(started, 1);
 * ```
 */
export class Hooks {
  /** The hooks, in the order added. */
  readonly list: Hook[] = [];
  /** Hook errors counted since start (thrown or rejected by any hook). */
  errors = 0;
  readonly #byEvent = new Map<HookEvent, Hook[]>();
  /** The lists of the events fired per delivery and acknowledgement, at hand (no lookup by name). */
  readonly #qosPublish: Hook[] = this.#for("onQosPublish");
  readonly #qosComplete: Hook[] = this.#for("onQosComplete");

  /**
   * Adds a hook: runs `init(config)` and indexes its event methods.
   *
   * @param hook The hook.
   * @param config Passed to `hook.init`.
   * @throws {TypeError} When a hook with the same id exists.
   */
  async add(hook: Hook, config?: unknown): Promise<void> {
    if (this.list.some((h) => h.id === hook.id)) {
      throw new TypeError(`A hook with id "${hook.id}" was already added`);
    }
    await hook.init?.(config);
    this.list.push(hook);
    for (const event of HOOK_EVENTS) {
      if (typeof hook[event] === "function") this.#for(event).push(hook);
    }
  }

  /**
   * Whether any hook implements an event.
   *
   * @param event The event name.
   * @returns True when at least one hook implements it.
   */
  has(event: HookEvent): boolean {
    return (this.#byEvent.get(event)?.length ?? 0) > 0;
  }

  /** Stops every hook in order; errors are logged and do not stop the others. */
  async stop(): Promise<void> {
    for (const hook of this.list) {
      try {
        await hook.stop?.();
      } catch (error) {
        this.#failed(hook, "stop", error);
      }
    }
  }

  /** Fires `onStarted`. */
  onStarted(): void {
    this.#fire("onStarted");
  }

  /** Fires `onStopped`. */
  onStopped(): void {
    this.#fire("onStopped");
  }

  /**
   * Asks every auth hook; true if any allows.
   *
   * @param client The connecting client.
   * @param packet Its CONNECT.
   * @returns Whether the client may connect.
   */
  onConnectAuthenticate(client: Client, packet: Packet): MaybePromise<boolean> {
    return this.#any("onConnectAuthenticate", client, packet);
  }

  /**
   * Asks every ACL hook; true if any allows.
   *
   * @param client The client.
   * @param topic The topic or filter.
   * @param write True for publish, false for subscribe/read.
   * @returns Whether the access is allowed.
   */
  onACLCheck(client: Client, topic: string, write: boolean): MaybePromise<boolean> {
    return this.#any("onACLCheck", client, topic, write);
  }

  /** Fires `onSysInfoTick`. */
  onSysInfoTick(info: Info): void {
    this.#fire("onSysInfoTick", info);
  }

  /**
   * Runs `onConnect` hooks in order; the first MqttError thrown refuses the connection.
   *
   * @returns Undefined, or the reason code to refuse with.
   */
  onConnect(client: Client, packet: Packet): MaybePromise<number | undefined> {
    return this.#each("onConnect", client, packet);
  }

  /** Fires `onSessionEstablish`. */
  onSessionEstablish(client: Client, packet: Packet): void {
    this.#fire("onSessionEstablish", client, packet);
  }

  /** Fires `onSessionEstablished`. */
  onSessionEstablished(client: Client, packet: Packet): void {
    this.#fire("onSessionEstablished", client, packet);
  }

  /** Fires `onDisconnect`. */
  onDisconnect(client: Client, error: Error | undefined, expire: boolean): void {
    this.#fire("onDisconnect", client, error, expire);
  }

  /**
   * Chains `onAuthPacket`.
   *
   * @returns The AUTH packet to answer with, or a reason code when a hook refused.
   */
  onAuthPacket(client: Client, packet: Packet): MaybePromise<Packet | number> {
    return this.#chain("onAuthPacket", client, packet);
  }

  /**
   * Chains `onPacketRead`.
   *
   * @returns The packet, or a reason code when a hook refused it.
   */
  onPacketRead(client: Client, packet: Packet): MaybePromise<Packet | number> {
    return this.#chain("onPacketRead", client, packet);
  }

  /**
   * Chains `onPacketEncode` (synchronous).
   *
   * @returns The packet to encode.
   */
  onPacketEncode(client: Client, packet: Packet): Packet {
    for (const h of this.#get("onPacketEncode")) {
      try {
        packet = h.onPacketEncode!(client, packet);
      } catch (error) {
        this.#failed(h, "onPacketEncode", error);
      }
    }
    return packet;
  }

  /** Fires `onPacketSent`. */
  onPacketSent(client: Client, packet: Packet, bytes: Uint8Array): void {
    this.#fire("onPacketSent", client, packet, bytes);
  }

  /** Fires `onPacketProcessed`. */
  onPacketProcessed(client: Client, packet: Packet, error?: Error): void {
    this.#fire("onPacketProcessed", client, packet, error);
  }

  /**
   * Chains `onSubscribe`.
   *
   * @returns The packet, or a reason code when a hook refused it.
   */
  onSubscribe(client: Client, packet: Packet): MaybePromise<Packet | number> {
    return this.#chain("onSubscribe", client, packet);
  }

  /** Fires `onSubscribed`. */
  onSubscribed(client: Client, packet: Packet, reasonCodes: number[]): void {
    this.#fire("onSubscribed", client, packet, reasonCodes);
  }

  /**
   * Chains `onSelectSubscribers` (synchronous).
   *
   * @returns The subscribers to deliver to.
   */
  onSelectSubscribers(subscribers: Subscribers, packet: Packet): Subscribers {
    for (const h of this.#get("onSelectSubscribers")) {
      try {
        subscribers = h.onSelectSubscribers!(subscribers, packet);
      } catch (error) {
        this.#failed(h, "onSelectSubscribers", error);
      }
    }
    return subscribers;
  }

  /**
   * Chains `onUnsubscribe`.
   *
   * @returns The packet, or a reason code when a hook refused it.
   */
  onUnsubscribe(client: Client, packet: Packet): MaybePromise<Packet | number> {
    return this.#chain("onUnsubscribe", client, packet);
  }

  /** Fires `onUnsubscribed`. */
  onUnsubscribed(client: Client, packet: Packet): void {
    this.#fire("onUnsubscribed", client, packet);
  }

  /**
   * Chains `onPublish`.
   *
   * @returns The packet, or the reason code a hook threw (>= 0x80 reject, < 0x80 ack and ignore).
   */
  onPublish(client: Client, packet: Packet): MaybePromise<Packet | number> {
    return this.#chain("onPublish", client, packet);
  }

  /** Fires `onPublished`. */
  onPublished(client: Client, packet: Packet): void {
    this.#fire("onPublished", client, packet);
  }

  /** Fires `onPublishDropped`. */
  onPublishDropped(client: Client, packet: Packet, reason: DropReason): void {
    this.#fire("onPublishDropped", client, packet, reason);
  }

  /** Fires `onRetainMessage`. */
  onRetainMessage(client: Client, packet: Packet, result: number): void {
    this.#fire("onRetainMessage", client, packet, result);
  }

  /** Fires `onRetainPublished`. */
  onRetainPublished(client: Client, packet: Packet): void {
    this.#fire("onRetainPublished", client, packet);
  }

  /** Fires `onQosPublish`. */
  onQosPublish(client: Client, packet: Packet, sent: number, resends: number): void {
    // Small enough to inline where it runs per delivery; no lookup by name when no hook has it.
    if (this.#qosPublish.length > 0) this.#qosPublishTo(client, packet, sent, resends);
  }

  /** Fires `onQosComplete`. */
  onQosComplete(client: Client, packet: Packet): void {
    if (this.#qosComplete.length > 0) this.#qosCompleteTo(client, packet);
  }

  /** Calls each hook's `onQosPublish` by name (a fast property load), not through `invoke`. */
  #qosPublishTo(client: Client, packet: Packet, sent: number, resends: number): void {
    const hooks = this.#qosPublish;
    for (let i = 0; i < hooks.length; i++) {
      try {
        const result = hooks[i].onQosPublish!(client, packet, sent, resends) as unknown;
        if (result instanceof Promise) result.catch((error) => this.#failed(hooks[i], "onQosPublish", error));
      } catch (error) {
        this.#failed(hooks[i], "onQosPublish", error);
      }
    }
  }

  #qosCompleteTo(client: Client, packet: Packet): void {
    const hooks = this.#qosComplete;
    for (let i = 0; i < hooks.length; i++) {
      try {
        const result = hooks[i].onQosComplete!(client, packet) as unknown;
        if (result instanceof Promise) {
          result.catch((error) => this.#failed(hooks[i], "onQosComplete", error));
        }
      } catch (error) {
        this.#failed(hooks[i], "onQosComplete", error);
      }
    }
  }

  /** Fires `onQosDropped`. */
  onQosDropped(client: Client, packet: Packet): void {
    this.#fire("onQosDropped", client, packet);
  }

  /** Fires `onPacketIDExhausted`. */
  onPacketIDExhausted(client: Client, packet: Packet): void {
    this.#fire("onPacketIDExhausted", client, packet);
  }

  /**
   * Chains `onWill`.
   *
   * @returns The will to send, or a reason code when a hook cancelled it.
   */
  onWill(client: Client, will: Packet): MaybePromise<Packet | number> {
    return this.#chain("onWill", client, will);
  }

  /** Fires `onWillSent`. */
  onWillSent(client: Client, packet: Packet): void {
    this.#fire("onWillSent", client, packet);
  }

  /** Fires `onClientExpired`. */
  onClientExpired(client: Client): void {
    this.#fire("onClientExpired", client);
  }

  /** Fires `onRetainedExpired`. */
  onRetainedExpired(topic: string): void {
    this.#fire("onRetainedExpired", topic);
  }

  /**
   * Collects the records of one kind from every storage hook (for restoring on start).
   *
   * @param event Which `stored*` event.
   * @returns The records of all hooks, in hook order.
   */
  async stored<E extends keyof StoredRecords>(event: E): Promise<StoredRecords[E][]> {
    const all: StoredRecords[E][] = [];
    for (const h of this.#get(event)) {
      try {
        all.push(...(await h[event]!()) as StoredRecords[E][]);
      } catch (error) {
        this.#failed(h, event, error);
        throw error;
      }
    }
    return all;
  }

  /**
   * The $SYS counters saved by the first storage hook that has them.
   *
   * @returns The saved counters, or undefined.
   */
  async storedSysInfo(): Promise<SysInfoRecord | undefined> {
    for (const h of this.#get("storedSysInfo")) {
      const info = await h.storedSysInfo!();
      if (info) return info;
    }
    return undefined;
  }

  /**
   * Waits for every storage hook's pending writes to be durable.
   *
   * @returns Resolves when all hooks' `sync()` resolved.
   */
  async sync(): Promise<void> {
    const hooks = this.#get("sync");
    if (hooks.length === 1) return await hooks[0].sync!();
    await Promise.all(hooks.map((h) => h.sync!()));
  }

  #for(event: HookEvent): Hook[] {
    let list = this.#byEvent.get(event);
    if (!list) this.#byEvent.set(event, list = []);
    return list;
  }

  #get(event: HookEvent): Hook[] {
    return this.#byEvent.get(event) ?? EMPTY;
  }

  #failed(hook: Hook, event: string, error: unknown): void {
    this.errors++;
    log.error("Hook {hook} failed in {event}: {error}", { hook: hook.id, event, error: String(error) });
  }

  /** Calls a notification on every hook that has it; failures are logged and counted. */
  #fire(event: HookEvent, a?: unknown, b?: unknown, c?: unknown, d?: unknown): void {
    const hooks = this.#get(event);
    for (let i = 0; i < hooks.length; i++) {
      const hook = hooks[i];
      try {
        const result = invoke(hook, event, a, b, c, d);
        if (result instanceof Promise) result.catch((error) => this.#failed(hook, event, error));
      } catch (error) {
        this.#failed(hook, event, error);
      }
    }
  }

  /** Converts a throw into a reason code: MqttError keeps its code, anything else is 0x83 (logged). */
  #codeOf(hook: Hook, event: string, error: unknown): number {
    if (error instanceof MqttError) return error.reasonCode;
    this.#failed(hook, event, error);
    return 0x83;
  }

  /** True if any hook says so; waits only when a hook answers with a Promise. */
  #any(event: HookEvent, a: unknown, b: unknown, c?: unknown): MaybePromise<boolean> {
    const hooks = this.#get(event);
    for (let i = 0; i < hooks.length; i++) {
      let result: unknown;
      try {
        result = invoke(hooks[i], event, a, b, c);
      } catch (error) {
        this.#failed(hooks[i], event, error);
        continue;
      }
      if (result instanceof Promise) return this.#anyAsync(event, hooks, i, result, a, b, c);
      if (result) return true;
    }
    return false;
  }

  async #anyAsync(
    event: HookEvent,
    hooks: Hook[],
    start: number,
    first: Promise<unknown>,
    a: unknown,
    b: unknown,
    c: unknown,
  ): Promise<boolean> {
    for (let i = start; i < hooks.length; i++) {
      try {
        if (await (i === start ? first : invoke(hooks[i], event, a, b, c))) return true;
      } catch (error) {
        this.#failed(hooks[i], event, error);
      }
    }
    return false;
  }

  /** Runs every hook in order; the first MqttError thrown gives its reason code. */
  #each(event: HookEvent, a: unknown, b: unknown): MaybePromise<number | undefined> {
    const hooks = this.#get(event);
    for (let i = 0; i < hooks.length; i++) {
      try {
        const result = invoke(hooks[i], event, a, b);
        if (result instanceof Promise) return this.#eachAsync(event, hooks, i, result, a, b);
      } catch (error) {
        return this.#codeOf(hooks[i], event, error);
      }
    }
    return undefined;
  }

  async #eachAsync(
    event: HookEvent,
    hooks: Hook[],
    start: number,
    first: Promise<unknown>,
    a: unknown,
    b: unknown,
  ): Promise<number | undefined> {
    for (let i = start; i < hooks.length; i++) {
      try {
        await (i === start ? first : invoke(hooks[i], event, a, b));
      } catch (error) {
        return this.#codeOf(hooks[i], event, error);
      }
    }
    return undefined;
  }

  /** Passes a packet through every hook in order, each getting the previous one's result. */
  #chain(event: HookEvent, client: Client, packet: Packet): MaybePromise<Packet | number> {
    const hooks = this.#get(event);
    for (let i = 0; i < hooks.length; i++) {
      try {
        const result = invoke(hooks[i], event, client, packet) as MaybePromise<Packet> | undefined;
        if (result instanceof Promise) return this.#chainAsync(event, hooks, i, client, packet, result);
        packet = result ?? packet;
      } catch (error) {
        return this.#codeOf(hooks[i], event, error);
      }
    }
    return packet;
  }

  async #chainAsync(
    event: HookEvent,
    hooks: Hook[],
    start: number,
    client: Client,
    packet: Packet,
    first: Promise<Packet>,
  ): Promise<Packet | number> {
    for (let i = start; i < hooks.length; i++) {
      try {
        const next = i === start ? first : invoke(hooks[i], event, client, packet) as MaybePromise<Packet>;
        packet = (await next) ?? packet;
      } catch (error) {
        return this.#codeOf(hooks[i], event, error);
      }
    }
    return packet;
  }
}

/**
 * Calls a hook's event method by name, with no closure per call (the hot path calls events for
 * every packet).
 */
function invoke(hook: Hook, event: HookEvent, a?: unknown, b?: unknown, c?: unknown, d?: unknown): unknown {
  const method = hook[event] as unknown as (
    this: Hook,
    a: unknown,
    b: unknown,
    c: unknown,
    d: unknown,
  ) => unknown;
  return method.call(hook, a, b, c, d);
}

const EMPTY: Hook[] = [];
