/**
 * `--workers N`: one broker process per core on this machine, as one cluster. The parent starts N
 * worker processes (the same program, with `BROKER_WORKER` set and `--node-id {id}-w{K}`) that bind
 * every listener port with `reusePort` (the kernel spreads connections over them) and join the
 * cluster in the given Redis. The parent accepts no connections itself; it supervises:
 *
 * - a worker that exits is started again after a backoff (0.5 s, doubling up to 30 s; back to 0.5 s
 *   once a worker has run for a minute); its clients reconnect to the others meanwhile, and the
 *   cluster claims its sessions and sends their wills as for any dead node;
 * - a worker that fails on its first start (a bad port, Redis unreachable) stops them all: the same
 *   failure would repeat forever;
 * - SIGINT or SIGTERM stops every worker gracefully (SIGTERM to each, which closes its clients with
 *   DISCONNECT 0x8B and leaves the cluster); a second signal kills them (SIGKILL) and exits;
 * - a worker whose parent disappears (its stdin pipe closes) shuts down by itself.
 *
 * Workers run in their own process group, so a Ctrl-C at the terminal reaches them only through the
 * parent, once.
 *
 * @module
 */

import { logger } from "../logger.ts";
import { childV8FlagArgs } from "./v8_flags.ts";

const log = logger("workers");

/** The environment variable that marks a worker process; its value is the worker's number (1..N). */
export const WORKER_ENV = "BROKER_WORKER";

/** What a child process prints on stdout once it serves. */
export const READY_LINE = "worker ready";

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** A worker that ran this long is healthy again: its next restart waits the shortest backoff. */
const HEALTHY_MS = 60_000;

/**
 * Reads a worker count: a whole number from 1, or `"auto"` (one per core).
 *
 * @param value The count as given.
 * @returns The number of workers.
 * @throws {TypeError} On anything else, quoting the value.
 *
 * @example Counts
 * ```ts
 * import assert from "node:assert/strict";
 * import { workerCount } from "./workers.ts";
 *
 * assert.equal(workerCount("3"), 3);
 * assert.equal(workerCount(2), 2);
 * assert.equal(workerCount("auto"), navigator.hardwareConcurrency);
 * assert.throws(() => workerCount("0"), TypeError);
 * ```
 */
export function workerCount(value: string | number): number {
  if (value === "auto") return Math.max(1, navigator.hardwareConcurrency || 1);
  const count = typeof value === "number" ? value : /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(count) || count < 1 || count > 1024) {
    throw new TypeError(`Worker count "${value}" is not a whole number from 1 to 1024 or "auto"`);
  }
  return count;
}

/**
 * The worker number of this process, when it is a worker.
 *
 * @returns The number (1..N), or undefined in a parent or a single process.
 */
export function workerNumber(): number | undefined {
  let value: string | undefined;
  try {
    value = Deno.env.get(WORKER_ENV);
  } catch {
    return undefined; // no env permission: not started by a supervisor (which grants it)
  }
  return value === undefined ? undefined : Number(value);
}

/**
 * The command that starts one more copy of this program: `deno run` of the CLI module, or the
 * compiled binary itself (whose V8 flags were fixed at compile time). A `deno run` child gets this
 * process's V8 flags, or the broker's own ({@linkcode childV8FlagArgs}).
 *
 * @returns The executable and the arguments before the program's own.
 */
function programCommand(): { command: string; prefix: string[] } {
  const cli = new URL("./cli.ts", import.meta.url);
  // A compiled binary runs its embedded program; its flags were fixed at compile time.
  if (cli.protocol === "file:" && cli.pathname.includes("/deno-compile-")) {
    return { command: Deno.execPath(), prefix: [] };
  }
  return {
    command: Deno.execPath(),
    prefix: ["run", "-A", ...childV8FlagArgs(), "--unstable-net", "--unstable-kv", cli.href],
  };
}

/** Options of {@linkcode runWorkers}. */
export interface WorkersOptions {
  /** How many workers. */
  count: number;
  /** The parent's node id; worker K is `{nodeId}-w{K}`. */
  nodeId: string;
  /** The workers' command-line arguments (without `--node-id` and `--workers`). */
  args: string[];
}

