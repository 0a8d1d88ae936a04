/**
 * The `connections` scenario's generator: idle MQTT clients opened from worker threads, so that the
 * connect storm is bounded by the broker rather than by one generator thread (a {@linkcode BenchClient}
 * allocates 256 KiB of buffers and parses everything; an idle client needs neither).
 *
 * {@linkcode IdleClients} runs in the runner and starts the workers; this same file is the workers'
 * module. Each worker opens its share of the connections, `concurrency` at a time: connect, no-delay,
 * one CONNECT write, read until the CONNACK's first 4 bytes are in (success is reason 0), then keeps
 * one pending 16-byte read per connection to notice a connection the broker ends.
 *
 * @module
 */

import { encodeConnect, sessions, type Version } from "./mqtt.ts";

/** What the runner asks a worker to do. */
type Command =
  | {
    type: "connect";
    port: number;
    version: Version;
    persistent: boolean;
    prefix: string;
    first: number;
    count: number;
    concurrency: number;
  }
  | { type: "status" }
  | { type: "close" };

/** What a worker answers. */
type Reply =
  | { type: "ready" }
  | { type: "connected"; error?: string }
  | { type: "status"; open: number; ended: number; reason: string }
  | { type: "closed" };

const REPLY_TO: Record<Command["type"], Reply["type"]> = {
  connect: "connected",
  status: "status",
  close: "closed",
};

/**
 * Idle connections opened from `workers` worker threads.
 *
 * @example Ten idle clients
 * ```ts ignore
 * const idle = await IdleClients.start(2);
 * await idle.connect({ port: 1883, version: 5, prefix: "idle", count: 10, concurrency: 4 });
 * await idle.close();
 * ```
 */
export class IdleClients {
  #workers: Worker[];
  /** Per worker, the callers waiting for each kind of reply (a close may overtake a connect). */
  #replies: Map<Reply["type"], ((reply: Reply) => void)[]>[];

  private constructor(workers: Worker[]) {
    this.#workers = workers;
    this.#replies = workers.map(() => new Map());
    workers.forEach((worker, i) => {
      worker.onmessage = (event: MessageEvent<Reply>) =>
        this.#replies[i].get(event.data.type)?.shift()?.(event.data);
    });
  }

  /**
   * Starts the worker threads and waits until each has loaded.
   *
   * @param workers How many threads.
   * @returns The idle clients, none connected yet.
   */
  static async start(workers: number): Promise<IdleClients> {
    const list = Array.from(
      { length: workers },
      () => new Worker(import.meta.url, { type: "module" }),
    );
    const ready = list.map((worker) =>
      new Promise<void>((resolve, reject) => {
        worker.onmessage = () => resolve();
        worker.onerror = (event) => {
          event.preventDefault();
          reject(new Error(`idle client worker failed: ${event.message}`));
        };
      })
    );
    try {
      await Promise.all(ready);
    } catch (error) {
      for (const worker of list) worker.terminate();
      throw error;
    }
    return new IdleClients(list);
  }

