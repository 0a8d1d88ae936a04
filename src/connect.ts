/**
 * CONNECT handling: admission guards (connection rate, memory), protocol and client-id checks, the
 * will, authentication through the hooks, the session (through {@linkcode Sessions}), and the
 * CONNACK with the server's capabilities. The server hands each client's first packet here.
 *
 * @module
 */

import type { Cluster, SessionSnapshot } from "./cluster.ts";
import type { Packet, ProtocolVersion } from "./packets/types.ts";
import { PacketType } from "./packets/types.ts";
import { ReasonCode, reasonName, toV3ConnackCode } from "./packets/reason_codes.ts";
import type { Client } from "./client.ts";
import type { Hooks } from "./hooks.ts";
import type { Info } from "./system.ts";
import type { Listener } from "./listener.ts";
import type { Sessions } from "./sessions.ts";
import { NEVER_EXPIRES, obscureNotAuthorized, type ResolvedOptions } from "./options.ts";
import { logger } from "./logger.ts";
import { logConnection } from "./connection_log.ts";
import { withinTopicLimits } from "./topics.ts";

const log = logger("server");

/** What CONNECT handling needs from the server. */
export interface ConnectHost {
  /** The server's options. */
  readonly options: ResolvedOptions;
  /** The hook dispatcher. */
  readonly hooks: Hooks;
  /** Counters. */
  readonly info: Info;
  /** Listeners by id (for their anonymous and certificate policies). */
  readonly listeners: Map<string, Listener>;
  /** The session lifecycle. */
  readonly sessions: Sessions;
  /** Sets a message's `created` and `expiry`. */
  stamp(packet: Packet): Packet;
  /** Resends a resumed session's in-flight messages. */
  resend(client: Client): void;
  /** The process's resident memory in bytes, as last read. */
  rss(): number;
  /** The cluster this server is a node of, if any. */
  cluster(): Cluster | undefined;
}

/**
 * Handles CONNECT packets for one server.
 *
 * @example Without an auth hook, a CONNECT is refused
 * ```ts
 * import assert from "node:assert/strict";
 * import { Server } from "../mod.ts";
 * import { MockListener } from "../listeners/mock.ts";
 *
 * const server = new Server(); // no AllowHook or AuthHook added
 * const mock = new MockListener({ id: "mock" });
 * await server.addListener(mock);
 * await server.serve();
 *
 * const conn = mock.connect();
 * // CONNECT: "MQTT", v5, clean start, keep alive 60 s, no properties, client id "c1".
 * await conn.write(new Uint8Array([0x10, 15, 0, 4, 77, 81, 84, 84, 5, 2, 0, 60, 0, 0, 2, 99, 49]));
 * const reply = new Uint8Array(64);
 * const length = await conn.read(reply);
 * // CONNACK 0x86 (Bad User Name or Password), no properties; then the server closes the connection.
 * assert.deepEqual(reply.subarray(0, length ?? 0), new Uint8Array([0x20, 3, 0, 0x86, 0]));
 * assert.equal(await conn.read(reply), null);
 * assert.equal(server.info.clientsConnected, 0);
 * conn.close();
 * await server.close();
 * ```
 */
export class ConnectHandler {
  readonly #host: ConnectHost;
  /** Connections per IP in the current second, for `maximumConnectionRatePerIp`. */
  readonly #connectionRates = new Map<string, { second: number; count: number }>();

  /**
   * Creates the handler.
   *
   * @param host The server's parts it uses.
   */
  constructor(host: ConnectHost) {
    this.#host = host;
  }

  /**
   * Forgets connection-rate windows older than the current second (called once per tick).
   *
   * @param now The current time in ms.
   */
  tick(now: number): void {
    const second = Math.floor(now / 1000);
    for (const [ip, window] of this.#connectionRates) {
      if (window.second < second) this.#connectionRates.delete(ip);
    }
  }

