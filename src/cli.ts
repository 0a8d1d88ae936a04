/**
 * The command-line program: `deno run -A jsr:@x/broker/cli` (locally `deno task start`).
 *
 * Starts a broker with a TCP listener (default `:1883`) and the allow-all auth hook, logs where
 * it listens, and shuts down cleanly on SIGINT or SIGTERM (a second signal forces exit).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { configure, getConsoleSink } from "@logtape/logtape";
import { Server, VERSION } from "./server.ts";
import { TCP } from "../listeners/tcp.ts";
import { AllowHook } from "../hooks/auth/allow_all.ts";
import { logger } from "./logger.ts";

const USAGE = `Usage: deno run -A jsr:@x/broker/cli [options]

Options:
  --tcp ADDR          TCP listener address (default ":1883")
  --log-level LEVEL   trace, debug, info, warning, error or fatal (default "info")
  --help              show this help
  --version           show the version`;

const LEVELS = ["trace", "debug", "info", "warning", "error", "fatal"] as const;
type Level = typeof LEVELS[number];

/** Parsed command-line options. */
export interface CliOptions {
  /** The TCP listener address. */
  tcp: string;
  /** The lowest log level printed. */
  logLevel: Level;
}

/**
 * Parses command-line arguments.
 *
 * @param args The arguments (without the program name).
 * @returns The options, or `"help"` / `"version"`.
 * @throws {TypeError} On an unknown flag or a bad value, with the usage text.
 *
 * @example Parsing flags
 * ```ts
 * import { parseCliArgs } from "./cli.ts";
 * console.log(parseCliArgs(["--tcp", ":1884"])); // { tcp: ":1884", logLevel: "info" }
 * ```
 */
export function parseCliArgs(args: string[]): CliOptions | "help" | "version" {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        tcp: { type: "string", default: ":1883" },
        "log-level": { type: "string", default: "info" },
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
  const logLevel = values["log-level"] as Level;
  if (!LEVELS.includes(logLevel)) {
    throw new TypeError(`Log level "${logLevel}" is not one of ${LEVELS.join(", ")}\n\n${USAGE}`);
  }
  return { tcp: values.tcp!, logLevel };
}

/**
 * Runs the broker until SIGINT or SIGTERM.
 *
 * @param args The command-line arguments.
 * @returns The process exit code.
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
  await configure({
    sinks: { console: getConsoleSink() },
    loggers: [
      { category: ["x-broker"], lowestLevel: options.logLevel, sinks: ["console"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
    ],
  });
  const log = logger("cli");
  const server = new Server();
  log.warn("Using AllowHook: every client may connect, publish and subscribe. For development only.");
  await server.addHook(new AllowHook());
  try {
    await server.addListener(new TCP({ id: "tcp", address: options.tcp }));
  } catch (error) {
    log.fatal("Cannot listen on {address}: {error}", { address: options.tcp, error: String(error) });
    return 1;
  }
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
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
