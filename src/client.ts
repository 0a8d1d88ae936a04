/**
 * One client: its connection (read loop, coalescing writer, keep-alive) and its session state
 * (subscriptions, in-flight messages, topic aliases, will).
 *
 * @module
 */

import type { ReadTurns } from "./read_turns.ts";
import type { Packet, Properties, ProtocolVersion, Subscription } from "./packets/types.ts";
import { PacketType } from "./packets/types.ts";
import { ReasonCode } from "./packets/reason_codes.ts";
import { ByteWriter, varintSize } from "./packets/writer.ts";
import { FRAME_NEED_MORE, FRAME_READY, PacketFramer } from "./packets/framer.ts";
import { encodePacket } from "./packets/codec.ts";
import { Inflight } from "./inflight.ts";
import type { Info } from "./system.ts";
import type { Connection } from "./listener.ts";
import { keepAliveWheel } from "./keep_alive.ts";

/**
 * The hook events a client fires itself, as it encodes and writes packets. The server's `Hooks`
 * dispatcher is one; the client needs no more of it (and so does not import it).
 */
export interface ClientEvents {
  /** Whether any hook handles the event. */
  has(event: "onPacketEncode" | "onPacketSent"): boolean;
  /** Chains `onPacketEncode`: the packet to encode instead. */
  onPacketEncode(client: Client, packet: Packet): Packet;
  /** Fires `onPacketSent` with the encoded bytes. */
  onPacketSent(client: Client, packet: Packet, bytes: Uint8Array): void;
}

/** Where a client is connected from. */
export interface ClientNet {
  /** The connection, or null for inline and restored offline clients. */
  conn: Connection | null;
  /** The remote address, `host:port`. */
  remote: string;
  /** The id of the listener it came through. */
  listener: string;
  /** True for the server's own inline client. */
  inline: boolean;
}

/** What the client asked for in CONNECT (after the server's caps are applied). */
export interface ClientProperties {
  /** The protocol level. */
  protocolVersion: ProtocolVersion;
  /** The user name, empty if none. */
  username: string;
  /** Clean Start / Clean Session. */
  clean: boolean;
  /** Keep alive in seconds, as granted. */
  keepAlive: number;
  /** Session expiry interval in seconds, as granted (0xFFFFFFFF: never). */
  sessionExpiryInterval: number;
  /** The client's Receive Maximum: QoS 1/2 messages we may have in flight to it. */
  receiveMaximum: number;
  /** The largest packet the client accepts (0: no limit). */
  maximumPacketSize: number;
  /** The highest topic alias the client accepts from us. */
  topicAliasMaximum: number;
  /** Whether reason strings and user properties may be sent on acks [MQTT-3.1.2-29]. */
  requestProblemInformation: boolean;
  /** Whether the client asked for Response Information. */
  requestResponseInformation: boolean;
  /** The CONNECT's properties. */
  props: Properties;
  /** The will message, ready to publish, if any. */
  will?: Packet;
  /** The will delay interval in seconds. */
  willDelayInterval: number;
}

/** Mutable per-connection and per-session state. */
export interface ClientState {
  /** Subscriptions by full filter. */
  subscriptions: Map<string, Subscription>;
  /** QoS 1/2 state. */
  inflight: Inflight;
  /** Inbound topic aliases set by the client (created on the first one). */
  inboundAliases?: Map<number, string>;
  /** Outbound topic aliases we assigned (created on the first one). */
  outboundAliases?: Map<string, number>;
  /** Whether CONNECT was accepted and the connection is live. */
  connected: boolean;
  /** When the connection ended (ms since epoch), 0 while connected. */
  disconnectedAt: number;
  /** Why the connection ended. */
  stopCause?: Error;
  /** Whether the client ended with a normal DISCONNECT (no will). */
  cleanDisconnect: boolean;
  /** When the session expires (ms since epoch), 0 for never; set once disconnected. */
  expiresAt: number;
  /** When the connection was established (ms since epoch). */
  connectedAt: number;
}

/** A client's {@linkcode ClientState}; its subscriptions and in-flight state are made when first used. */
class SessionState implements ClientState {
  #subscriptions: Map<string, Subscription> | undefined;
  #inflight: Inflight | undefined;
  inboundAliases?: Map<number, string>;
  outboundAliases?: Map<string, number>;
  connected = false;
  disconnectedAt = 0;
  stopCause?: Error;
  cleanDisconnect = false;
  expiresAt = 0;
  connectedAt: number = Date.now();

