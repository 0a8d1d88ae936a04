/**
 * The command-line program: `deno run -A --unstable-kv jsr:@x/broker/cli` (locally `deno task start`).
 *
 * Without a config file it starts TCP on `127.0.0.1:1883`, WebSocket on `127.0.0.1:1882` and HTTP
 * stats (with `/healthcheck`) on `127.0.0.1:8080`, with the allow-all auth hook: loopback only, as
 * Mosquitto 2 does, until `--allow-anonymous-remote` opens it or `--config` brings auth rules.
 * State is kept in Deno KV in `./data`, or in memory (with a warning) when Deno runs without
 * `--unstable-kv`. With `--config FILE` the file declares the listeners and hooks; `--tcp`, `--ws`
 * and `--info` add listeners to it. Logs go to stderr, as text or JSON lines. SIGINT or SIGTERM
 * shuts down cleanly (v5 clients get DISCONNECT 0x8B); a second signal exits at once.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  configure,
  getJsonLinesFormatter,
  getTextFormatter,
  type LogLevel,
  type LogRecord,
  reset as resetLogTape,
  type Sink,
} from "@logtape/logtape";
import { Server, VERSION } from "../server.ts";
import { TCP } from "../../listeners/tcp.ts";
import { WebSocket } from "../../listeners/websocket.ts";
import { HTTPStats } from "./http_stats.ts";
import type { Listener } from "../listener.ts";
import { parseHostPort, type TlsConfig } from "../../listeners/net.ts";
import { AllowHook } from "../../hooks/auth/allow_all.ts";
import { kvAvailable, KVHook } from "../../hooks/storage/kv.ts";
import { MetricsHook } from "../../hooks/metrics.ts";
import { type BrokerConfig, loadConfig } from "./config.ts";
import { addListenerExplained, applyConfig } from "./config_build.ts";
import { logger } from "../logger.ts";
import { setConnectionLogSink } from "../connection_log.ts";
import { RedisCluster } from "../../hooks/cluster/redis_cluster.ts";
import { defaultNodeId } from "../../hooks/cluster/node_id.ts";
import { parentGone, READY_LINE, runWorkers, workerCount, workerNumber } from "./workers.ts";
import { BROKER_V8_FLAGS, v8FlagsMissing } from "./v8_flags.ts";

const USAGE = `Usage: deno run -A --unstable-kv jsr:@x/broker/cli [options]

Options:
  --config FILE         YAML or JSON config file (listeners, hooks, options, logging)
  --tcp ADDR            TCP listener address (default 127.0.0.1:1883; "off" to disable)
  --ws ADDR             WebSocket listener address (default 127.0.0.1:1882; "off" to disable)
  --info ADDR           HTTP stats and /healthcheck address (default 127.0.0.1:8080; "off" to disable)
  --allow-anonymous-remote
                        without --config: listen on every interface (default ports :1883, :1882,
                        :8080) and let anyone connect; required for any address beyond loopback
  --data DIR            Deno KV storage directory (default ./data; "off" for none); with --config,
                        adds Deno KV storage in DIR when the file sets no hooks.storage
  --cluster URL         join the cluster whose state is in this Redis: redis://[user:password@]host:port[/db]
                        (--data does not apply then)
  --node-id ID          this node's id in the cluster (default: hostname-pid-random)
  --workers N           run N broker processes sharing every listener port ("auto": one per core),
                        one cluster node each ({node-id}-w1...); needs --cluster (or the config's
                        cluster section) and Linux
  --tls-cert-file FILE  TLS certificate (PEM) for the TCP and WebSocket listeners
  --tls-key-file FILE   TLS private key (PEM) for the TCP and WebSocket listeners
  --log-level LEVEL     trace, debug, info, warning, error or fatal (default info)
  -v, --verbose         the same as --log-level debug
  --log-format FORMAT   text or json (JSON lines) (default text)
  -h, --help            show this help
  --version             show the version

Without --config, the three default listeners start on loopback only with the allow-all auth
hook (development only), and sessions, subscriptions, in-flight and retained messages are kept in
Deno KV in --data (Deno needs --unstable-kv for that; without it they are kept in memory).
With --config, only the listeners in the file start, plus any given with --tcp, --ws or --info.`;

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
  /** `--allow-anonymous-remote`: without a config, listen beyond loopback with the allow-all hook. */
  allowAnonymousRemote?: boolean;
  /** `--workers`: how many worker processes (a whole number, or "auto"). */
  workers?: string;
}

