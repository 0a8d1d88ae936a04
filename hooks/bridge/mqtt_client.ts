/**
 * A small MQTT client connection on our own codec: CONNECT/CONNACK, a framed read loop, coalesced
 * writes, keep alive. It holds no session state: the bridge keeps packet ids and in-flight messages
 * across connections.
 *
 * @module
 */

import type { Connection } from "../../src/listener.ts";
import { decodePacket, encodePacket } from "../../src/packets/codec.ts";
import { FRAME_READY, PacketFramer } from "../../src/packets/framer.ts";
import { reasonName } from "../../src/packets/reason_codes.ts";
import { type Packet, PacketType, type ProtocolVersion, type QoS } from "../../src/packets/types.ts";
import { ByteWriter } from "../../src/packets/writer.ts";

/** How to connect: the remote's address and what to put in CONNECT. */
export interface MqttConnectOptions {
  /** The protocol level: 3, 4 or 5. */
  protocolVersion: ProtocolVersion;
  /** The client id. */
  clientId: string;
  /** User name. */
  username?: string;
  /** Password. */
  password?: string;
  /** Clean Start / Clean Session. */
  cleanStart: boolean;
  /** v5 Session Expiry Interval in seconds. */
  sessionExpiry: number;
  /** Keep alive in seconds, 0 for none. */
  keepAlive: number;
  /** Milliseconds to wait for CONNACK. */
  connectTimeout: number;
}

/** v3 CONNACK return codes 1..5 as the v5 reason codes that mean the same. */
const V3_REFUSALS = [0, 0x84, 0x85, 0x88, 0x86, 0x87];

/** The remote refused the connection (CONNACK with a reason code of 0x80 or more, or a v3 code 1..5). */
export class ConnectRefusedError extends Error {
  /** The reason code, as v5 numbers it (v3 return codes are mapped: 4 is 0x86, 5 is 0x87). */
  readonly reasonCode: number;

  /**
   * Creates the error.
   *
   * @param reasonCode The v5 reason code.
   */
  constructor(reasonCode: number) {
    super(`Connection refused: ${reasonName(reasonCode)} (0x${reasonCode.toString(16)})`);
    this.name = "ConnectRefusedError";
    this.reasonCode = reasonCode;
  }
}

/** Called for every packet the remote sends after CONNACK (PINGRESP excepted). */
export type PacketHandler = (packet: Packet) => void;

const READ_BUFFER = 64 * 1024;

/**
 * One network connection to a remote broker, after a successful CONNECT. Received PUBLISH payloads
 * are copies the handler may keep.
 *
 * @example Connecting to our own broker
 * ```ts
 * import assert from "node:assert/strict";
 * import { AllowHook, Server, TCP } from "../../mod.ts";
 * import { MqttConnection } from "./mqtt_client.ts";
 * const server = new Server();
 * await server.addHook(new AllowHook());
 * const tcp = new TCP({ id: "t", address: "127.0.0.1:0" });
 * await server.addListener(tcp);
 * await server.serve();
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(tcp.address.split(":")[1]) });
 * const options = { protocolVersion: 5, clientId: "c1", cleanStart: true, sessionExpiry: 0, keepAlive: 0, connectTimeout: 1000 } as const;
 * const client = await MqttConnection.open(conn, options);
 * client.start(() => {});
 * assert.equal(client.sessionPresent, false);
 * assert.equal(client.receiveMaximum > 0, true);
 * client.close();
 * await client.closed;
 * await server.close();
 * ```
 */
export class MqttConnection {
  /** The protocol level in use. */
  readonly protocolVersion: ProtocolVersion;
  /** Whether the remote resumed a session (CONNACK Session Present). */
  sessionPresent = false;
  /** The remote's Receive Maximum (v5), 65535 when it announced none. */
  receiveMaximum = 65535;
  /** The largest packet the remote accepts, 0 for no limit it announced. */
  maximumPacketSize = 0;
  /** The highest QoS the remote accepts. */
  maximumQoS: QoS = 2;
  /** Whether the remote accepts retained messages. */
  retainAvailable = true;
  /** Resolves, with the reason, once the connection has closed. */
  readonly closed: Promise<Error>;

