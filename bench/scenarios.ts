/**
 * The benchmark scenarios. Each case connects its own clients to a fresh broker, measures one thing,
 * verifies what was delivered (a loss or a reordering at QoS 1/2 fails the run; at QoS 0 the loss is
 * reported) and returns its metrics, including the CPU the broker and the generator used while measuring
 * (a generator near 100% of a core means the number is the generator's, not the broker's).
 *
 * @module
 */

import { BenchClient, PAYLOAD_HEADER, PublishTemplate, type Sink } from "./mqtt.ts";
import { type Broker, cpuSeconds, rssBytes } from "./brokers.ts";
import { IdleClients } from "./idle_clients.ts";

/** What a case gets to run against. */
export interface RunContext {
  /** The broker under test. */
  broker: Broker;
  /** Every client opened (closed by the runner whatever happens). */
  clients: BenchClient[];
  /** Also run by the runner whatever happens (closing what a case opened besides `clients`). */
  cleanups: (() => Promise<void>)[];
  /** What the case is doing now, for timeout messages. */
  stage: string;
  /** Set by the runner on timeout: loops stop. */
  aborted: boolean;
}

/** One metric of a case. */
export interface MetricSpec {
  /** Key in the JSON line. */
  key: string;
  /** Column label. */
  label: string;
  /** Which way is better (for reading ratios). */
  better: "higher" | "lower" | "none";
}

/** One runnable measurement: a scenario with its parameters. */
export interface Case {
  /** Scenario name (what `--scenario` selects). */
  scenario: string;
  /** Case name within the scenario. */
  name: string;
  /** The metrics, the headline first. */
  metrics: MetricSpec[];
  /** Milliseconds before the run is failed. */
  timeoutMs: number;
  /** Runs it. */
  run(ctx: RunContext): Promise<Record<string, number>>;
}

/** All scenario names, in run order. */
export const SCENARIOS: readonly string[] = [
  "stresser",
  "fanout",
  "fanin",
  "qos2",
  "latency",
  "connections",
  "retained",
  "slow",
];

const PAYLOAD = 64;
const CPU: MetricSpec[] = [
  { key: "broker_cpu_pct", label: "broker CPU %", better: "none" },
  { key: "gen_cpu_pct", label: "generator CPU %", better: "none" },
];
const LOSS: MetricSpec = { key: "loss_pct", label: "QoS 0 loss %", better: "lower" };
const CPU_PER_MESSAGE: MetricSpec = { key: "cpu_us_per_msg", label: "CPU µs/delivery", better: "lower" };
const REDIS_CPU: MetricSpec = { key: "redis_cpu_pct", label: "Redis CPU %", better: "none" };

/** The publisher index of route probes (`seq` carries the probing publisher's own index). */
const PROBE = 0xffffffff;

/** Checks sequence numbers per publisher: gaps (losses), repeats or reordering, and optionally latency. */
export class SequenceSink implements Sink {
  /** Next expected sequence number per publisher. */
  readonly next: Uint32Array;
  /** Messages received. */
  received = 0;
  /** Messages skipped over (lost). */
  gaps = 0;
  /** Messages repeated, out of order or from an unknown publisher. */
  disorder = 0;
  /** End-to-end latencies in ms, when recording. */
  latencies: number[] | null = null;
  /** The publishers whose route probe arrived (probes are not counted as messages). */
  readonly probes: Set<number> = new Set();

  /**
   * @param publishers How many publishers feed this sink.
   */
  constructor(publishers: number) {
    this.next = new Uint32Array(publishers);
  }

  onPublish(_bytes: Uint8Array, view: DataView, payload: number, payloadEnd: number): void {
    if (payloadEnd - payload < PAYLOAD_HEADER) {
      this.disorder++;
      return;
    }
    const publisher = view.getUint32(payload);
    const seq = view.getUint32(payload + 4);
    if (publisher === PROBE) {
      this.probes.add(seq);
      return;
    }
    if (publisher >= this.next.length) {
      this.disorder++;
      return;
    }
    const expected = this.next[publisher];
    if (seq === expected) this.next[publisher] = seq + 1;
    else if (seq > expected) {
      this.gaps += seq - expected;
      this.next[publisher] = seq + 1;
    } else this.disorder++;
    this.received++;
    if (this.latencies !== null) this.latencies.push(performance.now() - view.getFloat64(payload + 8));
  }
}