  get subscriptions(): Map<string, Subscription> {
    return this.#subscriptions ??= new Map();
  }

  set subscriptions(subscriptions: Map<string, Subscription>) {
    this.#subscriptions = subscriptions;
  }

  get inflight(): Inflight {
    return this.#inflight ??= new Inflight();
  }

  set inflight(inflight: Inflight) {
    this.#inflight = inflight;
  }
}

/** Called for each complete packet read: the first byte and a view of the body. */
export type FrameHandler = (client: Client, header: number, body: Uint8Array) => void | Promise<void>;

/** Limits a client needs from the server. */
export interface ClientLimits {
  /** Bytes per read. */
  readBufferSize: number;
  /** Largest packet accepted from the client, 0 for the protocol maximum. */
  maximumPacketSize: number;
  /** Messages that may wait in the outbound buffer before QoS 0 messages are dropped. */
  maximumWritesPending: number;
  /** Bytes that may wait in the outbound buffer before QoS 0 messages are dropped. */
  maximumWriteBytes: number;
  /** Shared by the server's connections when reads must leave room for other I/O. */
  turns?: ReadTurns;
}

/**
 * The limits for a new client: `previous` when the options still give the same, so that every
 * client shares one object.
 *
 * @param previous The limits the last client got.
 * @param readBufferSize The largest read buffer.
 * @param caps The server's capabilities.
 * @returns The limits.
 */
export function clientLimits(
  previous: ClientLimits | undefined,
  readBufferSize: number,
  caps: { maximumPacketSize: number; maximumClientWritesPending: number; maximumClientWriteBytes: number },
  turns?: ReadTurns,
): ClientLimits {
  if (
    previous !== undefined && previous.readBufferSize === readBufferSize &&
    previous.maximumPacketSize === caps.maximumPacketSize &&
    previous.maximumWritesPending === caps.maximumClientWritesPending &&
    previous.maximumWriteBytes === caps.maximumClientWriteBytes && previous.turns === turns
  ) {
    return previous;
  }
  return {
    readBufferSize,
    maximumPacketSize: caps.maximumPacketSize,
    maximumWritesPending: caps.maximumClientWritesPending,
    maximumWriteBytes: caps.maximumClientWriteBytes,
    turns,
  };
}

/** Calls a client's private flush (one function for every client, no closure each). */
let flushClient: (client: Client) => void;

/** Clients with packets queued this turn, written by one microtask (no closure per client). */
let flushQueue: Client[] = [];
/** While set, the clients with a persistent session that are sent anything have their writes held. */
let heldWrites: Set<Client> | undefined;

/**
 * Holds back the writes of every client with a persistent session sent anything until this is called
 * again: each goes into `into` until {@linkcode Client.releaseWrites} (a cluster node's inbox delivery).
 *
 * @param into Where the clients held go, or undefined to stop holding.
 * @returns Where they went before (to put back after a nested use).
 */
export function holdWritesOf(into: Set<Client> | undefined): Set<Client> | undefined {
  const before = heldWrites;
  heldWrites = into;
  return before;
}

function flushAll(): void {
  // Flushing may queue packets for more clients (a close that sends a will): they are added to
  // this list while it is walked, or to a new one with its own microtask once it is done.
  const clients = flushQueue;
  try {
    for (let i = 0; i < clients.length; i++) flushClient(clients[i]);
  } finally {
    flushQueue = [];
  }
}

function scheduleFlush(client: Client): void {
  if (flushQueue.push(client) === 1) queueMicrotask(flushAll);
}

const NO_BYTES = new Uint8Array(0);

/** First read buffer of a connection; it doubles up to `readBufferSize` while reads fill it. */
const INITIAL_READ_BUFFER = 256;
/**
 * Write buffers up to this size are dropped once everything is written (an idle connection keeps
 * none); larger ones, grown by traffic, are kept for the next writes.
 */
const KEPT_WRITE_BUFFER = 256;

/**
 * How long a connection the server is closing may take to flush its last packets and let the
 * client read them; meanwhile whatever the client still sends is read and discarded, so that its
 * writes do not fail before it has seen our DISCONNECT.
 */
const CLOSE_LINGER_MS = 2000;

/**
 * A connected (or remembered) client.
 *
 * Outbound packets are encoded straight into one buffer and written with one `write` per turn of
 * the event loop; while a write is under way, new packets go into a second buffer.
 */
