/**
 * Starting and stopping the brokers under test, each as its own child process on a free loopback port
 * with a raised file-descriptor limit, and reading their RSS and CPU time from `/proc`.
 *
 * Every process started here is registered until it is stopped, and {@linkcode killAllBrokers} (called
 * on every exit path of `main.ts`) kills whatever is left.
 *
 * @module
 */

import type { Version } from "./mqtt.ts";

/**
 * A broker the suite knows: `ours`, `base` (our broker from the `--baseline` directory, for before and
 * after in one run), `mosquitto`, `aedes` or `floor` (Deno's floor for idle connections: a program that
 * only accepts, answers CONNECT and keeps one pending read per connection; `bench/floor_server.ts`). `ours` and `base` take a configuration suffix:
 * `+kv` (Deno KV storage), `+redis` (Redis storage, a fresh `redis-server` per run), `+metrics` (the
 * stats listener and MetricsHook), `+default` (the CLI's defaults: KV, stats listener, MetricsHook,
 * and the V8 flags of `deno task start`),
 * `+v8` (the bare broker with the V8 flags of `deno task start`); no suffix is the bare broker (no
 * storage, no stats) under a plain `deno run`.
 */
export type BrokerName = string;

/** The brokers `--compare` runs, ours first. */
export const BROKERS: readonly BrokerName[] = ["ours", "mosquitto", "aedes"];

/** The configurations of ours (and base). */
export const CONFIGS: readonly string[] = ["kv", "redis", "metrics", "default", "v8"];

/**
 * The V8 flags `deno task start` passes (`--v8-flags=...` in the checkout's `deno.json`), which `+v8`
 * adds to the bare broker's command line; empty when there are none.
 *
 * @param dir The checkout.
 * @returns The `--v8-flags=...` argument, or "".
 */
export function startTaskV8Flags(dir: string): string {
  try {
    const start = JSON.parse(Deno.readTextFileSync(`${dir}/deno.json`)).tasks?.start ?? "";
    return / (--v8-flags=\S+)/.exec(start)?.[1] ?? "";
  } catch {
    return "";
  }
}

/**
 * Clustered deployments (`--cluster`), each with a fresh `redis-server`: `ours+cluster1` (one node in cluster
 * mode), `ours+cluster2` (two nodes: subscribers connect to one, publishers to the other), `ours+workers2`
 * (`--workers 2`: every client connects to the one shared port) and `aedes+cluster2` (two Aedes processes
 * clustered through mqemitter-redis and aedes-persistence-redis, split like `ours+cluster2`).
 */
export const CLUSTER_CONFIGS: readonly string[] = ["cluster1", "cluster2", "workers2"];

/** The brokers `--cluster` runs: the single node (no cluster) first, the ratios' reference. */
export const CLUSTER_BROKERS: readonly BrokerName[] = [
  "ours",
  "ours+cluster1",
  "ours+cluster2",
  "ours+workers2",
  "aedes+cluster2",
];

/**
 * Whether a name is one the suite can start.
 *
 * @param name A broker name, maybe with a configuration suffix.
 * @returns True if known.
 */
export function isBrokerName(name: string): boolean {
  const [impl, config, extra] = name.split("+");
  if (extra !== undefined) return false;
  if (impl === "ours" || impl === "base") {
    return config === undefined || CONFIGS.includes(config) || CLUSTER_CONFIGS.includes(config);
  }
  if (impl === "aedes" && config === "cluster2") return true;
  return config === undefined && (impl === "mosquitto" || impl === "aedes" || impl === "floor");
}

