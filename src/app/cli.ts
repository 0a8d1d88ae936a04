/**
 * The command-line program: `deno run -A jsr:@x/broker/cli` (locally `deno task start`).
 *
 * Without a config file it starts TCP on `:1883`, WebSocket on `:1882` and HTTP stats (with
 * `/healthcheck`) on `:8080`, with the allow-all auth hook (a warning says it is for development).
 * With `--config FILE` the file declares the listeners and hooks; `--tcp`, `--ws` and `--info` add
 * listeners to it. Logs go to stderr, as text or JSON lines. SIGINT or SIGTERM shuts down cleanly
 * (v5 clients get DISCONNECT 0x8B); a second signal exits at once.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  configure,
  defaultTextFormatter,
  getJsonLinesFormatter,
  type LogLevel,
  type LogRecord,
  reset,
  type Sink,
} from "@logtape/logtape";
import { Server, VERSION } from "../server.ts";
import { TCP } from "../../listeners/tcp.ts";
import { WebSocket } from "../../listeners/websocket.ts";
import { HTTPStats } from "./http_stats.ts";
import type { Listener } from "../listener.ts";
import type { TlsConfig } from "../../listeners/net.ts";
import { AllowHook } from "../../hooks/auth/allow_all.ts";
import { KVHook } from "../../hooks/storage/kv.ts";
import { MetricsHook } from "../../hooks/metrics.ts";
import { type BrokerConfig, loadConfig } from "./config.ts";
import { applyConfig } from "./config_build.ts";
import { logger } from "../logger.ts";
import { RedisCluster } from "../../hooks/cluster/redis_cluster.ts";

const USAGE = `Usage: deno run -A jsr:@x/broker/cli [options]

Options:
  --config FILE         YAML or JSON config file (listeners, hooks, options, logging)
  --tcp ADDR            TCP listener address (default ":1883"; "off" to disable)
  --ws ADDR             WebSocket listener address (default ":1882"; "off" to disable)
  --info ADDR           HTTP stats and /healthcheck address (default ":8080"; "off" to disable)
  --data DIR            Deno KV storage directory (default "./data"; "off" for none; ignored with --config
                        and with --cluster)
  --cluster URL         join the cluster whose state is in this Redis: redis://[user:password@]host:port[/db]
  --node-id ID          this node's id in the cluster (default: hostname-pid-random)
  --tls-cert-file FILE  TLS certificate (PEM) for the TCP and WebSocket listeners
  --tls-key-file FILE   TLS private key (PEM) for the TCP and WebSocket listeners
  --log-level LEVEL     trace, debug, info, warning, error or fatal (default "info")
  --log-format FORMAT   text or json (JSON lines) (default "text")
  --help                show this help
  --version             show the version

With --config, only the listeners in the file start, plus any given with --tcp, --ws or --info.
Without it, the three default listeners start with the allow-all auth hook (development only)
and sessions, subscriptions, in-flight and retained messages are kept in Deno KV in --data.`;

const LEVELS = ["trace", "debug", "info", "warning", "error", "fatal"] as const;
const FORMATS = ["text", "json"] as const;

/** Parsed command-line options; only flags given are set. */
export interface CliOptions {
  /** `--config`: the config file. */
  config?: string;
  /** `--tcp`: the TCP listener address. */
  tcp?: string;
  /** `--ws`: the WebSocket listener address. */
  ws?: string;
  /** `--info`: the HTTP stats listener address. */
  info?: string;
  /** `--tls-cert-file`. */
  tlsCertFile?: string;
  /** `--tls-key-file`. */
  tlsKeyFile?: string;
  /** `--log-level`: the lowest log level printed. */
  logLevel?: "trace" | "debug" | "info" | "warning" | "error" | "fatal";
  /** `--log-format`: text or JSON lines. */
  logFormat?: "text" | "json";
  /** `--data`: the Deno KV directory, or "off". */
  data?: string;
  /** `--cluster`: the Redis URL of the cluster to join. */
  cluster?: string;
  /** `--node-id`: this node's id in the cluster. */
  nodeId?: string;
}

