/**
 * The load generator's MQTT client: a raw TCP socket, packets encoded once into templates and patched
 * in place (publisher index, sequence number, send time, packet id), many packets per socket write, and
 * a streaming parser that handles every complete packet of a read in one synchronous loop without
 * allocating. It speaks just enough MQTT 5 (and 3.1.1, for Aedes) for the benchmarks, and acknowledges
 * QoS 1/2 deliveries itself.
 *
 * It has its own tiny encoder instead of `src/packets` so that the generator does not move when the
 * broker's codec does, and so that it carries none of the codec's validation cost.
 *
 * @module
 */

/** The MQTT protocol level the generator speaks: 5, or 4 (3.1.1) for brokers without v5 (Aedes). */
export type Version = 4 | 5;

const encoder = new TextEncoder();

/** Bytes of the payload header: publisher index (u32), sequence number (u32), send time (f64, ms). */
export const PAYLOAD_HEADER = 16;

/** Where a message was sent from and which one it was: filled from the payload of each delivery. */
export interface Sink {
  /**
   * Called for every PUBLISH received.
   *
   * @param bytes The read buffer.
   * @param payload Where the payload starts in `bytes`.
   * @param payloadEnd Where it ends.
   * @param flags The low nibble of the fixed header (retain is bit 0).
   */
  onPublish(bytes: Uint8Array, view: DataView, payload: number, payloadEnd: number, flags: number): void;
}

/** A PUBLISH encoded once; each send copies it and patches the sequence number (and packet id). */
export class PublishTemplate {
  /** The whole packet. */
  readonly bytes: Uint8Array;
  /** Offset of the packet id, or -1 at QoS 0. */
  readonly packetIdOffset: number;
  /** Offset of the payload. */
  readonly payloadOffset: number;
  /** 0, 1 or 2. */
  readonly qos: number;

  /**
   * Encodes the template.
   *
   * @param topic The topic name.
   * @param payloadSize Payload bytes, at least {@linkcode PAYLOAD_HEADER}.
   * @param qos The QoS.
   * @param version The protocol level (v5 adds an empty property length).
   * @param publisher The publisher index written into every payload.
   * @param retain The retain flag.
   */
  constructor(
    topic: string,
    payloadSize: number,
    qos: number,
    version: Version,
    publisher: number,
    retain = false,
  ) {
    const topicBytes = encoder.encode(topic);
    const size = Math.max(PAYLOAD_HEADER, payloadSize);
    const remaining = 2 + topicBytes.length + (qos > 0 ? 2 : 0) + (version === 5 ? 1 : 0) + size;
    const header = [0x30 | (qos << 1) | (retain ? 1 : 0), ...varint(remaining)];
    const bytes = new Uint8Array(header.length + remaining);
    bytes.set(header);
    let p = header.length;
    bytes[p++] = topicBytes.length >> 8;
    bytes[p++] = topicBytes.length & 0xff;
    bytes.set(topicBytes, p);
    p += topicBytes.length;
    this.packetIdOffset = qos > 0 ? p : -1;
    if (qos > 0) p += 2;
    if (version === 5) bytes[p++] = 0;
    this.payloadOffset = p;
    new DataView(bytes.buffer).setUint32(p, publisher);
    for (let i = PAYLOAD_HEADER; i < size; i++) bytes[p + i] = 0x61 + (i % 26);
    this.bytes = bytes;
    this.qos = qos;
  }
}

/** Encodes a Variable Byte Integer. */
export function varint(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) byte |= 0x80;
    out.push(byte);
  } while (value > 0);
  return out;
}

function str(s: string): number[] {
  const b = encoder.encode(s);
  return [b.length >> 8, b.length & 0xff, ...b];
}

function packet(first: number, body: number[]): Uint8Array {
  return new Uint8Array([first, ...varint(body.length), ...body]);
}

/**
 * Session settings every CONNECT of the generator uses: `persistent` asks for a session that
 * outlives the connection (clean session 0; v5: Clean Start 0 and a Session Expiry Interval of an
 * hour), set by `--persistent`.
 */
