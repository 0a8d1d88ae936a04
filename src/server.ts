/**
 * The broker: options, hooks, listeners, sessions, and the routing of publishes.
 *
 * @module
 */

import type { Packet, ProtocolVersion, QoS, Subscription } from "./packets/types.ts";
import { PacketType } from "./packets/types.ts";
import { ReasonCode, reasonName, toV3ConnackCode } from "./packets/reason_codes.ts";
import { decodePacket } from "./packets/codec.ts";
import { isValidTopicFilter, isValidTopicName } from "./packets/topic_rules.ts";
import { Client, type ClientNet, type Connection } from "./client.ts";
import { Clients } from "./clients.ts";
import { type Hook, Hooks } from "./hooks.ts";
import { NEVER_EXPIRES, type Options, type ResolvedOptions, resolveOptions } from "./options.ts";
import { type Delivery, parseFilter, TopicsIndex } from "./topics.ts";
import { Info } from "./system.ts";
import { Outbound, stripRoutingProperties } from "./outbound.ts";
import { logger } from "./logger.ts";
import type { Listener } from "../listeners/listener.ts";
import { restoreState } from "./restore.ts";

/** The broker version reported in `$SYS/broker/version`. */
export const VERSION = "0.1.0";

const log = logger("server");

const PROTOCOL_NAMES: Record<number, string> = { 3: "3.1", 4: "3.1.1", 5: "5.0" };

/**
 * One `info` line per connect, disconnect and refusal, as Mosquitto logs them: the client id, the
 * listener, the remote address and the protocol version, then why.
 */
function logConnection(what: "connected" | "disconnected" | "refused", client: Client, reason: string): void {
  if (!log.isEnabledFor("info")) return;
  log.info("Client {client} {what} (listener {listener}, remote {remote}, MQTT {version}): {reason}", {
    client: client.id || "(no id)",
    what,
    listener: client.net.listener,
    remote: client.net.remote,
    version: PROTOCOL_NAMES[client.properties.protocolVersion] ?? client.properties.protocolVersion,
    reason,
  });
}
/** setTimeout's longest delay, in whole seconds. */
const MAX_TIMER_SECONDS = Math.floor(0x7fffffff / 1000);
const RETAINED_SWEEP_EVERY_TICKS = 60;
const INLINE_CLIENT_ID = "inline";
/** Inline subscriptions live in the topic index under ids no network client can have (U+0000 is not allowed in client ids). */
const INLINE_SUBSCRIBER_PREFIX = "\u0000inline\u0000";

/** Receives messages for an inline subscription: the inline client, the subscription and the message. */
export type InlineSubscribeHandler = (client: Client, subscription: Subscription, packet: Packet) => void;

interface InlineSubscriber {
  subscription: Subscription;
  handler: InlineSubscribeHandler;
}

