/**
 * Test helpers: a broker on a free loopback port, a raw MQTT client over a real TCP socket (for
 * byte-exact and malformed input), and MQTT.js clients.
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "./mqtt.ts";
import {
  AllowHook,
  type Hook,
  type Options,
  type Packet,
  PacketType,
  type Properties,
  type ProtocolVersion,
  type QoS,
  Server,
  type Subscription,
  TCP,
} from "../mod.ts";
import { ByteWriter, decodePacket, encodePacket, FRAME_READY, PacketFramer } from "../src/packets/mod.ts";

/** Where a broker listens. */
export type BrokerAddress = Pick<TestBroker, "host" | "port">;

/** A running test broker and its address. */
export interface TestBroker {
  /** The server. */
  server: Server;
  /** `127.0.0.1` */
  host: string;
  /** The TCP port it listens on. */
  port: number;
  /** `mqtt://127.0.0.1:PORT` for MQTT.js. */
  url: string;
  /** Closes the server. */
  close(): Promise<void>;
  /** `await using` support. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts a broker on a free loopback port with `AllowHook` (unless `hooks` is given).
 *
 * @param options Server options.
 * @param hooks Hooks to add instead of `AllowHook`.
 * @returns The running broker.
 */
export async function startBroker(options: Options = {}, hooks?: Hook[]): Promise<TestBroker> {
  const server = new Server(options);
  for (const hook of hooks ?? [new AllowHook()]) await server.addHook(hook);
  const tcp = new TCP({ id: "t1", address: "127.0.0.1:0" });
  await server.addListener(tcp);
  await server.serve();
  const port = Number(tcp.address.split(":").pop());
  const close = () => server.close();
  return {
    server,
    host: "127.0.0.1",
    port,
    url: `mqtt://127.0.0.1:${port}`,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** The repository root, for running programs from it. */
export const ROOT: string = new URL("../", import.meta.url).pathname;

/** A loopback port that was free a moment ago. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** A running example program. */
export interface Example {
  /** `mqtt://127.0.0.1:PORT` */
  url: string;
  /** Everything it printed so far. */
  output(): string;
  /** Sends SIGTERM and waits for a clean exit. */
  stop(): Promise<void>;
}

/**
 * Runs an example program (`deno run -A SCRIPT 127.0.0.1:PORT ...args`) on a free port and waits
 * until it prints that it is listening.
 *
 * @param script The script, relative to the repository root.
 * @param args More arguments.
 * @returns The running example.
 */
export async function startExample(script: string, ...args: string[]): Promise<Example> {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, `127.0.0.1:${port}`, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  let ready!: () => void;
  const listening = new Promise<void>((resolve) => ready = resolve);
  const read = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      if (text.includes("listening on")) ready();
    }
  };
  const reading = Promise.all([read(child.stdout), read(child.stderr)]);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), 15_000));
  const started = await Promise.race([listening, child.status.then(() => "exited" as const), timeout]);
  clearTimeout(timer);
  if (started !== undefined) {
    if (started === "timeout") child.kill("SIGKILL");
    await child.status;
    await reading;
    throw new Error(`${script} did not start (${started}):\n${text}`);
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    output: () => text,
    async stop() {
      child.kill("SIGTERM");
      const status = await child.status;
      await reading;
      assert.equal(status.code, 0, `${script} exit status; output:\n${text}`);
    },
  };
}

/**
 * A small seeded pseudo-random generator (mulberry32), for runs that a seed reproduces.
 *
 * @param seed The seed.
 * @returns A function giving numbers in [0, 1).
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `check` until it returns true or the time runs out.
 *
 * @param check The condition.
 * @param timeoutMs How long to wait.
 * @param what Described in the error on timeout.
 */
export async function waitFor(check: () => boolean, timeoutMs = 3000, what = "condition"): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await delay(10);
  }
}

/**
 * A raw MQTT client over a real TCP socket: sends packets (or arbitrary bytes) and reads decoded
 * packets, so tests can check exact broker behaviour, including for malformed input.
 */
export class RawClient {
  readonly #conn: Deno.TcpConn;
  readonly #framer = new PacketFramer();
  readonly #buffer = new Uint8Array(64 * 1024);
  readonly #queue: Packet[] = [];
  /** The bytes of each packet in `#queue`, in the same order. */
  readonly #frames: Uint8Array[] = [];
  #ended = false;
  /** A socket read still under way after a timed-out `read()`; the next call waits for it. */
  #pendingRead: Promise<number | null> | undefined;
  /** The protocol version used to encode and decode. */
  version: ProtocolVersion;

  private constructor(conn: Deno.TcpConn, version: ProtocolVersion) {
    this.#conn = conn;
    this.version = version;
  }