/** Counts distinct retained messages by publisher index. */
class RetainedSink implements Sink {
  readonly seen: Uint8Array;
  unique = 0;
  other = 0;
  constructor(n: number) {
    this.seen = new Uint8Array(n);
  }
  onPublish(_bytes: Uint8Array, view: DataView, payload: number, _end: number, flags: number): void {
    const index = view.getUint32(payload);
    if ((flags & 1) === 0 || index >= this.seen.length || this.seen[index] === 1) {
      this.other++;
      return;
    }
    this.seen[index] = 1;
    this.unique++;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function connectMany(
  ctx: RunContext,
  count: number,
  prefix: string,
  concurrency = 100,
  port = ctx.broker.port,
) {
  const clients: BenchClient[] = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count && !ctx.aborted) {
      const i = next++;
      const client = await BenchClient.connect({
        port,
        clientId: `${prefix}-${i}`,
        version: ctx.broker.version,
      });
      ctx.clients.push(client);
      clients[i] = client;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return clients;
}

/**
 * Waits until `done()` or until `progress()` stops moving for `stallMs`.
 *
 * @returns `true` when done; `false` on a stall when `allowStall`, else throws.
 */
async function waitFor(
  ctx: RunContext,
  what: string,
  done: () => boolean,
  progress: () => number,
  stallMs: number,
  allowStall: boolean,
  clients: BenchClient[] = [],
): Promise<boolean> {
  let last = progress();
  let lastChange = performance.now();
  while (!done()) {
    if (ctx.aborted) throw new Error(`aborted while waiting for ${what}`);
    await sleep(5);
    const now = progress();
    if (now !== last) {
      last = now;
      lastChange = performance.now();
    } else if (performance.now() - lastChange > stallMs) {
      if (allowStall) return false;
      const closed = clients.filter((c) => c.closedReason).map((c) => c.closedReason);
      const gaps = clients.reduce((a, c) => a + (c.sink instanceof SequenceSink ? c.sink.gaps : 0), 0);
      throw new Error(
        `Stalled ${stallMs} ms waiting for ${what} (progress ${now}` +
          (gaps > 0 ? `; ${gaps} message(s) skipped: lost by the broker` : "") + ")" +
          (closed.length ? `; ${closed.length} connection(s) ended: ${closed[0]}` : ""),
      );
    }
  }
  return true;
}

/**
 * CPU use of the broker (every process of it: each node, a `--workers` supervisor and its workers), its
 * Redis if any, and the generator, between the call and the returned function's; with `delivered`, also
 * the CPU time of brokers and Redis together per delivered message.
 */
function cpuMeter(broker: Broker) {
  const pids = broker.pids();
  const brokerCpu = () => pids.reduce((a, pid) => a + cpuSeconds(pid), 0);
  const redisCpu = () => broker.redisPid === undefined ? 0 : cpuSeconds(broker.redisPid);
  const b0 = brokerCpu();
  const each0 = pids.map((pid) => cpuSeconds(pid));
  const r0 = redisCpu();
  const g0 = cpuSeconds("self");
  const t0 = performance.now();
  return (t1 = performance.now(), delivered?: number): Record<string, number> => {
    const seconds = (t1 - t0) / 1000;
    const b = brokerCpu() - b0;
    const r = redisCpu() - r0;
    const perMessage: Record<string, number> = delivered
      ? { cpu_us_per_msg: round((b + r) / delivered * 1e6, 2) }
      : {};
    if (delivered) {
      // Per process too (JSON only): which node of a cluster the work lands on.
      pids.forEach((pid, i) =>
        perMessage[`cpu_us_p${i}`] = round((cpuSeconds(pid) - each0[i]) / delivered * 1e6, 2)
      );
      if (broker.redisPid !== undefined) perMessage.cpu_us_redis = round(r / delivered * 1e6, 2);
    }
    const redis: Record<string, number> = broker.redisPid === undefined
      ? {}
      : { redis_cpu_pct: seconds < 0.5 ? NaN : round(r / seconds * 100) };
    // /proc counts in 10 ms ticks: a shorter window says nothing.
    if (seconds < 0.5) return { broker_cpu_pct: NaN, gen_cpu_pct: NaN, ...redis, ...perMessage };
    return {
      broker_cpu_pct: round(b / seconds * 100),
      ...redis,
      gen_cpu_pct: round((cpuSeconds("self") - g0) / seconds * 100),
      ...perMessage,
    };
  };
}

/**
 * For brokers of several processes: a route reaches the other nodes a moment after its SUBACK. Each
 * publisher sends QoS 0 probes (publisher index {@linkcode PROBE}, its own index as the sequence number)
 * to its topic until every sink has one from every publisher, so that measuring starts with every route
 * in place. Probes are not counted by the sinks.
 */
async function awaitRoutes(
  ctx: RunContext,
  publishers: BenchClient[],
  topics: string[],
  sinks: SequenceSink[],
) {
  if (!ctx.broker.distributed) return;
  ctx.stage = "waiting for routes to reach every node";
  const templates = publishers.map((c, i) => new PublishTemplate(topics[i], PAYLOAD, 0, c.version, PROBE));
  const deadline = performance.now() + 15_000;
  while (true) {
    const missing = publishers.map((_, i) => i).filter((i) => sinks.some((s) => !s.probes.has(i)));
    if (missing.length === 0) return;
    if (ctx.aborted || performance.now() > deadline) {
      throw new Error(`Routes did not reach every node: ${missing.length} publisher(s) not heard by all`);
    }
    for (const i of missing) {
      publishers[i].appendPublish(templates[i], i, false);
      publishers[i].flush();
    }
    await sleep(50);
  }
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Sums sinks and fails the run on disorder, or on any loss at QoS 1/2. */
function verify(sinks: SequenceSink[], expectedEach: number, qos: number, what: string) {
  let received = 0;
  let disorder = 0;
  for (const s of sinks) {
    received += s.received;
    disorder += s.disorder;
  }
  const expected = expectedEach * sinks.length;
  if (disorder > 0) throw new Error(`${what}: ${disorder} message(s) repeated or out of order`);
  if (qos > 0 && received !== expected) {
    throw new Error(`${what}: received ${received} of ${expected} messages at QoS ${qos} (loss)`);
  }
  return { received, expected, loss_pct: round((expected - received) / expected * 100, 3) };
}

function lastReceive(clients: BenchClient[]): number {
  let last = 0;
  for (const c of clients) if (c.lastPublishAt > last) last = c.lastPublishAt;
  return last;
}

/**
 * The parameters of a run.
 *
 * @param quick Smaller counts for a fast sanity run.
 * @param scale Multiplies message counts (not clients, connections or retained topics).
 * @returns The cases, in run order.
 */
export function buildCases(quick: boolean, scale = 1, cluster = false): Case[] {
  const q = (full: number, small: number) => (quick ? small : full);
  const qm = (full: number, small: number) => Math.max(1, Math.round(q(full, small) * scale));
  const cases: Case[] = [];
  const stresserM = qm(10_000, 1_000);
  for (const n of [2, 10, 100]) {
    cases.push({
      scenario: "stresser",
      name: `n=${n} m=${stresserM}`,
      timeoutMs: q(120_000, 30_000),
      metrics: [
        { key: "recv_rate", label: "receive msgs/s", better: "higher" },
        { key: "pub_rate", label: "publish msgs/s", better: "higher" },
        LOSS,
        CPU_PER_MESSAGE,
        ...CPU,
      ],
      run: (ctx) => stresser(ctx, n, stresserM),
    });
  }
  const fanoutM = qm(10_000, 1_000);
  for (const qos of [0, 1]) {
    cases.push({
      scenario: "fanout",
      name: `qos${qos} 1->100 m=${fanoutM}`,
      timeoutMs: q(180_000, 30_000),
      metrics: [
        { key: "deliver_rate", label: "deliveries/s", better: "higher" },
        { key: "pub_rate", label: "publish msgs/s", better: "higher" },
        ...(qos === 0 ? [LOSS] : []),
        CPU_PER_MESSAGE,
        ...CPU,
        ...(cluster ? [REDIS_CPU] : []),
      ],
      run: (ctx) => fanout(ctx, qos, 100, fanoutM, -1),
    });
  }
  const faninM = qm(2_000, 200);
  for (const qos of [0, 1]) {
    cases.push({
      scenario: "fanin",
      name: `qos${qos} 100->1 m=${faninM}`,
      timeoutMs: q(120_000, 30_000),
      metrics: [
        { key: "recv_rate", label: "receive msgs/s", better: "higher" },
        ...(qos === 0 ? [LOSS] : []),
        CPU_PER_MESSAGE,
        ...CPU,
        ...(cluster ? [REDIS_CPU] : []),
      ],
      run: (ctx) => fanin(ctx, qos, 100, faninM),
    });
  }
  const qos2M = qm(1_000, 200);
  cases.push({
    scenario: "qos2",
    name: `10->10 m=${qos2M}`,
    timeoutMs: q(120_000, 30_000),
    metrics: [
      { key: "deliver_rate", label: "deliveries/s", better: "higher" },
      { key: "pub_rate", label: "publish msgs/s", better: "higher" },
      ...CPU,
    ],
    run: (ctx) => qos2(ctx, 10, qos2M),
  });
  const latencySeconds = Math.max(1, Math.round(q(10, 2) * scale));
  cases.push({
    scenario: "latency",
    name: `qos1 5000/s ${latencySeconds}s`,
    timeoutMs: (latencySeconds + 30) * 1000,
    metrics: [
      { key: "p50_ms", label: "p50 ms", better: "lower" },
      { key: "p99_ms", label: "p99 ms", better: "lower" },
      { key: "p999_ms", label: "p99.9 ms", better: "lower" },
      { key: "max_ms", label: "max ms", better: "lower" },
      { key: "rate", label: "achieved msgs/s", better: "higher" },
      ...CPU,
    ],
    run: (ctx) => latency(ctx, 5000, latencySeconds),
  });
  const connections = q(10_000, 1_000);
  cases.push({
    scenario: "connections",
    name: `${connections} idle v5`,
    timeoutMs: q(180_000, 30_000),
    metrics: [
      { key: "connect_rate", label: "connects/s", better: "higher" },
      { key: "rss_per_conn_kb", label: "RSS KiB/conn", better: "lower" },
      { key: "rss_before_mb", label: "RSS before MiB", better: "lower" },
      { key: "rss_after_mb", label: "RSS after MiB", better: "lower" },
      { key: "cpu_us_per_msg", label: "broker CPU µs/connect", better: "lower" },
      ...CPU,
    ],
    run: (ctx) => connectionsCase(ctx, connections),
  });
  const retainedN = q(100_000, 10_000);
  cases.push({
    scenario: "retained",
    name: `# over ${retainedN}`,
    timeoutMs: q(180_000, 30_000),
    metrics: [
      { key: "time_ms", label: "time ms", better: "lower" },
      { key: "recv_rate", label: "msgs/s", better: "higher" },
      { key: "loss_pct", label: "missing %", better: "lower" },
      { key: "store_rate", label: "store msgs/s", better: "higher" },
      ...CPU,
    ],
    run: (ctx) => retained(ctx, retainedN),
  });
  cases.push({
    scenario: "slow",
    name: `qos0 1->100, 1 stalled, m=${fanoutM}`,
    timeoutMs: q(180_000, 30_000),
    metrics: [
      { key: "deliver_rate", label: "others' deliveries/s", better: "higher" },
      { key: "pub_rate", label: "publish msgs/s", better: "higher" },
      LOSS,
      ...CPU,
    ],
    run: (ctx) => fanout(ctx, 0, 100, fanoutM, 0),
  });
  return cases;
}

async function stresser(ctx: RunContext, n: number, m: number): Promise<Record<string, number>> {
  ctx.stage = "connecting";
  const clients = await connectMany(ctx, n, "stress");
  const sinks = clients.map((c) => (c.sink = new SequenceSink(n)) as SequenceSink);
  ctx.stage = "subscribing";
  await Promise.all(clients.map((c, i) => c.subscribe([`bench/stress/${i}`], 0)));
  const templates = clients.map((c, i) => new PublishTemplate(`bench/stress/${i}`, PAYLOAD, 0, c.version, i));
  ctx.stage = "publishing";
  const cpu = cpuMeter(ctx.broker);
  const t0 = performance.now();
  const ends = await Promise.all(
    clients.map((c, i) => c.publishMany(templates[i], m).then(() => performance.now())),
  );
  const pubEnd = Math.max(...ends);
  ctx.stage = "receiving";
  const total = () => sinks.reduce((a, s) => a + s.received, 0);
  await waitFor(ctx, "deliveries", () => total() >= n * m, total, 3000, true);
  const end = lastReceive(clients);
  const checked = verify(sinks, m, 0, "stresser");
  return {
    recv_rate: Math.round(checked.received / (end - t0) * 1000),
    pub_rate: Math.round(n * m / (pubEnd - t0) * 1000),
    loss_pct: checked.loss_pct,
    ...cpu(end, checked.received),
  };
}

/** Fan-out; with `stalled >= 0`, that subscriber stops reading after its socket buffers are filled. */
async function fanout(
  ctx: RunContext,
  qos: number,
  subscribers: number,
  m: number,
  stalled: number,
): Promise<Record<string, number>> {
  ctx.stage = "connecting";
  const subs = await connectMany(ctx, subscribers, "fanout-sub");
  const [publisher] = await connectMany(ctx, 1, "fanout-pub", 100, ctx.broker.pubPort);
  const sinks = subs.map((c) => (c.sink = new SequenceSink(1)) as SequenceSink);
  ctx.stage = "subscribing";
  await Promise.all(subs.map((c) => c.subscribe(["bench/fanout"], qos)));
  const live = subs.filter((_, i) => i !== stalled);
  const liveSinks = sinks.filter((_, i) => i !== stalled);
  if (stalled >= 0) {
    ctx.stage = "filling the stalled subscriber's buffers";
    const slow = subs[stalled];
    await slow.subscribe(["bench/fill"], 0);
    slow.stopReading();
    // 16 MiB for it alone: more than the kernel buffers on both sides hold, so the broker sees the stall.
    const fill = new PublishTemplate("bench/fill", 256 * 1024, 0, publisher.version, 1);
    await publisher.publishMany(fill, 64, 0, 1 << 20);
    await publisher.publishMany(new PublishTemplate("bench/sync", PAYLOAD, 1, publisher.version, 0), 1);
    await sleep(200);
  }
  await awaitRoutes(ctx, [publisher], ["bench/fanout"], liveSinks);
  const template = new PublishTemplate("bench/fanout", PAYLOAD, qos, publisher.version, 0);
  ctx.stage = "publishing";
  const cpu = cpuMeter(ctx.broker);
  const t0 = performance.now();
  await publisher.publishMany(template, m, 1000);
  const pubEnd = performance.now();
  ctx.stage = "receiving";
  const total = () => liveSinks.reduce((a, s) => a + s.received, 0);
  const expected = m * live.length;
  await waitFor(
    ctx,
    "deliveries",
    () => total() >= expected,
    total,
    qos === 0 ? 3000 : 10_000,
    qos === 0,
    live,
  );
  const end = lastReceive(live);
  const checked = verify(liveSinks, m, qos, "fanout");
  return {
    deliver_rate: Math.round(checked.received / (end - t0) * 1000),
    pub_rate: Math.round(m / (pubEnd - t0) * 1000),
    ...(qos === 0 ? { loss_pct: checked.loss_pct } : {}),
    ...cpu(end, checked.received),
  };
}

async function fanin(
  ctx: RunContext,
  qos: number,
  publishers: number,
  m: number,
): Promise<Record<string, number>> {
  ctx.stage = "connecting";
  const [subscriber] = await connectMany(ctx, 1, "fanin-sub");
  const pubs = await connectMany(ctx, publishers, "fanin-pub", 100, ctx.broker.pubPort);
  const sink = subscriber.sink = new SequenceSink(publishers);
  ctx.stage = "subscribing";
  await subscriber.subscribe(["bench/fanin/+"], qos);
  await awaitRoutes(ctx, pubs, pubs.map((_, i) => `bench/fanin/${i}`), [sink]);
  const templates = pubs.map((c, i) => new PublishTemplate(`bench/fanin/${i}`, PAYLOAD, qos, c.version, i));
  ctx.stage = "publishing";
  const cpu = cpuMeter(ctx.broker);
  const t0 = performance.now();
  await Promise.all(pubs.map((c, i) => c.publishMany(templates[i], m, 100, 8192)));
  ctx.stage = "receiving";
  const expected = publishers * m;
  const total = () => sink.received;
  await waitFor(ctx, "deliveries", () => total() >= expected, total, qos === 0 ? 3000 : 10_000, qos === 0, [
    subscriber,
  ]);
  const end = lastReceive([subscriber]);
  const checked = verify([sink], expected, qos, "fanin");
  return {
    recv_rate: Math.round(checked.received / (end - t0) * 1000),
    ...(qos === 0 ? { loss_pct: checked.loss_pct } : {}),
    ...cpu(end, checked.received),
  };
}

async function qos2(ctx: RunContext, n: number, m: number): Promise<Record<string, number>> {
  ctx.stage = "connecting";
  const subs = await connectMany(ctx, n, "qos2-sub");
  const pubs = await connectMany(ctx, n, "qos2-pub");
  const sinks = subs.map((c) => (c.sink = new SequenceSink(n)) as SequenceSink);
  ctx.stage = "subscribing";
  await Promise.all(subs.map((c) => c.subscribe(["bench/qos2/+"], 2)));
  const templates = pubs.map((c, i) => new PublishTemplate(`bench/qos2/${i}`, PAYLOAD, 2, c.version, i));
  ctx.stage = "publishing";
  const cpu = cpuMeter(ctx.broker);
  const t0 = performance.now();
  await Promise.all(pubs.map((c, i) => c.publishMany(templates[i], m, 100)));
  const pubEnd = performance.now();
  ctx.stage = "receiving";
  const expected = n * m * n;
  const total = () => sinks.reduce((a, s) => a + s.received, 0);
  await waitFor(ctx, "deliveries", () => total() >= expected, total, 10_000, false, subs);
  const end = lastReceive(subs);
  const checked = verify(sinks, n * m, 2, "qos2");
  return {
    deliver_rate: Math.round(checked.received / (end - t0) * 1000),
    pub_rate: Math.round(n * m / (pubEnd - t0) * 1000),
    ...cpu(end),
  };
}

async function latency(ctx: RunContext, rate: number, seconds: number): Promise<Record<string, number>> {
  ctx.stage = "connecting";
  const [subscriber] = await connectMany(ctx, 1, "latency-sub");
  const [publisher] = await connectMany(ctx, 1, "latency-pub");
  const sink = subscriber.sink = new SequenceSink(1);
  sink.latencies = [];
  ctx.stage = "subscribing";
  await subscriber.subscribe(["bench/latency"], 1);
  const template = new PublishTemplate("bench/latency", PAYLOAD, 1, publisher.version, 0);
  const total = rate * seconds;
  const window = Math.min(publisher.receiveMaximum, 1000);
  ctx.stage = "publishing at a fixed rate";
  const cpu = cpuMeter(ctx.broker);
  const t0 = performance.now();
  let sent = 0;
  while (sent < total && !ctx.aborted) {
    const due = Math.min(total, Math.floor((performance.now() - t0) * rate / 1000));
    const allowed = Math.min(due, publisher.acked + window);
    while (sent < allowed) publisher.appendPublish(template, sent++, true);
    publisher.flush();
    await sleep(1);
  }
  const pubEnd = performance.now();
  ctx.stage = "receiving";
  await waitFor(ctx, "deliveries", () => sink.received >= total, () => sink.received, 10_000, false, [
    subscriber,
  ]);
  const checked = verify([sink], total, 1, "latency");
  const sorted = Float64Array.from(sink.latencies).sort();
  const pct = (p: number) => round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))], 3);
  return {
    p50_ms: pct(0.5),
    p99_ms: pct(0.99),
    p999_ms: pct(0.999),
    max_ms: round(sorted[sorted.length - 1], 3),
    rate: Math.round(checked.received / (pubEnd - t0) * 1000),
    ...cpu(),
  };
}

