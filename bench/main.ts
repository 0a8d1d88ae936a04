/**
 * `deno task bench`: runs the benchmark scenarios against our broker, or with `--compare` against
 * Mosquitto and Aedes too (interleaved: every case runs on each broker in turn, round after round),
 * and prints one JSON line and a table per run, then medians and the ratios of ours to each.
 *
 * ```sh
 * deno task bench                          # every scenario, our broker, one round
 * deno task bench --quick                  # smaller counts (a sanity run in about a minute)
 * deno task bench --compare --rounds 3     # ours vs Mosquitto vs Aedes, medians of 3 rounds
 * deno task bench --scenario fanout --scenario slow --rounds 5
 * deno task bench --scenario stresser --cpu-prof /tmp/prof   # our broker under `deno run --cpu-prof`
 * deno task bench --cluster --scale 0.2   # single node vs cluster modes vs clustered Aedes, 3 rounds
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  available,
  type BrokerName,
  BROKERS,
  CLUSTER_BROKERS,
  isBrokerName,
  killAllBrokers,
  startBroker,
} from "./brokers.ts";
import { sessions } from "./mqtt.ts";
import { buildCases, type Case, generator, type RunContext, SCENARIOS } from "./scenarios.ts";

const USAGE = `Usage: deno task bench [options]

Options:
  --compare           also run Mosquitto and Aedes (when installed), interleaved, and print ratios
  --cluster           fanout and fanin against ${CLUSTER_BROKERS.join(", ")}
                      (one node in cluster mode; two nodes, publishers on one and subscribers on the
                      other; --workers 2; two Aedes on mqemitter-redis), each with a fresh redis-server,
                      interleaved, 3 rounds, with CPU per delivery of broker processes and Redis together
  --brokers LIST      comma-separated brokers (overrides --compare's choice): ${BROKERS.join(", ")}, base
                      (ours from --baseline); ours and base take +kv, +redis, +metrics or +default
                      (the CLI's defaults); ratios are the first broker's over each other's
  --baseline DIR      a checkout of an earlier version of our broker, run as "base" (before and after
                      in one run, interleaved)
  --persistent        the generator's clients ask for persistent sessions (clean session 0 / v5 session
                      expiry of an hour) instead of clean ones
  --scenario NAME     run only this scenario (repeatable): ${[...SCENARIOS, "durability"].join(", ")}
  --rounds N          rounds (default 1, or 3 with --compare)
  --quick             smaller counts, for a fast sanity run
  --scale F           multiply message counts by F (clients, connections and retained topics stay)
  --persist           run our broker with its Deno KV storage (a fresh directory per run)
  --gen-workers N     threads the connections scenario connects from (default 2)
  --cpu-prof DIR      run our broker with deno --cpu-prof, profiles written to DIR (every node of it)
  --help              show this help`;

/** The outcome of one case on one broker in one round. */
interface RunResult {
  scenario: string;
  case: string;
  broker: BrokerName;
  round: number;
  ok: boolean;
  error?: string;
  seconds: number;
  metrics: Record<string, number>;
}

async function runOnce(
  testCase: Case,
  broker: BrokerName,
  round: number,
  cpuProfileDir: string | undefined,
  persist: boolean,
  baselineDir: string | undefined,
) {
  const started = performance.now();
  const result: RunResult = {
    scenario: testCase.scenario,
    case: testCase.name,
    broker,
    round,
    ok: false,
    seconds: 0,
    metrics: {},
  };
  let instance;
  const ctx: RunContext = {
    broker: undefined!,
    clients: [],
    cleanups: [],
    stage: "starting the broker",
    aborted: false,
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    instance = await startBroker(broker, {
      cpuProfileDir: broker.startsWith("ours") ? cpuProfileDir : undefined,
      persist,
      baselineDir,
    });
    ctx.broker = instance;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        ctx.aborted = true;
        reject(
          new Error(
            `${testCase.scenario} (${testCase.name}) on ${broker} timed out after ${
              testCase.timeoutMs / 1000
            } s ` +
              `while ${ctx.stage}`,
          ),
        );
      }, testCase.timeoutMs);
    });
    const running = testCase.run(ctx);
    running.catch(() => {}); // after a timeout it fails on its own, once its sockets are closed
    result.metrics = await Promise.race([running, timeout]);
    result.ok = true;
  } catch (error) {
    result.error = error instanceof Error ? error.message : String(error);
    if (instance) result.error += ` (broker log: ${instance.logFile})`;
  } finally {
    clearTimeout(timer);
    ctx.aborted = true;
    for (const c of ctx.clients) c.close();
    for (const cleanup of ctx.cleanups) await cleanup().catch(() => {});
    if (instance) await instance.stop(cpuProfileDir ? 10_000 : 2000);
  }
  result.seconds = Math.round((performance.now() - started) / 100) / 10;
  return result;
}

