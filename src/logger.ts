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
 * import assert from "node:assert/strict";
 * import { configure, type LogRecord, reset } from "@logtape/logtape";
 * import { logger } from "./logger.ts";
 *
 * // The application chooses the sinks; here, an array.
 * const records: LogRecord[] = [];
 * await configure({
 *   sinks: { memory: (record) => void records.push(record) },
 *   loggers: [
 *     { category: "x-broker", sinks: ["memory"], lowestLevel: "info" },
 *     { category: ["logtape", "meta"], sinks: ["memory"], lowestLevel: "warning" },
 *   ],
 * });
 * logger("example").info("Listening on {address}", { address: ":1883" });
 * assert.deepEqual(records[0].category, ["x-broker", "example"]);
 * assert.deepEqual(records[0].properties, { address: ":1883" });
 * await reset();
 * ```
 */
export function logger(name: string): Logger {
  return getLogger(["x-broker", name]);
}
