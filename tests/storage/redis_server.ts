/**
 * A real `redis-server` for tests: started on a free loopback port in a temporary folder, stopped
 * (and its folder removed) at the end. With `appendonly`, every write is fsynced to an AOF, so the
 * data survives a SIGKILL and a restart on the same folder.
 *
 * @module
 */

import { delay, freePort } from "../helpers.ts";

/** A running redis-server. */
export interface RedisServer {
  /** Its TCP port on 127.0.0.1. */
  readonly port: number;
  /** `127.0.0.1:PORT` */
  readonly address: string;
  /** Kills it (SIGTERM by default, SIGKILL to simulate a crash) and waits for it to exit. */
  kill(signal?: Deno.Signal): Promise<void>;
  /** Sends a signal without waiting (SIGSTOP to stall it, SIGCONT to resume). */
  signal(signal: Deno.Signal): void;
  /** Starts it again on the same port and folder. */
  restart(): Promise<void>;
  /** Kills it and removes its folder. */
  stop(): Promise<void>;
}

/** Whether `redis-server` can be run here. */
export async function redisAvailable(): Promise<boolean> {
  try {
    const { success } = await new Deno.Command("redis-server", { args: ["--version"], stdout: "null" })
      .output();
    return success;
  } catch {
    return false;
  }
}

/** Whether tests must fail (not skip) without redis-server: on CI. */
export function redisRequired(): boolean {
  return Boolean(Deno.env.get("CI"));
}

/**
 * Starts a redis-server.
 *
 * @param options `appendonly` to fsync every write to an append-only file; `args`, more arguments
 *   (e.g. `["--requirepass", "secret"]`).
 * @returns The running server.
 */
export async function startRedis(
  options: { appendonly?: boolean; args?: string[] } = {},
): Promise<RedisServer> {
  if (!(await redisAvailable())) {
    throw new Error("redis-server is not installed (apt-get install redis-server); required when CI is set");
  }
  const dir = await Deno.makeTempDir({ prefix: "broker-redis-" });
  const port = freePort();
  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--dir",
    dir,
    "--save",
    "",
    "--daemonize",
    "no",
    "--appendonly",
    options.appendonly ? "yes" : "no",
    ...(options.appendonly ? ["--appendfsync", "always"] : []),
    ...(options.args ?? []),
  ];
  let child: Deno.ChildProcess | undefined;
  const spawn = async () => {
    child = new Deno.Command("redis-server", { args, stdout: "null", stderr: "null", stdin: "null" }).spawn();
    const end = Date.now() + 10_000;
    for (;;) {
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conn.close();
        return;
      } catch {
        if (Date.now() > end) throw new Error(`redis-server did not start on port ${port}`);
        await delay(20);
      }
    }
  };
  const kill = async (signal: Deno.Signal = "SIGTERM") => {
    if (!child) return;
    const running = child;
    child = undefined;
    try {
      running.kill(signal);
    } catch {
      // already exited
    }
    await running.status;
  };
  await spawn();
  return {
    port,
    address: `127.0.0.1:${port}`,
    kill,
    signal: (signal) => child?.kill(signal),
    restart: spawn,
    async stop() {
      await kill();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