/**
 * An MQTT v5 / v3.1.1 / v3.1 broker.
 *
 * @example A broker on a free TCP port
 * ```ts
 * import { AllowHook, Server, TCP } from "../mod.ts";
 * const server = new Server();
 * await server.addHook(new AllowHook());
 * await server.addListener(new TCP({ id: "t1", address: "127.0.0.1:0" }));
 * await server.serve();
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
  readonly #inlineSubscribers = new Map<string, InlineSubscriber>();
  readonly #connections = new Set<Promise<void>>();
  /** Clients whose CONNECT was accepted: only these are counted, have wills, and own sessions. */
  readonly #accepted = new WeakSet<Client>();
  readonly #pendingWills = new Map<string, { client: Client; timer: ReturnType<typeof setTimeout> }>();
  #durableAcks: [Client, Packet, (() => void) | undefined][] = [];
  /** Process RSS in bytes, read once per tick (reading it per CONNECT costs too much in a storm). */
  #rss = Deno.memoryUsage().rss;
  /** Connections per IP in the current second, for `maximumConnectionRatePerIp`. */
  readonly #connectionRates = new Map<string, { second: number; count: number }>();
  #durableScheduled = false;
  #serving = false;
  #closing = false;
  #tickTimer: ReturnType<typeof setInterval> | undefined;
  #ticks = 0;

  /**
   * Creates a broker. Add hooks and listeners, then call {@linkcode Server.serve}.
   *
   * @param options Options; all are optional.
   */
  constructor(options: Options = {}) {
    this.options = resolveOptions(options);
    this.#outbound = new Outbound(this.options.capabilities, this.info, this.hooks, this.clients);
    this.info.version = VERSION;
    this.info.countFrom(this.topics);
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
    for (const { timer } of this.#pendingWills.values()) clearTimeout(timer);
    this.#pendingWills.clear();
    await Promise.all(this.#connections);
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
    const caps = this.options.capabilities;
    const client = new Client(net, this.hooks, this.info, {
      readBufferSize: this.options.clientReadBufferSize,
      maximumPacketSize: caps.maximumPacketSize,
      maximumWritesPending: caps.maximumClientWritesPending,
      maximumWriteBytes: caps.maximumClientWriteBytes,
    });
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
   * @throws {TypeError} When the inline client is not enabled or the filter is invalid.
   */
  subscribe(filter: string, subscriptionId: number, handler: InlineSubscribeHandler): Promise<void> {
    this.#requireInline();
    const parsed = parseFilter(filter);
    if (!parsed) throw new TypeError(`Topic filter "${filter}" is not valid`);
    const key = inlineSubscriberId(filter, subscriptionId);
    const subscription: Subscription = { filter, qos: 2, identifier: subscriptionId };
    this.topics.subscribe(key, subscription);
    this.#inlineSubscribers.set(key, { subscription, handler });
    if (parsed.group === undefined) {
      for (const message of this.topics.retainedMessages(filter)) {
        if (message.expiry && Date.now() >= message.expiry) continue;
        handler(this.#inline, subscription, message);
      }
    }
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
    const key = inlineSubscriberId(filter, subscriptionId);
    this.topics.unsubscribe(key, filter);
    this.#inlineSubscribers.delete(key);
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
    client.startConnectTimeout(this.options.capabilities.connectTimeout, (c) => {
      c.close(new Error("No CONNECT within the connect timeout"));
    });
    const done = client.read(this.#handleFrame, this.#handleFrameError);
    this.#connections.add(done);
    return done.finally(() => this.#connections.delete(done));
  };

  readonly #handleFrameError = (client: Client, code: number): void => {
    log.debug("Client {id} sent a bad frame: {reason}", { id: client.id, reason: reasonName(code) });
    if (client.state.connected) this.disconnectClient(client, code);
    else client.close(new Error(`Bad packet before CONNECT: ${reasonName(code)}`));
  };

  readonly #handleFrame = (client: Client, header: number, body: Uint8Array): void | Promise<void> => {
    const decoded = decodePacket(header, body, client.properties.protocolVersion);
    if (!client.state.connected) {
      if (typeof decoded === "number") return this.#refuseBadConnect(client, body, decoded);
      if (decoded.fixedHeader.type !== PacketType.Connect) {
        // [MQTT-3.1.0-1] the first packet must be CONNECT.
        client.close(new Error("The first packet was not CONNECT"));
        return;
      }
      return this.#processConnect(client, decoded);
    }
    if (typeof decoded === "number") {
      this.disconnectClient(client, decoded);
      return;
    }
    if (this.hooks.has("onPacketRead")) {
      const read = this.hooks.onPacketRead(client, decoded);
      if (read instanceof Promise) return read.then((p) => this.#processRead(client, p));
      return this.#processRead(client, read);
    }
    return this.#process(client, decoded);
  };

  #processRead(client: Client, packet: Packet | number): void | Promise<void> {
    if (typeof packet === "number") {
      this.disconnectClient(client, packet);
      return;
    }
    return this.#process(client, packet);
  }

  #process(client: Client, packet: Packet): void | Promise<void> {
    let result: void | Promise<void> = undefined;
    switch (packet.fixedHeader.type) {
      case PacketType.Publish:
        result = this.#processPublish(client, packet);
        break;
      case PacketType.Puback:
      case PacketType.Pubcomp:
        this.#outbound.completed(client, packet);
        break;
      case PacketType.Pubrec:
        this.#outbound.pubrec(client, packet);
        break;
      case PacketType.Pubrel:
        this.#processPubrel(client, packet);
        break;
      case PacketType.Subscribe:
        result = this.#processSubscribe(client, packet);
        break;
      case PacketType.Unsubscribe:
        result = this.#processUnsubscribe(client, packet);
        break;
      case PacketType.Pingreq:
        client.send({ fixedHeader: { type: PacketType.Pingresp } });
        break;
      case PacketType.Disconnect:
        this.#processDisconnect(client, packet);
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

  /** Answers a CONNECT that failed to decode: v5 (and 0x84 for any level) get a CONNACK first. */
  #refuseBadConnect(client: Client, body: Uint8Array, code: number): void {
    const level = peekProtocolLevel(body);
    if (level === 5 || code === ReasonCode.UnsupportedProtocolVersion) {
      client.properties.protocolVersion = level === 5 ? 5 : 4;
      this.#sendConnack(client, code, false);
    }
    logConnection("refused", client, `bad CONNECT: ${reasonName(code)}`);
    client.closeAfterFlush(new Error(`Bad CONNECT: ${reasonName(code)}`));
  }

  #sendConnack(client: Client, code: number, sessionPresent: boolean, packet?: Packet): void {
    const v5 = client.properties.protocolVersion === 5;
    const connack: Packet = packet ?? { fixedHeader: { type: PacketType.Connack } };
    connack.reasonCode = v5 ? code : toV3ConnackCode(code);
    connack.sessionPresent = sessionPresent;
    client.send(connack);
  }

  #refuseConnect(client: Client, code: number): void {
    logConnection("refused", client, reasonName(code));
    this.#sendConnack(client, this.#obscure(code), false);
    client.closeAfterFlush(new Error(`Connection refused: ${reasonName(code)}`));
  }

  #obscure(code: number): number {
    return code === ReasonCode.NotAuthorized && this.options.capabilities.compatibilities.obscureNotAuthorized
      ? ReasonCode.UnspecifiedError
      : code;
  }

  async #processConnect(client: Client, packet: Packet): Promise<void> {
    client.clearConnectTimeout();
    const caps = this.options.capabilities;
    const c = packet.connect!;
    const props = packet.properties ?? {};
    const p = client.properties;
    p.protocolVersion = c.protocolVersion;
    const listener = this.listeners.get(client.net.listener);
    const certName = client.net.conn ? listener?.usernameFor?.(client.net.conn) : undefined;
    if (certName !== undefined) c.username = certName; // a verified client certificate names the user
    if (this.hooks.has("onPacketRead")) {
      const read = await this.hooks.onPacketRead(client, packet);
      if (typeof read === "number") return this.#refuseConnect(client, read);
      packet = read;
    }
    if (c.protocolVersion < caps.minimumProtocolVersion) {
      return this.#refuseConnect(client, ReasonCode.UnsupportedProtocolVersion);
    }
    let clientId = c.clientId;
    let assigned = false;
    if (clientId === "") {
      // [MQTT-3.1.3-7/8] v3.1.1 allows an empty id only with a clean session; v3.1 never; v5 always.
      if (c.protocolVersion === 3 || (c.protocolVersion === 4 && !c.clean)) {
        return this.#refuseConnect(client, ReasonCode.ClientIdentifierNotValid);
      }
      clientId = crypto.randomUUID();
      assigned = true;
    }
    if (clientId.length > caps.maximumClientIdLength) {
      return this.#refuseConnect(client, ReasonCode.ClientIdentifierNotValid);
    }
    const guard = this.#admissionRefusal(client);
    if (guard !== undefined) return this.#refuseConnect(client, guard);
    client.id = clientId;
    p.username = c.username ?? "";
    p.clean = c.clean;
    p.props = props;
    p.receiveMaximum = props.receiveMaximum ?? 0xffff;
    p.maximumPacketSize = props.maximumPacketSize ?? 0;
    p.topicAliasMaximum = props.topicAliasMaximum ?? 0;
    p.requestProblemInformation = props.requestProblemInformation !== 0;
    p.requestResponseInformation = props.requestResponseInformation === 1;
    p.keepAlive = c.keepAlive;
    let serverKeepAlive: number | undefined;
    if (
      c.protocolVersion === 5 && caps.maximumKeepAlive > 0 &&
      (c.keepAlive === 0 || c.keepAlive > caps.maximumKeepAlive)
    ) {
      p.keepAlive = serverKeepAlive = caps.maximumKeepAlive;
    }
    const requestedExpiry = c.protocolVersion === 5
      ? props.sessionExpiryInterval ?? 0
      : c.clean
      ? 0
      : NEVER_EXPIRES;
    p.sessionExpiryInterval = Math.min(requestedExpiry, caps.maximumSessionExpiryInterval);

    if (c.willFlag) {
      const willQos = c.willQos ?? 0;
      if (willQos > caps.maximumQos) return this.#refuseConnect(client, ReasonCode.QoSNotSupported);
      if (c.willRetain && !caps.retainAvailable) {
        return this.#refuseConnect(client, ReasonCode.RetainNotSupported);
      }
      const willProps = { ...c.willProperties };
      p.willDelayInterval = willProps.willDelayInterval ?? 0;
      delete willProps.willDelayInterval;
      p.will = this.#stamp({
        fixedHeader: { type: PacketType.Publish, qos: willQos, retain: c.willRetain ?? false },
        topicName: c.willTopic ?? "",
        payload: (c.willPayload ?? new Uint8Array()).slice(),
        properties: willProps,
        origin: clientId,
      });
    }

    if (listener?.allowAnonymous === false && p.username === "") {
      return this.#refuseConnect(client, ReasonCode.NotAuthorized); // this listener wants a user name
    }
    const allowed = await this.hooks.onConnectAuthenticate(client, packet);
    if (!allowed) return this.#refuseConnect(client, ReasonCode.BadUserNameOrPassword);
    if (props.authenticationMethod !== undefined && !this.hooks.has("onAuthPacket")) {
      return this.#refuseConnect(client, ReasonCode.BadAuthenticationMethod);
    }
    const refused = await this.hooks.onConnect(client, packet);
    if (refused !== undefined) return this.#refuseConnect(client, refused);
    if (this.info.clientsConnected >= caps.maximumClients) {
      return this.#refuseConnect(client, ReasonCode.QuotaExceeded);
    }
    if (client.closed) return; // the client went away while hooks ran

    this.hooks.onSessionEstablish(client, packet);
    const sessionPresent = this.#attachSession(client);
    client.state.connected = true;
    client.state.connectedAt = Date.now();
    this.#accepted.add(client);
    this.info.clientsConnected++;
    if (this.info.clientsConnected > this.info.clientsMaximum) {
      this.info.clientsMaximum = this.info.clientsConnected;
    }

    const connack: Packet = { fixedHeader: { type: PacketType.Connack } };
    if (c.protocolVersion === 5) {
      connack.properties = {
        receiveMaximum: caps.receiveMaximum,
        maximumQoS: caps.maximumQos < 2 ? caps.maximumQos : undefined,
        retainAvailable: caps.retainAvailable ? undefined : 0,
        maximumPacketSize: caps.maximumPacketSize || undefined,
        topicAliasMaximum: caps.topicAliasMaximum || undefined,
        wildcardSubscriptionAvailable: caps.wildcardSubAvailable ? undefined : 0,
        subscriptionIdentifierAvailable: caps.subIdAvailable ? undefined : 0,
        sharedSubscriptionAvailable: caps.sharedSubAvailable ? undefined : 0,
        serverKeepAlive,
        assignedClientIdentifier: assigned ? clientId : undefined,
        sessionExpiryInterval: p.sessionExpiryInterval !== requestedExpiry
          ? p.sessionExpiryInterval
          : undefined,
        responseInformation: p.requestResponseInformation || caps.compatibilities.alwaysReturnResponseInfo
          ? `responses/${clientId}`
          : undefined,
      };
    }
    this.#sendConnack(client, ReasonCode.Success, sessionPresent, connack);
    logConnection("connected", client, sessionPresent ? "session present" : "new session");
    client.startKeepAlive(this.#keepAliveExpired);
    this.hooks.onSessionEstablished(client, packet);
    if (sessionPresent) this.#outbound.resend(client);
  }

  /** Registers a newly connected client, taking over or ending any session with its id. */
  #attachSession(client: Client): boolean {
    const existing = this.clients.get(client.id);
    let sessionPresent = false;
    if (existing && existing !== client) {
      const wasConnected = !existing.closed;
      if (!client.properties.clean && (wasConnected || !this.#sessionExpired(existing))) {
        client.inheritSession(existing);
        sessionPresent = true;
      }
      this.clients.set(client);
      if (wasConnected) {
        this.disconnectClient(existing, ReasonCode.SessionTakenOver); // [MQTT-3.1.4-3]
        this.#stopClient(existing, new Error("Session taken over"));
      }
      const pending = this.#pendingWills.get(client.id);
      if (pending) {
        clearTimeout(pending.timer);
        this.#pendingWills.delete(client.id);
        // [MQTT-3.1.3-9] a resumed session cancels a delayed will; an ended session sends it now.
        if (!sessionPresent) this.#sendWill(pending.client);
      }
      if (!sessionPresent) this.#endSession(existing);
    } else {
      this.clients.set(client);
    }
    return sessionPresent;
  }

  /** Whether a topic name or filter is within the configured length and depth. */
  #withinTopicLimits(topic: string): boolean {
    const caps = this.options.capabilities;
    if (topic.length > caps.maximumTopicLength) return false;
    if (topic.length < caps.maximumTopicLevels) return true; // n characters make at most n + 1 levels
    let levels = 1;
    for (let i = topic.indexOf("/"); i >= 0; i = topic.indexOf("/", i + 1)) {
      if (++levels > caps.maximumTopicLevels) return false;
    }
    return true;
  }

  /**
   * Guards against floods and exhaustion before a session is set up: the per-IP connection rate
   * and the process memory limit.
   *
   * @returns A CONNACK reason code to refuse with, or undefined to go on.
   */
  #admissionRefusal(client: Client): number | undefined {
    const caps = this.options.capabilities;
    if (caps.maximumConnectionRatePerIp > 0) {
      const ip = hostOf(client.net.remote);
      const second = Math.floor(Date.now() / 1000);
      const window = this.#connectionRates.get(ip);
      if (!window || window.second !== second) this.#connectionRates.set(ip, { second, count: 1 });
      else if (++window.count > caps.maximumConnectionRatePerIp) return ReasonCode.ConnectionRateExceeded;
    }
    if (this.#rss > caps.maximumMemory) {
      log.warn("Memory above {limit} bytes: refusing new connections", { limit: caps.maximumMemory });
      return ReasonCode.ServerBusy;
    }
    return undefined;
  }

  #sessionExpired(client: Client): boolean {
    return client.state.expiresAt !== 0 && Date.now() >= client.state.expiresAt;
  }

  readonly #keepAliveExpired = (client: Client): void => {
    // [MQTT-3.1.2-22] close as if the network had failed, but let a v5 client's DISCONNECT 0x8D be
    // written first (closing at once dropped it); no linger: the client is presumed gone.
    if (client.properties.protocolVersion === 5) {
      client.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode: ReasonCode.KeepAliveTimeout });
    }
    client.closeAfterFlush(new Error("Keep alive timeout"), false);
  };

  readonly #onClientClosed = (client: Client): void => {
    this.#stopClient(client, client.state.stopCause);
  };

  /** Bookkeeping for a connection that ended: counters, will, session expiry. Runs once per client. */
  #stopClient(client: Client, cause: Error | undefined): void {
    this.#outbound.resumePublishers(client, true);
    // Runs once per accepted connection. A refused CONNECT was never counted and has no will (v3.1.1
    // [MQTT-3.1.2-8]: stored only if the CONNECT is accepted); a client taken over is no longer
    // registered but was counted and has one.
    if (!this.#accepted.delete(client)) return;
    const registered = this.clients.get(client.id) === client;
    this.info.clientsConnected--;
    let expire = false;
    if (registered) {
      const sei = client.properties.sessionExpiryInterval;
      if (sei === 0) expire = true;
      else if (sei !== NEVER_EXPIRES) client.state.expiresAt = Date.now() + sei * 1000;
    }
    if (client.properties.will && !client.state.cleanDisconnect) {
      if (expire || client.properties.willDelayInterval === 0) this.#sendWill(client);
      else this.#delayWill(client);
    }
    if (expire) {
      this.#endSession(client);
      this.clients.delete(client);
    }
    logConnection("disconnected", client, cause?.message ?? "connection closed");
    this.hooks.onDisconnect(client, cause, expire);
  }

  #delayWill(client: Client): void {
    const sei = client.properties.sessionExpiryInterval;
    const delay = Math.min(client.properties.willDelayInterval, sei, MAX_TIMER_SECONDS);
    const timer = setTimeout(() => {
      this.#pendingWills.delete(client.id);
      this.#sendWill(client);
    }, delay * 1000);
    this.#pendingWills.set(client.id, { client, timer });
  }

  #sendWill(client: Client): void {
    const will = client.properties.will;
    if (!will) return;
    client.properties.will = undefined;
    const result = this.hooks.onWill(client, will);
    const send = (w: Packet | number) => {
      if (typeof w === "number") return;
      const allowed = this.hooks.onACLCheck(client, w.topicName!, true);
      const deliver = (ok: boolean) => {
        if (!ok) return;
        this.#stamp(w);
        if (w.fixedHeader.retain) this.#retain(client, w);
        this.publishToSubscribers(w);
        this.hooks.onWillSent(client, w);
      };
      if (allowed instanceof Promise) allowed.then(deliver);
      else deliver(allowed);
    };
    if (result instanceof Promise) result.then(send);
    else send(result);
  }

  /** Ends a session: removes its subscriptions and drops its in-flight messages. */
  #endSession(client: Client): void {
    const subscriptions = client.state.subscriptions;
    if (subscriptions.size > 0) {
      for (const filter of subscriptions.keys()) this.topics.unsubscribe(client.id, filter);
      const filters = [...subscriptions.values()].map(({ filter }) => ({ filter, qos: 0 as QoS }));
      subscriptions.clear();
      this.hooks.onUnsubscribed(client, { fixedHeader: { type: PacketType.Unsubscribe }, filters });
    }
    const inflight = client.state.inflight;
    for (const packet of inflight.outbound.values()) {
      this.info.inflight--;
      this.hooks.onQosDropped(client, packet);
    }
    for (const packet of inflight.pending) this.hooks.onQosDropped(client, packet);
    for (const packetId of inflight.inboundQos2) {
      this.hooks.onQosDropped(client, { fixedHeader: { type: PacketType.Pubrec }, packetId });
    }
    inflight.clear();
  }

  // ---------------------------------------------------------------------------------------------
  // PUBLISH, inbound

  #processPublish(client: Client, packet: Packet): void | Promise<void> {
    const caps = this.options.capabilities;
    const qos = packet.fixedHeader.qos ?? 0;
    const alias = packet.properties?.topicAlias;
    if (alias !== undefined) {
      // [MQTT-3.3.2-9/10] aliases up to the Topic Alias Maximum we advertised.
      if (alias > caps.topicAliasMaximum) return this.disconnectClient(client, ReasonCode.TopicAliasInvalid);
      if (packet.topicName === "") {
        const topic = client.state.inboundAliases.get(alias);
        if (topic === undefined) return this.disconnectClient(client, ReasonCode.ProtocolError);
        packet.topicName = topic;
      } else {
        client.state.inboundAliases.set(alias, packet.topicName!);
      }
    }
    if (qos > caps.maximumQos) return this.disconnectClient(client, ReasonCode.QoSNotSupported); // [MQTT-3.2.2-11]
    if (packet.fixedHeader.retain && !caps.retainAvailable) {
      return this.disconnectClient(client, ReasonCode.RetainNotSupported); // [MQTT-3.2.2-14]
    }
    if (qos === 2) {
      const inbound = client.state.inflight.inboundQos2;
      if (inbound.has(packet.packetId!)) {
        // [MQTT-4.3.3-10] a duplicate: acknowledge again, do not deliver twice.
        client.send({ fixedHeader: { type: PacketType.Pubrec }, packetId: packet.packetId, reasonCode: 0 });
        return;
      }
      // [MQTT-3.3.4-9] more unacknowledged QoS 2 publishes than our Receive Maximum.
      if (inbound.size >= caps.receiveMaximum) {
        return this.disconnectClient(client, ReasonCode.ReceiveMaximumExceeded);
      }
    }
    this.info.messagesReceived++;
    if (!this.#withinTopicLimits(packet.topicName!)) {
      // Not malformed, but not accepted here: v5 acks say so, v3 has no way to and is disconnected.
      if (client.properties.protocolVersion === 5) {
        return this.#ackPublish(client, packet, ReasonCode.TopicNameInvalid);
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

  #publishAllowed(client: Client, packet: Packet, allowed: boolean): void | Promise<void> {
    if (!allowed) {
      // v5 acks carry the refusal; v3 gets a normal ack [MQTT-3.3.5-2].
      const code = client.properties.protocolVersion === 5 ? this.#obscure(ReasonCode.NotAuthorized) : 0;
      this.#ackPublish(client, packet, code);
      return;
    }
    if (!this.hooks.has("onPublish")) return this.#publishAccepted(client, packet, packet);
    const result = this.hooks.onPublish(client, packet);
    if (result instanceof Promise) return result.then((r) => this.#publishAccepted(client, packet, r));
    return this.#publishAccepted(client, packet, result);
  }

  #publishAccepted(client: Client, original: Packet, result: Packet | number): void {
    if (typeof result === "number") {
      const v5 = client.properties.protocolVersion === 5;
      this.#ackPublish(client, original, v5 ? result : 0);
      return;
    }
    const packet = result;
    if (packet.payload && ((packet.fixedHeader.qos ?? 0) > 0 || packet.fixedHeader.retain)) {
      packet.payload = packet.payload.slice(); // kept beyond this read: copy out of the read buffer
    }
    packet.origin = client.id;
    this.#stamp(packet);
    if (packet.fixedHeader.retain) this.#retain(client, packet);
    this.#ackPublish(client, packet, 0);
    this.publishToSubscribers(packet);
    this.hooks.onPublished(client, packet);
  }

  #ackPublish(client: Client, packet: Packet, code: number): void {
    const qos = packet.fixedHeader.qos ?? 0;
    if (qos === 0) return;
    const inherit = !this.options.capabilities.compatibilities.noInheritedPropertiesOnAck &&
      packet.properties?.userProperties;
    const properties = inherit ? { userProperties: packet.properties!.userProperties } : undefined;
    if (qos === 1) {
      this.#sendDurable(client, {
        fixedHeader: { type: PacketType.Puback },
        packetId: packet.packetId,
        reasonCode: code,
        properties,
      });
      return;
    }
    const pubrec: Packet = {
      fixedHeader: { type: PacketType.Pubrec },
      packetId: packet.packetId,
      reasonCode: code,
      properties,
    };
    // A refused QoS 2 publish ends with the PUBREC; an accepted one waits for PUBREL.
    if (code < 0x80) {
      client.state.inflight.inboundQos2.add(packet.packetId!);
      this.hooks.onQosPublish(client, pubrec, Date.now(), 0);
    }
    this.#sendDurable(client, pubrec);
  }

  /**
   * Sends an acknowledgement that promises durability: with a storage hook and `durability: "sync"`
   * it waits until everything written so far is stored (one wait per turn for all clients).
   */
  #sendDurable(client: Client, packet: Packet, after?: () => void): void {
    if (this.options.durability === "async" || !this.hooks.has("sync")) {
      client.send(packet);
      after?.();
      return;
    }
    this.#durableAcks.push([client, packet, after]);
    if (!this.#durableScheduled) {
      this.#durableScheduled = true;
      queueMicrotask(this.#flushDurable);
    }
  }

  readonly #flushDurable = (): void => {
    this.#durableScheduled = false;
    const batch = this.#durableAcks;
    this.#durableAcks = [];
    this.hooks.sync().then(() => {
      for (const [client, packet, after] of batch) {
        client.send(packet);
        after?.(); // e.g. retained messages, which must follow their SUBACK
      }
    });
  };

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
  }

  // ---------------------------------------------------------------------------------------------
  // Routing

  /**
   * Delivers an accepted message to every matching subscriber on this server. This is the one
   * routing seam: a cluster or bridge hook injects messages from elsewhere here.
   *
   * @param packet The message, with `created`/`expiry` set and a payload it may keep.
   */
  publishToSubscribers(packet: Packet): void {
    let subscribers = this.topics.subscribers(packet.topicName!);
    if (subscribers.shared.size > 0) this.topics.selectShared(subscribers, this.#isOnline);
    if (this.hooks.has("onSelectSubscribers")) {
      subscribers = this.hooks.onSelectSubscribers(subscribers, packet);
    }
    for (const delivery of subscribers.subscriptions.values()) {
      // [MQTT-3.8.3-3] No Local: not back to the publisher.
      if (delivery.noLocal && delivery.clientId === packet.origin) continue;
      if (delivery.clientId.charCodeAt(0) === 0) {
        this.#deliverInline(delivery, packet);
        continue;
      }
      const client = this.clients.get(delivery.clientId);
      if (client) this.#deliverChecked(client, delivery, packet, false);
    }
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

  #deliverInline(delivery: Delivery, packet: Packet): void {
    const subscriber = this.#inlineSubscribers.get(delivery.clientId);
    if (!subscriber) return;
    try {
      subscriber.handler(this.#inline, subscriber.subscription, packet);
    } catch (error) {
      log.error("Inline subscriber for {filter} failed: {error}", {
        filter: subscriber.subscription.filter,
        error: String(error),
      });
    }
  }

  readonly #isOnline = (clientId: string): boolean =>
    clientId.charCodeAt(0) === 0 || !(this.clients.get(clientId)?.closed ?? true);

  // ---------------------------------------------------------------------------------------------
  // PUBREL: the end of an inbound QoS 2 flow

  #processPubrel(client: Client, packet: Packet): void {
    const id = packet.packetId!;
    const known = client.state.inflight.inboundQos2.delete(id);
    if (known) this.hooks.onQosComplete(client, { fixedHeader: { type: PacketType.Pubrec }, packetId: id });
    // Durable, so that a restart never remembers an id the client was told is released.
    this.#sendDurable(client, {
      fixedHeader: { type: PacketType.Pubcomp },
      packetId: id,
      reasonCode: known ? 0 : ReasonCode.PacketIdentifierNotFound,
    });
  }

  // ---------------------------------------------------------------------------------------------
  // SUBSCRIBE, UNSUBSCRIBE

  #processSubscribe(client: Client, packet: Packet): void | Promise<void> {
    const hooked = this.hooks.onSubscribe(client, packet);
    if (hooked instanceof Promise) return hooked.then((p) => this.#checkSubscribe(client, p));
    return this.#checkSubscribe(client, hooked);
  }

  /** Asks the ACL about every filter; waits only if a hook answered with a Promise. */
  #checkSubscribe(client: Client, packet: Packet | number): void | Promise<void> {
    if (typeof packet === "number") return this.disconnectClient(client, packet);
    const filters = packet.filters ?? [];
    const allowed = filters.map((sub) =>
      isValidTopicFilter(sub.filter) ? this.hooks.onACLCheck(client, sub.filter, false) : false
    );
    if (allowed.some((a) => a instanceof Promise)) {
      return Promise.all(allowed).then((results) => this.#subscribe(client, packet, results));
    }
    return this.#subscribe(client, packet, allowed as boolean[]);
  }

  #subscribe(client: Client, packet: Packet, allowed: boolean[]): void {
    const caps = this.options.capabilities;
    const v5 = client.properties.protocolVersion === 5;
    const filters = packet.filters ?? [];
    const codes: number[] = [];
    const retainedToSend: [Subscription, Packet[]][] = [];
    for (let i = 0; i < filters.length; i++) {
      const sub = filters[i];
      const parsed = parseFilter(sub.filter);
      if (parsed?.group !== undefined && sub.noLocal) {
        return this.disconnectClient(client, ReasonCode.ProtocolError); // [MQTT-3.8.3-4]
      }
      let code: number;
      if (!parsed || !this.#withinTopicLimits(parsed.topicFilter)) code = ReasonCode.TopicFilterInvalid;
      else if (
        caps.maximumSubscriptionsPerClient > 0 && !client.state.subscriptions.has(sub.filter) &&
        client.state.subscriptions.size >= caps.maximumSubscriptionsPerClient
      ) {
        code = ReasonCode.QuotaExceeded;
      } else if (parsed.group !== undefined && !caps.sharedSubAvailable) {
        code = ReasonCode.SharedSubscriptionsNotSupported;
      } else if (parsed.wildcard && !caps.wildcardSubAvailable) {
        code = ReasonCode.WildcardSubscriptionsNotSupported;
      } else if (sub.identifier !== undefined && !caps.subIdAvailable) {
        code = ReasonCode.SubscriptionIdentifiersNotSupported;
      } else if (!allowed[i]) {
        code = this.#obscure(ReasonCode.NotAuthorized);
      } else {
        const granted = Math.min(sub.qos, caps.maximumQos) as QoS;
        const stored: Subscription = { ...sub, qos: granted };
        const isNew = this.topics.subscribe(client.id, stored);
        client.state.subscriptions.set(sub.filter, stored);
        code = granted;
        // [MQTT-3.3.1-9/10/11] Retain Handling; never for shared subscriptions (spec 3.3.1.3).
        const handling = sub.retainHandling ?? 0;
        if (parsed.group === undefined && (handling === 0 || (handling === 1 && isNew))) {
          retainedToSend.push([stored, this.topics.retainedMessages(sub.filter)]);
        }
      }
      codes.push(v5 || code < 0x80 ? code : 0x80);
    }
    const sendRetained = () => this.#sendRetained(client, retainedToSend);
    this.#sendDurable(client, {
      fixedHeader: { type: PacketType.Suback },
      packetId: packet.packetId,
      reasonCodes: codes,
    }, retainedToSend.length > 0 ? sendRetained : undefined);
    this.hooks.onSubscribed(client, packet, codes);
  }

  /** Sends the retained messages matching new subscriptions (after the SUBACK). */
  #sendRetained(client: Client, retainedToSend: [Subscription, Packet[]][]): void {
    for (const [sub, messages] of retainedToSend) {
      const delivery: Delivery = {
        clientId: client.id,
        qos: sub.qos,
        noLocal: false,
        retainAsPublished: true,
        identifiers: sub.identifier ? [sub.identifier] : [],
        shared: false,
      };
      for (const message of messages) {
        if (message.expiry && Date.now() >= message.expiry) {
          this.#expireRetained(message);
          continue;
        }
        this.#deliverChecked(client, delivery, message, true);
        this.hooks.onRetainPublished(client, message);
      }
    }
  }

  #expireRetained(message: Packet): void {
    this.topics.retain({ ...message, payload: new Uint8Array() });
    this.hooks.onRetainedExpired(message.topicName!);
  }

  #processUnsubscribe(client: Client, packet: Packet): void | Promise<void> {
    const hooked = this.hooks.onUnsubscribe(client, packet);
    if (hooked instanceof Promise) return hooked.then((p) => this.#unsubscribe(client, p));
    return this.#unsubscribe(client, hooked);
  }

  #unsubscribe(client: Client, packet: Packet | number): void {
    if (typeof packet === "number") return this.disconnectClient(client, packet);
    const codes: number[] = [];
    for (const { filter } of packet.filters ?? []) {
      const existed = this.topics.unsubscribe(client.id, filter);
      client.state.subscriptions.delete(filter);
      codes.push(existed ? ReasonCode.Success : ReasonCode.NoSubscriptionExisted);
    }
    this.#sendDurable(client, {
      fixedHeader: { type: PacketType.Unsuback },
      packetId: packet.packetId,
      reasonCodes: codes,
    });
    this.hooks.onUnsubscribed(client, packet);
  }

  // ---------------------------------------------------------------------------------------------
  // DISCONNECT, AUTH

  #processDisconnect(client: Client, packet: Packet): void {
    const p = client.properties;
    const requested = packet.properties?.sessionExpiryInterval;
    if (requested !== undefined) {
      // [MQTT-3.14.2-2] a session that was to end on disconnect cannot be extended now.
      if (p.sessionExpiryInterval === 0 && requested !== 0) {
        return this.disconnectClient(client, ReasonCode.ProtocolError);
      }
      p.sessionExpiryInterval = Math.min(requested, this.options.capabilities.maximumSessionExpiryInterval);
    }
    // [MQTT-3.1.2-10] a normal DISCONNECT discards the will; 0x04 asks for it to be sent.
    client.state.cleanDisconnect = packet.reasonCode !== ReasonCode.DisconnectWithWill;
    if (client.state.cleanDisconnect) p.will = undefined;
    client.close(new Error(`Client disconnected: ${reasonName(packet.reasonCode ?? 0)}`));
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
    for (const client of expired) {
      this.#sendWill(client); // [MQTT-3.1.2-8] a will still pending goes out when its session ends
      this.#endSession(client);
      this.clients.delete(client);
      this.hooks.onClientExpired(client);
    }
    // Connections that were live at the crash lost their network connection: their wills are due.
    for (const client of live) {
      if (client.properties.will) this.#delayWill(client);
    }
    log.info("Restored {clients} sessions, {subscriptions} subscriptions, {retained} retained messages", {
      clients: live.length,
      subscriptions: this.topics.subscriptionCount,
      retained: this.topics.retainedCount,
    });
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
    const second = Math.floor(now / 1000);
    for (const [ip, window] of this.#connectionRates) {
      if (window.second < second) this.#connectionRates.delete(ip);
    }
    if (this.#ticks % RETAINED_SWEEP_EVERY_TICKS === 0) this.#expireRetainedMessages(now);
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
      if (client.state.expiresAt !== 0 && now >= client.state.expiresAt) {
        const pending = this.#pendingWills.get(client.id);
        if (pending?.client === client) {
          clearTimeout(pending.timer);
          this.#pendingWills.delete(client.id);
          this.#sendWill(client); // [MQTT-3.1.2-8] the will goes out when the session ends, at the latest
        }
        this.#endSession(client);
        this.clients.delete(client);
        this.hooks.onClientExpired(client);
      }
    }
  }

  #expireRetainedMessages(now: number): void {
    for (const message of [...this.topics.allRetained()]) {
      if (
        message.expiry && now >= message.expiry && message.properties?.messageExpiryInterval !== undefined
      ) {
        this.#expireRetained(message);
      }
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

/** The host part of `host:port` (or `[v6]:port`). */
function hostOf(remote: string): string {
  const at = remote.lastIndexOf(":");
  return at < 0 ? remote : remote.slice(0, at);
}

function inlineSubscriberId(filter: string, subscriptionId: number): string {
  return `${INLINE_SUBSCRIBER_PREFIX}${subscriptionId}\u0000${filter}`;
}

/** Reads the protocol level from a CONNECT body without decoding it (0 if unreadable). */
function peekProtocolLevel(body: Uint8Array): ProtocolVersion | 0 {
  if (body.length < 2) return 0;
  const nameLength = (body[0] << 8) | body[1];
  const level = body[2 + nameLength];
  return level === 3 || level === 4 || level === 5 ? level : 0;
}