  /**
   * Answers a CONNECT that failed to decode: v5 (and 0x84 for any level) get a CONNACK first.
   *
   * @param client The client.
   * @param body The CONNECT's body bytes.
   * @param code Why it failed.
   */
  refuseBadConnect(client: Client, body: Uint8Array, code: number): void {
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
    this.#sendConnack(
      client,
      obscureNotAuthorized(code, this.#host.options.capabilities.compatibilities),
      false,
    );
    client.closeAfterFlush(new Error(`Connection refused: ${reasonName(code)}`));
  }

  /**
   * Handles a CONNECT: authenticates, applies limits, resumes or starts the session, and answers
   * with CONNACK (or refuses and closes).
   *
   * @param client The new client.
   * @param packet Its CONNECT.
   */
  async process(client: Client, packet: Packet): Promise<void> {
    client.clearConnectTimeout();
    const caps = this.#host.options.capabilities;
    const c = packet.connect!;
    const props = packet.properties ?? {};
    const p = client.properties;
    p.protocolVersion = c.protocolVersion;
    p.maximumPacketSize = props.maximumPacketSize ?? 0; // a refusing CONNACK obeys it too
    const listener = this.#host.listeners.get(client.net.listener);
    const certName = client.net.conn ? listener?.usernameFor?.(client.net.conn) : undefined;
    if (certName !== undefined) c.username = certName; // a verified client certificate names the user
    if (this.#host.hooks.has("onPacketRead")) {
      let read = this.#host.hooks.onPacketRead(client, packet);
      if (read instanceof Promise) read = await read;
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
      // The codec has checked the Will Topic's syntax; this server's own limits apply to it as to
      // any Topic Name. v3 has no CONNACK code for it: like a PUBLISH over the limits, it is closed.
      if (!withinTopicLimits(c.willTopic!, caps)) {
        if (c.protocolVersion === 5) return this.#refuseConnect(client, ReasonCode.TopicNameInvalid);
        return client.closeAfterFlush(new Error("Will Topic beyond the topic limits"));
      }
      const willQos = c.willQos ?? 0;
      if (willQos > caps.maximumQos) return this.#refuseConnect(client, ReasonCode.QoSNotSupported);
      if (c.willRetain && !caps.retainAvailable) {
        return this.#refuseConnect(client, ReasonCode.RetainNotSupported);
      }
      const willProps = { ...c.willProperties };
      p.willDelayInterval = willProps.willDelayInterval ?? 0;
      delete willProps.willDelayInterval;
      p.will = this.#host.stamp({
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
    // Awaited only when a hook returned a Promise: each await costs a turn in a connect storm.
    let allowed = this.#host.hooks.onConnectAuthenticate(client, packet);
    if (allowed instanceof Promise) allowed = await allowed;
    if (!allowed) return this.#refuseConnect(client, ReasonCode.BadUserNameOrPassword);
    if (props.authenticationMethod !== undefined && !this.#host.hooks.has("onAuthPacket")) {
      return this.#refuseConnect(client, ReasonCode.BadAuthenticationMethod);
    }
    let refused = this.#host.hooks.onConnect(client, packet);
    if (refused instanceof Promise) refused = await refused;
    if (refused !== undefined) return this.#refuseConnect(client, refused);
    if (this.#host.info.clientsConnected >= caps.maximumClients) {
      return this.#refuseConnect(client, ReasonCode.QuotaExceeded);
    }
    if (client.closed) return; // the client went away while hooks ran

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
    // [MQTT-3.1.2-24] A client whose Maximum Packet Size cannot hold the CONNACK can never complete
    // the connect: refused before any session is touched (0x95 if even that fits, else just closed).
    if (!client.fits(connack)) return this.#refuseConnect(client, ReasonCode.PacketTooLarge);

    this.#host.hooks.onSessionEstablish(client, packet);
    let handedOver: SessionSnapshot | undefined;
    const cluster = this.#host.cluster();
    if (cluster !== undefined) {
      // The id is claimed cluster-wide first: the node that had it hands the session over.
      try {
        handedOver = await cluster.claimSession(client);
      } catch (error) {
        // The cluster logs why (once per outage of its engine).
        log.debug("Refusing {id}: the cluster cannot record its session: {error}", {
          id: clientId,
          error: String(error),
        });
        return this.#refuseConnect(client, ReasonCode.ServerUnavailable);
      }
      if (client.closed) {
        // Gone during the claim (its CONNECT timed out on its side, say): a session handed over from
        // another node is kept here as a disconnected one, or it would be lost (that node let it go).
        // The connection was never accepted: its will does not count.
        if (handedOver !== undefined) {
          client.properties.will = undefined;
          this.#host.sessions.admit(client);
          this.#host.sessions.adopt(client, handedOver);
          this.#host.sessions.ended(client, new Error("Connection closed before its CONNACK"));
        }
        return cluster.sessionAdmitted(client);
      }
    }
    let sessionPresent = this.#host.sessions.admit(client);
    if (handedOver !== undefined && !sessionPresent) {
      this.#host.sessions.adopt(client, handedOver);
      sessionPresent = true;
    }
    client.state.connected = true;
    client.state.connectedAt = Date.now();
    this.#sendConnack(client, ReasonCode.Success, sessionPresent, connack);
    logConnection("connected", client, sessionPresent ? "session present" : "new session");
    client.startKeepAlive(keepAliveExpired);
    this.#host.hooks.onSessionEstablished(client, packet);
    if (sessionPresent) this.#host.resend(client);
    // Messages held during a handoff from another node go after what it handed over.
    cluster?.sessionAdmitted(client);
  }

  /**
   * Guards against floods and exhaustion before a session is set up: the per-IP connection rate
   * and the process memory limit.
   *
   * @returns A CONNACK reason code to refuse with, or undefined to go on.
   */
  #admissionRefusal(client: Client): number | undefined {
    const caps = this.#host.options.capabilities;
    if (caps.maximumConnectionRatePerIp > 0) {
      const ip = hostOf(client.net.remote);
      const second = Math.floor(Date.now() / 1000);
      const window = this.#connectionRates.get(ip);
      if (!window || window.second !== second) this.#connectionRates.set(ip, { second, count: 1 });
      else if (++window.count > caps.maximumConnectionRatePerIp) return ReasonCode.ConnectionRateExceeded;
    }
    if (this.#host.rss() > caps.maximumMemory) {
      log.warn("Memory above {limit} bytes: refusing new connections", { limit: caps.maximumMemory });
      return ReasonCode.ServerBusy;
    }
    return undefined;
  }
}

function keepAliveExpired(client: Client): void {
  // [MQTT-3.1.2-22] close as if the network had failed, but let a v5 client's DISCONNECT 0x8D be
  // written first (closing at once dropped it); no linger: the client is presumed gone.
  if (client.properties.protocolVersion === 5) {
    client.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode: ReasonCode.KeepAliveTimeout });
  }
  client.closeAfterFlush(new Error("Keep alive timeout"), false);
}

/** The host part of `host:port` (or `[v6]:port`). */
function hostOf(remote: string): string {
  const at = remote.lastIndexOf(":");
  return at < 0 ? remote : remote.slice(0, at);
}

/** Reads the protocol level from a CONNECT body without decoding it (0 if unreadable). */
function peekProtocolLevel(body: Uint8Array): ProtocolVersion | 0 {
  if (body.length < 2) return 0;
  const nameLength = (body[0] << 8) | body[1];
  const level = body[2 + nameLength];
  return level === 3 || level === 4 || level === 5 ? level : 0;
}

/**
 * Ends a connection that sent no CONNECT in time (one function for every connection).
 *
 * @param client The connection's client.
 */
export function connectTimeout(client: Client): void {
  client.close(new Error("No CONNECT within the connect timeout"));
}