/** The default listener addresses: loopback only, or every interface with `--allow-anonymous-remote`. */
const DEFAULTS = { tcp: 1883, ws: 1882, info: 8080 } as const;

/**
 * Whether an address listens on loopback only (`127.x.x.x`, `localhost`, `::1`).
 *
 * @param address A `host:port` address.
 * @returns `true` for a loopback host.
 */
function isLoopback(address: string): boolean {
  const { hostname } = parseHostPort(address);
  return /^127\./.test(hostname) || hostname === "localhost" || hostname === "::1";
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
 * assert.deepEqual(parseCliArgs(["--tcp", ":1884", "-v"]), { tcp: ":1884", logLevel: "debug" });
 * assert.equal(parseCliArgs(["-h"]), "help");
 * assert.throws(() => parseCliArgs(["--bogus"]), TypeError);
 * assert.throws(() => parseCliArgs(["--tcp", "127.0.0.1:99999"]), /port 99999 is out of range/);
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
        "allow-anonymous-remote": { type: "boolean", default: false },
        verbose: { type: "boolean", short: "v", default: false },
        cluster: { type: "string" },
        "node-id": { type: "string" },
        workers: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
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
  const logLevel = values["log-level"] ?? (values.verbose ? "debug" : undefined);
  if (logLevel !== undefined && !(LEVELS as readonly string[]).includes(logLevel)) {
    throw new TypeError(`Log level "${logLevel}" is not one of ${LEVELS.join(", ")}\n\n${USAGE}`);
  }
  if (values.verbose && values["log-level"] !== undefined && values["log-level"] !== "debug") {
    throw new TypeError(`--verbose means --log-level debug; it cannot be used with --log-level ${logLevel}`);
  }
  for (const flag of ["tcp", "ws", "info"] as const) {
    const address = values[flag];
    if (address === undefined || address === "off") continue;
    try {
      parseHostPort(address);
    } catch (error) {
      throw new TypeError((error as Error).message.replace(/^Address "[^"]*"/, `--${flag} ${address}`));
    }
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
    allowAnonymousRemote: values["allow-anonymous-remote"] || undefined,
    cluster: values.cluster,
    nodeId: values["node-id"],
    workers: values.workers,
  };
  if (options.nodeId !== undefined && options.cluster === undefined && options.config === undefined) {
    throw new TypeError(`--node-id needs --cluster\n\n${USAGE}`);
  }
  if (options.workers !== undefined) {
    workerCount(options.workers);
    if (options.cluster === undefined && options.config === undefined) {
      throw new TypeError(
        `--workers needs --cluster redis://...: the workers form one cluster through Redis\n\n${USAGE}`,
      );
    }
  }
  for (const key of Object.keys(options) as (keyof CliOptions)[]) {
    if (options[key] === undefined) delete options[key];
  }
  return options;
}

/** The command line of a worker: the parent's options without `--workers` and `--node-id`. */
function workerArgs(options: CliOptions): string[] {
  const flags: [keyof CliOptions, string][] = [
    ["config", "--config"],
    ["tcp", "--tcp"],
    ["ws", "--ws"],
    ["info", "--info"],
    ["tlsCertFile", "--tls-cert-file"],
    ["tlsKeyFile", "--tls-key-file"],
    ["logLevel", "--log-level"],
    ["logFormat", "--log-format"],
    ["data", "--data"],
    ["cluster", "--cluster"],
  ];
  const args: string[] = [];
  for (const [key, flag] of flags) {
    const value = options[key];
    if (typeof value === "string") args.push(flag, value);
  }
  if (options.allowAnonymousRemote) args.push("--allow-anonymous-remote");
  return args;
}

/** A sink that writes each record synchronously to stderr (nothing lost on exit). */
function stderrSink(format: (record: LogRecord) => string): Sink {
  const encoder = new TextEncoder();
  // Lines are written once per turn (a connect storm logs thousands); warnings and errors at once.
  let pending = "";
  const flush = () => {
    if (pending === "") return;
    const bytes = encoder.encode(pending);
    pending = "";
    let offset = 0;
    while (offset < bytes.length) offset += Deno.stderr.writeSync(bytes.subarray(offset));
  };
  return (record: LogRecord) => {
    if (pending === "") queueMicrotask(flush);
    pending += format(record);
    if (record.level !== "info" && record.level !== "debug" && record.level !== "trace") flush();
  };
}

/** The listeners the CLI adds from its flags (and, without a config, its defaults). */
function planListeners(
  options: CliOptions,
  server: Server,
  config: BrokerConfig | undefined,
  reusePort: boolean,
): Listener[] {
  const tls: TlsConfig | undefined = options.tlsCertFile
    ? { cert: options.tlsCertFile, key: options.tlsKeyFile! }
    : undefined;
  const host = options.allowAnonymousRemote ? "" : "127.0.0.1";
  const want = (flag: string | undefined, port: number) => {
    const address = flag ?? (config === undefined ? `${host}:${port}` : undefined);
    return address === undefined || address === "off" ? undefined : address;
  };
  const planned: Listener[] = [];
  const tcp = want(options.tcp, DEFAULTS.tcp);
  if (tcp) planned.push(new TCP({ id: "tcp", address: tcp, tls, reusePort }));
  const ws = want(options.ws, DEFAULTS.ws);
  if (ws) planned.push(new WebSocket({ id: "ws", address: ws, tls, reusePort }));
  const info = want(options.info, DEFAULTS.info);
  if (info) planned.push(new HTTPStats({ id: "stats", address: info, reusePort }, server.info, server));
  return planned;
}

/**
 * Checks the flags that only make sense with what the config says, before anything starts.
 *
 * @returns A problem to report with exit code 2, or `undefined`.
 */
function conflicts(options: CliOptions, config: BrokerConfig | undefined): string | undefined {
  if (config === undefined) {
    // Allow-all auth beyond loopback only when asked for by name.
    if (options.allowAnonymousRemote) return undefined;
    for (const flag of ["tcp", "ws", "info"] as const) {
      const address = options[flag];
      if (address !== undefined && address !== "off" && !isLoopback(address)) {
        return `--${flag} ${address} listens beyond loopback, and without --config every client is allowed ` +
          `(AllowHook). Add --allow-anonymous-remote to accept anyone from anywhere, or use --config ` +
          `with auth rules (hooks.auth).`;
      }
    }
    return undefined;
  }
  if (options.allowAnonymousRemote) {
    return `--allow-anonymous-remote applies only without --config; the config file ${config.file} ` +
      `chooses its own auth (hooks.auth) and addresses`;
  }
  if (options.data !== undefined && config.hooks.storage?.kv) {
    return `--data ${options.data} conflicts with ${config.file}, which sets hooks.storage.kv ` +
      `(${config.hooks.storage.kv.path}); remove one of them`;
  }
  if (options.data !== undefined && config.hooks.storage?.redis) {
    return `--data ${options.data} conflicts with ${config.file}, which sets hooks.storage.redis; ` +
      `remove one of them`;
  }
  return undefined;
}

/** The Deno KV file in a `--data` directory. */
function kvPath(data: string): string {
  return `${data.replace(/\/+$/, "")}/broker.kv`;
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
  const conflict = conflicts(options, config);
  if (conflict) {
    console.error(conflict);
    return 2;
  }

  const level = options.logLevel ?? config?.logging.level ?? "info";
  const format = options.logFormat ?? config?.logging.format ?? "text";
  // Text logs show values bare: `on 127.0.0.1:1883`, not `on "127.0.0.1:1883"`.
  const sink = stderrSink(format === "json" ? getJsonLinesFormatter() : getTextFormatter({ value: "bare" }));
  await configure({
    reset: true,
    sinks: { stderr: sink },
    loggers: [
      { category: ["x-broker"], lowestLevel: level, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
  // The per-connect lines skip LogTape's dispatch (the broker's busiest line in a connect storm).
  setConnectionLogSink(logger("server").isEnabledFor("info") ? sink : undefined);
  const reset = async () => {
    setConnectionLogSink(undefined);
    await resetLogTape();
  };
  const log = logger("cli");
  for (const warning of config?.warnings ?? []) log.warn("{warning}", { warning });

  const worker = workerNumber();
  const workers = options.workers ?? config?.cluster?.workers;
  if (workers !== undefined && worker === undefined) {
    if (options.cluster === undefined && config?.cluster === undefined) {
      log.fatal("--workers (or cluster.workers) needs --cluster redis://... or the config's cluster section");
      await reset();
      return 2;
    }
    const code = await runWorkers({
      count: workerCount(workers),
      nodeId: options.nodeId ?? config?.cluster?.nodeId ?? defaultNodeId(),
      args: workerArgs(options),
    });
    await reset();
    return code;
  }
  const reusePort = worker !== undefined;

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
      if (options.data !== undefined && options.data !== "off") {
        // The file sets no storage (conflicts() checked): --data adds Deno KV, as without a config.
        config.hooks.storage = { kv: { path: kvPath(options.data) } };
      }
      await applyConfig(server, config, reusePort);
      if (!config.hooks.auth) log.warn("The config declares no auth hook: every client will be refused");
      if (config.hooks.storage?.kv) {
        log.info("Storing state in Deno KV at {path}", { path: config.hooks.storage.kv.path });
      }
    } else {
      log.warn("Using AllowHook: every client may connect, publish and subscribe. For development only.");
      await server.addHook(new AllowHook());
      const data = options.cluster !== undefined ? "off" : options.data ?? "./data";
      if (options.cluster !== undefined && options.data !== undefined && options.data !== "off") {
        log.warn("--data {data} does not apply in cluster mode: the cluster's state is in its Redis", {
          data: options.data,
        });
      }
      if (data !== "off" && !kvAvailable()) {
        log.warn(
          "Deno KV is not available, so sessions, subscriptions and retained messages are kept in memory " +
            "and lost on exit. To keep them in {path}, run Deno with --unstable-kv " +
            "(deno run -A --unstable-kv jsr:@x/broker/cli).",
          { path: kvPath(data) },
        );
      } else if (data !== "off") {
        const path = kvPath(data);
        await server.addHook(new KVHook(), { path });
        log.info("Storing state in Deno KV at {path}", { path });
      }
      if (options.info !== "off") await server.addHook(new MetricsHook());
    }
    if (options.cluster !== undefined) {
      await server.addCluster(new RedisCluster({ address: options.cluster, nodeId: options.nodeId }));
    } else if (config?.cluster) {
      await server.addCluster(
        new RedisCluster({ ...config.cluster.redis, nodeId: options.nodeId ?? config.cluster.nodeId }),
      );
    }
    for (const listener of planListeners(options, server, config, reusePort)) {
      await addListenerExplained(server, listener);
    }
  } catch (error) {
    log.fatal("Cannot start: {error}", { error: error instanceof Error ? error.message : String(error) });
    await server.close();
    await reset();
    return 1;
  }
  if (server.listeners.size === 0) log.warn("No listeners: no client can connect");
  await server.serve();
  // The signal handlers go in before "started" is logged: whoever waits for that line may stop it at once.
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
  log.info("Broker {version} started", { version: VERSION });
  log.debug("Capabilities: {capabilities}", { capabilities: JSON.stringify(server.options.capabilities) });
  if (worker === undefined && v8FlagsMissing(import.meta.url)) {
    // deno task start, the Docker image and compiled binaries pass it; `deno run -A jsr:...` cannot.
    log.info(
      "Start Deno with --v8-flags={flags} (or DENO_V8_FLAGS={flags}): idle connections then take about a third less memory",
      {
        flags: BROKER_V8_FLAGS,
      },
    );
  }
  if (!config && !options.allowAnonymousRemote) {
    log.info(
      "Listening on loopback only: clients on other machines cannot connect. To open it, use --config " +
        "with auth rules, or --allow-anonymous-remote to let anyone connect from anywhere.",
    );
  }

  if (worker !== undefined) {
    console.log(READY_LINE);
    parentGone().then(() => {
      if (signals > 0) return;
      log.warn("The supervisor is gone: shutting down");
      onSignal();
    });
  }
  await stopped;
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  await reset();
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