function printRun(testCase: Case, result: RunResult): void {
  console.log(JSON.stringify(result));
  if (!result.ok) {
    console.log(`  FAILED ${result.scenario} ${result.case} on ${result.broker}: ${result.error}\n`);
    return;
  }
  const rows = testCase.metrics.filter((m) => m.key in result.metrics).map((m) => [
    m.label,
    format(result.metrics[m.key]),
  ]);
  console.log(
    table([`${result.scenario} ${result.case} — ${result.broker} r${result.round}`, "value"], rows),
  );
  console.log();
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function format(x: number | undefined): string {
  if (x === undefined || Number.isNaN(x)) return "—";
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString("en-US");
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 10) return x.toFixed(1);
  return x.toFixed(Math.abs(x) < 1 ? 3 : 2);
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ")} |`;
  const rule = `| ${widths.map((w, i) => (i === 0 ? "-".repeat(w) : "-".repeat(w - 1) + ":")).join(" | ")} |`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}

/**
 * The ratios `--cluster` prints: each cluster mode over the single node (the cross-node and CPU
 * targets), and each of ours over clustered Aedes.
 */
function clusterRatios(brokers: BrokerName[]): [BrokerName, BrokerName][] {
  const pairs: [BrokerName, BrokerName][] = [];
  const ours = brokers.filter((b) => b.startsWith("ours+"));
  if (brokers.includes("ours")) { for (const b of ours) pairs.push([b, "ours"]); }
  if (brokers.includes("aedes+cluster2")) { for (const b of ours) pairs.push([b, "aedes+cluster2"]); }
  return pairs;
}

function summarize(
  cases: Case[],
  brokers: BrokerName[],
  results: RunResult[],
  rounds: number,
  pairs: [BrokerName, BrokerName][] = brokers.slice(1).map((b) => [brokers[0], b]),
): string {
  // Ratios are the first broker's over each other's, unless other pairs are given.
  const header = ["scenario / metric", ...brokers, ...pairs.map(([a, b]) => `${a}/${b}`)];
  const rows: string[][] = [];
  for (const c of cases) {
    const of = (b: BrokerName) =>
      results.filter((r) => r.case === c.name && r.scenario === c.scenario && r.broker === b);
    for (const m of c.metrics) {
      if (m.better === "none" && !m.key.endsWith("cpu_pct")) continue;
      const medians = new Map<BrokerName, number>();
      const cells = brokers.map((b) => {
        const runs = of(b);
        const ok = runs.filter((r) => r.ok && m.key in r.metrics).map((r) => r.metrics[m.key] ?? NaN);
        const failed = runs.filter((r) => !r.ok).length;
        if (ok.length === 0) return failed ? "FAIL" : "—";
        medians.set(b, median(ok));
        return format(median(ok)) + (failed ? ` (${failed} failed)` : "");
      });
      const ratios = pairs.map(([first, b]) => {
        const a = medians.get(first);
        const o = medians.get(b);
        if (a === undefined || o === undefined || o === 0 || m.better === "none") return "";
        return `${(a / o).toFixed(2)}x`;
      });
      const arrow = m.better === "higher" ? " ↑" : m.better === "lower" ? " ↓" : "";
      rows.push([`${c.scenario} ${c.name}: ${m.label}${arrow}`, ...cells, ...ratios]);
    }
  }
  return `Medians of ${rounds} round(s). ↑ higher is better, ↓ lower is better; ratios are a/b of medians.\n` +
    table(header, rows);
}

/**
 * Runs the suite.
 *
 * @param args Command-line arguments.
 * @returns The exit code: 0 when every run succeeded.
 */