export class Client {
  /** The client identifier. */
  id = "";
  /** Network details. */
  readonly net: ClientNet;
  /** What the client asked for in CONNECT. */
  properties: ClientProperties = {
    protocolVersion: 4,
    username: "",
    clean: true,
    keepAlive: 0,
    sessionExpiryInterval: 0,
    receiveMaximum: 0xffff,
    maximumPacketSize: 0,
    topicAliasMaximum: 0,
    requestProblemInformation: true,
    requestResponseInformation: false,
    props: {},
    willDelayInterval: 0,
  };
  /** Session and connection state. */
  state: ClientState = new SessionState();
  /** When a packet was last read (ms since epoch). */
  lastReceived: number = Date.now();
  /** Why the last `send` that returned false refused its packet. */
  lastRefusal: "too_large" | "queue_full" | "offline" = "offline";
  /** Set by the server while it slows publishers for this client: called when its backlog drains. */
  onDrained: ((client: Client) => void) | undefined;
  /** Called once when the connection closes (the server's bookkeeping). */
  onClose: ((client: Client) => void) | undefined;

  readonly #hooks: ClientEvents;
  readonly #info: Info;
  readonly #limits: ClientLimits;
  readonly #framer: PacketFramer;
  #out = new ByteWriter(0);
  /** The buffer being written while `#out` fills; allocated on the first write that needs it. */
  #spare: ByteWriter | undefined;
  #pendingMessages = 0;
  #lastReadFilled = false;
  /** When the keep alive started (the CONNACK): silence before it is not the client's. */
  #keepAliveFrom = 0;
  #paused: PromiseWithResolvers<void> | undefined;
  #writeStartedAt = 0;
  #writing = false;
  #scheduled = false;
  /** Holds on this client's writes (see {@linkcode holdWritesOf}): read it, never set it. */
  writesHeld = 0;
  #closed = false;
  #closeWhenFlushed = false;
  #lingerAfterFlush = true;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  /** When the CONNECT must have arrived (ms since epoch), 0 once it has (or when not waiting). */
  #connectDeadline = 0;
  #onKeepAliveExpired: ((client: Client) => void) | undefined;
  #done: Promise<void> | undefined;

  /**
   * Creates a client for a connection.
   *
   * @param net The connection details.
   * @param hooks The server's hooks.
   * @param info The server's counters.
   * @param limits Buffer and size limits.
   */
  constructor(net: ClientNet, hooks: ClientEvents, info: Info, limits: ClientLimits) {
    this.net = net;
    this.#hooks = hooks;
    this.#info = info;
    this.#limits = limits;
    this.#framer = new PacketFramer(limits.maximumPacketSize);
  }

  /** True once the connection is closed (or for clients that never had one). */
  get closed(): boolean {
    return this.#closed || this.net.conn === null;
  }

  /**
   * Reads packets until the connection ends, handing each complete one to `handle` in order and
   * waiting for it when it returns a Promise.
   *
   * @param handle The frame handler.
   * @param onFrameError Called with a reason code when the byte stream is malformed.
   * @param onEnded Called once reading has ended (after the last handler has finished).
   * @returns Resolves when the connection has ended.
   */
  read(
    handle: FrameHandler,
    onFrameError: (client: Client, code: number) => void,
    onEnded?: (client: Client) => void,
  ): Promise<void> {
    this.#done ??= this.#readLoop(handle, onFrameError, onEnded);
    return this.#done;
  }

  /** Resolves when reading has ended (undefined before {@linkcode Client.read}). */
  get readDone(): Promise<void> | undefined {
    return this.#done;
  }

