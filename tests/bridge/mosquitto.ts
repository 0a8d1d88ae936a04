/**
 * A real Mosquitto for bridge tests: started on a free loopback port with a temporary config file
 * (and persistence folder), killed and restarted on the same port and folder. Missing Mosquitto
 * skips the tests locally and fails them under `CI`.
 *
 * @module
 */

import { delay, freePort } from "../helpers.ts";

const CANDIDATES = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "mosquitto"];

/** The mosquitto binary, or undefined when it is not installed. */
export const MOSQUITTO: string | undefined = CANDIDATES.find((path) => {
  try {
    return new Deno.Command(path, { args: ["-h"], stdout: "null", stderr: "null" }).outputSync() !==
      undefined;
  } catch {
    return false;
  }
});

/** Skip bridge tests: Mosquitto is missing and this is not CI (where a missing Mosquitto must fail). */
export const skipMosquittoTests: boolean = MOSQUITTO === undefined && Deno.env.get("CI") === undefined;

/** A running Mosquitto. */
export interface Mosquitto {
  /** Its TCP port on 127.0.0.1. */
  readonly port: number;
  /** `mqtt://127.0.0.1:PORT` */
  readonly url: string;
  /** Its TLS port (when started with `tls`). */
  readonly tlsPort: number;
  /** Kills it (SIGTERM by default, SIGKILL for a crash) and waits for it to exit. */
  kill(signal?: Deno.Signal): Promise<void>;
  /** Starts it again on the same ports and folder. */
  restart(): Promise<void>;
  /** What it logged so far. */
  log(): string;
  /** Kills it and removes its folder. */
  stop(): Promise<void>;
  /** `await using` support. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Options for {@linkcode startMosquitto}. */
export interface MosquittoOptions {
  /** Keep sessions and messages on disk (autosave on every change), so a SIGKILL loses nothing it acknowledged. */
  persistence?: boolean;
  /** Users as `name: password`; anonymous clients are then refused. */
  users?: Record<string, string>;
  /** A TLS listener with this certificate and key (PEM file paths). */
  tls?: { cert: string; key: string };
}

/**
 * Starts Mosquitto.
 *
 * @param options Persistence, users, TLS.
 * @returns The running broker.
 */
export async function startMosquitto(options: MosquittoOptions = {}): Promise<Mosquitto> {
  if (MOSQUITTO === undefined) {
    throw new Error("mosquitto is not installed (apt-get install mosquitto); required when CI is set");
  }
  const dir = await Deno.makeTempDir({ prefix: "broker-mosquitto-" });
  const port = freePort();
  const tlsPort = options.tls ? freePort() : 0;
  const lines = [
    // Run as root (CI containers), Mosquitto drops to the user "mosquitto", which cannot read our
    // temporary folder; keep the current user instead.
    ...(Deno.uid() === 0 ? ["user root"] : []),
    `listener ${port} 127.0.0.1`,
    `persistence ${options.persistence ? "true" : "false"}`,
    `persistence_location ${dir}/`,
    "autosave_interval 1",
    "autosave_on_changes true",
    "max_inflight_messages 20",
    "max_queued_messages 100000",
    "log_dest stderr",
    "log_type error",
    "log_type warning",
    "log_type notice",
    "log_type information",
  ];
  if (options.users) {
    const passwords = Object.entries(options.users).map(([u, p]) => `${u}:${p}`).join("\n") + "\n";
    await Deno.writeTextFile(`${dir}/passwd`, passwords);
    // mosquitto_passwd -U hashes the file in place.
    const hashed = await new Deno.Command("mosquitto_passwd", {
      args: ["-U", `${dir}/passwd`],
      stderr: "null",
    })
      .output();
    if (!hashed.success) throw new Error("mosquitto_passwd -U failed");
    lines.push("allow_anonymous false", `password_file ${dir}/passwd`);
  } else {
    lines.push("allow_anonymous true");
  }
  if (options.tls) {
    lines.push(`listener ${tlsPort} 127.0.0.1`, `certfile ${options.tls.cert}`, `keyfile ${options.tls.key}`);
    if (!options.users) lines.push("allow_anonymous true");
  }
  await Deno.writeTextFile(`${dir}/mosquitto.conf`, lines.join("\n") + "\n");
  let child: Deno.ChildProcess | undefined;
  let output = "";
  let reading: Promise<void> | undefined;
  const spawn = async () => {
    const process = new Deno.Command(MOSQUITTO, {
      args: ["-c", `${dir}/mosquitto.conf`],
      stdout: "null",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    child = process;
    reading = (async () => {
      for await (const chunk of process.stderr.pipeThrough(new TextDecoderStream())) output += chunk;
    })();
    const end = Date.now() + 10_000;
    for (;;) {
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conn.close();
        return;
      } catch {
        if (Date.now() > end) throw new Error(`mosquitto did not start on port ${port}:\n${output}`);
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
    await reading;
  };
  const stop = async () => {
    await kill();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  await spawn();
  return {
    port,
    tlsPort,
    url: `mqtt://127.0.0.1:${port}`,
    kill,
    restart: spawn,
    log: () => output,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
