/**
 * The server fuzzer: over real TCP sockets, sends mutated golden packets after a valid CONNECT (each
 * on a fresh connection) and random valid packet sequences, while a bystander client keeps
 * publishing and receiving.
 *
 * Properties checked:
 * - a stream whose first bad frame is known (the framer or `decodePacket` says so) closes the
 *   connection with exactly that reason code: a v5 DISCONNECT carrying it, or (v3/v4) a plain close;
 * - a stream that ends in the middle of a packet gets nothing, and the connection closes at our end
 *   of stream;
 * - any other stream gets only packets we can decode, any DISCONNECT carries a known error code, and
 *   the connection ends (no hang);
 * - no server handler throws (a hook sees every connection's cause of closing), connections are
 *   released, and the bystander sees every one of its messages;
 * - random valid sequences (subscribe, publish QoS 0/1/2, unsubscribe, ping) get the right
 *   acknowledgements, and exactly the messages their subscriptions match, at the right QoS.
 *
 * @module
 */

import {
  AllowHook,
  type Client,
  type Hook,
  type Packet,
  PacketType,
  type ProtocolVersion,
} from "../../mod.ts";
import { ByteWriter, decodePacket, encodePacket, FRAME_READY, PacketFramer } from "../../src/packets/mod.ts";
import { reasonName } from "../../src/packets/mod.ts";
import { connectPacket, startBroker, type TestBroker } from "../helpers.ts";
import { goldenCorpus, referenceFrames } from "./codec_fuzz.ts";
import { mutate } from "./mutate.ts";
import { varint } from "../packets/golden.ts";
import { Rng } from "./rng.ts";

/** The broker's Maximum Packet Size during the run, so that 0x95 is reachable. */
export const FUZZ_MAXIMUM_PACKET_SIZE = 2048;

/** How long any single wait may take before it counts as a hang. */
const HANG_MS = 5000;

/** A problem found by the server fuzzer. */
export interface ServerFailure {
  /** What went wrong. */
  detail: string;
  /** The bytes sent, if the case was a mutation. */
  bytes?: number[];
  /** How the input was made. */
  origin: string;
}

/** Counts kept by a server fuzz run. */
export interface ServerFuzzStats {
  /** Mutated packets sent (each on its own connection). */
  cases: number;
  /** Of those, how many had an exactly known outcome. */
  exact: number;
  /** Random valid sequences run, and the packets they sent. */
  sequences: number;
  /** Packets sent by the sequences. */
  sequencePackets: number;
  /** Bystander round trips. */
  bystanderRoundTrips: number;
  /** DISCONNECT reason codes received, with counts. */
  disconnectCodes: Map<number, number>;
  /** Failures. */
  failures: ServerFailure[];
}

/** A raw MQTT connection with a background reader, so that no read is ever abandoned. */
export class FuzzConnection {
  readonly #conn: Deno.TcpConn;
  readonly #framer = new PacketFramer();
  readonly #queue: Packet[] = [];
  #wake: (() => void) | undefined;
  #pump: Promise<void>;
  /** The server closed its side. */
  ended = false;
  /** Set if the server sent bytes we cannot decode. */
  undecodable: string | undefined;
  /** The protocol level to encode and decode with. */
  readonly version: ProtocolVersion;

  private constructor(conn: Deno.TcpConn, version: ProtocolVersion) {
    this.#conn = conn;
    this.version = version;
    this.#pump = this.#readLoop();
  }

