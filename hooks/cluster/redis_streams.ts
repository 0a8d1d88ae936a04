/**
 * The inbox streams' hot path on Redis: {@linkcode ForwardCommand} writes a batch of forwards from its
 * own bytes, {@linkcode InboxReader} reads a node's inbox over a plain connection of its own.
 *
 * Through ioredis each `XREAD` reply crossed Deno's Node streams and redis-parser, which gathers every entry
 * that spans two socket reads (most of them: an entry is up to 64 KiB) into a pool it allocates as it
 * goes. Here the reply is read straight into a large buffer and parsed in place: every entry's records
 * are a view of that buffer, which is never written again (the next reply goes after it, or into a
 * fresh buffer), so they stay valid while any message of theirs waits in a session.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { Command } from "ioredis";
import type { InboxEntry } from "./bus.ts";

/**
 * `XADD {inbox} * n {node} m {records}`, written to the socket from the batch's own bytes: ioredis would
 * first copy every argument into a fresh buffer (an allocation of the batch's size per commit).
 */
export class ForwardCommand extends Command {
  readonly #head: Buffer;
  readonly #records: Buffer;

  /**
   * Creates the command (sent with `sendCommand`; its `promise` settles with the reply).
   *
   * @param inbox The destination's inbox stream.
   * @param node The sender.
   * @param records The batch.
   */
  constructor(inbox: string, node: string, records: Uint8Array) {
    // A view, not a copy: a batch's records are never written again.
    const bytes = Buffer.from(records.buffer, records.byteOffset, records.byteLength);
    super("xadd", [inbox, "*", "n", node, "m", bytes]);
    this.#records = bytes;
    this.#head = Buffer.from(
      `*7\r\n$4\r\nXADD\r\n$${Buffer.byteLength(inbox)}\r\n${inbox}\r\n$1\r\n*\r\n$1\r\nn\r\n` +
        `$${Buffer.byteLength(node)}\r\n${node}\r\n$1\r\nm\r\n$${bytes.length}\r\n`,
    );
  }

  /**
   * Writes the command's head and records, and returns its end for ioredis to write.
   *
   * @param stream The connection's socket.
   * @returns The end of the command.
   */
  override toWritable(stream: object): string {
    const writable = stream as { write(chunk: Buffer): unknown };
    writable.write(this.#head);
    writable.write(this.#records);
    return "\r\n";
  }
}

/** Where the reader connects and how it logs in. */
export interface InboxReaderOptions {
  /** Host name or address. */
  hostname: string;
  /** Port. */
  port: number;
  /** ACL user name. */
  username?: string;
  /** Password. */
  password?: string;
  /** Database number. */
  database: number;
}

/** A fresh buffer holds at least this much (replies are read into it one after another). */
const BUFFER_BYTES = 1024 * 1024;
/** About the largest entry (a batch of forwards, see `commits.ts`), to size the buffer for a reply. */
const ENTRY_BYTES = 66 * 1024;
/** A socket read is given at least this much room (else the reply in progress moves to a fresh buffer). */
const READ_BYTES = 64 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Not enough bytes yet. */
const MORE = -1;

/**
 * Reads one Redis stream with `XREAD` over its own connection (opened on the first read and again
 * after a failure). Reads are answered in the order asked.
 */
export class InboxReader {
  readonly #options: InboxReaderOptions;
  #conn: Deno.Conn | undefined;
  #buffer = new Uint8Array(0);
  /** Where the next reply starts in `#buffer` (what is before it may be referenced). */
  #used = 0;
  /** Bytes read past `#used`. */
  #filled = 0;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  /**
   * Creates the reader; nothing connects before the first read.
   *
   * @param options Where Redis is.
   */
  constructor(options: InboxReaderOptions) {
    this.#options = options;
  }

  /**
   * `XREAD COUNT count BLOCK blockMs STREAMS key after`.
   *
   * @param key The stream.
   * @param after The last id read ("0" for the start).
   * @param count At most this many entries.
   * @param blockMs How long to wait for one.
   * @returns The entries (none when the wait ended without one).
   */
  read(key: string, after: string, count: number, blockMs: number): Promise<InboxEntry[]> {
    const next = this.#queue.then(() => this.#read(key, after, count, blockMs));
    this.#queue = next.catch(() => undefined);
    return next;
  }

  /** Closes the connection (a read in progress fails). */
  close(): void {
    this.#closed = true;
    this.#drop();
  }

  #drop(): void {
    try {
      this.#conn?.close();
    } catch {
      // already closed
    }
    this.#conn = undefined;
    this.#filled = 0;
  }

  async #read(key: string, after: string, count: number, blockMs: number): Promise<InboxEntry[]> {
    if (this.#closed) throw new Error("The inbox reader is closed");
    try {
      if (this.#conn === undefined) await this.#connect();
      // Room for the whole reply, so that it need not move; what is before stays as it is (referenced).
      const room = count * ENTRY_BYTES;
      if (this.#buffer.length - this.#used < room) {
        this.#buffer = new Uint8Array(Math.max(BUFFER_BYTES, 2 * room));
        this.#used = 0;
      }
      await this.#send(["XREAD", "COUNT", String(count), "BLOCK", String(blockMs), "STREAMS", key, after]);
      for (;;) {
        const entries: InboxEntry[] = [];
        const end = parseReply(this.#buffer, this.#used, this.#used + this.#filled, entries);
        if (end !== MORE) {
          this.#used = end;
          this.#filled = 0;
          return entries;
        }
        await this.#fill();
      }
    } catch (error) {
      this.#drop();
      throw error;
    }
  }

  async #connect(): Promise<void> {
    const o = this.#options;
    const conn = await Deno.connect({ hostname: o.hostname, port: o.port });
    conn.setNoDelay(true);
    this.#conn = conn;
    this.#filled = 0;
    if (o.password !== undefined && o.password !== "") {
      await this.#command(o.username ? ["AUTH", o.username, o.password] : ["AUTH", o.password]);
    }
    if (o.database !== 0) await this.#command(["SELECT", String(o.database)]);
    await this.#command(["CLIENT", "SETNAME", "broker-cluster-inbox"]);
  }

  /** Sends a command whose reply is a simple string (`+OK`), and reads it. */
  async #command(args: string[]): Promise<void> {
    await this.#send(args);
    for (;;) {
      const start = this.#used;
      const end = start + this.#filled;
      const line = lineEnd(this.#buffer, start, end);
      if (line !== MORE) {
        const reply = decoder.decode(this.#buffer.subarray(start, line));
        this.#filled = end - (line + 2);
        this.#buffer.copyWithin(start, line + 2, end);
        if (reply[0] !== "+") throw new Error(`Redis refused ${args[0]}: ${reply.slice(1)}`);
        return;
      }
      await this.#fill();
    }
  }

  async #send(args: string[]): Promise<void> {
    let text = `*${args.length}\r\n`;
    for (const arg of args) text += `$${encoder.encode(arg).length}\r\n${arg}\r\n`;
    const bytes = encoder.encode(text);
    for (let at = 0; at < bytes.length;) at += await this.#conn!.write(bytes.subarray(at));
  }

  /** Reads more of the reply in progress, moving it to a fresh buffer when the room left is short. */
  async #fill(): Promise<void> {
    let end = this.#used + this.#filled;
    if (this.#buffer.length - end < READ_BYTES) {
      const fresh = new Uint8Array(Math.max(BUFFER_BYTES, 2 * (this.#filled + READ_BYTES)));
      fresh.set(this.#buffer.subarray(this.#used, end));
      this.#buffer = fresh;
      this.#used = 0;
      end = this.#filled;
    }
    const n = await this.#conn!.read(this.#buffer.subarray(end));
    if (n === null) throw new Error("Redis closed the inbox reader's connection");
    this.#filled += n;
  }
}

/** Where the line starting at `at` ends (its `\r`), or {@linkcode MORE}. */
function lineEnd(bytes: Uint8Array, at: number, end: number): number {
  for (let i = at; i + 1 < end; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10) return i;
  }
  return MORE;
}

/** Parser state: one number, the position (numbers read are returned). */
interface Cursor {
  at: number;
}

/** Reads `{prefix}{integer}\r\n` at the cursor; undefined when incomplete. */
function header(bytes: Uint8Array, cursor: Cursor, end: number, prefix: number): number | undefined {
  const at = cursor.at;
  const line = lineEnd(bytes, at, end);
  if (line === MORE) return undefined;
  if (bytes[at] !== prefix) {
    const text = decoder.decode(bytes.subarray(at, line));
    throw new Error(bytes[at] === 0x2d ? `Redis: ${text.slice(1)}` : `Unexpected reply from Redis: ${text}`);
  }
  let value = 0;
  let sign = 1;
  let i = at + 1;
  if (bytes[i] === 0x2d) {
    sign = -1;
    i++;
  }
  for (; i < line; i++) value = value * 10 + (bytes[i] - 48);
  cursor.at = line + 2;
  return sign * value;
}

/** Reads a bulk string's bounds at the cursor: [start, end), or undefined when incomplete. */
function bulk(bytes: Uint8Array, cursor: Cursor, end: number): number | undefined {
  const length = header(bytes, cursor, end, 0x24); // $
  if (length === undefined) return undefined;
  if (cursor.at + length + 2 > end) return undefined;
  return length;
}

/**
 * Parses an `XREAD` reply at `start` into `entries`.
 *
 * @returns Where the reply ends, or {@linkcode MORE} when it is not complete yet.
 */
function parseReply(bytes: Uint8Array, start: number, end: number, entries: InboxEntry[]): number {
  const cursor: Cursor = { at: start };
  const streams = header(bytes, cursor, end, 0x2a); // *
  if (streams === undefined) return MORE;
  if (streams < 0) return cursor.at; // the wait ended without an entry
  for (let s = 0; s < streams; s++) {
    const pair = header(bytes, cursor, end, 0x2a); // [key, entries]
    if (pair === undefined) return MORE;
    if (pair !== 2) throw new Error(`Unexpected XREAD reply from Redis (${pair} items per stream)`);
    const keyLength = bulk(bytes, cursor, end);
    if (keyLength === undefined) return MORE;
    cursor.at += keyLength + 2;
    const count = header(bytes, cursor, end, 0x2a);
    if (count === undefined) return MORE;
    for (let e = 0; e < count; e++) {
      if (header(bytes, cursor, end, 0x2a) === undefined) return MORE; // [id, fields]
      const idLength = bulk(bytes, cursor, end);
      if (idLength === undefined) return MORE;
      const id = decoder.decode(bytes.subarray(cursor.at, cursor.at + idLength));
      cursor.at += idLength + 2;
      const fields = header(bytes, cursor, end, 0x2a);
      if (fields === undefined) return MORE;
      let from = "";
      let records: Uint8Array = new Uint8Array();
      for (let f = 0; f < fields; f += 2) {
        const nameLength = bulk(bytes, cursor, end);
        if (nameLength === undefined) return MORE;
        const name = nameLength === 1 ? bytes[cursor.at] : 0;
        cursor.at += nameLength + 2;
        const valueLength = bulk(bytes, cursor, end);
        if (valueLength === undefined) return MORE;
        const value = bytes.subarray(cursor.at, cursor.at + valueLength);
        if (name === 0x6e) from = decoder.decode(value); // n
        else if (name === 0x6d) records = value; // m
        cursor.at += valueLength + 2;
      }
      entries.push({ id, from, records });
    }
  }
  return cursor.at;
}

/**
 * An inbox entry from an ioredis reply (`XRANGE`, or `XREAD` through ioredis).
 *
 * @param id The entry's id.
 * @param fields Its fields and values.
 * @returns The entry.
 */
export function entryOf(id: Buffer | string, fields: Buffer[]): InboxEntry {
  let from = "";
  let records: Uint8Array = new Uint8Array();
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i];
    if (name.length !== 1) continue;
    if (name[0] === 0x6e) from = fields[i + 1].toString("utf8"); // n
    else if (name[0] === 0x6d) { // m
      // A view, not a copy: ioredis's reply buffers are never written again (a reply spanning reads
      // is gathered into a fresh buffer, or a part of its pool that is never handed out twice).
      const value = fields[i + 1];
      records = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    }
  }
  return { id: id.toString(), from, records };
}
