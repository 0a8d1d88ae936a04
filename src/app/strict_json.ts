/**
 * Strict JSON checking for `.json` config files: YAML, which reads every config file, would accept
 * trailing commas, comments and unquoted keys in them.
 *
 * @module
 */

/** Where a text stops being JSON, and why. */
export interface JsonProblem {
  /** 1-based line. */
  line: number;
  /** 1-based column. */
  column: number;
  /** What is wrong, for example `Expected double-quoted property name (a trailing comma: ...)`. */
  problem: string;
}

/**
 * Finds the first place where a text is not valid JSON.
 *
 * @param text The text.
 * @returns The problem, or `undefined` for valid JSON.
 *
 * @example A trailing comma
 * ```ts
 * import assert from "node:assert/strict";
 * import { jsonProblem } from "./strict_json.ts";
 * assert.equal(jsonProblem('{"a": 1}'), undefined);
 * assert.equal(jsonProblem('{"a": 1,\n}')?.line, 2);
 * ```
 */
export function jsonProblem(text: string): JsonProblem | undefined {
  try {
    JSON.parse(text);
    return undefined;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const position = /at position (\d+)/.exec(message);
    const offset = position ? Number(position[1]) : text.length;
    const before = text.slice(0, offset).split("\n");
    let problem = message.replace(/ in JSON at position \d+.*$/, "").replace(/^JSON\.parse: /, "");
    if (/,\s*$/.test(text.slice(0, offset)) && /^\s*[}\]]/.test(text.slice(offset))) {
      problem += " (a trailing comma: JSON allows none)";
    }
    return { line: before.length, column: before[before.length - 1].length + 1, problem };
  }
}
