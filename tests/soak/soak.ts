/**
 * The soak test's engine: a broker in a child process, a few hundred clients doing random connects,
 * disconnects, takeovers, subscribes, QoS 0/1/2 publishes (with retransmissions), retained
 * messages and wills for a bounded time; then a drain, the checks and a report.
 *
 * The order of a run:
 *
 * 1. start the broker (`broker_process.ts`, run with `--v8-flags=--expose-gc`), warm it up, and
 *    measure its heap after forced garbage collection;
 * 2. load: every actor loops over random actions until the time is up (see `actors.ts`);
 * 3. settle: every persistent session reconnects with Clean Start 0, clean subscribers leave,
 *    acknowledgements flow until the broker holds no message and every required delivery arrived
 *    (or 30 s pass);
 * 4. check deliveries (see `ledger.ts`), then the retained messages with a fresh subscriber;
 * 5. end every session (v5: DISCONNECT with Session Expiry 0; v3.1.1 and MQTT.js: reconnect with
 *    Clean Start 1 and disconnect), clear the retained topics, and check that the broker holds no
 *    session, subscription, in-flight message, trie node or retained message more than at the start,
 *    and that its heap is back within 10% (at least {@linkcode MEMORY_SLACK_BYTES}) of the start.
 *
 * @module
 */

import { type Packet, PacketType, type ProtocolVersion } from "../../mod.ts";
import { Rng } from "../fuzz/rng.ts";
import {
  type Actor,
  CleanSubscriber,
  type Context,
  type Events,
  MqttPublisher,
  MqttSubscriber,
  PersistentSubscriber,
  RawPublisher,
  sleep,
  WAIT_MS,
  WillClient,
} from "./actors.ts";
import type { BrokerStats } from "./broker_process.ts";
import { Ledger, type QosCounters } from "./ledger.ts";
import { Wire } from "./wire.ts";

/** Heap growth always allowed, for small heaps where 10% is within the noise of one collection. */
export const MEMORY_SLACK_BYTES = 512 * 1024;
/** The allowed heap growth as a fraction of the starting heap. */
export const MEMORY_TOLERANCE = 0.1;
const RETAINED_TOPICS = 16;
const SETTLE_MS = 30_000;
const CLEANUP_MS = 15_000;

/** Options of {@linkcode runSoak}. */
export interface SoakOptions {
  /** Length of the load phase in seconds. */
  seconds: number;
  /** Number of clients (client ids). */
  clients: number;
  /** Seed of the random choices. */
  seed: number;
  /** Receives progress lines (every 10 s of load, and each phase). */
  progress?: (line: string) => void;
}

/** One check of the report. */
export interface SoakCheck {
  /** What it checks. */
  name: string;
  /** Whether it held. */
  ok: boolean;
  /** Numbers, or the first violations. */
  detail: string;
}

/** The result of a soak run. */
export interface SoakReport {
  /** The seed. */
  seed: number;
  /** Clients. */
  clients: number;
  /** Load seconds asked for. */
  seconds: number;
  /** Whole run in seconds, start to end. */
  elapsedSeconds: number;
  /** Clients per role. */
  roles: Record<string, number>;
  /** Event counts. */
  events: Events;
  /** Message counts by publish QoS. */
  messages: { qos0: QosCounters; qos1: QosCounters; qos2: QosCounters };
  /** Wills armed, required (network loss or DISCONNECT 0x04), received, forbidden (normal DISCONNECT). */
  wills: { armed: number; required: number; received: number; forbidden: number; optional: number };
  /** Retained topics and operations, and how the final state compared. */
  retained: { topics: number; sets: number; clears: number; expected: number; received: number };
  /** The broker's state after every client ended its session, and the baselines. */
  leaks: {
    clients: number;
    subscriptions: number;
    sharedSubscriptions: number;
    inflight: number;
    held: number;
    inboundQos2: number;
    nodeCount: number;
    nodeCountBaseline: number;
    retained: number;
    retainedBaseline: number;
  };
  /** Broker heap (after forced garbage collection) and RSS, before the load and after the cleanup. */
  memory: {
    heapBefore: number;
    heapAfter: number;
    changePercent: number;
    allowedBytes: number;
    rssBefore: number;
    rssAfter: number;
    peakRss: number;
  };
  /** Messages the broker dropped (QoS 0 to offline clients). */
  brokerDropped: number;
  /** Sessions the broker still held messages for after the settle phase (up to 10; diagnostics). */
  heldAfterSettle: unknown[];
  /** Unexpected failures: timeouts, refused connections, unexpected broker disconnections. */
  errors: string[];
  /** The checks. */
  checks: SoakCheck[];
  /** Whether every check held. */
  ok: boolean;
}