  /**
   * Opens a connection.
   *
   * @param port The broker's port.
   * @param version The protocol level.
   * @returns The connection.
   */
  static async open(port: number, version: ProtocolVersion): Promise<FuzzConnection> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    return new FuzzConnection(conn, version);
  }

  async #readLoop(): Promise<void> {
    const buffer = new Uint8Array(16 * 1024);
    try {
      for (;;) {
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        this.#framer.push(buffer.subarray(0, n));
        let status: number;
        while ((status = this.#framer.next()) === FRAME_READY) {
          const packet = decodePacket(this.#framer.header, this.#framer.body, this.version);
          if (typeof packet === "number") {
            this.undecodable ??= `undecodable packet from the server: ${reasonName(packet)}`;
            continue;
          }
          if (packet.payload) packet.payload = packet.payload.slice();
          this.#queue.push(packet);
        }
        if (status > FRAME_READY) this.undecodable ??= `bad framing from the server: ${reasonName(status)}`;
        this.#wake?.();
      }
    } catch {
      // reset by the peer, or closed by us
    }
    this.ended = true;
    this.#wake?.();
  }

  /**
   * Sends a packet.
   *
   * @param packet The packet, encoded for this connection's level.
   */
  send(packet: Packet): Promise<void> {
    const out = new ByteWriter(256);
    encodePacket(packet, this.version, out);
    return this.sendBytes(out.toBytes());
  }

  /**
   * Sends raw bytes.
   *
   * @param data The bytes.
   */
  async sendBytes(data: Uint8Array): Promise<void> {
    let offset = 0;
    try {
      while (offset < data.length) offset += await this.#conn.write(data.subarray(offset));
    } catch {
      // The server may already have closed the connection; what it sent still gets read.
    }
  }

  /** Ends our side of the stream. */
  async closeWrite(): Promise<void> {
    try {
      await this.#conn.closeWrite();
    } catch {
      // already closed
    }
  }

  /**
   * The next packet.
   *
   * @param timeoutMs How long to wait before it counts as a hang.
   * @returns The packet, or undefined at end of stream.
   * @throws {Error} On timeout.
   */
  async next(timeoutMs: number = HANG_MS): Promise<Packet | undefined> {
    if (this.#queue.length === 0 && !this.ended) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      let timedOut = false;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(() => {
          timedOut = true;
          resolve();
        }, timeoutMs);
      });
      clearTimeout(timer);
      this.#wake = undefined;
      if (timedOut) throw new Error(`no packet and no end of stream within ${timeoutMs} ms (hang)`);
      return this.next(timeoutMs);
    }
    return this.#queue.shift();
  }

  /**
   * Everything the server sends until it closes the connection.
   *
   * @returns The packets.
   */
  async untilEnd(): Promise<Packet[]> {
    const packets: Packet[] = [];
    for (;;) {
      const packet = await this.next();
      if (packet === undefined) return packets;
      packets.push(packet);
    }
  }

  /** Closes the socket and waits for the reader to stop. */
  async close(): Promise<void> {
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    await this.#pump;
  }
}

/** Opens a connection and completes CONNECT/CONNACK. */
async function connect(
  broker: TestBroker,
  clientId: string,
  version: ProtocolVersion,
): Promise<FuzzConnection> {
  const connection = await FuzzConnection.open(broker.port, version);
  await connection.send(connectPacket(clientId, version));
  const connack = await connection.next();
  if (connack?.fixedHeader.type !== PacketType.Connack || connack.reasonCode !== 0) {
    await connection.close();
    throw new Error(`CONNECT of ${clientId} refused: ${JSON.stringify(connack)}`);
  }
  return connection;
}

/** Errors that only a bug in a handler throws (I/O failures are `Deno.errors` or plain `Error`s). */
function isBug(error: Error | undefined): boolean {
  return error instanceof TypeError || error instanceof RangeError || error instanceof ReferenceError ||
    error instanceof SyntaxError || error instanceof EvalError;
}

/** What the broker must do with a mutated stream sent after CONNECT. */
type Outcome =
  /** The first bad frame's code: a v5 DISCONNECT with it, or a plain close. */
  | { code: number }
  /** The stream ends inside a packet: nothing comes back until our end of stream. */
  | { incomplete: true }
  /** Earlier frames are valid packets: their effect is the server's business. */
  | { lenient: true };

/** Works out the outcome from the reference framer and `decodePacket`. */
function expectedOutcome(bytes: Uint8Array, version: ProtocolVersion): Outcome {
  const ref = referenceFrames(bytes, FUZZ_MAXIMUM_PACKET_SIZE);
  for (const frame of ref.frames) {
    const result = decodePacket(frame.header, bytes.subarray(frame.bodyStart, frame.end), version);
    if (typeof result === "number") return { code: result };
    return { lenient: true };
  }
  if (ref.status > FRAME_READY) return { code: ref.status };
  return { incomplete: true };
}

/** The bystander: a v5 client subscribed to its own topic, publishing to itself at QoS 1. */
class Bystander {
  #packetId = 0;
  #counter = 0;
  private constructor(readonly connection: FuzzConnection, readonly topic: string) {}