const REPO = new URL("..", import.meta.url).pathname;
/** Where Aedes is installed (outside the repository, so `deno lint`/`fmt` never see it). */
export const AEDES_DIR: string = `${
  Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME")}/.cache`
}/x-broker-bench/aedes`;
const AEDES_VERSION = "1.2.0";
/** What `aedes+cluster2` adds (the newest versions that Aedes 1.2.0's peer dependencies accept). */
const AEDES_CLUSTER_PACKAGES = ["mqemitter-redis@7.2.1", "aedes-persistence-redis@11.2.2"];
const LOG_DIR = "/tmp/x-broker-bench";

/** A running broker. */
export interface Broker {
  /** Which one. */
  readonly name: BrokerName;
  /** Its port on 127.0.0.1 (where subscribers connect, when the deployment splits its clients). */
  readonly port: number;
  /** Where publishers connect: another node's port for `+cluster2`, else {@linkcode Broker.port}. */
  readonly pubPort: number;
  /** The process id (the broker itself: the wrapping shell `exec`s it; the first node of a cluster). */
  readonly pid: number;
  /** More than one broker process: routes may take a moment to reach every node after a SUBACK. */
  readonly distributed: boolean;
  /** Every broker process now (nodes; for `--workers`, the supervisor and its workers). */
  pids(): number[];
  /** The `redis-server` process of the deployment, if any. */
  readonly redisPid?: number;
  /** The MQTT level the generator speaks to it (Aedes has no v5). */
  readonly version: Version;
  /** Its stdout/stderr. */
  readonly logFile: string;
  /** Stops it (SIGTERM, then SIGKILL after `graceMs`) and waits for it to exit. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Map<number, Deno.ChildProcess>();

/** Kills every broker still running (synchronous, for exit paths). */
export function killAllBrokers(): void {
  for (const [pid, child] of live) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    live.delete(pid);
  }
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * Whether a broker can be run here (ours always can).
 *
 * @param name The broker.
 * @param install For Aedes: install it with npm into {@linkcode AEDES_DIR} when missing.
 * @returns `true`, or a reason why not.
 */
export async function available(name: BrokerName, install = true): Promise<true | string> {
  if (name.startsWith("ours") || name.startsWith("base")) {
    if (name.endsWith("+redis") && !(await run(["bash", "-c", "command -v redis-server"])).ok) {
      return "redis-server is not installed";
    }
    return true;
  }
  if (name === "floor") return true;
  if (name === "mosquitto") {
    return (await run(["bash", "-c", "command -v mosquitto"])).ok ? true : "mosquitto is not installed";
  }
  if (!(await run(["bash", "-c", "command -v node"])).ok) return "node is not installed";
  const clustered = name === "aedes+cluster2";
  if (clustered && !(await run(["bash", "-c", "command -v redis-server"])).ok) {
    return "redis-server is not installed";
  }
  const installed = exists(`${AEDES_DIR}/node_modules/aedes/aedes.js`) &&
    (!clustered || exists(`${AEDES_DIR}/node_modules/mqemitter-redis/package.json`) &&
        exists(`${AEDES_DIR}/node_modules/aedes-persistence-redis/package.json`));
  if (installed) return true;
  if (!install) return `Aedes${clustered ? " with its Redis packages" : ""} is not installed in ${AEDES_DIR}`;
  // Outside the repository, with npm: nothing reaches deno.json's imports or any deno.lock.
  const packages = [`aedes@${AEDES_VERSION}`, ...(clustered ? AEDES_CLUSTER_PACKAGES : [])];
  console.error(`Installing ${packages.join(" ")} into ${AEDES_DIR} ...`);
  Deno.mkdirSync(AEDES_DIR, { recursive: true });
  if (!exists(`${AEDES_DIR}/package.json`)) {
    Deno.writeTextFileSync(`${AEDES_DIR}/package.json`, '{"private":true}\n');
  }
  const result = await run(["npm", "install", ...packages, "--no-audit", "--no-fund"], AEDES_DIR);
  return result.ok ? true : `npm install ${packages.join(" ")} failed: ${result.stderr.slice(-500)}`;
}

/** Options for {@linkcode startBroker}. */
export interface StartOptions {
  /** Ours only: write a V8 CPU profile into this directory (`--cpu-prof`). */
  cpuProfileDir?: string;
  /** Ours only: keep state in Deno KV (a fresh directory per run) instead of running without storage. */
  persist?: boolean;
  /** `base`: the directory holding the baseline version of our broker. */
  baselineDir?: string;
  /** Milliseconds to wait for the port to accept connections. */
  readyTimeoutMs?: number;
}

/**
 * Starts a broker on a free port and waits until it accepts connections.
 *
 * @param name Which broker.
 * @param options Profiling and timeouts.
 * @returns The running broker.
 */
export async function startBroker(name: BrokerName, options: StartOptions = {}): Promise<Broker> {
  Deno.mkdirSync(LOG_DIR, { recursive: true });
  const [impl, suffix] = name.split("+");
  const nodes = suffix === "cluster2" ? 2 : 1;
  const ports = Array.from({ length: nodes }, () => freePort());
  const port = ports[0];
  const logFiles = ports.map((p) => `${LOG_DIR}/${name}-${p}.log`);
  const commands: string[] = [];
  const env: Record<string, string> = {};
  let version: Version = 5;
  let dataDir = "";
  let cwd = REPO;
  let redis: { address: string; pid: number; stop(): Promise<void> } | undefined;
  if (suffix === "redis" || CLUSTER_CONFIGS.includes(suffix ?? "")) redis = await startRedis();
  if (impl === "ours" || impl === "base") {
    if (impl === "base") {
      if (!options.baselineDir) throw new Error("The base broker needs --baseline DIR");
      cwd = options.baselineDir;
    }
    const config = suffix ?? (options.persist ? "kv" : "");
    let profile = options.cpuProfileDir ? `--cpu-prof --cpu-prof-dir=${quote(options.cpuProfileDir)} ` : "";
    // +default is what `deno task start` gives: its V8 flags too, when it has them.
    if (config === "v8" || config === "default") {
      const flags = startTaskV8Flags(cwd);
      if (!flags && config === "v8") {
        throw new Error(`${name}: the start task in ${cwd}/deno.json has no --v8-flags`);
      }
      if (flags) profile += `${quote(flags)} `;
    }
    // Only the TCP listener, on loopback. Newer CLIs also start WebSocket and HTTP listeners on all
    // interfaces and keep state in ./data by default: turn those off (state would leak between runs,
    // and Mosquitto runs without persistence too), or give each run a fresh KV directory (+kv), or
    // the stats listener on a free loopback port (+metrics; +default has both).
    let extra = "";
    const help = await cliHelp(cwd);
    if (help.includes("--ws ")) extra += " --ws off";
    if (help.includes("--info ")) {
      extra += config === "metrics" || config === "default"
        ? ` --info 127.0.0.1:${freePort()}`
        : " --info off";
    }
    if (config === "redis") {
      const file = `${LOG_DIR}/ours-${port}-redis.yaml`;
      Deno.writeTextFileSync(
        file,
        `hooks:\n  auth:\n    allow_all: true\n  storage:\n    redis:\n      address: "${redis!.address}"\n`,
      );
      extra += ` --config ${quote(file)}`;
    } else if (help.includes("--data ")) {
      if (config === "kv" || config === "default") {
        dataDir = Deno.makeTempDirSync({ prefix: "x-broker-bench-kv-" });
        extra += ` --data ${quote(dataDir)}`;
      } else extra += " --data off";
    }
    if (CLUSTER_CONFIGS.includes(config)) {
      if (!help.includes("--cluster ")) throw new Error(`${name}: this CLI has no --cluster`);
      extra += ` --cluster redis://${redis!.address}`;
      if (config === "workers2") extra += " --workers 2 --node-id bench";
    }
    for (const [i, p] of ports.entries()) {
      const node = CLUSTER_CONFIGS.includes(config) && config !== "workers2" ? ` --node-id node${i + 1}` : "";
      commands.push(`exec deno run -A ${profile}src/app/cli.ts --tcp 127.0.0.1:${p}${extra}${node}`);
    }
  } else if (name === "floor") {
    commands.push(`exec deno run -A bench/floor_server.ts 127.0.0.1 ${port}`);
  } else if (name === "mosquitto") {
    const config = `${LOG_DIR}/mosquitto-${port}.conf`;
    Deno.writeTextFileSync(
      config,
      `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`,
    );
    commands.push(`exec mosquitto -c ${quote(config)}`);
  } else {
    env.AEDES_DIR = AEDES_DIR;
    if (redis) env.AEDES_REDIS = redis.address;
    version = 4;
    for (const p of ports) commands.push(`exec node bench/aedes_server.mjs 127.0.0.1 ${p}`);
  }
  const procs = commands.map((command, i) => spawn(command, cwd, env, logFiles[i]));
  const pids = () => {
    const all: number[] = [];
    for (const p of procs) all.push(p.child.pid, ...descendants(p.child.pid));
    return all;
  };
  const broker: Broker = {
    name,
    port,
    pubPort: ports[nodes - 1],
    pid: procs[0].child.pid,
    distributed: nodes > 1 || suffix === "workers2",
    pids,
    redisPid: redis?.pid,
    version,
    logFile: logFiles.join(" "),
    async stop(graceMs = 2000) {
      const all = pids();
      await Promise.all(procs.map((p) => p.stop(graceMs)));
      // Workers leave by themselves once their supervisor is gone; make sure of it.
      for (const pid of all) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
      if (dataDir) Deno.removeSync(dataDir, { recursive: true });
      await redis?.stop();
    },
  };
  const deadline = performance.now() + (options.readyTimeoutMs ?? 20_000);
  try {
    for (const [i, p] of ports.entries()) await waitListening(procs[i], name, p, logFiles[i], deadline);
    if (suffix === "workers2") {
      // The shared port accepts as soon as one worker listens: wait for the supervisor to log both.
      while ((readText(logFiles[0]).match(/is serving/g) ?? []).length < 2) {
        if (procs[0].exited() || performance.now() > deadline) {
          throw new Error(`${name}: two workers did not start; log ${logFiles[0]}:\n${tail(logFiles[0])}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  } catch (error) {
    await broker.stop(0);
    throw error;
  }
  return broker;
}

/** A started broker process. */
interface Proc {
  child: Deno.ChildProcess;
  exited(): boolean;
  stop(graceMs: number): Promise<void>;
}

/** Starts `command` under bash with a raised file-descriptor limit, its output in `logFile`. */
function spawn(command: string, cwd: string, env: Record<string, string>, logFile: string): Proc {
  const child = new Deno.Command("bash", {
    args: [
      "-c",
      `ulimit -n 65536 2>/dev/null || ulimit -n $(ulimit -Hn); ${command} >${quote(logFile)} 2>&1`,
    ],
    cwd,
    env,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  live.set(child.pid, child);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    live.delete(child.pid);
    return s;
  });
  return {
    child,
    exited: () => exited,
    async stop(graceMs: number) {
      if (exited) return;
      try {
        child.kill("SIGTERM");
      } catch {
        // gone
      }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // gone
        }
      }, graceMs);
      await status;
      clearTimeout(timer);
    },
  };
}

/** Waits until `port` accepts connections, or throws (the process exited, or the deadline passed). */
async function waitListening(proc: Proc, name: string, port: number, logFile: string, deadline: number) {
  while (true) {
    if (proc.exited()) {
      throw new Error(`${name} exited before listening on port ${port}; log ${logFile}:\n${tail(logFile)}`);
    }
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch {
      if (performance.now() > deadline) {
        throw new Error(
          `${name} did not listen on port ${port} within the timeout; log ${logFile}:\n${tail(logFile)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Every descendant of a process (children of each of its threads, recursively), from `/proc`. */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const visit = (p: number) => {
    let tasks: string[];
    try {
      tasks = [...Deno.readDirSync(`/proc/${p}/task`)].map((e) => e.name);
    } catch {
      return;
    }
    for (const tid of tasks) {
      for (const child of readText(`/proc/${p}/task/${tid}/children`).split(" ")) {
        if (child.trim() === "") continue;
        out.push(Number(child));
        visit(Number(child));
      }
    }
  };
  visit(pid);
  return out;
}

function readText(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}

/**
 * The resident set size of a process.
 *
 * @param pid The process.
 * @returns Bytes (VmRSS from /proc/PID/status).
 */
export function rssBytes(pid: number): number {
  const match = Deno.readTextFileSync(`/proc/${pid}/status`).match(/VmRSS:\s+(\d+) kB/);
  if (!match) throw new Error(`No VmRSS for process ${pid}`);
  return Number(match[1]) * 1024;
}

/**
 * CPU time used so far by a process (user + system), or by this one.
 *
 * @param pid The process, or "self".
 * @returns Seconds.
 */
export function cpuSeconds(pid: number | "self"): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (CLK_TCK 100)
  } catch {
    return NaN;
  }
}

const helpTexts = new Map<string, Promise<string>>();

/** The CLI's `--help` output (read once per directory), to know which flags it has. */
function cliHelp(cwd: string): Promise<string> {
  let text = helpTexts.get(cwd);
  if (!text) {
    text = new Deno.Command("deno", { args: ["run", "-A", "src/app/cli.ts", "--help"], cwd, stderr: "null" })
      .output().then((out) => new TextDecoder().decode(out.stdout));
    helpTexts.set(cwd, text);
  }
  return text;
}

/** Starts a `redis-server` on a free loopback port (no persistence to disk: the write path, not the disk). */
async function startRedis(): Promise<{ address: string; pid: number; stop(): Promise<void> }> {
  const dir = Deno.makeTempDirSync({ prefix: "x-broker-bench-redis-" });
  const port = freePort();
  const child = new Deno.Command("redis-server", {
    args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  live.set(child.pid, child);
  for (let i = 0; i < 250; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  return {
    address: `127.0.0.1:${port}`,
    pid: child.pid,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // gone
      }
      await child.status;
      live.delete(child.pid);
      Deno.removeSync(dir, { recursive: true });
    },
  };
}

function tail(file: string): string {
  try {
    return Deno.readTextFileSync(file).split("\n").slice(-15).join("\n");
  } catch {
    return "(no log)";
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function quote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

async function run(args: string[], cwd?: string): Promise<{ ok: boolean; stderr: string }> {
  try {
    const out = await new Deno.Command(args[0], { args: args.slice(1), cwd, stdout: "null", stderr: "piped" })
      .output();
    return { ok: out.success, stderr: new TextDecoder().decode(out.stderr) };
  } catch (error) {
    return { ok: false, stderr: String(error) };
  }
}
