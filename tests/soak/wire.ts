/**
 * A raw MQTT connection for the soak test: push-based (a read loop hands every packet to a handler,
 * or to whoever waits for it), so one actor can publish, acknowledge and receive at once, and can
 * stop processing a connection at any instant (an "abandoned" connection, as in a takeover).
 *
 * @module
 */

import { type Packet, PacketType, type Properties, type ProtocolVersion } from "../../mod.ts";
import {
  ByteWriter,
  decodePacket,
  encodePacket,
  FRAME_NEED_MORE,
  FRAME_READY,
  PacketFramer,
} from "../../src/packets/mod.ts";

interface Waiter {
  match: (packet: Packet) => boolean;
  resolve: (packet: Packet | undefined) => void;
}

/** Thrown when a wait on a {@linkcode Wire} runs out of time. */
export class WireTimeout extends Error {}

/** A raw MQTT connection over TCP with a read loop. */
export class Wire {
  /** The protocol version used to encode and decode. */
  readonly version: ProtocolVersion;
  /** Resolves when the read loop ended (the broker or we closed the connection). */
  readonly done: Promise<void>;
  #handler: ((packet: Packet) => void) | undefined;
  /** Packets that arrived before a handler was set (a resumed session's messages follow the CONNACK). */
  #unhandled: Packet[] = [];
  /** The reason code of a DISCONNECT the broker sent, if any. */
  disconnectCode: number | undefined;
  /** Bytes the broker sent that did not decode (a broker bug). */
  readonly decodeErrors: string[] = [];
  readonly #conn: Deno.TcpConn;
  readonly #framer = new PacketFramer();
  readonly #writer = new ByteWriter(1024);
  #waiters: Waiter[] = [];
  #writing: Promise<void> = Promise.resolve();
  #abandoned = false;
  #ended = false;
  #closed = false;

  private constructor(conn: Deno.TcpConn, version: ProtocolVersion) {
    this.#conn = conn;
    this.version = version;
    this.done = this.#readLoop();
  }