// ---------------------------------------------------------------------------------------------
// The broker process

/** The broker in a child process, driven over stdin/stdout (see `broker_process.ts`). */
export class BrokerProcess {
  /** The broker's TCP port on 127.0.0.1. */
  port = 0;
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: AsyncIterator<string>;
  #closed = false;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#lines = protocolLines(child.stdout);
  }

  /** Starts the broker process and waits until it listens. */
  static async start(): Promise<BrokerProcess> {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--quiet",
        "--v8-flags=--expose-gc",
        `--config=${new URL("../../deno.json", import.meta.url).pathname}`,
        new URL("./broker_process.ts", import.meta.url).pathname,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const broker = new BrokerProcess(child);
    try {
      const hello = await broker.#next<{ port: number }>();
      broker.port = hello.port;
    } catch (error) {
      await broker.close();
      throw error;
    }
    return broker;
  }

  async #next<T>(): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("The broker process did not answer within 15 s")), 15_000);
    });
    try {
      const line = await Promise.race([this.#lines.next(), timeout]);
      if (line.done) throw new Error("The broker process exited");
      return JSON.parse(line.value) as T;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Asks for the broker's counters; `gc` collects garbage first. */
  async stats(command: "stats" | "gc"): Promise<BrokerStats> {
    await this.#writer.write(new TextEncoder().encode(`${command}\n`));
    return await this.#next<BrokerStats>();
  }

  /** Up to 10 sessions that still hold outbound messages. */
  async held(): Promise<unknown[]> {
    await this.#writer.write(new TextEncoder().encode("held\n"));
    return await this.#next<unknown[]>();
  }

  /** Closes the broker and waits for the process to exit (kills it if it does not answer). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#writer.write(new TextEncoder().encode("close\n"));
      await this.#next();
    } catch {
      try {
        this.#child.kill();
      } catch {
        // already gone
      }
    }
    await this.#writer.close().catch(() => {});
    for (;;) {
      const rest = await this.#lines.next().catch(() => ({ done: true as const, value: undefined }));
      if (rest.done) break;
    }
    await this.#child.status;
  }
}

async function* protocolLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    for (let at = pending.indexOf("\n"); at >= 0; at = pending.indexOf("\n")) {
      const line = pending.slice(0, at);
      pending = pending.slice(at + 1);
      if (line.startsWith("@soak ")) yield line.slice(6);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The run

/**
 * Runs the soak test.
 *
 * @param options Length, clients, seed.
 * @returns The report; `report.ok` tells whether every check held.
 */
export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const started = performance.now();
  const progress = options.progress ?? (() => {});
  const rng = new Rng(options.seed);
  const broker = await BrokerProcess.start();
  try {
    progress(`broker on port ${broker.port}; warming up`);
    await warmUp(broker.port, Math.min(options.clients, 200));
    await sleep(1500); // a $SYS tick, then measure
    const baseline = await broker.stats("gc");
    if (!baseline.collected) {
      throw new Error("The broker process has no gc(): run it with --v8-flags=--expose-gc");
    }
    progress(
      `baseline heap ${
        mib(baseline.heapUsed)
      }, ${baseline.nodeCount} trie nodes, ${baseline.retained} retained`,
    );

    const ctx: Context = {
      port: broker.port,
      ledger: new Ledger(),
      events: {
        connects: 0,
        takeovers: 0,
        drops: 0,
        disconnects: 0,
        disconnectsWithWill: 0,
        sessionResets: 0,
        sessionsExpired: 0,
        sessionsResumed: 0,
        subscribes: 0,
        unsubscribes: 0,
        retries: 0,
        slowAckPeriods: 0,
        retainedSets: 0,
        retainedClears: 0,
      },
      targets: [],
      retained: Array.from({ length: RETAINED_TOPICS }, (_, i) => ({
        topic: `soak/r/${i}`,
        busy: false,
        possible: new Set([null]),
      })),
      errors: [],
      stopping: false,
    };
    const { actors, watcher, members } = createActors(ctx, options.clients, options.seed, rng);
    const roles: Record<string, number> = {};
    for (const actor of actors) roles[actor.role] = (roles[actor.role] ?? 0) + 1;

    // The will watcher and the shared group subscribe before the load starts.
    await watcher.start();
    await Promise.all(members.map((m) => m.start()));
    progress(`load: ${actors.length} clients for ${options.seconds} s, seed ${options.seed}`);
    const loadStarted = Date.now();
    const loops = actors.map((actor) => actor.run());
    let peakRss = baseline.rss;
    const deadline = loadStarted + options.seconds * 1000;
    while (Date.now() < deadline) {
      await sleep(Math.min(10_000, deadline - Date.now()));
      const stats = await broker.stats("stats");
      peakRss = Math.max(peakRss, stats.rss);
      const q = ctx.ledger.qos;
      progress(
        `${
          Math.round((Date.now() - loadStarted) / 1000)
        } s: ${stats.connected} connected, ${stats.clients} sessions, ` +
          `${stats.held} held; published ${q[0].published}/${q[1].published}/${
            q[2].published
          } (QoS 0/1/2), ` +
          `${q[0].deliveries + q[1].deliveries + q[2].deliveries} deliveries, ${ctx.errors.length} errors, ` +
          `${[...ctx.ledger.violations.values()].reduce((n, v) => n + v.count, 0)} violations, rss ${
            mib(stats.rss)
          }`,
      );
    }
    ctx.stopping = true;
    await Promise.all(loops);

    progress("settling: persistent sessions reconnect, clean subscribers leave");
    await Promise.all(actors.map((actor) => actor.settle().catch((e) => recordError(ctx, actor.id, e))));
    const settleEnd = Date.now() + SETTLE_MS;
    const subscribers = [...ctx.ledger.dedicated.values(), ctx.ledger.group, ctx.ledger.wills];
    let heldSessions: unknown[] = [];
    for (;;) {
      await Promise.all(actors.map((actor) => actor.sync().catch((e) => recordError(ctx, actor.id, e))));
      const stats = await broker.stats("stats");
      const missing = subscribers.reduce((n, s) => n + ctx.ledger.missing(s), 0);
      if ((stats.held === 0 && missing === 0) || Date.now() > settleEnd) {
        progress(`settled: broker holds ${stats.held} messages, ${missing} required deliveries missing`);
        if (stats.held > 0) heldSessions = await broker.held();
        break;
      }
      await sleep(200);
    }
    ctx.ledger.finish();

    const retained = await checkRetained(ctx);
    progress("cleanup: every session ends");
    await Promise.all(actors.map((actor) => actor.cleanup().catch((e) => recordError(ctx, actor.id, e))));
    await clearRetained(ctx);
    let after = await broker.stats("stats");
    const cleanupEnd = Date.now() + CLEANUP_MS;
    while (
      (after.clients > 0 || after.subscriptions > 0 || after.sharedSubscriptions > 0 || after.inflight > 0 ||
        after.nodeCount > baseline.nodeCount || after.retained > baseline.retained) && Date.now() < cleanupEnd
    ) {
      await sleep(100);
      after = await broker.stats("stats");
    }
    await sleep(1500); // a $SYS tick, as before the baseline
    const final = await broker.stats("gc");
    return buildReport(options, ctx, roles, retained, baseline, final, peakRss, started, heldSessions);
  } finally {
    await broker.close();
  }
}

function recordError(ctx: Context, who: string, error: unknown): void {
  if (ctx.errors.length < 200) {
    ctx.errors.push(`${who}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}

/** The roles, in proportion to the number of clients (the will watcher and the group come first). */
function createActors(
  ctx: Context,
  clients: number,
  seed: number,
  rng: Rng,
): { actors: Actor[]; watcher: PersistentSubscriber; members: PersistentSubscriber[] } {
  if (clients < 12) throw new RangeError(`The soak needs at least 12 clients, got ${clients}`);
  const actors: Actor[] = [];
  let n = 0;
  const next = () => {
    n++;
    return { id: `soak-${n}`, rng: new Rng((seed + Math.imul(n, 0x9e3779b1)) >>> 0) };
  };
  const version = (): ProtocolVersion => rng.chance(0.7) ? 5 : 4;
  const persistent = (v: ProtocolVersion, expiry = 3600) => ({
    version: v,
    sessionExpiry: v === 5 ? expiry : 0xffffffff,
    receiveMaximum: v === 5 ? rng.pick([undefined, 5, 20, 100]) : undefined,
  });
  const share = (fraction: number) => Math.max(1, Math.round(clients * fraction));

  let a = next();
  const watcher = new PersistentSubscriber(ctx, a.id, a.rng, persistent(5), "wills");
  actors.push(watcher);
  const members: PersistentSubscriber[] = [];
  for (let i = 0; i < Math.max(2, share(0.03)); i++) {
    a = next();
    members.push(new PersistentSubscriber(ctx, a.id, a.rng, persistent(version()), "shared"));
  }
  actors.push(...members);
  for (let i = 0; i < share(0.05); i++) {
    a = next();
    actors.push(new PersistentSubscriber(ctx, a.id, a.rng, persistent(5, 2), "dedicated"));
  }
  for (let i = 0; i < share(0.22); i++) {
    a = next();
    actors.push(new PersistentSubscriber(ctx, a.id, a.rng, persistent(version()), "dedicated"));
  }
  for (let i = 0; i < share(0.1); i++) {
    a = next();
    actors.push(new MqttSubscriber(ctx, a.id, a.rng, version() === 5 ? 5 : 4));
  }
  for (let i = 0; i < share(0.1); i++) {
    a = next();
    actors.push(new CleanSubscriber(ctx, a.id, a.rng, version()));
  }
  for (let i = 0; i < share(0.1); i++) {
    a = next();
    actors.push(new WillClient(ctx, a.id, a.rng, version()));
  }
  for (let i = 0; actors.length < clients; i++) {
    a = next();
    actors.push(
      i % 2 === 0
        ? new RawPublisher(ctx, a.id, a.rng, version())
        : new MqttPublisher(ctx, a.id, a.rng, version() === 5 ? 5 : 4),
    );
  }
  return { actors, watcher, members };
}

/**
 * Exercises the broker's code paths once (connect, subscribe, shared subscribe, QoS 0/1/2 both
 * ways, retained set and clear, unsubscribe, takeover, disconnect) so that the baseline heap already
 * holds compiled code and lazily built structures.
 */
async function warmUp(port: number, clients: number): Promise<void> {
  const one = async (i: number) => {
    const id = `warm-${i}`;
    const connect = { protocolVersion: 5 as const, clean: true, keepAlive: 0, clientId: id, willFlag: false };
    const { wire } = await Wire.connect(port, connect, { sessionExpiryInterval: 60 }, WAIT_MS);
    wire.onPacket = (packet) => {
      if (packet.fixedHeader.type !== PacketType.Publish || !packet.packetId) return;
      const type = packet.fixedHeader.qos === 1 ? PacketType.Puback : PacketType.Pubrec;
      wire.send({ fixedHeader: { type }, packetId: packet.packetId, reasonCode: 0 });
    };
    const expect = (type: number, packetId: number) => (p: Packet) =>
      p.fixedHeader.type === type && p.packetId === packetId;
    await wire.request(
      {
        fixedHeader: { type: PacketType.Subscribe, qos: 1 },
        packetId: 1,
        filters: [{ filter: `warm/${i}/#`, qos: 2 }, { filter: "$share/warm/warm/s/#", qos: 2 }],
      },
      expect(PacketType.Suback, 1),
      WAIT_MS,
    );
    const payload = new TextEncoder().encode(`warm ${i}`);
    await wire.send({ fixedHeader: { type: PacketType.Publish, qos: 0 }, topicName: `warm/${i}/0`, payload });
    await wire.request(
      {
        fixedHeader: { type: PacketType.Publish, qos: 1, retain: true },
        topicName: `warm/${i}/1`,
        packetId: 2,
        payload,
      },
      expect(PacketType.Puback, 2),
      WAIT_MS,
    );
    await wire.request(
      { fixedHeader: { type: PacketType.Publish, qos: 2 }, topicName: `warm/s/${i}`, packetId: 3, payload },
      expect(PacketType.Pubrec, 3),
      WAIT_MS,
    );
    await wire.request(
      { fixedHeader: { type: PacketType.Pubrel, qos: 1 }, packetId: 3, reasonCode: 0 },
      expect(PacketType.Pubcomp, 3),
      WAIT_MS,
    );
    await wire.request(
      {
        fixedHeader: { type: PacketType.Publish, qos: 1, retain: true },
        topicName: `warm/${i}/1`,
        packetId: 4,
        payload: new Uint8Array(),
      },
      expect(PacketType.Puback, 4),
      WAIT_MS,
    );
    await wire.sync(WAIT_MS);
    await wire.request(
      {
        fixedHeader: { type: PacketType.Unsubscribe, qos: 1 },
        packetId: 5,
        filters: [{ filter: `warm/${i}/#`, qos: 0 }, { filter: "$share/warm/warm/s/#", qos: 0 }],
      },
      expect(PacketType.Unsuback, 5),
      WAIT_MS,
    );
    // Take the session over, then end it.
    const { wire: again } = await Wire.connect(port, { ...connect, clean: false }, {
      sessionExpiryInterval: 60,
    }, WAIT_MS);
    await wire.closed(WAIT_MS);
    await again.send({
      fixedHeader: { type: PacketType.Disconnect },
      reasonCode: 0,
      properties: { sessionExpiryInterval: 0 },
    });
    await again.closed(WAIT_MS);
  };
  for (let round = 0; round < 2; round++) {
    await Promise.all(Array.from({ length: clients }, (_, i) => one(i)));
  }
}

/** A fresh subscriber to `soak/r/#` must get exactly the last state of each retained topic. */
async function checkRetained(ctx: Context): Promise<{ expected: number; received: number }> {
  const { wire } = await Wire.connect(
    ctx.port,
    { protocolVersion: 5, clean: true, keepAlive: 0, clientId: "soak-retained-check", willFlag: false },
    undefined,
    WAIT_MS,
  );
  const got = new Map<string, Packet>();
  wire.onPacket = (packet) => {
    if (packet.fixedHeader.type !== PacketType.Publish) return;
    if (got.has(packet.topicName!)) {
      ctx.ledger.violation("retained", `${packet.topicName} retained message sent twice on one subscribe`);
    }
    got.set(packet.topicName!, packet);
    if (packet.packetId) {
      wire.send({ fixedHeader: { type: PacketType.Puback }, packetId: packet.packetId, reasonCode: 0 });
    }
  };
  try {
    await wire.request(
      {
        fixedHeader: { type: PacketType.Subscribe, qos: 1 },
        packetId: 1,
        filters: [{ filter: "soak/r/#", qos: 1 }],
      },
      (p) => p.fixedHeader.type === PacketType.Suback,
      WAIT_MS,
    );
    await wire.sync(WAIT_MS); // retained messages follow the SUBACK, before the PINGRESP
    let expected = 0;
    for (const topic of ctx.retained) {
      const packet = got.get(topic.topic);
      let id: number | null = null;
      if (packet) {
        const text = new TextDecoder().decode(packet.payload);
        id = Number(text.slice(0, text.indexOf("|")));
        if (!packet.fixedHeader.retain) {
          ctx.ledger.violation(
            "retained",
            `${topic.topic} sent on subscribe without RETAIN 1 [MQTT-3.3.1-8]`,
          );
        }
      }
      if (!topic.possible.has(null)) expected++;
      if (!topic.possible.has(id)) {
        ctx.ledger.violation(
          "retained",
          `${topic.topic}: retained ${id === null ? "nothing" : `message ${id}`}, expected ${
            [...topic.possible].map((p) => p === null ? "nothing" : `message ${p}`).join(" or ")
          } [MQTT-3.3.1-5/6]`,
        );
      }
    }
    for (const topic of got.keys()) {
      if (!ctx.retained.some((t) => t.topic === topic)) {
        ctx.ledger.violation("retained", `unexpected retained topic ${topic}`);
      }
    }
    await wire.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode: 0 });
    await wire.closed(WAIT_MS);
    return { expected, received: got.size };
  } finally {
    await wire.close();
  }
}

