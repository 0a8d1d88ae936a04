/**
 * The broker: options, hooks, listeners, sessions, and the routing of publishes.
 *
 * @module
 */

import { type Packet, PacketType, type QoS } from "./packets/types.ts";
import { ReasonCode, reasonName } from "./packets/reason_codes.ts";
import { decodePacket } from "./packets/codec.ts";
import { isValidTopicName } from "./packets/topic_rules.ts";
import { Client, type ClientLimits, clientLimits, type ClientNet } from "./client.ts";
import { ReadTurns } from "./read_turns.ts";
import { Clients } from "./clients.ts";
import { type Hook, Hooks } from "./hooks.ts";
import { obscureNotAuthorized, type Options, type ResolvedOptions, resolveOptions } from "./options.ts";
import { type Delivery, TopicsIndex, withinTopicLimits } from "./topics.ts";
import { Info } from "./system.ts";
import { Outbound, stripRoutingProperties } from "./outbound.ts";
import { logger } from "./logger.ts";
import type { Connection, Listener } from "./listener.ts";
import { restoreState } from "./restore.ts";
import { Sessions } from "./sessions.ts";
import { attachCluster, type Cluster, type MessageOrigin, restrictToOrigin } from "./cluster.ts";
import { closeCleanly } from "./cluster.ts";
import { ConnectHandler, connectTimeout } from "./connect.ts";
import { SubscriptionHandler } from "./subscriptions.ts";
import {
  type AckHold,
  type InlineSubscribeHandler,
  type InlineSubscribeOptions,
  InlineSubscribers,
  isInlineSubscriber,
} from "./inline.ts";
import { DurableAcks, PublishAcks } from "./publish_acks.ts";
import { SharedHandoff } from "./shared_handoff.ts";

/** The broker version reported in `$SYS/broker/version`. */
export const VERSION = "0.1.0";

const log = logger("server");
const RETAINED_SWEEP_EVERY_TICKS = 60;
const INLINE_CLIENT_ID = "inline";

/**
 * An MQTT v5 / v3.1.1 / v3.1 broker.
 *
 * @example A broker on a free TCP port
 * ```ts
 * import assert from "node:assert/strict";
 * import { Server, TCP } from "../mod.ts";
 * const server = new Server(); // then an auth hook (AllowHook, AuthHook), and serve() to accept clients
 * await server.addListener(new TCP({ id: "t1", address: "127.0.0.1:0" })); // binds at once
 * assert.match(server.listeners.get("t1")!.address, /^127\.0\.0\.1:[1-9]\d*$/); // the port chosen
 * await server.close();
 * ```
 */
export class Server {
  /** Options with defaults applied. */
  readonly options: ResolvedOptions;
  /** The hooks, in the order added. */
  readonly hooks: Hooks = new Hooks();
  /** Counters, published under `$SYS`. */
  readonly info: Info = new Info();
  /** Subscriptions and retained messages. */
  readonly topics: TopicsIndex = new TopicsIndex();
  /** Connected clients and remembered sessions. */
  readonly clients: Clients = new Clients();
  /** Listeners by id. */
  readonly listeners: Map<string, Listener> = new Map();

  readonly #inline: Client;
  readonly #outbound: Outbound;
  readonly #inlineSubscribers: InlineSubscribers;
  readonly #acks: PublishAcks;
  /** While a QoS 1/2 client publish is routed: the holds its inline subscribers returned. */
  #holds: AckHold[] | undefined;
  /** While a client publish is routed: its payload is still a view of the read buffer (see `#publishAccepted`). */
  #borrowed = false;
  /** Clients whose connection is being read (close waits for them). */
  readonly #connections = new Set<Client>();
  #clientLimits: ClientLimits | undefined;
  readonly #sessions: Sessions;
  readonly #connect: ConnectHandler;
  readonly #subscriptions: SubscriptionHandler;
  readonly #durable: DurableAcks;
  /** Process RSS in bytes, read once per tick (reading it per CONNECT costs too much in a storm). */
  #rss = Deno.memoryUsage().rss;
  #serving = false;
  #closing = false;
  #tickTimer: ReturnType<typeof setInterval> | undefined;
  #ticks = 0;
  #cluster: Cluster | undefined;
  /** In a cluster, the connections' read budget per event-loop turn (acks wait for the engine's replies). */
  #turns: ReadTurns | undefined;