/** Threads the `connections` scenario connects from (`--gen-workers`). */
export const generator: { workers: number } = { workers: 2 };

async function connectionsCase(ctx: RunContext, n: number): Promise<Record<string, number>> {
  // The idle clients connect from worker threads: one generator thread bounded every broker near
  // 2,500-4,000 connects/s, Deno's floor (which does nothing per connect) included.
  const idle = await IdleClients.start(generator.workers);
  ctx.cleanups.push(() => idle.close());
  await sleep(500);
  const before = rssBytes(ctx.broker.pid);
  ctx.stage = "connecting";
  const cpu = cpuMeter(ctx.broker);
  const t0 = performance.now();
  await idle.connect({
    port: ctx.broker.port,
    version: ctx.broker.version,
    prefix: "idle",
    count: n,
    concurrency: 200,
  });
  const connectTime = performance.now() - t0;
  // CPU per connect: less at the mercy of what else the machine runs than the rate.
  const used = cpu(performance.now(), n);
  ctx.stage = "settling";
  await sleep(1000);
  const after = rssBytes(ctx.broker.pid);
  const status = await idle.status();
  if (status.ended > 0) {
    throw new Error(`${status.ended} idle connection(s) ended: ${status.reason}`);
  }
  return {
    connect_rate: Math.round(n / connectTime * 1000),
    rss_per_conn_kb: round((after - before) / n / 1024, 2),
    rss_before_mb: round(before / 1048576, 1),
    rss_after_mb: round(after / 1048576, 1),
    ...used,
  };
}