/** Clears every retained topic (so the broker's retained store is back to its baseline). */
async function clearRetained(ctx: Context): Promise<void> {
  const { wire } = await Wire.connect(
    ctx.port,
    { protocolVersion: 5, clean: true, keepAlive: 0, clientId: "soak-retained-clear", willFlag: false },
    undefined,
    WAIT_MS,
  );
  try {
    for (const topic of ctx.retained) {
      await wire.send({
        fixedHeader: { type: PacketType.Publish, qos: 0, retain: true },
        topicName: topic.topic,
        payload: new Uint8Array(),
      });
    }
    await wire.sync(WAIT_MS);
    await wire.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode: 0 });
    await wire.closed(WAIT_MS);
  } finally {
    await wire.close();
  }
}

function buildReport(
  options: SoakOptions,
  ctx: Context,
  roles: Record<string, number>,
  retained: { expected: number; received: number },
  baseline: BrokerStats,
  final: BrokerStats,
  peakRss: number,
  started: number,
  heldSessions: unknown[],
): SoakReport {
  const ledger = ctx.ledger;
  const [qos0, qos1, qos2] = ledger.qos;
  const wills = ledger.willCounts();
  const events = ctx.events;
  const allowedBytes = Math.max(Math.round(baseline.heapUsed * MEMORY_TOLERANCE), MEMORY_SLACK_BYTES);
  const memory = {
    heapBefore: baseline.heapUsed,
    heapAfter: final.heapUsed,
    changePercent: Math.round(((final.heapUsed - baseline.heapUsed) / baseline.heapUsed) * 1000) / 10,
    allowedBytes,
    rssBefore: baseline.rss,
    rssAfter: final.rss,
    peakRss,
  };
  const leaks = {
    clients: final.clients,
    subscriptions: final.subscriptions,
    sharedSubscriptions: final.sharedSubscriptions,
    inflight: final.inflight,
    held: final.held,
    inboundQos2: final.inboundQos2,
    nodeCount: final.nodeCount,
    nodeCountBaseline: baseline.nodeCount,
    retained: final.retained,
    retainedBaseline: baseline.retained,
  };
  const details = (kind: Parameters<Ledger["count"]>[0]) => {
    const entry = ledger.violations.get(kind);
    return entry ? `${entry.count} violations: ${entry.details.slice(0, 3).join("; ")}` : "";
  };
  const checks: SoakCheck[] = [
    {
      name: "QoS 1: every acknowledged message reached every subscription at least once",
      ok: qos1.lost === 0,
      detail:
        `${qos1.delivered}/${qos1.required} required deliveries, ${qos1.duplicates} allowed duplicates` +
        (qos1.lost ? `; ${details("lost")}` : ""),
    },
    {
      name: "QoS 2: every acknowledged message reached every subscription exactly once",
      ok: qos2.lost === 0 && qos2.forbiddenDuplicates === 0,
      detail:
        `${qos2.delivered}/${qos2.required} required deliveries, ${qos2.forbiddenDuplicates} duplicates` +
        (qos2.lost || qos2.forbiddenDuplicates ? `; ${details("lost")} ${details("duplicate")}` : ""),
    },
    {
      name: "QoS 0 at most once; no forbidden duplicate at any QoS",
      ok: ledger.count("duplicate") === 0,
      detail: ledger.count("duplicate") ? details("duplicate") : `${qos0.deliveries} QoS 0 deliveries`,
    },
    {
      name: "delivered at min(publish QoS, subscription QoS)",
      ok: ledger.count("qos") === 0,
      detail: details("qos") || "all",
    },
    {
      name: "only subscribers receive, each message on its own topic",
      ok: ledger.count("routing") === 0,
      detail: details("routing") || "all",
    },
    {
      name: "Session Present, session expiry and takeover as the spec says",
      ok: ledger.count("session") === 0,
      detail: details("session") ||
        `${events.sessionsResumed} resumed, ${events.sessionsExpired} expired, ${events.takeovers} takeovers`,
    },
    {
      name: "wills: sent on network loss and DISCONNECT 0x04, never after a normal DISCONNECT",
      ok: ledger.count("will") === 0,
      detail: details("will") ||
        `${wills.received}/${wills.required} required received, ${wills.forbidden} forbidden never sent`,
    },
    {
      name: "retained: a new subscriber gets the last state of each topic",
      ok: ledger.count("retained") === 0,
      detail: details("retained") || `${retained.received}/${retained.expected} topics retained as expected`,
    },
    {
      name: "no protocol violation, timeout or unexpected disconnection",
      ok: ledger.count("protocol") === 0 && ctx.errors.length === 0,
      detail: [details("protocol"), ...ctx.errors.slice(0, 3)].filter((s) => s).join("; ") || "none",
    },
    {
      name: "no session left (server.clients.count)",
      ok: final.clients === 0,
      detail: `${final.clients}`,
    },
    {
      name: "no subscription left (subscriptionCount, sharedSubscriptionCount)",
      ok: final.subscriptions === 0 && final.sharedSubscriptions === 0,
      detail: `${final.subscriptions} + ${final.sharedSubscriptions} shared`,
    },
    {
      name: "no message in flight (info.inflight, queued, inbound QoS 2)",
      ok: final.inflight === 0 && final.held === 0 && final.inboundQos2 === 0,
      detail: `${final.inflight} in flight, ${final.held} held, ${final.inboundQos2} inbound`,
    },
    {
      name: "topic trie and retained store back to the baseline",
      ok: final.nodeCount === baseline.nodeCount && final.retained === baseline.retained,
      detail:
        `${final.nodeCount}/${baseline.nodeCount} nodes, ${final.retained}/${baseline.retained} retained ($SYS)`,
    },
    {
      name: `broker heap back within ${MEMORY_TOLERANCE * 100}% (at least ${
        mib(MEMORY_SLACK_BYTES)
      }) of the start`,
      ok: final.heapUsed - baseline.heapUsed <= allowedBytes,
      detail: `${mib(baseline.heapUsed)} -> ${mib(final.heapUsed)} (${memory.changePercent}%), allowed +${
        mib(allowedBytes)
      }`,
    },
    {
      name: "the load covered takeovers, drops, resets, retries, wills, QoS 1 and 2",
      ok: events.takeovers > 0 && events.drops > 0 && events.sessionResets > 0 && events.retries > 0 &&
        wills.required > 0 && wills.forbidden > 0 && qos1.required > 0 && qos2.required > 0 &&
        events.retainedSets > 0,
      detail: `${events.takeovers} takeovers, ${events.drops} drops, ${events.sessionResets} resets, ` +
        `${events.retries} retries`,
    },
  ];
  return {
    seed: options.seed,
    clients: options.clients,
    seconds: options.seconds,
    elapsedSeconds: Math.round((performance.now() - started) / 100) / 10,
    roles,
    events,
    messages: { qos0, qos1, qos2 },
    wills,
    retained: {
      topics: ctx.retained.length,
      sets: events.retainedSets,
      clears: events.retainedClears,
      expected: retained.expected,
      received: retained.received,
    },
    leaks,
    memory,
    brokerDropped: final.messagesDropped,
    heldAfterSettle: heldSessions,
    errors: ctx.errors,
    checks,
    ok: checks.every((c) => c.ok),
  };
}