/**
 * Parses command-line arguments.
 *
 * @param args The arguments (without the program name).
 * @returns The options given, or `"help"` / `"version"`.
 * @throws {TypeError} On an unknown flag or a bad value, with the usage text.
 *
 * @example Parsing flags
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCliArgs } from "./cli.ts";
 *
 * assert.deepEqual(parseCliArgs(["--tcp", ":1884", "--log-format", "json"]), { tcp: ":1884", logFormat: "json" });
 * assert.equal(parseCliArgs(["--help"]), "help");
 * assert.throws(() => parseCliArgs(["--bogus"]), TypeError);
 * ```
 */
export function parseCliArgs(args: string[]): CliOptions | "help" | "version" {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        config: { type: "string" },
        tcp: { type: "string" },
        ws: { type: "string" },
        info: { type: "string" },
        "tls-cert-file": { type: "string" },
        "tls-key-file": { type: "string" },
        "log-level": { type: "string" },
        "log-format": { type: "string" },
        data: { type: "string" },
        cluster: { type: "string" },
        "node-id": { type: "string" },
        help: { type: "boolean", default: false },
        version: { type: "boolean", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new TypeError(`${error instanceof Error ? error.message : error}\n\n${USAGE}`);
  }
  if (values.help) return "help";
  if (values.version) return "version";
  const logLevel = values["log-level"];
  if (logLevel !== undefined && !(LEVELS as readonly string[]).includes(logLevel)) {
    throw new TypeError(`Log level "${logLevel}" is not one of ${LEVELS.join(", ")}\n\n${USAGE}`);
  }
  const logFormat = values["log-format"];
  if (logFormat !== undefined && !(FORMATS as readonly string[]).includes(logFormat)) {
    throw new TypeError(`Log format "${logFormat}" is not one of ${FORMATS.join(", ")}\n\n${USAGE}`);
  }
  if ((values["tls-cert-file"] === undefined) !== (values["tls-key-file"] === undefined)) {
    throw new TypeError(`--tls-cert-file and --tls-key-file must be given together\n\n${USAGE}`);
  }
  const options: CliOptions = {
    config: values.config,
    tcp: values.tcp,
    ws: values.ws,
    info: values.info,
    tlsCertFile: values["tls-cert-file"],
    tlsKeyFile: values["tls-key-file"],
    logLevel: logLevel as LogLevel | undefined,
    logFormat: logFormat as "text" | "json" | undefined,
    data: values.data,
    cluster: values.cluster,
    nodeId: values["node-id"],
  };
  if (options.nodeId !== undefined && options.cluster === undefined) {
    throw new TypeError(`--node-id needs --cluster\n\n${USAGE}`);
  }
  for (const key of Object.keys(options) as (keyof CliOptions)[]) {
    if (options[key] === undefined) delete options[key];
  }
  return options;
}

/** A sink that writes each record synchronously to stderr (nothing lost on exit). */
function stderrSink(format: (record: LogRecord) => string): Sink {
  const encoder = new TextEncoder();
  return (record: LogRecord) => {
    const bytes = encoder.encode(format(record));
    let offset = 0;
    while (offset < bytes.length) offset += Deno.stderr.writeSync(bytes.subarray(offset));
  };
}

/** A listener the CLI adds from its flags, and whether the user asked for it explicitly. */
interface PlannedListener {
  listener: Listener;
  explicit: boolean;
}

function planListeners(
  options: CliOptions,
  server: Server,
  config: BrokerConfig | undefined,
): PlannedListener[] {
  const tls: TlsConfig | undefined = options.tlsCertFile
    ? { cert: options.tlsCertFile, key: options.tlsKeyFile! }
    : undefined;
  const defaults = config === undefined;
  const planned: PlannedListener[] = [];
  const want = (flag: string | undefined, fallback: string) => {
    const address = flag ?? (defaults ? fallback : undefined);
    return address === undefined || address === "off" ? undefined : address;
  };
  const tcp = want(options.tcp, ":1883");
  if (tcp) {
    planned.push({
      listener: new TCP({ id: "tcp", address: tcp, tls }),
      explicit: options.tcp !== undefined,
    });
  }
  const ws = want(options.ws, ":1882");
  if (ws) {
    planned.push({
      listener: new WebSocket({ id: "ws", address: ws, tls }),
      explicit: options.ws !== undefined,
    });
  }
  const info = want(options.info, ":8080");
  if (info) {
    planned.push({
      listener: new HTTPStats({ id: "stats", address: info }, server.info, server),
      explicit: options.info !== undefined,
    });
  }
  return planned;
}