  /**
   * Opens a TCP connection to the broker (does not send CONNECT).
   *
   * @param broker The broker.
   * @param version The protocol version for encoding/decoding.
   * @returns The client.
   */
  static async open(broker: BrokerAddress, version: ProtocolVersion = 5): Promise<RawClient> {
    const conn = await Deno.connect({ hostname: broker.host, port: broker.port });
    conn.setNoDelay(true);
    return new RawClient(conn, version);
  }

  /**
   * Opens a connection and completes CONNECT/CONNACK.
   *
   * @param broker The broker.
   * @param clientId The client id.
   * @param options Protocol version, clean start, keep alive, properties, will...
   * @returns The client and its CONNACK.
   */
  static async connect(
    broker: BrokerAddress,
    clientId: string,
    options: {
      version?: ProtocolVersion;
      connect?: Partial<Packet["connect"]>;
      properties?: Packet["properties"];
    } = {},
  ): Promise<{ client: RawClient; connack: Packet }> {
    const version = options.version ?? 5;
    const client = await RawClient.open(broker, version);
    client.send(connectPacket(clientId, version, options.connect, options.properties));
    const connack = await client.expect(PacketType.Connack);
    return { client, connack };
  }

  /** Sends a packet encoded for this client's version. */
  send(packet: Packet): Promise<void> {
    const out = new ByteWriter(256);
    encodePacket(packet, this.version, out);
    return this.sendBytes(out.toBytes());
  }

  /** Sends raw bytes. */
  async sendBytes(bytes: Uint8Array | number[]): Promise<void> {
    const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    let offset = 0;
    while (offset < data.length) offset += await this.#conn.write(data.subarray(offset));
  }

  /**
   * Reads the next packet.
   *
   * @param timeoutMs How long to wait.
   * @returns The packet, or undefined if the connection ended first.
   * @throws {Error} On timeout.
   */
  async read(timeoutMs = 3000): Promise<Packet | undefined> {
    await this.#fill(timeoutMs);
    this.#frames.shift();
    return this.#queue.shift();
  }

  /**
   * Reads the next packet as the bytes the broker sent (first byte, Remaining Length, body).
   *
   * @param timeoutMs How long to wait.
   * @returns The bytes, or undefined if the connection ended first.
   * @throws {Error} On timeout.
   */
  async readBytes(timeoutMs = 3000): Promise<number[] | undefined> {
    await this.#fill(timeoutMs);
    this.#queue.shift();
    const frame = this.#frames.shift();
    return frame === undefined ? undefined : Array.from(frame);
  }

  /** Reads from the socket until a packet is queued, the connection ends, or the time runs out. */
  async #fill(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.#queue.length === 0 && !this.#ended) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("Timed out waiting for a packet");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), left));
      this.#pendingRead ??= this.#conn.read(this.#buffer).catch(() => null);
      const n = await Promise.race([this.#pendingRead, timeout]);
      clearTimeout(timer);
      if (n === "timeout") throw new Error("Timed out waiting for a packet");
      this.#pendingRead = undefined;
      if (n === null) {
        this.#ended = true;
        break;
      }
      this.#framer.push(this.#buffer.subarray(0, n));
      while (this.#framer.next() === FRAME_READY) {
        const { header, body } = this.#framer;
        const packet = decodePacket(header, body, this.version);
        if (typeof packet === "number") throw new Error(`Broker sent a packet we cannot decode: ${packet}`);
        if (packet.payload) packet.payload = packet.payload.slice();
        this.#queue.push(packet);
        // The broker writes the shortest Remaining Length, so this is the frame as it came.
        const length: number[] = [];
        let n = body.length;
        do {
          length.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
          n >>>= 7;
        } while (n > 0);
        this.#frames.push(new Uint8Array([header, ...length, ...body]));
      }
    }
  }

  /**
   * Reads the next packet and checks its type.
   *
   * @param type The expected packet type.
   * @param timeoutMs How long to wait.
   * @returns The packet.
   */
  async expect(type: number, timeoutMs = 3000): Promise<Packet> {
    const packet = await this.read(timeoutMs);
    if (!packet) throw new Error(`Expected packet type ${type}, but the connection closed`);
    if (packet.fixedHeader.type !== type) {
      throw new Error(`Expected packet type ${type}, got ${JSON.stringify(packet, replacer)}`);
    }
    return packet;
  }

  /**
   * Waits for the broker to close the connection; returns the packets received before.
   *
   * @param timeoutMs How long to wait.
   * @returns The packets that arrived before the end of stream.
   */
  async closed(timeoutMs = 3000): Promise<Packet[]> {
    const seen: Packet[] = [];
    for (;;) {
      const packet = await this.read(timeoutMs);
      if (!packet) return seen;
      seen.push(packet);
    }
  }