export const sessions: { persistent: boolean } = { persistent: false };

/** Encodes a CONNECT (clean start unless `sessions.persistent`, no keep alive; v5 asks for a Receive Maximum of 65535). */
export function encodeConnect(clientId: string, version: Version, keepAlive = 0): Uint8Array {
  const persistent = sessions.persistent;
  const body = [...str("MQTT"), version, persistent ? 0x00 : 0x02, keepAlive >> 8, keepAlive & 0xff];
  if (version === 5 && persistent) body.push(8, 0x21, 0xff, 0xff, 0x11, 0, 0, 0x0e, 0x10);
  else if (version === 5) body.push(3, 0x21, 0xff, 0xff);
  body.push(...str(clientId));
  return packet(0x10, body);
}

/** Encodes a SUBSCRIBE for several filters at one QoS. */
export function encodeSubscribe(
  packetId: number,
  filters: string[],
  qos: number,
  version: Version,
): Uint8Array {
  const body = [packetId >> 8, packetId & 0xff];
  if (version === 5) body.push(0);
  for (const f of filters) body.push(...str(f), qos);
  return packet(0x82, body);
}

/** Property value sizes by id (v5), for skipping CONNACK properties: -1 string/binary, -2 pair, -3 varint. */
const PROPERTY_SIZE: Record<number, number> = {
  0x01: 1,
  0x17: 1,
  0x19: 1,
  0x24: 1,
  0x25: 1,
  0x28: 1,
  0x29: 1,
  0x2a: 1,
  0x13: 2,
  0x21: 2,
  0x22: 2,
  0x23: 2,
  0x02: 4,
  0x11: 4,
  0x18: 4,
  0x27: 4,
  0x0b: -3,
  0x03: -1,
  0x08: -1,
  0x12: -1,
  0x15: -1,
  0x1a: -1,
  0x1c: -1,
  0x1f: -1,
  0x09: -1,
  0x16: -1,
  0x26: -2,
};

const NO_SINK: Sink = { onPublish() {} };

/** Options for {@linkcode BenchClient.connect}. */
export interface ConnectOptions {
  /** The broker's port on 127.0.0.1. */
  port: number;
  /** The client id. */
  clientId: string;
  /** The protocol level. */
  version: Version;
  /** Milliseconds to wait for CONNACK. */
  timeoutMs?: number;
}

/** One benchmark connection. */
export class BenchClient {
  /** The socket. */
  readonly conn: Deno.TcpConn;
  /** The protocol level. */
  readonly version: Version;
  /** Receives every PUBLISH. */
  sink: Sink = NO_SINK;
  /** The broker's Receive Maximum from CONNACK (65535 when absent). */
  receiveMaximum = 65535;
  /** `performance.now()` at the end of the last read that carried a PUBLISH. */
  lastPublishAt = 0;
  /** PUBLISH packets received. */
  published = 0;
  /** Acknowledgements (PUBACK, PUBCOMP) received for our QoS 1/2 publishes. */
  acked = 0;
  /** Set when the connection ended: the reason. */
  closedReason = "";
  /** True once {@linkcode BenchClient.close} was called. */
  closing = false;

  #read = new Uint8Array(1 << 17);
  #readView = new DataView(this.#read.buffer);
  #readLength = 0;
  #out = new Uint8Array(1 << 16);
  #outView = new DataView(this.#out.buffer);
  #outLength = 0;
  #spare = new Uint8Array(1 << 16);
  #writing: Promise<void> | null = null;
  #stopReading = false;
  #waiters = new Map<number, (body: Uint8Array) => void>();
  #closedWaiters: (() => void)[] = [];
  /** Windowed publishing (QoS 1/2). */
  #template: PublishTemplate | null = null;
  #toSend = 0;
  #sent = 0;
  #window = 0;
  #stamp = false;
  #done: (() => void) | null = null;

  private constructor(conn: Deno.TcpConn, version: Version) {
    this.conn = conn;
    this.version = version;
  }