export async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        compare: { type: "boolean", default: false },
        cluster: { type: "boolean", default: false },
        brokers: { type: "string" },
        scenario: { type: "string", multiple: true },
        rounds: { type: "string" },
        quick: { type: "boolean", default: false },
        scale: { type: "string", default: "1" },
        "cpu-prof": { type: "string" },
        persist: { type: "boolean", default: false },
        persistent: { type: "boolean", default: false },
        baseline: { type: "string" },
        "gen-workers": { type: "string", default: "2" },
        help: { type: "boolean", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : error}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const scenarios = values.scenario ?? (values.cluster ? ["fanout", "fanin"] : [...SCENARIOS, DURABILITY]);
  for (const s of scenarios) {
    if (!SCENARIOS.includes(s) && s !== DURABILITY) {
      console.error(`Unknown scenario "${s}"; one of ${[...SCENARIOS, DURABILITY].join(", ")}`);
      return 2;
    }
  }
  const rounds = values.rounds ? Number(values.rounds) : values.compare || values.cluster ? 3 : 1;
  if (!Number.isInteger(rounds) || rounds < 1) {
    console.error(`--rounds must be a positive integer, got "${values.rounds}"`);
    return 2;
  }
  const scale = Number(values.scale);
  if (!(scale > 0)) {
    console.error(`--scale must be a positive number, got "${values.scale}"`);
    return 2;
  }
  let brokers: BrokerName[] = values.brokers
    ? values.brokers.split(",").map((b) => b.trim()) as BrokerName[]
    : values.cluster
    ? [...CLUSTER_BROKERS]
    : values.compare
    ? [...BROKERS]
    : ["ours"];
  for (const b of brokers) {
    if (!isBrokerName(b)) {
      console.error(`Unknown broker "${b}"; one of ${BROKERS.join(", ")}, base (with +kv, +redis, ...)`);
      return 2;
    }
  }
  const usable: BrokerName[] = [];
  for (const b of brokers) {
    const ok = await available(b);
    if (ok === true) usable.push(b);
    else console.error(`Skipping ${b}: ${ok}`);
  }
  brokers = usable;
  if (values["cpu-prof"]) Deno.mkdirSync(values["cpu-prof"], { recursive: true });

  sessions.persistent = values.persistent;
  generator.workers = Number(values["gen-workers"]);
  if (!Number.isInteger(generator.workers) || generator.workers < 1) {
    console.error(`--gen-workers must be a positive integer, got "${values["gen-workers"]}"`);
    return 2;
  }
  const cases = buildCases(values.quick, scale, values.cluster).filter((c) => scenarios.includes(c.scenario));
  const started = new Date();
  console.log(
    `# bench ${started.toISOString()} — brokers: ${brokers.join(", ")}; rounds: ${rounds}; ` +
      `${values.quick ? "quick" : "full"} counts${scale === 1 ? "" : ` × ${scale} messages`}; ` +
      `${values.persistent ? "persistent" : "clean"} sessions; ` +
      `${navigator.hardwareConcurrency} CPUs; Deno ${Deno.version.deno}\n`,
  );
  const results: RunResult[] = [];
  for (let round = 1; round <= rounds; round++) {
    // Each round starts with a different broker, so that an order effect (a warm cache, the load
    // left by the previous run) does not always favour the same one.
    const shift = (round - 1) % brokers.length;
    const order = [...brokers.slice(shift), ...brokers.slice(0, shift)];
    for (const c of cases) {
      for (const b of order) {
        const result = await runOnce(c, b, round, values["cpu-prof"], values.persist, values.baseline);
        results.push(result);
        printRun(c, result);
      }
    }
  }
  console.log(
    summarize(cases, brokers, results, rounds, values.cluster ? clusterRatios(brokers) : undefined),
  );
  const minutes = (Date.now() - started.getTime()) / 60000;
  const failed = results.filter((r) => !r.ok);
  console.log(`\n${results.length} runs in ${minutes.toFixed(1)} min; ${failed.length} failed.`);
  for (const f of failed) console.log(`  ${f.scenario} ${f.case} on ${f.broker} r${f.round}: ${f.error}`);
  let durabilityOk = true;
  if (scenarios.includes(DURABILITY)) durabilityOk = await runDurability(values.quick, scale);
  return failed.length === 0 && durabilityOk ? 0 : 1;
}

/** The `durability` scenario: the cost of storage on our broker (`bench/durability.ts`, its own process). */
const DURABILITY = "durability";

async function runDurability(quick: boolean, scale: number): Promise<boolean> {
  const messages = Math.max(1000, Math.round((quick ? 4000 : 20000) * scale));
  console.log(`\n# durability: QoS 1 throughput with no storage, Deno KV (sync, async) and Redis\n`);
  const { success } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./durability.ts", import.meta.url).pathname, "--messages", String(messages)],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  return success;
}

if (import.meta.main) {
  const onSignal = () => {
    killAllBrokers();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  globalThis.addEventListener("unload", killAllBrokers);
  let code = 1;
  try {
    code = await main(Deno.args);
  } catch (error) {
    console.error(error);
  } finally {
    killAllBrokers();
  }
  Deno.exit(code);
}