  /**
   * Opens a connection, sends CONNECT and waits for the CONNACK.
   *
   * @param port The broker's port on 127.0.0.1.
   * @param connect The CONNECT parameters (protocol name and level come from `version`).
   * @param properties CONNECT properties (v5).
   * @param timeoutMs How long to wait for the CONNACK.
   * @returns The connection and its CONNACK.
   */
  static async connect(
    port: number,
    connect: Omit<NonNullable<Packet["connect"]>, "protocolName">,
    properties: Properties | undefined,
    timeoutMs: number,
  ): Promise<{ wire: Wire; connack: Packet }> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    const wire = new Wire(conn, connect.protocolVersion);
    try {
      const connack = await wire.request(
        {
          fixedHeader: { type: PacketType.Connect },
          protocolVersion: connect.protocolVersion,
          connect: { protocolName: connect.protocolVersion === 3 ? "MQIsdp" : "MQTT", ...connect },
          properties,
        },
        (p) => p.fixedHeader.type === PacketType.Connack,
        timeoutMs,
      );
      if (!connack) throw new Error(`Connection closed before CONNACK for "${connect.clientId}"`);
      if (connack.reasonCode !== 0) {
        throw new Error(`CONNACK 0x${(connack.reasonCode ?? 0).toString(16)} for "${connect.clientId}"`);
      }
      return { wire, connack };
    } catch (error) {
      await wire.close();
      throw error;
    }
  }

  /**
   * Sets the handler of every packet nobody waits for (until the connection is abandoned), and
   * hands it the packets that arrived before.
   */
  set onPacket(handler: (packet: Packet) => void) {
    this.#handler = handler;
    const early = this.#unhandled;
    this.#unhandled = [];
    for (const packet of early) if (!this.#abandoned) handler(packet);
  }

  /** Whether the read loop has ended. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Whether this connection was abandoned: its packets are no longer processed. */
  get abandoned(): boolean {
    return this.#abandoned;
  }

  /**
   * Sends a packet (encoded at once, written in order after earlier ones). A write to a closed
   * connection is ignored: the connection's end is seen by the read loop.
   */
  send(packet: Packet): Promise<void> {
    if (this.#closed || this.#abandoned) return Promise.resolve();
    this.#writer.reset();
    encodePacket(packet, this.version, this.#writer);
    const bytes = this.#writer.toBytes().slice();
    this.#writing = this.#writing.then(async () => {
      let offset = 0;
      while (offset < bytes.length) offset += await this.#conn.write(bytes.subarray(offset));
    }).catch(() => {});
    return this.#writing;
  }

  /**
   * Waits for the first packet that `match` accepts; it is not passed to `onPacket`.
   *
   * @returns The packet, or undefined if the connection ended or was abandoned first.
   * @throws {WireTimeout} When `timeoutMs` passes first.
   */
  waitFor(match: (packet: Packet) => boolean, timeoutMs: number): Promise<Packet | undefined> {
    if (this.#ended || this.#abandoned) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        match,
        resolve: (packet) => {
          clearTimeout(timer);
          resolve(packet);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new WireTimeout(`Timed out after ${timeoutMs} ms waiting for a packet`));
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  /** Sends `packet` and waits for the answer `match` accepts (registered before sending). */
  request(
    packet: Packet,
    match: (packet: Packet) => boolean,
    timeoutMs: number,
  ): Promise<Packet | undefined> {
    const answer = this.waitFor(match, timeoutMs);
    this.send(packet);
    return answer;
  }

  /**
   * PINGREQ and wait for PINGRESP: the broker handles a client's packets in order and writes in
   * order, so everything it meant to send before has been handled when this resolves.
   *
   * @returns False when the connection ended first.
   */
  async sync(timeoutMs: number): Promise<boolean> {
    const answer = await this.request(
      { fixedHeader: { type: PacketType.Pingreq } },
      (p) => p.fixedHeader.type === PacketType.Pingresp,
      timeoutMs,
    );
    return answer !== undefined;
  }

  /** Stops processing this connection's packets (they count as never received); the socket stays open. */
  abandon(): void {
    this.#abandoned = true;
    this.#releaseWaiters();
  }

  /** Closes the socket at once (an abrupt network loss as far as the broker can tell). */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#conn.close();
      } catch {
        // already closed
      }
    }
    await this.done;
  }

  /** Waits up to `timeoutMs` for the broker to close the connection, then closes it. */
  async closed(timeoutMs: number): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), timeoutMs));
    const ended = await Promise.race([this.done.then(() => true), timeout]);
    clearTimeout(timer);
    await this.close();
    return ended;
  }

  #releaseWaiters(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.resolve(undefined);
  }

  async #readLoop(): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        this.#framer.push(buffer.subarray(0, n));
        for (;;) {
          const status = this.#framer.next();
          if (status === FRAME_NEED_MORE) break;
          if (status !== FRAME_READY) {
            this.decodeErrors.push(`framing error ${status}`);
            return;
          }
          const packet = decodePacket(this.#framer.header, this.#framer.body, this.version);
          if (typeof packet === "number") {
            this.decodeErrors.push(`undecodable packet 0x${this.#framer.header.toString(16)}: ${packet}`);
            continue;
          }
          if (packet.payload) packet.payload = packet.payload.slice();
          this.#dispatch(packet);
        }
      }
    } catch {
      // closed under the read, or reset by the broker: both end the connection
    } finally {
      this.#ended = true;
      this.#releaseWaiters();
      if (!this.#closed) {
        this.#closed = true;
        try {
          this.#conn.close();
        } catch {
          // already closed
        }
      }
    }
  }

  #dispatch(packet: Packet): void {
    if (packet.fixedHeader.type === PacketType.Disconnect) this.disconnectCode = packet.reasonCode ?? 0;
    if (this.#abandoned) return;
    const at = this.#waiters.findIndex((w) => w.match(packet));
    if (at >= 0) {
      const [waiter] = this.#waiters.splice(at, 1);
      waiter.resolve(packet);
      return;
    }
    if (this.#handler) this.#handler(packet);
    else this.#unhandled.push(packet);
  }
}
