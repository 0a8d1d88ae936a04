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

/** The brokers the suite knows. */
export type BrokerName = "ours" | "mosquitto" | "aedes";

/** All broker names, ours first. */
export const BROKERS: readonly BrokerName[] = ["ours", "mosquitto", "aedes"];

const REPO = new URL("..", import.meta.url).pathname;
/** Where Aedes is installed (outside the repository, so `deno lint`/`fmt` never see it). */
export const AEDES_DIR: string = `${
  Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME")}/.cache`
}/x-broker-bench/aedes`;
const AEDES_VERSION = "1.2.0";
const LOG_DIR = "/tmp/x-broker-bench";

/** A running broker. */
export interface Broker {
  /** Which one. */
  readonly name: BrokerName;
  /** Its port on 127.0.0.1. */
  readonly port: number;
  /** The process id (the broker itself: the wrapping shell `exec`s it). */
  readonly pid: number;
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
  if (name === "ours") return true;
  if (name === "mosquitto") {
    return (await run(["bash", "-c", "command -v mosquitto"])).ok ? true : "mosquitto is not installed";
  }
  if (!(await run(["bash", "-c", "command -v node"])).ok) return "node is not installed";
  if (exists(`${AEDES_DIR}/node_modules/aedes/aedes.js`)) return true;
  if (!install) return `Aedes is not installed in ${AEDES_DIR}`;
  console.error(`Installing aedes@${AEDES_VERSION} into ${AEDES_DIR} ...`);
  Deno.mkdirSync(AEDES_DIR, { recursive: true });
  if (!exists(`${AEDES_DIR}/package.json`)) {
    Deno.writeTextFileSync(`${AEDES_DIR}/package.json`, '{"private":true}\n');
  }
  const result = await run(
    ["npm", "install", `aedes@${AEDES_VERSION}`, "--no-audit", "--no-fund"],
    AEDES_DIR,
  );
  return result.ok ? true : `npm install aedes failed: ${result.stderr.slice(-500)}`;
}

/** Options for {@linkcode startBroker}. */
export interface StartOptions {
  /** Ours only: write a V8 CPU profile into this directory (`--cpu-prof`). */
  cpuProfileDir?: string;
  /** Ours only: keep state in Deno KV (a fresh directory per run) instead of running without storage. */
  persist?: boolean;
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
  const port = freePort();
  const logFile = `${LOG_DIR}/${name}-${port}.log`;
  let command: string;
  const env: Record<string, string> = {};
  let version: Version = 5;
  let dataDir = "";
  if (name === "ours") {
    const profile = options.cpuProfileDir ? `--cpu-prof --cpu-prof-dir=${quote(options.cpuProfileDir)} ` : "";
    // Only the TCP listener, on loopback. Newer CLIs also start WebSocket and HTTP listeners on all
    // interfaces and keep state in ./data by default: turn those off (state would leak between runs,
    // and Mosquitto runs without persistence too), or give each run a fresh KV directory (--persist).
    let extra = "";
    const help = await cliHelp();
    if (help.includes("--ws ")) extra += " --ws off";
    if (help.includes("--info ")) extra += " --info off";
    if (help.includes("--data ")) {
      if (options.persist) {
        dataDir = Deno.makeTempDirSync({ prefix: "x-broker-bench-kv-" });
        extra += ` --data ${quote(dataDir)}`;
      } else extra += " --data off";
    }
    command = `exec deno run -A ${profile}src/app/cli.ts --tcp 127.0.0.1:${port}${extra}`;
  } else if (name === "mosquitto") {
    const config = `${LOG_DIR}/mosquitto-${port}.conf`;
    Deno.writeTextFileSync(
      config,
      `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`,
    );
    command = `exec mosquitto -c ${quote(config)}`;
  } else {
    env.AEDES_DIR = AEDES_DIR;
    version = 4;
    command = `exec node bench/aedes_server.mjs 127.0.0.1 ${port}`;
  }
  const child = new Deno.Command("bash", {
    args: [
      "-c",
      `ulimit -n 65536 2>/dev/null || ulimit -n $(ulimit -Hn); ${command} >${quote(logFile)} 2>&1`,
    ],
    cwd: REPO,
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
  const broker: Broker = {
    name,
    port,
    pid: child.pid,
    version,
    logFile,
    async stop(graceMs = 2000) {
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
      if (dataDir) Deno.removeSync(dataDir, { recursive: true });
    },
  };
  const deadline = performance.now() + (options.readyTimeoutMs ?? 20_000);
  while (true) {
    if (exited) {
      throw new Error(`${name} exited before listening on port ${port}; log ${logFile}:\n${tail(logFile)}`);
    }
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return broker;
    } catch {
      if (performance.now() > deadline) {
        await broker.stop(0);
        throw new Error(
          `${name} did not listen on port ${port} within the timeout; log ${logFile}:\n${tail(logFile)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
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

let helpText: Promise<string> | undefined;

/** The CLI's `--help` output (read once), to know which flags it has. */
function cliHelp(): Promise<string> {
  helpText ??= new Deno.Command("deno", {
    args: ["run", "-A", "src/app/cli.ts", "--help"],
    cwd: REPO,
    stderr: "null",
  })
    .output().then((out) => new TextDecoder().decode(out.stdout));
  return helpText;
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