  readonly #conn: Connection;
  readonly #framer = new PacketFramer();
  #handler: PacketHandler = () => {};
  /** Packets that arrived right after CONNACK, before `start()`. */
  #early: Packet[] | undefined;
  #out = new ByteWriter(1024);
  #spare = new ByteWriter(1024);
  #writing = false;
  #scheduled = false;
  #isClosed = false;
  #resolveClosed!: (error: Error) => void;
  #keepAliveTimer: ReturnType<typeof setInterval> | undefined;
  #lastReceived = Date.now();
  #pingOutstanding = false;

  private constructor(conn: Connection, version: ProtocolVersion) {
    this.#conn = conn;
    this.protocolVersion = version;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
  }

  /**
   * Sends CONNECT on an open connection and waits for CONNACK. On any failure the connection is
   * closed before the error is thrown.
   *
   * @param conn The open byte stream.
   * @param options What to send.
   * @returns The connection; call {@linkcode MqttConnection.start} to get its packets.
   * @throws {ConnectRefusedError} When the remote refuses; {Error} on a timeout or a broken stream.
   */
  static async open(conn: Connection, options: MqttConnectOptions): Promise<MqttConnection> {
    const client = new MqttConnection(conn, options.protocolVersion);
    const connack = Promise.withResolvers<Packet>();
    const early: Packet[] = [];
    client.#early = early;
    client.#handler = (packet) => {
      if (packet.fixedHeader.type !== PacketType.Connack) {
        connack.reject(new Error(`Expected CONNACK, got packet type ${packet.fixedHeader.type}`));
        return;
      }
      connack.resolve(packet);
      // A resumed session's messages may follow in the same read: keep them for start().
      client.#handler = (next) => early.push(next);
    };
    client.closed.then((error) => connack.reject(error));
    client.#readLoop();
    client.send(connectPacket(options));
    const timer = setTimeout(
      () => client.close(new Error(`No CONNACK within ${options.connectTimeout} ms`), false),
      options.connectTimeout,
    );
    let packet: Packet;
    try {
      packet = await connack.promise;
    } catch (error) {
      client.close(error as Error, false);
      await client.closed;
      throw error;
    } finally {
      clearTimeout(timer);
    }
    let code = packet.reasonCode ?? 0;
    if (options.protocolVersion !== 5 && code > 0) code = V3_REFUSALS[code] ?? 0x80;
    if (code >= 0x80) {
      const refused = new ConnectRefusedError(code);
      client.close(refused, false);
      await client.closed;
      throw refused;
    }
    const props = packet.properties ?? {};
    client.sessionPresent = packet.sessionPresent === true;
    client.receiveMaximum = props.receiveMaximum ?? 65535;
    client.maximumPacketSize = props.maximumPacketSize ?? 0;
    client.maximumQoS = (props.maximumQoS ?? 2) as QoS;
    client.retainAvailable = props.retainAvailable !== 0;
    const keepAlive = props.serverKeepAlive ?? options.keepAlive;
    if (keepAlive > 0) client.#startKeepAlive(keepAlive);
    return client;
  }

  /**
   * Starts handing packets to `handler`, first those that arrived with or just after CONNACK.
   *
   * @param handler Gets every packet after CONNACK (PINGRESP and DISCONNECT excepted).
   */
  start(handler: PacketHandler): void {
    const early = this.#early ?? [];
    this.#early = undefined;
    this.#handler = handler;
    for (const packet of early) {
      if (this.#isClosed) return;
      handler(packet);
    }
  }

  /** Whether the connection has closed. */
  get isClosed(): boolean {
    return this.#isClosed;
  }

  /**
   * Queues a packet; all packets queued in one turn go out in one write.
   *
   * @param packet The packet.
   * @returns False when the connection is closed or the packet exceeds the remote's maximum size.
   */
  send(packet: Packet): boolean {
    if (this.#isClosed) return false;
    const out = this.#out;
    const start = out.length;
    const size = encodePacket(packet, this.protocolVersion, out);
    if (this.maximumPacketSize > 0 && size > this.maximumPacketSize) {
      out.length = start; // [MQTT-3.1.2-24] never send more than the remote accepts
      return false;
    }
    if (!this.#scheduled && !this.#writing) {
      this.#scheduled = true;
      queueMicrotask(() => {
        this.#scheduled = false;
        this.#writeLoop();
      });
    }
    return true;
  }

  /**
   * Closes the connection; sends DISCONNECT first when `disconnect` is true (normal, reason 0).
   *
   * @param reason Why; reported by `closed`.
   * @param disconnect Whether to send DISCONNECT.
   */
  close(reason: Error = new Error("Closed by the bridge"), disconnect = true): void {
    if (this.#isClosed) return;
    if (disconnect) {
      this.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode: 0 });
      const out = this.#out;
      this.#out = new ByteWriter(16);
      const bytes = out.buffer.subarray(0, out.length);
      // Best effort: one last write of what is queued, then close whatever happens.
      this.#finish(reason);
      this.#conn.write(bytes).catch(() => {}).finally(() => this.#closeConn());
      return;
    }
    this.#finish(reason);
    this.#closeConn();
  }

  #finish(reason: Error): void {
    this.#isClosed = true;
    clearInterval(this.#keepAliveTimer);
    this.#resolveClosed(reason);
  }

  #closeConn(): void {
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }

  #startKeepAlive(seconds: number): void {
    const ms = seconds * 1000;
    this.#keepAliveTimer = setInterval(() => {
      if (this.#pingOutstanding && Date.now() - this.#lastReceived > ms) {
        this.close(new Error("Keep alive timeout: the remote stopped answering"), false);
        return;
      }
      if (!this.#pingOutstanding) {
        this.#pingOutstanding = true;
        this.send({ fixedHeader: { type: PacketType.Pingreq } });
      }
    }, ms / 2);
  }

  async #readLoop(): Promise<void> {
    const buffer = new Uint8Array(READ_BUFFER);
    let reason: Error = new Error("The remote closed the connection");
    try {
      while (!this.#isClosed) {
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        this.#lastReceived = Date.now();
        this.#framer.push(buffer.subarray(0, n));
        for (;;) {
          const result = this.#framer.next();
          if (result === FRAME_READY) {
            if (!this.#dispatch(this.#framer.header, this.#framer.body)) return;
            continue;
          }
          if (result !== 0) throw new Error(`Bad packet from the remote: ${reasonName(result)}`);
          break;
        }
      }
    } catch (error) {
      if (!this.#isClosed) reason = error instanceof Error ? error : new Error(String(error));
    }
    this.close(reason, false);
  }

  /** Decodes and hands on one packet; false when the connection was closed because of it. */
  #dispatch(header: number, body: Uint8Array): boolean {
    const packet = decodePacket(header, body, this.protocolVersion);
    if (typeof packet === "number") {
      this.close(new Error(`Bad packet from the remote: ${reasonName(packet)}`), false);
      return false;
    }
    const type = packet.fixedHeader.type;
    if (type === PacketType.Pingresp) {
      this.#pingOutstanding = false;
      return true;
    }
    if (type === PacketType.Disconnect) {
      const code = packet.reasonCode ?? 0;
      const why = packet.properties?.reasonString ? `: ${packet.properties.reasonString}` : "";
      this.close(new Error(`The remote disconnected: ${reasonName(code)}${why}`), false);
      return false;
    }
    if (type === PacketType.Publish && packet.payload) packet.payload = packet.payload.slice();
    this.#handler(packet);
    return !this.#isClosed;
  }

  async #writeLoop(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#out.length > 0 && !this.#isClosed) {
        const full = this.#out;
        this.#out = this.#spare;
        this.#spare = full;
        const bytes = full.buffer.subarray(0, full.length);
        let offset = 0;
        while (offset < bytes.length) offset += await this.#conn.write(bytes.subarray(offset));
        full.length = 0;
      }
    } catch (error) {
      this.close(error instanceof Error ? error : new Error(String(error)), false);
    } finally {
      this.#writing = false;
    }
  }
}

function connectPacket(options: MqttConnectOptions): Packet {
  const v = options.protocolVersion;
  return {
    fixedHeader: { type: PacketType.Connect },
    connect: {
      protocolName: v === 3 ? "MQIsdp" : "MQTT",
      protocolVersion: v,
      clean: options.cleanStart,
      keepAlive: options.keepAlive,
      clientId: options.clientId,
      username: options.username,
      password: options.password === undefined ? undefined : new TextEncoder().encode(options.password),
      willFlag: false,
    },
    properties: v === 5 && options.sessionExpiry > 0
      ? { sessionExpiryInterval: options.sessionExpiry }
      : undefined,
  };
}