  static async start(broker: TestBroker, rng: Rng): Promise<Bystander> {
    const connection = await connect(broker, "fuzz-bystander", 5);
    const topic = `bystander/${rng.u32().toString(36)}`;
    await connection.send({
      fixedHeader: { type: PacketType.Subscribe },
      packetId: 1,
      filters: [{ filter: topic, qos: 1 }],
    });
    const suback = await connection.next();
    if (suback?.fixedHeader.type !== PacketType.Suback || suback.reasonCodes?.[0] !== 1) {
      throw new Error(`bystander SUBSCRIBE failed: ${JSON.stringify(suback)}`);
    }
    return new Bystander(connection, topic);
  }

  /** Publishes a message to itself and waits for the PUBACK and the message; returns a problem, if any. */
  async roundTrip(): Promise<string | undefined> {
    this.#packetId = (this.#packetId % 0xfffe) + 2;
    const text = `ping ${++this.#counter}`;
    await this.connection.send({
      fixedHeader: { type: PacketType.Publish, qos: 1 },
      topicName: this.topic,
      packetId: this.#packetId,
      payload: new TextEncoder().encode(text),
    });
    let acked = false;
    let received = false;
    while (!acked || !received) {
      const packet = await this.connection.next().catch((error) => error as Error);
      if (packet instanceof Error) return `bystander: ${packet.message}`;
      if (packet === undefined) return "bystander was disconnected";
      if (packet.fixedHeader.type === PacketType.Puback && packet.packetId === this.#packetId) {
        acked = true;
      } else if (packet.fixedHeader.type === PacketType.Publish) {
        if (new TextDecoder().decode(packet.payload) !== text) return `bystander got a stray message`;
        received = true;
        await this.connection.send({ fixedHeader: { type: PacketType.Puback }, packetId: packet.packetId });
      } else {
        return `bystander got packet type ${packet.fixedHeader.type}`;
      }
    }
    return undefined;
  }
}

/** A connected client under test, with what the server has delivered to it. */
interface SequenceClient {
  connection: FuzzConnection;
  /** Payloads delivered, with their QoS. */
  delivered: Map<string, number[]>;
}

/** Reads until `want` matches, handling deliveries (acking them) on the way. */
async function until(
  client: SequenceClient,
  want: (packet: Packet) => boolean,
  what: string,
): Promise<Packet> {
  for (;;) {
    const packet = await client.connection.next();
    if (packet === undefined) throw new Error(`connection closed while waiting for ${what}`);
    if (want(packet)) return packet;
    const type = packet.fixedHeader.type;
    if (type === PacketType.Publish) {
      const text = new TextDecoder().decode(packet.payload);
      const qos = packet.fixedHeader.qos ?? 0;
      const list = client.delivered.get(text) ?? [];
      list.push(qos);
      client.delivered.set(text, list);
      if (qos === 1) {
        await client.connection.send({ fixedHeader: { type: PacketType.Puback }, packetId: packet.packetId });
      }
      if (qos === 2) {
        await client.connection.send({ fixedHeader: { type: PacketType.Pubrec }, packetId: packet.packetId });
      }
    } else if (type === PacketType.Pubrel) {
      await client.connection.send({ fixedHeader: { type: PacketType.Pubcomp }, packetId: packet.packetId });
    } else {
      throw new Error(`unexpected packet type ${type} while waiting for ${what}: ${JSON.stringify(packet)}`);
    }
  }
}

function matches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/**
 * Runs one random valid sequence on a fresh connection and checks every response.
 *
 * @returns The number of packets sent.
 */