/** Renders a report as text tables. */
export function formatReport(report: SoakReport): string {
  const lines: string[] = [];
  const row = (cells: (string | number)[], widths: number[]) =>
    cells.map((c, i) => i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i])).join("  ");
  lines.push(
    `soak: seed ${report.seed}, ${report.clients} clients, ${report.seconds} s of load, ${report.elapsedSeconds} s in all`,
  );
  lines.push(`roles: ${Object.entries(report.roles).map(([r, n]) => `${n} ${r}`).join(", ")}`);
  lines.push(`events: ${Object.entries(report.events).map(([e, n]) => `${e} ${n}`).join(", ")}`);
  lines.push("");
  const widths = [26, 10, 10, 10, 10];
  lines.push(row(["messages by publish QoS", "QoS 0", "QoS 1", "QoS 2", "total"], widths));
  const m = [report.messages.qos0, report.messages.qos1, report.messages.qos2];
  const rows: [string, keyof QosCounters][] = [
    ["published", "published"],
    ["acknowledged", "acknowledged"],
    ["outcome unknown", "uncertain"],
    ["deliveries (all)", "deliveries"],
    ["required deliveries", "required"],
    ["  delivered", "delivered"],
    ["  lost", "lost"],
    ["cancelled (session ended)", "cancelled"],
    ["allowed duplicates", "duplicates"],
    ["forbidden duplicates", "forbiddenDuplicates"],
  ];
  for (const [label, key] of rows) {
    lines.push(row([label, m[0][key], m[1][key], m[2][key], m[0][key] + m[1][key] + m[2][key]], widths));
  }
  const w = report.wills;
  lines.push("");
  lines.push(
    `wills: ${w.armed} armed, ${w.required} required and ${w.received} received, ${w.forbidden} forbidden ` +
      `(normal DISCONNECT), ${w.optional} either way (takeover, connection failure)`,
  );
  const r = report.retained;
  lines.push(
    `retained: ${r.topics} topics, ${r.sets} sets, ${r.clears} clears; final state ${r.received} received, ${r.expected} expected`,
  );
  const l = report.leaks;
  lines.push(
    `leaks: ${l.clients} sessions, ${l.subscriptions} subscriptions, ${l.sharedSubscriptions} shared, ` +
      `${l.inflight} in flight, ${l.held} held, ${l.inboundQos2} inbound QoS 2, ${l.nodeCount} trie nodes ` +
      `(baseline ${l.nodeCountBaseline}), ${l.retained} retained (baseline ${l.retainedBaseline})`,
  );
  const mem = report.memory;
  lines.push(
    `memory: heap ${mib(mem.heapBefore)} before, ${mib(mem.heapAfter)} after (${
      mem.changePercent > 0 ? "+" : ""
    }${mem.changePercent}%, ` +
      `allowed +${mib(mem.allowedBytes)}); rss ${mib(mem.rssBefore)} before, ${mib(mem.peakRss)} peak, ${
        mib(mem.rssAfter)
      } after`,
  );
  lines.push(`broker dropped ${report.brokerDropped} messages (QoS 0 to offline clients)`);
  lines.push("");
  for (const check of report.checks) {
    lines.push(`${check.ok ? "ok  " : "FAIL"}  ${check.name}: ${check.detail}`);
  }
  if (report.heldAfterSettle.length > 0) {
    lines.push("", "sessions still holding messages after the settle phase:");
    for (const held of report.heldAfterSettle) lines.push(`  ${JSON.stringify(held)}`);
  }
  if (report.errors.length > 0) {
    lines.push("", `errors (${report.errors.length}):`, ...report.errors.slice(0, 10).map((e) => `  ${e}`));
  }
  lines.push("", report.ok ? "soak: all checks passed" : "soak: FAILED");
  return lines.join("\n");
}