  #ask(i: number, command: Command): Promise<Reply> {
    return new Promise((resolve) => {
      const type = REPLY_TO[command.type];
      const waiting = this.#replies[i].get(type) ?? [];
      waiting.push(resolve);
      this.#replies[i].set(type, waiting);
      this.#workers[i].postMessage(command);
    });
  }

  /**
   * Opens `count` connections, split evenly over the workers, `concurrency` connecting at a time in all.
   *
   * @param options Where, which level, client id prefix, how many, how many at a time.
   * @returns When every CONNACK is in; throws on the first failure.
   */
  async connect(options: {
    port: number;
    version: Version;
    prefix: string;
    count: number;
    concurrency: number;
  }): Promise<void> {
    const n = this.#workers.length;
    const replies = await Promise.all(this.#workers.map((_, i) => {
      const first = Math.floor(options.count * i / n);
      const count = Math.floor(options.count * (i + 1) / n) - first;
      const concurrency = Math.max(1, Math.round(options.concurrency / n));
      return this.#ask(i, {
        type: "connect",
        port: options.port,
        version: options.version,
        persistent: sessions.persistent,
        prefix: options.prefix,
        first,
        count,
        concurrency,
      });
    }));
    for (const reply of replies) {
      if (reply.type === "connected" && reply.error) throw new Error(reply.error);
    }
  }

  /**
   * Counts the open connections and those the broker ended.
   *
   * @returns Open, ended, and the first ending's reason.
   */
  async status(): Promise<{ open: number; ended: number; reason: string }> {
    const replies = await Promise.all(this.#workers.map((_, i) => this.#ask(i, { type: "status" })));
    const total = { open: 0, ended: 0, reason: "" };
    for (const reply of replies) {
      if (reply.type !== "status") continue;
      total.open += reply.open;
      total.ended += reply.ended;
      total.reason ||= reply.reason;
    }
    return total;
  }

  /** Closes every connection and stops the workers (after 5 s at most). */
  async close(): Promise<void> {
    const closed = Promise.all(this.#workers.map((_, i) => this.#ask(i, { type: "close" })));
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([closed, new Promise((resolve) => timer = setTimeout(resolve, 5000))]);
    clearTimeout(timer);
    for (const worker of this.#workers) worker.terminate();
  }
}

// ---- the worker side ----

const open = new Set<Deno.TcpConn>();
let ended = 0;
let endReason = "";
let closing = false;

async function connectOne(
  port: number,
  connect: Uint8Array,
): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  open.add(conn);
  conn.setNoDelay(true);
  let written = 0;
  while (written < connect.length) written += await conn.write(connect.subarray(written));
  const head = new Uint8Array(16);
  let got = 0;
  while (got < 4) {
    const n = await conn.read(head.subarray(got));
    if (n === null) throw new Error("closed by the broker before CONNACK");
    got += n;
  }
  // CONNACK: 0x20, remaining length (one byte: CONNACK is short), flags, reason code.
  if (head[0] !== 0x20) throw new Error(`expected CONNACK, got packet type 0x${head[0].toString(16)}`);
  if (head[3] !== 0) throw new Error(`connect refused with reason 0x${head[3].toString(16)}`);
  watch(conn, head);
}

/** One pending read per connection: notices the broker ending it. */
async function watch(conn: Deno.TcpConn, buffer: Uint8Array): Promise<void> {
  try {
    while ((await conn.read(buffer)) !== null) {
      // an idle client ignores what arrives (the rest of a long CONNACK)
    }
    if (!closing) {
      ended++;
      endReason ||= "closed by the broker";
    }
  } catch (error) {
    if (!closing) {
      ended++;
      endReason ||= `read failed: ${error instanceof Error ? error.message : error}`;
    }
  }
}

async function connectAll(command: Extract<Command, { type: "connect" }>): Promise<string | undefined> {
  sessions.persistent = command.persistent;
  let next = 0;
  let failure: string | undefined;
  const lane = async () => {
    while (next < command.count && failure === undefined) {
      const id = `${command.prefix}-${command.first + next++}`;
      try {
        await connectOne(command.port, encodeConnect(id, command.version));
      } catch (error) {
        failure ??= `connect of ${id} failed: ${error instanceof Error ? error.message : error}`;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(command.concurrency, command.count) }, lane));
  return failure;
}

/** The worker's own scope (typed as the main window by `deno check`). */
const scope = globalThis as unknown as {
  postMessage(message: Reply): void;
  onmessage: ((event: MessageEvent<Command>) => void) | null;
};

function reply(message: Reply): void {
  scope.postMessage(message);
}

// Only inside a worker (the runner imports this file for the class).
if (typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined") {
  scope.onmessage = async (event: MessageEvent<Command>) => {
    const command = event.data;
    if (command.type === "connect") {
      reply({ type: "connected", error: await connectAll(command) });
    } else if (command.type === "status") {
      reply({ type: "status", open: open.size - ended, ended, reason: endReason });
    } else {
      closing = true;
      for (const conn of open) {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
      open.clear();
      reply({ type: "closed" });
    }
  };
  reply({ type: "ready" });
}