async function runSequence(broker: TestBroker, rng: Rng, index: number): Promise<number> {
  const version = rng.pick([4, 5, 5] as const);
  const prefix = `seq${index}`;
  const topics = [`${prefix}/a`, `${prefix}/b`, `${prefix}/c/d`];
  const filters = [`${prefix}/a`, `${prefix}/+`, `${prefix}/#`, `${prefix}/c/+`, `${prefix}/b`];
  const connection = await connect(broker, `fuzz-seq-${index}`, version);
  const client: SequenceClient = { connection, delivered: new Map() };
  const subscriptions = new Map<string, number>();
  /** Payload → the QoS it must arrive with (-1: it must not arrive). */
  const expected = new Map<string, number>();
  let packetId = 0;
  const nextId = () => packetId = (packetId % 0xffff) + 1;
  const steps = rng.range(10, 30);
  let sent = 0;
  try {
    for (let step = 0; step < steps; step++) {
      const op = rng.int(10);
      sent++;
      if (op < 2) {
        const chosen = [...new Set([rng.pick(filters), rng.pick(filters)].slice(0, rng.range(1, 2)))];
        const qos = chosen.map(() => rng.int(3) as 0 | 1 | 2);
        const id = nextId();
        await connection.send({
          fixedHeader: { type: PacketType.Subscribe },
          packetId: id,
          filters: chosen.map((filter, i) => ({ filter, qos: qos[i] })),
        });
        const suback = await until(client, (p) => p.fixedHeader.type === PacketType.Suback, "SUBACK");
        if (suback.packetId !== id || JSON.stringify(suback.reasonCodes) !== JSON.stringify(qos)) {
          throw new Error(`SUBACK ${JSON.stringify(suback)} for ${chosen} at QoS ${qos}`);
        }
        chosen.forEach((filter, i) => subscriptions.set(filter, qos[i]));
      } else if (op < 3) {
        const filter = rng.pick(filters);
        const id = nextId();
        await connection.send({
          fixedHeader: { type: PacketType.Unsubscribe },
          packetId: id,
          filters: [{ filter, qos: 0 }],
        });
        const unsuback = await until(client, (p) => p.fixedHeader.type === PacketType.Unsuback, "UNSUBACK");
        const code = subscriptions.has(filter) ? 0x00 : 0x11;
        if (unsuback.packetId !== id || (version === 5 && unsuback.reasonCodes?.[0] !== code)) {
          throw new Error(
            `UNSUBACK ${JSON.stringify(unsuback)} for ${filter} (expected 0x${code.toString(16)})`,
          );
        }
        subscriptions.delete(filter);
      } else if (op < 9) {
        const topic = rng.pick(topics);
        const qos = rng.int(3) as 0 | 1 | 2;
        const text = `${prefix} message ${step}`;
        let best = -1;
        for (const [filter, subscribed] of subscriptions) {
          if (matches(filter, topic)) best = Math.max(best, subscribed);
        }
        expected.set(text, best < 0 ? -1 : Math.min(best, qos));
        const id = qos > 0 ? nextId() : undefined;
        await connection.send({
          fixedHeader: { type: PacketType.Publish, qos },
          topicName: topic,
          ...(id !== undefined ? { packetId: id } : {}),
          payload: new TextEncoder().encode(text),
        });
        if (qos === 1) {
          const ack = await until(client, (p) => p.fixedHeader.type === PacketType.Puback, "PUBACK");
          const codes = best < 0 ? [0x00, 0x10] : [0x00];
          if (ack.packetId !== id || (version === 5 && !codes.includes(ack.reasonCode ?? -1))) {
            throw new Error(`PUBACK ${JSON.stringify(ack)} for packet ${id}`);
          }
        } else if (qos === 2) {
          const rec = await until(client, (p) => p.fixedHeader.type === PacketType.Pubrec, "PUBREC");
          const codes = best < 0 ? [0x00, 0x10] : [0x00];
          if (rec.packetId !== id || (version === 5 && !codes.includes(rec.reasonCode ?? -1))) {
            throw new Error(`PUBREC ${JSON.stringify(rec)} for packet ${id}`);
          }
          await connection.send({ fixedHeader: { type: PacketType.Pubrel }, packetId: id });
          const comp = await until(client, (p) => p.fixedHeader.type === PacketType.Pubcomp, "PUBCOMP");
          if (comp.packetId !== id || (version === 5 && comp.reasonCode !== 0)) {
            throw new Error(`PUBCOMP ${JSON.stringify(comp)} for packet ${id}`);
          }
        }
      } else {
        await connection.send({ fixedHeader: { type: PacketType.Pingreq } });
        await until(client, (p) => p.fixedHeader.type === PacketType.Pingresp, "PINGRESP");
      }
    }
    // Everything the server was going to deliver is in before its answer to a final PINGREQ.
    await connection.send({ fixedHeader: { type: PacketType.Pingreq } });
    await until(client, (p) => p.fixedHeader.type === PacketType.Pingresp, "the final PINGRESP");
    for (const [text, qos] of expected) {
      const got = client.delivered.get(text) ?? [];
      if (qos < 0 && got.length > 0) throw new Error(`"${text}" delivered without a matching subscription`);
      if (qos >= 0 && got.length === 0) throw new Error(`"${text}" not delivered (QoS ${qos} expected)`);
      if (qos >= 0 && Math.max(...got) !== qos) {
        throw new Error(
          `"${text}" delivered at QoS ${got}, expected ${qos} (the best matching subscription)`,
        );
      }
    }
    for (const text of client.delivered.keys()) {
      if (!expected.has(text)) throw new Error(`"${text}" delivered but never published`);
    }
    await connection.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode: 0 });
    sent++;
    const rest = await connection.untilEnd();
    if (rest.length > 0) throw new Error(`packets after DISCONNECT: ${JSON.stringify(rest)}`);
    if (connection.undecodable) throw new Error(connection.undecodable);
  } finally {
    await connection.close();
  }
  return sent;
}