  /**
   * Connects and waits for a successful CONNACK.
   *
   * @param options Where and as whom.
   * @returns The connected client.
   */
  static async connect(options: ConnectOptions): Promise<BenchClient> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: options.port });
    conn.setNoDelay(true);
    const client = new BenchClient(conn, options.version);
    const connack = client.#expect(0x20, options.timeoutMs ?? 10_000, `CONNACK for ${options.clientId}`);
    client.readLoop();
    client.write(encodeConnect(options.clientId, options.version));
    client.flush();
    const body = await connack;
    if (body[1] !== 0) {
      client.close();
      throw new Error(`Connect of ${options.clientId} refused with reason 0x${body[1].toString(16)}`);
    }
    if (options.version === 5) client.#readConnackProperties(body);
    return client;
  }

  /**
   * Subscribes and waits for SUBACK.
   *
   * @param filters Topic filters.
   * @param qos Maximum QoS.
   */
  async subscribe(filters: string[], qos: number): Promise<void> {
    const suback = this.#expect(0x90, 10_000, `SUBACK for ${filters[0]}`);
    this.write(encodeSubscribe(1, filters, qos, this.version));
    this.flush();
    const body = await suback;
    let p = 2;
    if (this.version === 5) {
      const [length, size] = readVarint(body, p);
      p += size + length;
    }
    for (; p < body.length; p++) {
      if (body[p] >= 0x80) {
        throw new Error(`Subscription to ${filters} refused with 0x${body[p].toString(16)}`);
      }
    }
  }

  /** Stops reading from the socket (a stalled subscriber); the kernel buffers fill and the broker sees it. */
  stopReading(): void {
    this.#stopReading = true;
  }

  /**
   * Appends raw bytes to the outbound buffer (sent by the next {@linkcode BenchClient.flush}).
   *
   * @param bytes The bytes.
   */
  write(bytes: Uint8Array): void {
    this.#reserve(bytes.length);
    this.#out.set(bytes, this.#outLength);
    this.#outLength += bytes.length;
  }

  /**
   * Appends one PUBLISH from a template.
   *
   * @param template The encoded packet.
   * @param seq The sequence number written into the payload.
   * @param stamp Write `performance.now()` into the payload.
   */
  appendPublish(template: PublishTemplate, seq: number, stamp: boolean): void {
    const bytes = template.bytes;
    this.#reserve(bytes.length);
    const at = this.#outLength;
    this.#out.set(bytes, at);
    const view = this.#outView;
    view.setUint32(at + template.payloadOffset + 4, seq);
    if (stamp) view.setFloat64(at + template.payloadOffset + 8, performance.now());
    if (template.packetIdOffset >= 0) view.setUint16(at + template.packetIdOffset, (seq % 65535) + 1);
    this.#outLength = at + bytes.length;
  }

  /**
   * Sends what is buffered; the promise settles when the socket has taken all of it.
   *
   * @returns A promise for the write.
   */
  flush(): Promise<void> {
    if (this.#writing !== null) return this.#writing;
    if (this.#outLength === 0) return Promise.resolve();
    this.#writing = this.#writeLoop();
    return this.#writing;
  }

  /**
   * Publishes `count` messages from a template as fast as the socket takes them (QoS 0), or keeping
   * `window` unacknowledged (QoS 1/2, capped by the broker's Receive Maximum).
   *
   * @param template The packet.
   * @param count How many.
   * @param window Maximum in flight for QoS 1/2.
   * @param batchBytes QoS 0: bytes per socket write.
   * @returns A promise that settles when all are written (QoS 0) or acknowledged (QoS 1/2).
   */
  async publishMany(
    template: PublishTemplate,
    count: number,
    window = 1000,
    batchBytes = 65536,
  ): Promise<void> {
    if (template.qos === 0) {
      const perBatch = Math.max(1, Math.floor(batchBytes / template.bytes.length));
      let seq = 0;
      while (seq < count) {
        if (this.closedReason) throw new Error(`Publisher connection closed: ${this.closedReason}`);
        const end = Math.min(count, seq + perBatch);
        for (; seq < end; seq++) this.appendPublish(template, seq, false);
        await this.flush();
      }
      return;
    }
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#template = template;
    this.#toSend = count;
    this.#sent = 0;
    this.acked = 0;
    this.#stamp = false;
    this.#window = Math.max(1, Math.min(window, this.receiveMaximum));
    this.#done = resolve;
    this.#pump();
    this.flush();
    await promise;
  }

  /**
   * Waits until the connection ends (after {@linkcode BenchClient.close} or by the peer).
   *
   * @returns A promise.
   */
  closed(): Promise<void> {
    if (this.closedReason) return Promise.resolve();
    return new Promise((resolve) => this.#closedWaiters.push(resolve));
  }

  /** Closes the socket. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }

  /** Reads and handles packets until the socket ends. Started by `connect`. */
  async readLoop(): Promise<void> {
    try {
      while (!this.#stopReading) {
        if (this.#readLength === this.#read.length) {
          const bigger = new Uint8Array(this.#read.length * 2);
          bigger.set(this.#read);
          this.#read = bigger;
          this.#readView = new DataView(bigger.buffer);
        }
        const n = await this.conn.read(this.#read.subarray(this.#readLength));
        if (n === null) {
          this.#end("closed by the broker");
          return;
        }
        this.#readLength += n;
        const used = this.#parse();
        if (used > 0) {
          this.#read.copyWithin(0, used, this.#readLength);
          this.#readLength -= used;
        }
        if (this.#outLength > 0) this.flush();
      }
    } catch (error) {
      this.#end(this.closing ? "closed" : `read failed: ${error instanceof Error ? error.message : error}`);
    }
  }

  #end(reason: string): void {
    if (!this.closedReason) this.closedReason = reason;
    for (const w of this.#closedWaiters) w();
    this.#closedWaiters = [];
    this.close();
  }

  /** Handles every complete packet in the read buffer; returns the bytes consumed. */
  #parse(): number {
    const buf = this.#read;
    const end = this.#readLength;
    const v5 = this.version === 5;
    let pos = 0;
    let publishes = 0;
    while (pos + 2 <= end) {
      // Remaining Length
      let remaining = 0;
      let multiplier = 1;
      let i = pos + 1;
      let complete = false;
      for (; i < end && i < pos + 5; i++) {
        const b = buf[i];
        remaining += (b & 0x7f) * multiplier;
        multiplier *= 128;
        if (b < 0x80) {
          complete = true;
          i++;
          break;
        }
      }
      if (!complete) break;
      const bodyStart = i;
      const bodyEnd = bodyStart + remaining;
      if (bodyEnd > end) break;
      const first = buf[pos];
      const type = first >> 4;
      if (type === 3) {
        const qos = (first >> 1) & 3;
        let p = bodyStart + 2 + ((buf[bodyStart] << 8) | buf[bodyStart + 1]);
        let packetId = 0;
        if (qos > 0) {
          packetId = (buf[p] << 8) | buf[p + 1];
          p += 2;
        }
        if (v5) {
          // property length (almost always 0: one byte)
          let length = 0;
          let m = 1;
          let b;
          do {
            b = buf[p++];
            length += (b & 0x7f) * m;
            m *= 128;
          } while (b >= 0x80);
          p += length;
        }
        this.sink.onPublish(buf, this.#readView, p, bodyEnd, first & 0x0f);
        publishes++;
        if (qos === 1) this.#ack(0x40, packetId);
        else if (qos === 2) this.#ack(0x50, packetId);
      } else if (type === 4 || type === 7) {
        this.acked++;
        if (this.#template !== null) this.#onAcked();
      } else if (type === 5) {
        this.#ack(0x62, (buf[bodyStart] << 8) | buf[bodyStart + 1]);
      } else if (type === 6) {
        this.#ack(0x70, (buf[bodyStart] << 8) | buf[bodyStart + 1]);
      } else if (type === 14) {
        this.closedReason = `DISCONNECT from the broker, reason 0x${(buf[bodyStart] ?? 0).toString(16)}`;
      } else {
        const waiter = this.#waiters.get(first & 0xf0);
        if (waiter) {
          this.#waiters.delete(first & 0xf0);
          waiter(buf.slice(bodyStart, bodyEnd));
        }
      }
      pos = bodyEnd;
    }
    if (publishes > 0) {
      this.published += publishes;
      this.lastPublishAt = performance.now();
    }
    if (this.#template !== null) this.#pump();
    return pos;
  }

  #ack(first: number, packetId: number): void {
    this.#reserve(4);
    const out = this.#out;
    let at = this.#outLength;
    out[at++] = first;
    out[at++] = 2;
    out[at++] = packetId >> 8;
    out[at++] = packetId & 0xff;
    this.#outLength = at;
  }

  #onAcked(): void {
    if (this.acked >= this.#toSend) {
      const done = this.#done;
      this.#template = null;
      this.#done = null;
      done?.();
    }
  }

  /** Tops up the window of QoS 1/2 publishes. */
  #pump(): void {
    const template = this.#template;
    if (template === null) return;
    const limit = Math.min(this.#toSend, this.acked + this.#window);
    while (this.#sent < limit) this.appendPublish(template, this.#sent++, this.#stamp);
  }

  #reserve(n: number): void {
    const needed = this.#outLength + n;
    if (needed <= this.#out.length) return;
    let size = this.#out.length * 2;
    while (size < needed) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#out.subarray(0, this.#outLength));
    this.#out = next;
    this.#outView = new DataView(next.buffer);
  }

  async #writeLoop(): Promise<void> {
    try {
      while (this.#outLength > 0) {
        // Swap buffers so that packets appended during the write go to the other one.
        const data = this.#out.subarray(0, this.#outLength);
        const keep = this.#out;
        if (this.#spare.length < keep.length) this.#spare = new Uint8Array(keep.length);
        this.#out = this.#spare;
        this.#outView = new DataView(this.#out.buffer);
        this.#spare = keep;
        this.#outLength = 0;
        let written = 0;
        while (written < data.length) written += await this.conn.write(data.subarray(written));
      }
    } catch (error) {
      this.#end(this.closing ? "closed" : `write failed: ${error instanceof Error ? error.message : error}`);
    } finally {
      this.#writing = null;
    }
  }

  #expect(first: number, timeoutMs: number, what: string): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(first);
        this.close();
        reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.#waiters.set(first, (body) => {
        clearTimeout(timer);
        resolve(body);
      });
      this.#closedWaiters.push(() => {
        if (!this.#waiters.has(first)) return;
        this.#waiters.delete(first);
        clearTimeout(timer);
        reject(new Error(`Connection ended while waiting for ${what}: ${this.closedReason}`));
      });
    });
  }

  #readConnackProperties(body: Uint8Array): void {
    let p = 2;
    const [length, size] = readVarint(body, p);
    p += size;
    const end = p + length;
    while (p < end) {
      const id = body[p++];
      const kind = PROPERTY_SIZE[id];
      if (kind === undefined) return;
      if (id === 0x21) this.receiveMaximum = (body[p] << 8) | body[p + 1];
      if (kind > 0) p += kind;
      else if (kind === -1) p += 2 + ((body[p] << 8) | body[p + 1]);
      else if (kind === -2) {
        p += 2 + ((body[p] << 8) | body[p + 1]);
        p += 2 + ((body[p] << 8) | body[p + 1]);
      } else p += readVarint(body, p)[1];
    }
  }
}

/** Reads a Variable Byte Integer: [value, bytes used]. */
export function readVarint(bytes: Uint8Array, at: number): [number, number] {
  let value = 0;
  let multiplier = 1;
  for (let i = 0; i < 4; i++) {
    const b = bytes[at + i];
    value += (b & 0x7f) * multiplier;
    if (b < 0x80) return [value, i + 1];
    multiplier *= 128;
  }
  throw new Error("Malformed variable byte integer");
}