  /**
   * Sends PINGREQ and returns every packet that arrives before the PINGRESP. The broker handles a
   * client's packets in order and writes each client's packets in order, so whatever it meant to
   * send before it saw the PINGREQ is in the result: an empty result proves nothing was sent.
   *
   * @returns The packets received before the PINGRESP.
   */
  async sync(): Promise<Packet[]> {
    await this.send({ fixedHeader: { type: PacketType.Pingreq } });
    const seen: Packet[] = [];
    for (;;) {
      const packet = await this.read();
      if (!packet) throw new Error("The connection closed before PINGRESP");
      if (packet.fixedHeader.type === PacketType.Pingresp) return seen;
      seen.push(packet);
    }
  }

  /**
   * Subscribes and waits for the SUBACK.
   *
   * @param filters The subscriptions.
   * @param packetId The SUBSCRIBE's packet id (checked against the SUBACK's).
   * @param properties SUBSCRIBE properties.
   * @returns The SUBACK.
   */
  async subscribe(filters: Subscription[], packetId = 1, properties?: Properties): Promise<Packet> {
    await this.send(subscribePacket(packetId, filters, properties));
    const suback = await this.expect(PacketType.Suback);
    if (suback.packetId !== packetId) throw new Error(`SUBACK for ${suback.packetId}, expected ${packetId}`);
    return suback;
  }

  /** Whether the broker has closed the connection (as far as we have read). */
  get ended(): boolean {
    return this.#ended;
  }

  /** Closes the socket (a read still under way ends with it). */
  close(): void {
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}

/** Options for {@linkcode publishPacket}. */
export interface PublishOptions {
  /** Packet id for QoS > 0 (default 1). */
  packetId?: number;
  /** Retain flag. */
  retain?: boolean;
  /** DUP flag. */
  dup?: boolean;
  /** v5 properties. */
  properties?: Properties;
}

/** Builds a PUBLISH packet with a UTF-8 payload. */
export function publishPacket(
  topic: string,
  payload: string,
  qos: QoS = 0,
  options: PublishOptions = {},
): Packet {
  return {
    fixedHeader: {
      type: PacketType.Publish,
      qos,
      retain: options.retain ?? false,
      dup: options.dup ?? false,
    },
    topicName: topic,
    packetId: qos > 0 ? options.packetId ?? 1 : undefined,
    payload: new TextEncoder().encode(payload),
    properties: options.properties,
  };
}

/** Builds a SUBSCRIBE packet. */
export function subscribePacket(packetId: number, filters: Subscription[], properties?: Properties): Packet {
  return { fixedHeader: { type: PacketType.Subscribe }, packetId, filters, properties };
}

/** Builds a PUBACK, PUBREC, PUBREL or PUBCOMP. */
export function ackPacket(type: number, packetId: number, reasonCode = 0): Packet {
  return {
    fixedHeader: { type: type as PacketType, qos: type === PacketType.Pubrel ? 1 : 0 },
    packetId,
    reasonCode,
  };
}

/** Builds a CONNECT packet. */
export function connectPacket(
  clientId: string,
  version: ProtocolVersion = 5,
  connect: Partial<Packet["connect"]> = {},
  properties?: Packet["properties"],
): Packet {
  return {
    fixedHeader: { type: PacketType.Connect },
    protocolVersion: version,
    connect: {
      protocolName: version === 3 ? "MQIsdp" : "MQTT",
      protocolVersion: version,
      clean: true,
      keepAlive: 0,
      clientId,
      willFlag: false,
      ...connect,
    },
    properties,
  };
}

/** JSON.stringify replacer that prints Uint8Arrays as text. */
function replacer(_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? new TextDecoder().decode(value) : value;
}

/** Options for {@linkcode mqttConnect}. */
export type MqttOptions = mqtt.IClientOptions;

/**
 * Connects an MQTT.js client (v5 unless `protocolVersion` says otherwise) and waits for CONNACK.
 *
 * @param broker The broker.
 * @param options MQTT.js options.
 * @returns The connected client; call `await client.endAsync()` at the end.
 */
export function mqttConnect(broker: TestBroker, options: MqttOptions = {}): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync(broker.url, {
    protocolVersion: 5,
    reconnectPeriod: 0,
    connectTimeout: 3000,
    ...options,
  });
}

/** Collects the messages an MQTT.js client receives. */
export function collect(
  client: mqtt.MqttClient,
): { topic: string; payload: string; packet: mqtt.IPublishPacket }[] {
  const messages: { topic: string; payload: string; packet: mqtt.IPublishPacket }[] = [];
  client.on(
    "message",
    (topic, payload, packet) => messages.push({ topic, payload: payload.toString(), packet }),
  );
  return messages;
}
