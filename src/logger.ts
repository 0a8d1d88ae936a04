/**
 * The broker's loggers. Library code only asks LogTape for loggers under the `x-broker` category;
 * the application (or our CLI) decides where logs go with LogTape's `configure()`.
 *
 * @module
 */

import { getLogger, type Logger } from "@logtape/logtape";

/**
 * Returns the logger for one part of the broker.
 *
 * @param name The part, for example `"server"` or `"tcp"`.
 * @returns A LogTape logger in the category `["x-broker", name]`.
 *
 * @example Logging with properties
 * ```ts
 * import { logger } from "./logger.ts";
 * logger("example").info("Listening on {address}", { address: ":1883" });
 * ```
 */
export function logger(name: string): Logger {
  return getLogger(["x-broker", name]);
}