interface Worker {
  readonly number: number;
  readonly nodeId: string;
  child: Deno.ChildProcess | undefined;
  started: number;
  ready: boolean;
  everReady: boolean;
  failures: number;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * Starts the workers and supervises them until SIGINT or SIGTERM (or a worker that cannot start).
 *
 * @param options How many, their node ids and arguments.
 * @returns The exit code: 0 after a graceful stop, 1 when a worker could not start or a second
 *   signal forced the stop.
 */
export async function runWorkers(options: WorkersOptions): Promise<number> {
  const { command, prefix } = programCommand();
  const workers: Worker[] = [];
  for (let number = 1; number <= options.count; number++) {
    workers.push({
      number,
      nodeId: `${options.nodeId}-w${number}`,
      child: undefined,
      started: 0,
      ready: false,
      everReady: false,
      failures: 0,
      timer: undefined,
    });
  }
  let stopping = false;
  let exitCode = 0;
  const { promise: done, resolve: finish } = Promise.withResolvers<void>();
  const exits: Promise<void>[] = [];

  const stopAll = (signal: Deno.Signal) => {
    for (const worker of workers) {
      clearTimeout(worker.timer);
      worker.timer = undefined;
      try {
        worker.child?.kill(signal);
      } catch {
        // exited meanwhile
      }
    }
  };
  const checkDone = () => {
    if (stopping && workers.every((worker) => worker.child === undefined)) finish();
  };

  const start = (worker: Worker) => {
    worker.timer = undefined;
    if (stopping) return;
    const child = new Deno.Command(command, {
      args: [...prefix, ...options.args, "--node-id", worker.nodeId],
      env: { [WORKER_ENV]: String(worker.number) },
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
      detached: true,
    }).spawn();
    worker.child = child;
    worker.started = Date.now();
    worker.ready = false;
    log.info("Worker {number} ({node}) started: pid {pid}", {
      number: worker.number,
      node: worker.nodeId,
      pid: child.pid,
    });
    exits.push(watch(worker, child));
  };

  const watch = async (worker: Worker, child: Deno.ChildProcess) => {
    const reading = (async () => {
      let text = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        text += chunk;
        if (!worker.ready && text.includes(READY_LINE)) {
          worker.ready = worker.everReady = true;
          log.info("Worker {number} ({node}, pid {pid}) is serving", {
            number: worker.number,
            node: worker.nodeId,
            pid: child.pid,
          });
        }
        if (text.length > 4096) text = text.slice(-64);
      }
    })();
    const status = await child.status;
    await reading.catch(() => {});
    try {
      await child.stdin.close();
    } catch {
      // already closed
    }
    worker.child = undefined;
    if (stopping) {
      checkDone();
      return;
    }
    const how = status.signal ? `signal ${status.signal}` : `code ${status.code}`;
    if (!worker.everReady) {
      log.fatal("Worker {number} ({node}) could not start ({how}): stopping all workers", {
        number: worker.number,
        node: worker.nodeId,
        how,
      });
      exitCode = 1;
      stopping = true;
      stopAll("SIGTERM");
      checkDone();
      return;
    }
    if (Date.now() - worker.started >= HEALTHY_MS) worker.failures = 0;
    const wait = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** worker.failures);
    worker.failures++;
    log.warn("Worker {number} ({node}, pid {pid}) exited ({how}): restarting in {wait} ms", {
      number: worker.number,
      node: worker.nodeId,
      pid: child.pid,
      how,
      wait,
    });
    worker.timer = setTimeout(() => start(worker), wait);
  };

  let signals = 0;
  const onSignal = () => {
    signals++;
    if (signals > 1) {
      log.warn("Second signal: killing the workers");
      exitCode = 1;
      stopAll("SIGKILL");
      return;
    }
    log.info("Stopping {count} workers", { count: workers.length });
    stopping = true;
    stopAll("SIGTERM");
    checkDone();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  log.info("Starting {count} workers of node {node}, sharing every listener's port", {
    count: options.count,
    node: options.nodeId,
  });
  for (const worker of workers) start(worker);
  await done;
  await Promise.all(exits);
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  log.info("All workers stopped");
  return exitCode;
}

/**
 * In a worker: resolves when the parent has gone (its end of the stdin pipe closed), so that a
 * worker never outlives a supervisor that was killed.
 *
 * @returns A promise that resolves when stdin ends.
 */
export async function parentGone(): Promise<void> {
  const buffer = new Uint8Array(64);
  try {
    while ((await Deno.stdin.read(buffer)) !== null) {
      // the parent writes nothing
    }
  } catch {
    // closed
  }
}