/** Options of {@linkcode runServerFuzz}. */
export interface ServerFuzzOptions {
  /** The seed. */
  seed: number;
  /** Mutated packets to send (default: unbounded). */
  cases?: number;
  /** Random valid sequences to run, interleaved with the cases (default: cases / 10). */
  sequences?: number;
  /** Stop after this many seconds (default: unbounded). */
  seconds?: number;
  /** A bystander round trip after every this many cases (default 10). */
  bystanderEvery?: number;
  /** Called about every 100 cases. */
  onProgress?: (stats: ServerFuzzStats) => void;
}

/**
 * Starts a broker and fuzzes it over real sockets.
 *
 * @param options Seed and limits.
 * @returns The counts and the failures.
 */
export async function runServerFuzz(options: ServerFuzzOptions): Promise<ServerFuzzStats> {
  const rng = new Rng(options.seed);
  const corpus = goldenCorpus();
  const stats: ServerFuzzStats = {
    cases: 0,
    exact: 0,
    sequences: 0,
    sequencePackets: 0,
    bystanderRoundTrips: 0,
    disconnectCodes: new Map(),
    failures: [],
  };
  const handlerErrors: string[] = [];
  const watcher: Hook = {
    id: "fuzz-watcher",
    onDisconnect(client: Client, error: Error | undefined) {
      if (isBug(error)) handlerErrors.push(`${client.id}: ${error?.stack ?? error}`);
    },
  };
  const broker = await startBroker(
    { capabilities: { maximumPacketSize: FUZZ_MAXIMUM_PACKET_SIZE } },
    [new AllowHook(), watcher],
  );
  const cases = options.cases ?? Infinity;
  const sequences = options.sequences ?? (Number.isFinite(cases) ? Math.ceil(cases / 10) : Infinity);
  const sequenceEvery = Number.isFinite(cases) && Number.isFinite(sequences)
    ? Math.max(1, Math.round(cases / Math.max(1, sequences)))
    : 10;
  const deadline = options.seconds === undefined ? Infinity : Date.now() + options.seconds * 1000;
  const bystanderEvery = options.bystanderEvery ?? 10;
  const bystander = await Bystander.start(broker, rng);
  const baseline = broker.server.info.clientsConnected;
  const fail = (detail: string, origin: string, bytes?: Uint8Array) => {
    stats.failures.push({ detail, origin, ...(bytes ? { bytes: Array.from(bytes) } : {}) });
  };
  try {
    while ((stats.cases < cases || stats.sequences < sequences) && Date.now() < deadline) {
      const runSequenceNow = stats.sequences < sequences &&
        (stats.cases >= cases || rng.int(sequenceEvery) === 0);
      if (runSequenceNow) {
        const index = stats.sequences++;
        try {
          stats.sequencePackets += await runSequence(broker, rng, index);
        } catch (error) {
          fail(error instanceof Error ? error.message : String(error), `valid sequence ${index}`);
        }
      } else {
        await runCase(broker, rng, corpus, stats, fail);
        stats.cases++;
        if (stats.cases % 100 === 0) options.onProgress?.(stats);
      }
      if ((stats.cases + stats.sequences) % bystanderEvery === 0) {
        const problem = await bystander.roundTrip();
        stats.bystanderRoundTrips++;
        if (problem !== undefined) {
          fail(problem, `bystander after ${stats.cases} cases`);
          break;
        }
      }
      if (stats.failures.length >= 20) break;
    }
    const problem = await bystander.roundTrip();
    stats.bystanderRoundTrips++;
    if (problem !== undefined) fail(problem, "bystander at the end");
    // Every fuzz connection is released: only the bystander is left.
    const released = Date.now() + HANG_MS;
    while (broker.server.info.clientsConnected > baseline && Date.now() < released) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    if (broker.server.info.clientsConnected > baseline) {
      fail(`${broker.server.info.clientsConnected - baseline} connections never released`, "end of run");
    }
  } finally {
    await bystander.connection.close();
    await broker.close();
  }
  for (const error of handlerErrors) fail(`a server handler threw: ${error}`, "server");
  return stats;
}