/**
 * Runs the broker until SIGINT or SIGTERM.
 *
 * @param args The command-line arguments.
 * @returns The process exit code: 0 after a clean shutdown, 1 when the broker cannot start, 2 for
 *   bad arguments.
 */
export async function main(args: string[]): Promise<number> {
  let options: CliOptions | "help" | "version";
  try {
    options = parseCliArgs(args);
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    return 2;
  }
  if (options === "help") {
    console.log(USAGE);
    return 0;
  }
  if (options === "version") {
    console.log(VERSION);
    return 0;
  }

  // Nothing starts on a bad config.
  let config: BrokerConfig | undefined;
  if (options.config !== undefined) {
    try {
      config = await loadConfig(options.config);
    } catch (error) {
      console.error(`Bad config: ${error instanceof Error ? error.message : error}`);
      return 1;
    }
  }

  const level = options.logLevel ?? config?.logging.level ?? "info";
  const format = options.logFormat ?? config?.logging.format ?? "text";
  const sink = stderrSink(format === "json" ? getJsonLinesFormatter() : defaultTextFormatter);
  await configure({
    reset: true,
    sinks: { stderr: sink },
    loggers: [
      { category: ["x-broker"], lowestLevel: level, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
  const log = logger("cli");

  let server: Server;
  try {
    server = new Server(config?.options);
  } catch (error) {
    log.fatal("Bad options: {error}", { error: String(error) });
    await reset();
    return 1;
  }
  try {
    if (config) {
      await applyConfig(server, config);
      if (!config.hooks.auth) log.warn("The config declares no auth hook: every client will be refused");
    } else {
      log.warn("Using AllowHook: every client may connect, publish and subscribe. For development only.");
      await server.addHook(new AllowHook());
      const data = options.cluster !== undefined ? "off" : options.data ?? "./data";
      if (options.cluster !== undefined && options.data !== undefined && options.data !== "off") {
        log.warn("--data {data} does not apply in cluster mode: the cluster's state is in its Redis", {
          data: options.data,
        });
      }
      if (data !== "off") {
        const path = `${data.replace(/\/+$/, "")}/broker.kv`;
        await server.addHook(new KVHook(), { path });
        log.info("Storing state in Deno KV at {path}", { path });
      }
      if (options.info !== "off") await server.addHook(new MetricsHook());
    }
    if (options.cluster !== undefined) {
      await server.addCluster(new RedisCluster({ address: options.cluster, nodeId: options.nodeId }));
    } else if (config?.cluster) {
      await server.addCluster(new RedisCluster({ ...config.cluster.redis, nodeId: config.cluster.nodeId }));
    }
    for (const { listener, explicit } of planListeners(options, server, config)) {
      try {
        await server.addListener(listener);
      } catch (error) {
        if (explicit) throw error;
        log.warn("Default listener {id} not started: cannot listen on {address}: {error}", {
          id: listener.id,
          address: listener.address,
          error: String(error),
        });
      }
    }
  } catch (error) {
    log.fatal("Cannot start: {error}", { error: error instanceof Error ? error.message : String(error) });
    await server.close();
    await reset();
    return 1;
  }
  if (server.listeners.size === 0) log.warn("No listeners: no client can connect");
  await server.serve();
  log.info("Broker {version} started", { version: VERSION });

  const { promise: stopped, resolve } = Promise.withResolvers<void>();
  let signals = 0;
  const onSignal = () => {
    signals++;
    if (signals > 1) {
      log.warn("Second signal: exiting now");
      Deno.exit(1);
    }
    log.info("Shutting down");
    server.close().then(resolve);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  await stopped;
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  await reset();
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