async function retained(ctx: RunContext, n: number): Promise<Record<string, number>> {
  ctx.stage = "connecting";
  const [publisher] = await connectMany(ctx, 1, "retain-pub");
  ctx.stage = "storing retained messages";
  const s0 = performance.now();
  const batch = 1000;
  for (let i = 0; i < n; i += batch) {
    if (ctx.aborted || publisher.closedReason) throw new Error(`publisher ended: ${publisher.closedReason}`);
    for (let j = i; j < Math.min(n, i + batch); j++) {
      publisher.write(
        new PublishTemplate(`bench/retained/${j}`, PAYLOAD, 0, publisher.version, j, true).bytes,
      );
    }
    await publisher.flush();
  }
  // Packets from one client are handled in order: once this QoS 1 publish is acknowledged, all are stored.
  await publisher.publishMany(new PublishTemplate("bench/sync", PAYLOAD, 1, publisher.version, 0), 1);
  const storeTime = performance.now() - s0;
  ctx.stage = "connecting the subscriber";
  const [subscriber] = await connectMany(ctx, 1, "retain-sub");
  const sink = subscriber.sink = new RetainedSink(n);
  ctx.stage = "receiving retained messages";
  const cpu = cpuMeter(ctx.broker);
  const t0 = performance.now();
  await subscriber.subscribe(["#"], 0);
  await waitFor(ctx, "retained messages", () => sink.unique >= n, () => sink.unique, 5000, true, [
    subscriber,
  ]);
  const end = subscriber.lastPublishAt;
  if (sink.unique < n) {
    throw new Error(
      `retained: received ${sink.unique} of ${n} retained messages (QoS 0; the rest were dropped)`,
    );
  }
  if (sink.other > 0) {
    throw new Error(`retained: ${sink.other} message(s) repeated or without the retain flag`);
  }
  return {
    time_ms: Math.round(end - t0),
    recv_rate: Math.round(sink.unique / (end - t0) * 1000),
    loss_pct: round((n - sink.unique) / n * 100, 3),
    store_rate: Math.round(n / storeTime * 1000),
    ...cpu(end),
  };
}