let caseCounter = 0;

/** Sends one mutated golden packet after CONNECT on a fresh connection and checks the outcome. */
async function runCase(
  broker: TestBroker,
  rng: Rng,
  corpus: ReturnType<typeof goldenCorpus>,
  stats: ServerFuzzStats,
  fail: (detail: string, origin: string, bytes?: Uint8Array) => void,
): Promise<void> {
  const golden = corpus.golden[corpus.next++ % corpus.golden.length];
  const version: ProtocolVersion = golden.version;
  let mutant = mutate(golden.bytes, version, rng, corpus.pool);
  // Now and then, a packet larger than the broker's maximum.
  if (rng.chance(0.03)) {
    const body = new Uint8Array(FUZZ_MAXIMUM_PACKET_SIZE + rng.int(100));
    mutant = { names: ["oversized"], bytes: new Uint8Array([0x30, ...varint(body.length), ...body]) };
  }
  const bytes = mutant.bytes;
  const origin = `golden "${golden.name}" (v${version}) with ${mutant.names.join(", ")}`;
  const outcome = expectedOutcome(bytes, version);
  if (!("lenient" in outcome)) stats.exact++;
  let connection: FuzzConnection;
  try {
    connection = await connect(broker, `fuzz-${++caseCounter}`, version);
  } catch (error) {
    fail(`CONNECT failed: ${error instanceof Error ? error.message : error}`, origin, bytes);
    return;
  }
  try {
    if (bytes.length > 1 && rng.chance(0.3)) {
      // In two writes, so that the server's framer sees the packet split across reads.
      const cut = rng.range(1, bytes.length - 1);
      await connection.sendBytes(bytes.subarray(0, cut));
      await new Promise((resolve) => setTimeout(resolve, 1));
      await connection.sendBytes(bytes.subarray(cut));
    } else {
      await connection.sendBytes(bytes);
    }
    // The server acts by itself on a bad frame; otherwise our end of stream ends the connection.
    if (!("code" in outcome)) await connection.closeWrite();
    const packets = await connection.untilEnd();
    if (connection.undecodable) return fail(connection.undecodable, origin, bytes);
    const disconnects = packets.filter((p) => p.fixedHeader.type === PacketType.Disconnect);
    for (const d of disconnects) {
      const code = d.reasonCode ?? 0;
      stats.disconnectCodes.set(code, (stats.disconnectCodes.get(code) ?? 0) + 1);
    }
    const summary = JSON.stringify(packets.map((p) => [p.fixedHeader.type, p.reasonCode]));
    if ("code" in outcome) {
      const want = version === 5 ? `[[${PacketType.Disconnect},${outcome.code}]]` : "[]";
      if (summary !== want) {
        fail(
          `expected ${
            version === 5 ? `DISCONNECT 0x${outcome.code.toString(16)}` : "a plain close"
          }, got ${summary}`,
          origin,
          bytes,
        );
      }
    } else if ("incomplete" in outcome) {
      if (packets.length > 0) fail(`a partial packet got ${summary}`, origin, bytes);
    } else {
      if (disconnects.length > 1 || (disconnects.length === 1 && packets.at(-1) !== disconnects[0])) {
        fail(`DISCONNECT not last: ${summary}`, origin, bytes);
      }
      for (const d of disconnects) {
        const code = d.reasonCode ?? 0;
        if (version !== 5 || code < 0x80 || reasonName(code).startsWith("unknown")) {
          fail(`DISCONNECT with code 0x${code.toString(16)}`, origin, bytes);
        }
      }
    }
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error), origin, bytes);
  } finally {
    await connection.close();
  }
}