  /**
   * Creates a broker. Add hooks and listeners, then call {@linkcode Server.serve}.
   *
   * @param options Options; all are optional.
   */
  constructor(options: Options = {}) {
    this.options = resolveOptions(options);
    this.#outbound = new Outbound(this.options.capabilities, this.info, this.hooks, this.clients);
    this.#durable = new DurableAcks({
      immediate: () =>
        this.options.durability === "async" || (!this.hooks.has("sync") && this.#cluster === undefined),
      sync: () => this.#cluster ? Promise.all([this.hooks.sync(), this.#cluster.sync()]) : this.hooks.sync(),
    });
    this.info.version = VERSION;
    this.info.countFrom(this.topics);
    const handoff = new SharedHandoff(this); // what a member leaving a shared group passes on
    this.#sessions = new Sessions({
      clients: this.clients,
      topics: this.topics,
      hooks: this.hooks,
      info: this.info,
      handoff,
      disconnectClient: (client, code) => this.disconnectClient(client, code),
      publishWill: (client, will, sent) => {
        const work = () => {
          this.#stamp(will);
          if (will.fixedHeader.retain) this.#retain(client, will);
          this.publishToSubscribers(will);
          sent();
        };
        const publish = () => this.#cluster?.atomically ? this.#cluster.atomically(work) : work();
        const held = this.#cluster?.leaseHeld(); // a node waking from a stall: known claimed or not
        if (held === undefined) publish();
        else held.then((current) => current && publish());
      },
      connectionEnded: (client) => this.#outbound.resumePublishers(client, true),
      sessionEnded: (clientId) => this.#cluster?.sessionEnded(clientId),
      atomically: (work) => this.#cluster?.atomically ? this.#cluster.atomically(work) : work(),
    });
    this.#connect = new ConnectHandler({
      options: this.options,
      hooks: this.hooks,
      info: this.info,
      listeners: this.listeners,
      sessions: this.#sessions,
      stamp: (packet) => this.#stamp(packet),
      resend: (client) => this.#outbound.resend(client),
      rss: () => this.#rss,
      cluster: () => this.#cluster,
    });
    this.#subscriptions = new SubscriptionHandler({
      options: this.options,
      hooks: this.hooks,
      topics: this.topics,
      handoff,
      disconnectClient: (client, code) => this.disconnectClient(client, code),
      sendDurable: (client, packet, after) => this.#durable.send(client, packet, after),
      deliverChecked: (client, delivery, packet, retained) =>
        this.#deliverChecked(client, delivery, packet, retained),
      cluster: () => this.#cluster,
    });
    this.#acks = new PublishAcks({
      options: this.options,
      hooks: this.hooks,
      durable: this.#durable,
    });
    this.#inlineSubscribers = new InlineSubscribers(this.topics, () => this.#inline);
    this.#inline = this.newClient(null, "local", INLINE_CLIENT_ID, true);
  }

  /**
   * Adds a hook; its `init(config)` runs first and a failure rejects.
   *
   * @param hook The hook.
   * @param config Passed to `hook.init`.
   */
  async addHook(hook: Hook, config?: unknown): Promise<void> {
    await this.hooks.add(hook, config);
  }

  /**
   * Makes this server a node of a cluster (e.g. `RedisCluster` from `@x/broker/cluster`); joins at once.
   *
   * @param cluster The cluster engine.
   * @throws {TypeError} When a cluster was already added or the server is serving.
   */
  async addCluster(cluster: Cluster): Promise<void> {
    if (this.#cluster !== undefined || this.#serving) throw new TypeError("Add one cluster, before serve()");
    await attachCluster(cluster, this, this.#sessions);
    this.#cluster = cluster;
    this.#turns = new ReadTurns();
  }

  /** The cluster this server is a node of, if any. */
  get cluster(): Cluster | undefined {
    return this.#cluster;
  }

  /**
   * Adds a listener and binds its address; if the server is serving, it starts accepting at once.
   *
   * @param listener The listener.
   * @throws {TypeError} When a listener with the same id exists.
   */
  async addListener(listener: Listener): Promise<void> {
    if (this.listeners.has(listener.id)) {
      throw new TypeError(`A listener with id "${listener.id}" was already added`);
    }
    await listener.init();
    this.listeners.set(listener.id, listener);
    log.info("Listener {id} ({protocol}) on {address}", {
      id: listener.id,
      protocol: listener.protocol,
      address: listener.address,
    });
    if (this.#serving) listener.serve(this.#establish);
  }

  /** Restores stored state (with a storage hook), then starts every listener and the periodic work. */
  async serve(): Promise<void> {
    if (this.#serving) return;
    this.#serving = true;
    this.info.started = Math.floor(Date.now() / 1000);
    await this.#restore();
    for (const listener of this.listeners.values()) listener.serve(this.#establish);
    this.#tick();
    this.#tickTimer = setInterval(() => this.#tick(), 1000);
    this.hooks.onStarted();
  }

  /**
   * Stops listening, sends v5 clients DISCONNECT 0x8B, waits for connections to close, and stops
   * the hooks in order.
   */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    clearInterval(this.#tickTimer);
    this.#outbound.close();
    await Promise.all([...this.listeners.values()].map((l) => l.close()));
    for (const client of this.clients.values()) {
      if (!client.closed) this.disconnectClient(client, ReasonCode.ServerShuttingDown);
    }
    this.#sessions.close();
    await Promise.all([...this.#connections].map((client) => client.readDone));
    await this.#cluster?.stop();
    await this.hooks.stop();
    this.#serving = false;
    this.hooks.onStopped();
    log.info("Server stopped");
  }

  /**
   * Creates a client object. Used by listeners (through `establish`) and for inline clients.
   *
   * @param conn The connection, or null for an inline client.
   * @param listener The listener id.
   * @param id The client id (may be empty until CONNECT).
   * @param inline Whether this is an inline client.
   * @returns The client.
   */
  newClient(conn: Connection | null, listener: string, id: string, inline: boolean): Client {
    const net: ClientNet = { conn, remote: inline ? "inline" : "", listener, inline };
    const { clientReadBufferSize, capabilities } = this.options;
    this.#clientLimits = clientLimits(this.#clientLimits, clientReadBufferSize, capabilities, this.#turns);
    const client = new Client(net, this.hooks, this.info, this.#clientLimits);
    client.id = id;
    if (inline) {
      client.properties.protocolVersion = 5;
      client.state.connected = true;
    }
    client.onClose = this.#onClientClosed;
    return client;
  }

  /**
   * Publishes a message from the server itself (the inline client): no ACL check, `$SYS` allowed.
   *
   * @param topic The topic name.
   * @param payload The payload; a string is UTF-8 encoded.
   * @param retain Whether to retain it.
   * @param qos The QoS (caps what subscribers get).
   * @throws {TypeError} When the inline client is not enabled.
   */
  publish(topic: string, payload: Uint8Array | string, retain: boolean, qos: QoS): Promise<void> {
    this.#requireInline();
    if (!isValidTopicName(topic)) throw new TypeError(`Topic name "${topic}" is not valid`);
    this.#publishInline(topic, payload, retain, qos);
    return Promise.resolve();
  }

  /**
   * Subscribes the inline client: `handler` gets every matching message. Retained messages are
   * delivered at once; subscribing again with the same filter and id replaces the handler; several
   * ids on one filter all fire; `$share/{group}/...` filters share with network clients.
   *
   * @param filter The topic filter.
   * @param subscriptionId Identifies this subscription (with the filter).
   * @param handler Called for each message; its payload is only valid during the call.
   * @param options `holdAcks`: the handler may hold publishers' acknowledgements.
   * @throws {TypeError} When the inline client is not enabled or the filter is invalid.
   */
  subscribe(
    filter: string,
    subscriptionId: number,
    handler: InlineSubscribeHandler,
    options: InlineSubscribeOptions = {},
  ): Promise<void> {
    this.#requireInline();
    this.#inlineSubscribers.add(filter, subscriptionId, handler, options);
    return Promise.resolve();
  }

  /**
   * Removes an inline subscription.
   *
   * @param filter The topic filter it was made with.
   * @param subscriptionId The id it was made with.
   * @throws {TypeError} When the inline client is not enabled.
   */
  unsubscribe(filter: string, subscriptionId: number): Promise<void> {
    this.#requireInline();
    this.#inlineSubscribers.remove(filter, subscriptionId);
    return Promise.resolve();
  }

  /**
   * Runs a packet through the normal processing as if `client` had sent it (after CONNECT). An
   * inline client (see {@linkcode Server.newClient}) skips ACL checks and may publish to `$SYS`.
   *
   * @param client The client the packet comes from.
   * @param packet The packet.
   */
  async injectPacket(client: Client, packet: Packet): Promise<void> {
    if (packet.fixedHeader.type === PacketType.Publish) {
      packet.fixedHeader.qos ??= 0;
      if (packet.payload) packet.payload = packet.payload.slice();
    }
    await this.#process(client, packet);
  }

  #requireInline(): void {
    if (!this.options.inlineClient) {
      throw new TypeError("The inline client is not enabled: set the option inlineClient to true");
    }
  }

  /**
   * Disconnects a client: v5 clients get a DISCONNECT with the reason code first.
   *
   * @param client The client.
   * @param code The reason code.
   */
  disconnectClient(client: Client, code: number): void {
    if (client.closed) return;
    if (client.properties.protocolVersion === 5 && client.state.connected) {
      client.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode: code });
    }
    const cause = new Error(`Disconnected by the server: ${reasonName(code)}`);
    if (this.options.capabilities.compatibilities.passiveClientDisconnect && !this.#closing) {
      client.state.stopCause ??= cause;
      return;
    }
    client.closeAfterFlush(cause);
  }

  // ---------------------------------------------------------------------------------------------
  // Connections

  readonly #establish = (listenerId: string, conn: Connection, remote: string): Promise<void> => {
    const client = this.newClient(conn, listenerId, "", false);
    client.net.remote = remote;
    if (this.#closing) {
      client.close(new Error("Server is shutting down"));
      return Promise.resolve();
    }
    client.startConnectTimeout(this.options.capabilities.connectTimeout, connectTimeout);
    // No closure or Promise chained per connection: idle connections are many.
    this.#connections.add(client);
    return client.read(this.#handleFrame, this.#handleFrameError, this.#readEnded);
  };

  readonly #readEnded = (client: Client): boolean => this.#connections.delete(client);

  readonly #handleFrameError = (client: Client, code: number): void => {
    log.debug("Client {id} sent a bad frame: {reason}", { id: client.id, reason: reasonName(code) });
    if (client.state.connected) this.disconnectClient(client, code);
    else client.close(new Error(`Bad packet before CONNECT: ${reasonName(code)}`));
  };

  readonly #handleFrame = (client: Client, header: number, body: Uint8Array): void | Promise<void> => {
    const decoded = decodePacket(header, body, client.properties.protocolVersion);
    if (!client.state.connected) {
      if (typeof decoded === "number") return this.#connect.refuseBadConnect(client, body, decoded);
      if (decoded.fixedHeader.type !== PacketType.Connect) {
        // [MQTT-3.1.0-1] the first packet must be CONNECT.
        client.close(new Error("The first packet was not CONNECT"));
        return;
      }
      return this.#connect.process(client, decoded);
    }
    if (typeof decoded === "number") return this.disconnectClient(client, decoded);
    if (this.hooks.has("onPacketRead")) {
      const read = this.hooks.onPacketRead(client, decoded);
      if (read instanceof Promise) return read.then((p) => this.#processRead(client, p));
      return this.#processRead(client, read);
    }
    return this.#process(client, decoded);
  };

  #processRead(client: Client, packet: Packet | number): void | Promise<void> {
    if (typeof packet === "number") return this.disconnectClient(client, packet);
    return this.#process(client, packet);
  }

  #process(client: Client, packet: Packet): void | Promise<void> {
    let result: void | Promise<void> = undefined;
    switch (packet.fixedHeader.type) {
      case PacketType.Publish:
        result = this.#processPublish(client, packet);
        break;
      case PacketType.Puback:
      case PacketType.Pubrec:
      case PacketType.Pubcomp: {
        const code = this.#outbound.acknowledged(client, packet); // 0x82: it answers another flow
        if (code !== 0) return this.disconnectClient(client, code);
        break;
      }
      case PacketType.Pubrel:
        this.#processPubrel(client, packet);
        break;
      case PacketType.Subscribe:
        result = this.#subscriptions.subscribe(client, packet);
        break;
      case PacketType.Unsubscribe:
        result = this.#subscriptions.unsubscribe(client, packet);
        break;
      case PacketType.Pingreq:
        client.send({ fixedHeader: { type: PacketType.Pingresp } });
        break;
      case PacketType.Disconnect:
        result = this.#processDisconnect(client, packet);
        break;
      case PacketType.Auth:
        result = this.#processAuth(client, packet);
        break;
      default:
        // [MQTT-3.1.0-2] a second CONNECT, or a packet only servers send.
        this.disconnectClient(client, ReasonCode.ProtocolError);
        return;
    }
    if (this.hooks.has("onPacketProcessed")) {
      if (result instanceof Promise) {
        return result.then(() => this.hooks.onPacketProcessed(client, packet));
      }
      this.hooks.onPacketProcessed(client, packet);
    }
    return result;
  }

  readonly #onClientClosed = (client: Client): void => {
    this.#sessions.ended(client, client.state.stopCause);
  };

  // ---------------------------------------------------------------------------------------------
  // PUBLISH, inbound

  #processPublish(client: Client, packet: Packet): void | Promise<void> {
    const caps = this.options.capabilities;
    const qos = packet.fixedHeader.qos ?? 0;
    const alias = packet.properties?.topicAlias;
    if (alias !== undefined) {
      // [MQTT-3.3.2-9/10] aliases up to the Topic Alias Maximum we advertised.
      if (alias > caps.topicAliasMaximum) {
        return this.#refusePublish(client, qos, ReasonCode.TopicAliasInvalid);
      }
      if (packet.topicName === "") {
        const topic = client.state.inboundAliases?.get(alias);
        if (topic === undefined) return this.#refusePublish(client, qos, ReasonCode.ProtocolError);
        packet.topicName = topic;
      } else {
        (client.state.inboundAliases ??= new Map()).set(alias, packet.topicName!);
      }
    }
    if (qos > caps.maximumQos) return this.#refusePublish(client, qos, ReasonCode.QoSNotSupported); // [MQTT-3.2.2-11]
    if (packet.fixedHeader.retain && !caps.retainAvailable) {
      return this.#refusePublish(client, qos, ReasonCode.RetainNotSupported); // [MQTT-3.2.2-14]
    }
    if (qos === 2) {
      const inbound = client.state.inflight.inboundQos2;
      if (inbound.has(packet.packetId!)) {
        // [MQTT-4.3.3-10] a duplicate: acknowledge again, do not deliver twice.
        const pubrec = { fixedHeader: { type: PacketType.Pubrec }, packetId: packet.packetId, reasonCode: 0 };
        this.#acks.inOrder(client, pubrec, undefined);
        return;
      }
      // [MQTT-3.3.4-9] more unacknowledged QoS 2 publishes than our Receive Maximum.
      if (inbound.size >= caps.receiveMaximum) {
        return this.#refusePublish(client, qos, ReasonCode.ReceiveMaximumExceeded);
      }
    }
    this.info.messagesReceived++;
    if (!withinTopicLimits(packet.topicName!, caps)) {
      this.info.traffic.dropped(qos, "rejected");
      // Not malformed, but not accepted here: v5 acks say so, v3 has no way to and is disconnected.
      if (client.properties.protocolVersion === 5) {
        return this.#acks.send(client, packet, ReasonCode.TopicNameInvalid);
      }
      return this.disconnectClient(client, ReasonCode.TopicNameInvalid);
    }
    if (client.net.inline) return this.#publishAllowed(client, packet, true); // no ACL for the server's own clients
    if (packet.topicName!.startsWith("$")) {
      // Clients may not publish to $SYS (or any $ topic): treated as an ACL denial.
      return this.#publishAllowed(client, packet, false);
    }
    const allowed = this.hooks.onACLCheck(client, packet.topicName!, true);
    if (allowed instanceof Promise) return allowed.then((ok) => this.#publishAllowed(client, packet, ok));
    return this.#publishAllowed(client, packet, allowed);
  }

  /** Refuses a PUBLISH by closing the connection (counted as a message dropped, "rejected"). */
  #refusePublish(client: Client, qos: number, code: number): void {
    this.info.traffic.dropped(qos, "rejected");
    this.disconnectClient(client, code);
  }

  #publishAllowed(client: Client, packet: Packet, allowed: boolean): void | Promise<void> {
    if (!allowed) {
      this.info.traffic.dropped(packet.fixedHeader.qos ?? 0, "acl_denied");
      // v5 acks carry the refusal; v3 gets a normal ack [MQTT-3.3.5-2].
      const code = client.properties.protocolVersion === 5
        ? obscureNotAuthorized(ReasonCode.NotAuthorized, this.options.capabilities.compatibilities)
        : 0;
      this.#acks.send(client, packet, code);
      return;
    }
    if (!this.hooks.has("onPublish")) return this.#publishAccepted(client, packet, packet);
    const result = this.hooks.onPublish(client, packet);
    if (result instanceof Promise) return result.then((r) => this.#publishAccepted(client, packet, r));
    return this.#publishAccepted(client, packet, result);
  }

  #publishAccepted(client: Client, original: Packet, result: Packet | number): void {
    if (typeof result === "number") {
      const qos = original.fixedHeader.qos ?? 0;
      this.info.traffic.dropped(qos, result === ReasonCode.NotAuthorized ? "acl_denied" : "rejected");
      const v5 = client.properties.protocolVersion === 5;
      this.#acks.send(client, original, v5 ? result : 0);
      return;
    }
    const packet = result;
    if (packet.payload && ((packet.fixedHeader.qos ?? 0) > 0 || packet.fixedHeader.retain)) {
      // Kept beyond this read (in flight, retained, by hooks): copied out of the read buffer. In a cluster,
      // a message that only leaves for other nodes (encoded into their batches at once) is not.
      const kept = this.#cluster === undefined || packet.fixedHeader.retain || this.hooks.has("onPublish") ||
        this.hooks.has("onPublished");
      if (kept) packet.payload = packet.payload.slice();
      else this.#borrowed = true; // copied by publishToSubscribers if anything here matches
    }
    packet.origin = client.id;
    this.#stamp(packet);
    if (packet.fixedHeader.retain) this.#retain(client, packet);
    // Inline subscribers (a bridge) may hold the ack until the message is safe elsewhere.
    const holds =
      (packet.fixedHeader.qos ?? 0) > 0 && this.#inlineSubscribers.holdingAcks && !client.net.inline
        ? [] as AckHold[]
        : undefined;
    const outer = this.#holds;
    if (holds) this.#holds = holds;
    const matched = this.publishToSubscribers(packet);
    this.#holds = outer;
    // Spec 3.4.2.1: a v5 server that knows nothing matched may say so with 0x10 (v3 acks carry no code).
    // In a cluster other nodes' matches are not known here, so it never claims to know.
    const code = matched === 0 && this.#cluster === undefined &&
        this.options.capabilities.compatibilities.ackNoMatchingSubscribers
      ? ReasonCode.NoMatchingSubscribers
      : 0;
    this.#acks.send(client, packet, code, holds?.length ? holds : undefined);
    this.hooks.onPublished(client, packet);
  }

  /** Sets `created` and `expiry` (capped by the server's maximum message expiry). */
  #stamp(packet: Packet): Packet {
    const now = Date.now();
    packet.created = now;
    const max = this.options.capabilities.maximumMessageExpiryInterval;
    const requested = packet.properties?.messageExpiryInterval;
    const seconds = requested === undefined ? max : max > 0 ? Math.min(requested, max) : requested;
    packet.expiry = seconds > 0 ? now + seconds * 1000 : 0;
    return packet;
  }

  #retain(client: Client, packet: Packet): void {
    const stored: Packet = {
      fixedHeader: { type: PacketType.Publish, qos: packet.fixedHeader.qos, retain: true },
      topicName: packet.topicName,
      payload: packet.payload,
      properties: stripRoutingProperties(packet.properties),
      created: packet.created,
      expiry: packet.expiry,
      origin: packet.origin,
    };
    const result = this.topics.retain(stored);
    if (result !== 0) this.hooks.onRetainMessage(client, stored, result);
    this.#cluster?.retain(stored);
  }

  // ---------------------------------------------------------------------------------------------
  // Routing

  /** Backpressure for a cluster node's inbox: `undefined`, or a promise while a subscriber is behind. */
  drained(): Promise<void> | undefined {
    return this.#outbound.drained();
  }

  /**
   * Delivers an accepted message to every matching subscriber on this server: the one routing seam.
   * In a cluster, a message accepted here also goes to the nodes whose routes match; one from another
   * node comes in with its origin (never forwarded again).
   *
   * @param packet The message, with `created`/`expiry` set and a payload it may keep.
   * @param from Where a message from another node came from; undefined for one accepted here.
   * @returns How many subscriptions on this server it matched (No Local ones of its publisher left
   *   out); each is delivered unless the subscriber's ACL refuses it. Other nodes' are not counted.
   */
  publishToSubscribers(packet: Packet, from?: MessageOrigin): number {
    let matched = 0;
    let subscribers = this.topics.subscribers(packet.topicName!);
    if (this.#borrowed) {
      this.#borrowed = false;
      const local = subscribers.subscriptions.size > 0 || subscribers.shared.size > 0 ||
        this.hooks.has("onSelectSubscribers");
      if (local) packet.payload = packet.payload!.slice();
    }
    if (from !== undefined) restrictToOrigin(subscribers, from); // another node's, or a shared hand-off
    else this.#cluster?.route(packet, subscribers);
    if (subscribers.shared.size > 0) this.topics.selectShared(subscribers, this.isOnline);
    if (this.hooks.has("onSelectSubscribers")) {
      const { subscriptions, shared } = subscribers; // hooks may add groups (a topic's kept match refuses them)
      subscribers = this.hooks.onSelectSubscribers({ subscriptions, shared: new Map(shared) }, packet);
    }
    // Many subscribers: each distinct encoding of the message is made once (the outbound side shares it).
    const fanOut = subscribers.subscriptions.size > 1;
    if (fanOut) this.#outbound.startFanOut(packet);
    for (const delivery of subscribers.subscriptions.values()) {
      // [MQTT-3.8.3-3] No Local: not back to the publisher.
      if (delivery.noLocal && delivery.clientId === packet.origin) continue;
      if (isInlineSubscriber(delivery.clientId)) {
        matched++;
        this.#inlineSubscribers.deliver(delivery, packet, this.#holds);
        continue;
      }
      const client = this.clients.get(delivery.clientId);
      if (client) {
        matched++;
        this.#deliverChecked(client, delivery, packet, false);
      }
    }
    if (fanOut) this.#outbound.endFanOut();
    return matched;
  }

  /**
   * Delivers after checking that the subscriber may read this topic: the ACL is checked on every
   * delivery, not only on subscribe, so a wildcard subscription never carries a denied topic and
   * changed rules apply to existing subscriptions. An async ACL answer delays only that delivery.
   */
  #deliverChecked(client: Client, delivery: Delivery, packet: Packet, retained: boolean): void {
    const allowed = this.hooks.onACLCheck(client, packet.topicName!, false);
    if (allowed === true) this.#outbound.deliver(client, delivery, packet, retained);
    else if (allowed instanceof Promise) {
      allowed.then((ok) => ok && this.#outbound.deliver(client, delivery, packet, retained));
    }
  }

  /**
   * Whether a client is connected (an inline subscriber always is): a shared group's message goes to
   * connected members first.
   *
   * @param clientId The client id.
   * @returns True when connected.
   */
  readonly isOnline = (clientId: string): boolean =>
    isInlineSubscriber(clientId) || !(this.clients.get(clientId)?.closed ?? true);

  // ---------------------------------------------------------------------------------------------
  // PUBREL: the end of an inbound QoS 2 flow

  #processPubrel(client: Client, packet: Packet): void {
    const id = packet.packetId!;
    const known = client.state.inflight.inboundQos2.delete(id);
    if (known) this.hooks.onQosComplete(client, { fixedHeader: { type: PacketType.Pubrec }, packetId: id });
    // Durable, so that a restart never remembers an id the client was told is released.
    this.#durable.send(client, {
      fixedHeader: { type: PacketType.Pubcomp },
      packetId: id,
      reasonCode: known ? 0 : ReasonCode.PacketIdentifierNotFound,
    });
  }

  // ---------------------------------------------------------------------------------------------
  // DISCONNECT, AUTH

  #processDisconnect(client: Client, packet: Packet): void | Promise<void> {
    const p = client.properties;
    const requested = packet.properties?.sessionExpiryInterval;
    if (requested !== undefined) {
      // [MQTT-3.14.2-2] a session that was to end on disconnect cannot be extended now.
      if (p.sessionExpiryInterval === 0 && requested !== 0) {
        return this.disconnectClient(client, ReasonCode.ProtocolError);
      }
      p.sessionExpiryInterval = Math.min(requested, this.options.capabilities.maximumSessionExpiryInterval);
    }
    // [MQTT-3.1.2-10] a normal DISCONNECT discards the will (closeCleanly drops it); 0x04 asks for it.
    client.state.cleanDisconnect = packet.reasonCode !== ReasonCode.DisconnectWithWill;
    const reason = `Client disconnected: ${reasonName(packet.reasonCode ?? 0)}`;
    return closeCleanly(this.#cluster, client, reason); // in a cluster, once the will's drop is stored
  }

  async #processAuth(client: Client, packet: Packet): Promise<void> {
    if (!this.hooks.has("onAuthPacket")) return this.disconnectClient(client, ReasonCode.ProtocolError);
    const answer = await this.hooks.onAuthPacket(client, packet);
    if (typeof answer === "number") return this.disconnectClient(client, answer);
    client.send(answer);
  }

  // ---------------------------------------------------------------------------------------------
  // Inline publishing and periodic work

  /** Rebuilds sessions, subscriptions, in-flight and queued messages and retained messages from storage. */
  async #restore(): Promise<void> {
    if (!this.hooks.has("storedClients")) return;
    const { live, expired } = await restoreState({
      hooks: this.hooks,
      clients: this.clients,
      topics: this.topics,
      info: this.info,
      restoreSysInfo: this.options.capabilities.compatibilities.restoreSysInfoOnRestart,
      newClient: (listener, id) => this.newClient(null, listener, id, false),
    });
    this.#sessions.restored(live, expired);
  }

  #publishInline(topic: string, payload: Uint8Array | string, retain: boolean, qos: QoS): void {
    const bytes = typeof payload === "string" ? new TextEncoder().encode(payload) : payload.slice();
    const packet = this.#stamp({
      fixedHeader: { type: PacketType.Publish, qos, retain },
      topicName: topic,
      payload: bytes,
      origin: this.#inline.id,
    });
    if (retain) this.#retain(this.#inline, packet);
    this.publishToSubscribers(packet);
  }

  #tick(): void {
    this.#ticks++;
    const now = Date.now();
    const memory = Deno.memoryUsage();
    this.#rss = memory.rss;
    this.info.memoryAlloc = memory.heapUsed;
    this.#sweepClients(now);
    this.#connect.tick(now);
    if (this.#ticks % RETAINED_SWEEP_EVERY_TICKS === 0) this.#subscriptions.expireRetainedMessages(now);
    const interval = this.options.sysTopicResendInterval;
    if (interval > 0 && (this.#ticks - 1) % interval === 0) this.#publishSysTopics(now);
  }

  /** Ends expired sessions, and disconnects clients that have not read their queued bytes in time. */
  #sweepClients(now: number): void {
    const writeTimeout = this.options.capabilities.writeTimeout * 1000;
    for (const client of this.clients.values()) {
      if (client.net.inline) continue;
      if (!client.closed) {
        if (client.writeStalledFor(now) > writeTimeout) {
          log.warn("Client {id} did not read for {seconds} s: disconnecting", {
            id: client.id,
            seconds: writeTimeout / 1000,
          });
          client.close(new Error("Write timeout: the client stopped reading"));
        }
        continue;
      }
      this.#sessions.expireIfDue(client, now);
    }
  }

  #publishSysTopics(now: number): void {
    const info = this.info;
    info.time = Math.floor(now / 1000);
    info.uptime = info.time - info.started;
    info.clientsTotal = this.clients.count;
    info.clientsDisconnected = info.clientsTotal - info.clientsConnected;
    this.hooks.onSysInfoTick(info);
    for (const [topic, value] of info.sysTopics()) this.#publishInline(topic, value, true, 0);
  }
}