  async #readLoop(
    handle: FrameHandler,
    onFrameError: (client: Client, code: number) => void,
    onEnded: ((client: Client) => void) | undefined,
  ): Promise<void> {
    const conn = this.net.conn;
    if (!conn) return onEnded?.(this);
    // Idle connections are many and mostly quiet: start with a small read buffer and double it
    // (up to readBufferSize) whenever a read fills it.
    let buffer = new Uint8Array(Math.min(INITIAL_READ_BUFFER, this.#limits.readBufferSize));
    const framer = this.#framer;
    let broken = false;
    try {
      while (!this.#closed) {
        if (this.#paused) await this.#paused.promise;
        if (this.#closed) break;
        if (buffer.length < this.#limits.readBufferSize && this.#lastReadFilled) {
          buffer = new Uint8Array(Math.min(buffer.length * 2, this.#limits.readBufferSize));
        }
        const n = await conn.read(buffer);
        if (n === null) break;
        this.#lastReadFilled = n === buffer.length;
        this.lastReceived = Date.now();
        this.#info.bytesReceived += n;
        if (this.#closeWhenFlushed || broken) continue; // closing: drain and discard
        framer.push(buffer.subarray(0, n));
        let status = FRAME_NEED_MORE;
        // [MQTT-4.13.1-1] once a packet made us close, nothing after it is processed.
        while (!this.#closeWhenFlushed && (status = framer.next()) === FRAME_READY) {
          // Backpressure applies between packets too: the frame stays valid, as nothing is read meanwhile.
          if (this.#paused) {
            await this.#paused.promise;
            // Closing meanwhile (a takeover, say) means this connection's packets no longer count: its
            // session state may already belong to the new connection.
            if (this.#closed || this.#closeWhenFlushed) break;
          }
          this.#info.packetsReceived++;
          this.#countReceived(framer.header, framer.body.length);
          const result = handle(this, framer.header, framer.body);
          if (result instanceof Promise) await result;
          if (this.#closed) return;
        }
        framer.body = NO_BYTES; // the last packet's view would keep the read buffer's object alive
        if (status > FRAME_READY) {
          onFrameError(this, status);
          if (this.#closed) return;
          broken = true; // keep reading, so the client's end of stream closes the connection
        }
        const turn = this.#limits.turns?.read(n);
        if (turn !== undefined) await turn;
      }
      this.close(new Error("Connection closed by the client"));
    } catch (error) {
      this.close(error instanceof Error ? error : new Error(String(error)));
    } finally {
      onEnded?.(this);
    }
  }

  #countReceived(header: number, bodySize: number): void {
    const traffic = this.#info.traffic;
    const type = header >> 4;
    traffic.packetsReceived[type]++;
    traffic.bytesReceived[type] += 1 + varintSize(bodySize) + bodySize;
    if (type === PacketType.Publish) traffic.messagesReceived[(header >> 1) & 3]++;
  }

  /** Counts a packet queued for sending (and, for a PUBLISH, its delivery latency). */
  #countSent(packet: Packet, type: PacketType, size: number): void {
    const info = this.#info;
    info.packetsSent++;
    info.bytesSent += size;
    const traffic = info.traffic;
    traffic.packetsSent[type]++;
    traffic.bytesSent[type] += size;
    if (type !== PacketType.Publish) {
      if (type === PacketType.Connack) {
        traffic.refused(packet.reasonCode ?? 0, this.properties.protocolVersion === 5);
      }
      return;
    }
    info.messagesSent++;
    const header = packet.fixedHeader;
    traffic.messagesSent[header.qos ?? 0]++;
    // Resends and retained messages sent on subscribe would only measure their age.
    if (traffic.latency !== undefined && packet.created && !header.dup && !header.retain) {
      traffic.delivered(packet.created);
    }
  }

  /**
   * Sets the largest packet accepted from the client.
   *
   * @param size Bytes, 0 for the protocol maximum.
   */
  setMaximumPacketSize(size: number): void {
    this.#framer.maximumPacketSize = size;
  }

  /**
   * Encodes a packet into the outbound buffer; the buffer is written at the end of this turn.
   *
   * @param packet The packet.
   * @param force Queue a QoS 0 PUBLISH even past the outbound limits (messages the client asked
   *   for, such as retained messages on subscribe, which the retained store already bounds).
   * @returns False if the packet was not queued: the connection is closed, the packet is larger
   *   than the client's Maximum Packet Size, or (QoS 0 PUBLISH only) the outbound buffer is full
   *   (too many messages or bytes wait for a slow client).
   */
  send(packet: Packet, force = false): boolean {
    if (this.#closed || this.#closeWhenFlushed || this.net.conn === null) {
      this.lastRefusal = "offline";
      return false;
    }
    const type = packet.fixedHeader.type;
    if (
      type === PacketType.Publish && packet.fixedHeader.qos === 0 && !force &&
      (this.#pendingMessages >= this.#limits.maximumWritesPending ||
        this.#out.length >= this.#limits.maximumWriteBytes)
    ) {
      this.lastRefusal = "queue_full";
      return false;
    }
    if (this.#hooks.has("onPacketEncode")) packet = this.#hooks.onPacketEncode(this, packet);
    if (
      !this.properties.requestProblemInformation && packet.properties &&
      type !== PacketType.Publish && type !== PacketType.Connack && type !== PacketType.Disconnect
    ) {
      // [MQTT-3.1.2-29] no Reason String or User Properties on other packets.
      packet = {
        ...packet,
        properties: { ...packet.properties, reasonString: undefined, userProperties: undefined },
      };
    }
    return this.#queue(packet, type, true);
  }

  /** Encodes a packet into the outbound buffer, if it fits the client's Maximum Packet Size. */
  #queue(packet: Packet, type: PacketType, firstTry: boolean): boolean {
    const out = this.#out;
    const start = out.length;
    const size = encodePacket(packet, this.properties.protocolVersion, out);
    const max = this.properties.maximumPacketSize;
    if (max > 0 && size > max) {
      out.length = start; // [MQTT-3.1.2-24] never send a packet larger than the client accepts
      this.lastRefusal = "too_large";
      // A PUBLISH is dropped (the caller counts it) [MQTT-3.1.2-25]; anything else is awaited.
      if (type !== PacketType.Publish) this.#tooLarge(packet, type, firstTry);
      return false;
    }
    this.#pendingMessages++;
    this.#countSent(packet, type, size);
    if (this.#hooks.has("onPacketSent")) {
      this.#hooks.onPacketSent(this, packet, out.buffer.subarray(start, start + size));
    }
    this.#queued();
    return true;
  }

  /**
   * Queues a PUBLISH that is already encoded (the same bytes go to many subscribers): the bytes are
   * copied into the outbound buffer and, for QoS 1/2, the packet identifier is patched in. The same
   * checks as {@linkcode Client.send} apply; `onPacketEncode` is not called (the caller encodes only
   * when no hook has it).
   *
   * @param packet The packet the bytes encode (with this client's packet identifier).
   * @param bytes The encoded packet.
   * @param packetIdAt Where the packet identifier sits in `bytes`, or -1 for QoS 0.
   * @param force As for {@linkcode Client.send}.
   * @returns False if the packet was not queued (see {@linkcode Client.send}).
   */
  sendEncoded(packet: Packet, bytes: Uint8Array, packetIdAt: number, force = false): boolean {
    if (this.#closed || this.#closeWhenFlushed || this.net.conn === null) {
      this.lastRefusal = "offline";
      return false;
    }
    if (
      packetIdAt < 0 && !force &&
      (this.#pendingMessages >= this.#limits.maximumWritesPending ||
        this.#out.length >= this.#limits.maximumWriteBytes)
    ) {
      this.lastRefusal = "queue_full";
      return false;
    }
    const size = bytes.length;
    const max = this.properties.maximumPacketSize;
    if (max > 0 && size > max) {
      this.lastRefusal = "too_large"; // [MQTT-3.1.2-24]
      return false;
    }
    const out = this.#out;
    const start = out.length;
    out.bytes(bytes);
    if (packetIdAt >= 0) {
      const id = packet.packetId!;
      out.buffer[start + packetIdAt] = id >>> 8;
      out.buffer[start + packetIdAt + 1] = id & 0xff;
    }
    this.#pendingMessages++;
    this.#countSent(packet, PacketType.Publish, size);
    if (this.#hooks.has("onPacketSent")) {
      this.#hooks.onPacketSent(this, packet, out.buffer.subarray(start, start + size));
    }
    this.#queued();
    return true;
  }

  /**
   * A packet other than PUBLISH is over the client's Maximum Packet Size. Its Reason String and
   * User Properties go first ([MQTT-3.2.2-19/20], [MQTT-3.4.2-2/3] and the same rule for every
   * ack, DISCONNECT and AUTH); if it still does not fit, the client can never get the answer it
   * waits for, so the connection ends: v5 gets DISCONNECT 0x95 when it fits (never before a CONNACK
   * [MQTT-3.14.0-1]).
   */
  #tooLarge(packet: Packet, type: PacketType, firstTry: boolean): void {
    const properties = packet.properties;
    if (
      firstTry && properties &&
      (properties.reasonString !== undefined || properties.userProperties !== undefined)
    ) {
      const bare = { ...properties, reasonString: undefined, userProperties: undefined };
      if (this.#queue({ ...packet, properties: bare }, type, false)) return;
      if (this.#closeWhenFlushed || this.#closed) return; // the retry ended the connection already
    }
    if (
      this.properties.protocolVersion === 5 && type !== PacketType.Connack && type !== PacketType.Disconnect
    ) {
      this.#queue(
        { fixedHeader: { type: PacketType.Disconnect }, reasonCode: ReasonCode.PacketTooLarge },
        PacketType.Disconnect,
        false,
      );
    }
    this.closeAfterFlush(new Error(`Packet type ${type} is larger than the client's Maximum Packet Size`));
  }

  /**
   * Whether a packet, as it is, would fit the client's Maximum Packet Size (it is encoded and then
   * taken back out of the outbound buffer).
   *
   * @param packet The packet.
   * @returns True if it fits or the client set no maximum.
   */
  fits(packet: Packet): boolean {
    const max = this.properties.maximumPacketSize;
    if (max === 0) return true;
    const out = this.#out;
    const start = out.length;
    const size = encodePacket(packet, this.properties.protocolVersion, out);
    out.length = start;
    return size <= max;
  }

  /** Whether more than half the outbound limits (messages or bytes) wait to be written. */
  get backlogged(): boolean {
    const limits = this.#limits;
    return this.#pendingMessages * 2 >= limits.maximumWritesPending ||
      this.#out.length * 2 >= limits.maximumWriteBytes;
  }

  /**
   * Stops reading from this client after the packets already read (backpressure: what it
   * publishes cannot be delivered fast enough). Its TCP window then slows it down.
   */
  pauseReading(): void {
    if (!this.#paused) this.#paused = Promise.withResolvers<void>();
  }

  /** Reads from this client again. */
  resumeReading(): void {
    if (!this.#paused) return;
    this.#paused.resolve();
    this.#paused = undefined;
    this.lastReceived = Date.now(); // the keep-alive counts from when we listen again
  }

  /** Whether reading is paused for backpressure. */
  get readingPaused(): boolean {
    return this.#paused !== undefined;
  }

  /**
   * How long the socket write under way has been waiting for the client to read.
   *
   * @param now The current time (ms since epoch).
   * @returns Milliseconds, 0 when no write is waiting.
   */
  writeStalledFor(now: number): number {
    return this.#writeStartedAt === 0 ? 0 : now - this.#writeStartedAt;
  }

  async #writeLoop(): Promise<void> {
    const conn = this.net.conn;
    if (!conn) return;
    this.#writing = true;
    try {
      while (this.#out.length > 0 && !this.#closed && this.writesHeld === 0) {
        const batch = this.#out;
        this.#out = this.#spare ?? new ByteWriter(0);
        this.#spare = batch;
        this.#pendingMessages = 0;
        const data = batch.toBytes();
        let offset = 0;
        this.#writeStartedAt = Date.now();
        while (offset < data.length) offset += await conn.write(data.subarray(offset));
        this.#writeStartedAt = 0;
        batch.reset();
        if (this.onDrained && !this.backlogged) this.onDrained(this);
      }
    } catch (error) {
      this.#writing = false;
      this.close(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    this.#writing = false;
    if (this.writesHeld > 0) return; // the rest once released
    // Everything is written: small buffers go (most connections are idle most of the time).
    if (this.#out.buffer.length <= KEPT_WRITE_BUFFER) this.#out.release();
    if (this.#spare !== undefined && this.#spare.buffer.length <= KEPT_WRITE_BUFFER) this.#spare = undefined;
    if (this.#closeWhenFlushed) this.#finishClose();
  }

  /**
   * Closes the connection once everything queued has been written (or after a short timeout).
   *
   * @param cause Why the connection is closing.
   * @param linger Whether to half-close and wait for the client's end of stream once flushed (false:
   *   close as soon as everything is written, for a client presumed gone).
   */
  closeAfterFlush(cause: Error, linger = true): void {
    if (this.#closed || this.#closeWhenFlushed) return;
    this.state.stopCause ??= cause;
    this.#closeWhenFlushed = true;
    this.#lingerAfterFlush = linger;
    this.#closeTimer = setTimeout(() => this.close(cause), CLOSE_LINGER_MS);
    if (!this.#writing && !this.#scheduled && this.writesHeld === 0) this.#finishClose();
  }

  /** Everything is flushed: half-close and wait for the client's end of stream (or the linger timer). */
  #finishClose(): void {
    const conn = this.net.conn;
    if (!this.#lingerAfterFlush || !conn?.closeWrite) return this.close(this.state.stopCause);
    conn.closeWrite().catch(() => this.close(this.state.stopCause));
  }

  /**
   * Closes the connection now. Safe to call more than once.
   *
   * @param cause Why the connection closed.
   */
  close(cause?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.state.stopCause ??= cause;
    this.state.connected = false;
    this.state.disconnectedAt = Date.now();
    clearTimeout(this.#closeTimer);
    keepAliveWheel.delete(this);
    this.resumeReading();
    try {
      this.net.conn?.close();
    } catch {
      // already closed by the peer
    }
    this.onClose?.(this);
  }

  /**
   * Starts the keep-alive check: the connection is closed by `onExpired` when nothing arrives
   * for 1.5 times the keep alive [MQTT-3.1.2-22].
   *
   * @param onExpired Called when the client has been silent too long.
   */
  startKeepAlive(onExpired: (client: Client) => void): void {
    this.#connectDeadline = 0;
    keepAliveWheel.delete(this);
    if (this.properties.keepAlive === 0 || this.#closed) return;
    this.#keepAliveFrom = Date.now(); // counted from the CONNACK (a cluster claim may delay it)
    this.#onKeepAliveExpired = onExpired;
    keepAliveWheel.add(this); // one timer for every client's check, not one each
  }

  /**
   * Called by the keep-alive wheel: ends the connection through the `onExpired` given to
   * {@linkcode Client.startKeepAlive} once nothing arrived for 1.5 times the keep alive.
   *
   * @param now The current time (ms since epoch).
   */
  keepAliveTick(now: number): void {
    if (this.#closed) return keepAliveWheel.delete(this);
    if (this.#connectDeadline !== 0) {
      if (now < this.#connectDeadline) return;
      keepAliveWheel.delete(this);
      this.#connectDeadline = 0;
      if (!this.state.connected) this.#onKeepAliveExpired?.(this);
      return;
    }
    if (this.#paused) return; // we stopped reading, not the client (the clock restarts on resume)
    if (now - Math.max(this.lastReceived, this.#keepAliveFrom) < this.properties.keepAlive * 1500) return;
    keepAliveWheel.delete(this);
    this.#onKeepAliveExpired?.(this);
  }

  /**
   * Starts a timer that calls `onTimeout` unless CONNECT is accepted first.
   *
   * @param seconds The timeout.
   * @param onTimeout Called on timeout.
   */
  startConnectTimeout(seconds: number, onTimeout: (client: Client) => void): void {
    // The keep-alive wheel checks it: no timer per connection (a connect storm makes thousands).
    this.#onKeepAliveExpired = onTimeout;
    this.#connectDeadline = Date.now() + seconds * 1000;
    keepAliveWheel.add(this);
  }

  /** Cancels the CONNECT timeout (CONNECT arrived). */
  clearConnectTimeout(): void {
    if (this.#connectDeadline === 0) return;
    this.#connectDeadline = 0;
    keepAliveWheel.delete(this);
    this.#onKeepAliveExpired = undefined; // an idle connection keeps nothing it does not need
  }

  /** Writes what was queued this turn (called once per turn for each client that queued packets). */
  #flush(): void {
    this.#scheduled = false;
    if (!this.#writing && this.writesHeld === 0) this.#writeLoop();
  }

  /** A packet was queued: held (see {@linkcode holdWritesOf}), or written this turn. */
  #queued(): void {
    const held = heldWrites;
    if (held !== undefined && this.properties.sessionExpiryInterval !== 0 && !held.has(this)) {
      held.add(this);
      this.writesHeld++;
    }
    if (!this.#scheduled && !this.#writing) {
      this.#scheduled = true;
      scheduleFlush(this);
    }
  }

  /** Lets go one hold on this client's writes (see {@linkcode holdWritesOf}); the last one writes. */
  releaseWrites(): void {
    if (this.writesHeld === 0 || --this.writesHeld > 0) return;
    if (!this.#scheduled && !this.#writing) {
      this.#scheduled = true;
      scheduleFlush(this);
    }
  }

  static {
    flushClient = (client: Client) => client.#flush();
  }

  /** Takes over another client's session state (subscriptions and in-flight messages). */
  inheritSession(old: Client): void {
    this.state.subscriptions = old.state.subscriptions;
    this.state.inflight = old.state.inflight;
  }
}
