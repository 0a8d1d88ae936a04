/**
 * A small schema over the YAML AST, so that every configuration error has a position: the
 * {@linkcode Check}s a config file's keys must pass, and the {@linkcode Walker} that applies them and
 * turns a problem into a {@linkcode ConfigError} naming the file, line, column and key.
 *
 * @module
 */

import { isMap, isScalar, isSeq, type LineCounter, type Node, type Scalar, type YAMLMap } from "yaml";

/** A value read from the file, as plain data. */
export type Raw = Record<string, unknown>;

/** A configuration file that cannot be used; the message names the file, line, column and key. */
export class ConfigError extends Error {
  /** The file. */
  readonly file: string;
  /** 1-based line, 0 when the problem has no place in the file (it cannot be read). */
  readonly line: number;
  /** 1-based column, 0 when unknown. */
  readonly column: number;
  /** The key path, for example `options.capabilities.maximum_qos`. */
  readonly key: string;

  /**
   * Creates the error.
   *
   * @param file The file.
   * @param line The line.
   * @param column The column.
   * @param key The key path.
   * @param problem What is wrong.
   */
  constructor(file: string, line: number, column: number, key: string, problem: string) {
    super(`${file}${line > 0 ? `:${line}:${column}` : ""}: ${key ? `${key}: ` : ""}${problem}`);
    this.name = "ConfigError";
    this.file = file;
    this.line = line;
    this.column = column;
    this.key = key;
  }
}

/** What a key's value must be. */
export type Check =
  | { kind: "string"; nonEmpty?: boolean; values?: readonly string[] }
  | { kind: "int"; min: number; max: number }
  | { kind: "number"; min: number; max: number }
  | { kind: "bool" }
  | { kind: "strings" }
  | { kind: "map"; fields: Record<string, Check>; required?: readonly string[] }
  | { kind: "list"; item: Check }
  | { kind: "any" };

export const str: Check = { kind: "string", nonEmpty: true };
export const bool: Check = { kind: "bool" };
export const int = (min: number, max: number): Check => ({ kind: "int", min, max });
export const oneOf = (...values: string[]): Check => ({ kind: "string", values });

/** Seconds, from a millisecond to an hour. */
export const seconds: Check = { kind: "number", min: 0.001, max: 3600 };

/** Checks values against the schema and places errors in the file. */
export class Walker {
  readonly file: string;
  readonly #lines: LineCounter;

  constructor(file: string, lines: LineCounter) {
    this.file = file;
    this.#lines = lines;
  }

  error(node: Node | null | undefined, key: string, problem: string): ConfigError {
    const offset = node?.range?.[0] ?? 0;
    const { line, col } = this.#lines.linePos(offset);
    return new ConfigError(this.file, line, col, key, problem);
  }

  /** A warning in the same form as an error's message. */
  warning(node: Node | null | undefined, key: string, text: string): string {
    return this.error(node, key, text).message;
  }

  /** Validates `node` against `check` and returns the plain value. */
  value(node: Node | null, check: Check, key: string, keyNode?: Node): unknown {
    const where = node ?? keyNode;
    if (check.kind === "any") return node === null ? null : node.toJSON();
    if (node === null || (isScalar(node) && node.value === null)) {
      throw this.error(where, key, `must not be empty (expected ${describe(check)})`);
    }
    switch (check.kind) {
      case "map":
        return this.map(node, check, key);
      case "list": {
        if (!isSeq(node)) throw this.error(node, key, `must be a list, got ${shown(node)}`);
        return node.items.map((item, i) => this.value(item as Node, check.item, `${key}[${i}]`));
      }
      case "strings": {
        if (!isSeq(node)) throw this.error(node, key, `must be a list of strings, got ${shown(node)}`);
        return node.items.map((item, i) => {
          const s = item as Node;
          if (!isScalar(s) || typeof s.value !== "string") {
            throw this.error(s, `${key}[${i}]`, `must be a string, got ${shown(s)}`);
          }
          return s.value;
        });
      }
    }
    if (!isScalar(node)) throw this.error(node, key, `must be ${describe(check)}, got ${shown(node)}`);
    const v = node.value;
    switch (check.kind) {
      case "bool":
        if (typeof v !== "boolean") throw this.error(node, key, `must be true or false, got ${shown(node)}`);
        return v;
      case "string":
        if (typeof v !== "string") throw this.error(node, key, `must be a string, got ${shown(node)}`);
        if (check.nonEmpty && v === "") throw this.error(node, key, "must not be an empty string");
        if (check.values && !check.values.includes(v.toLowerCase())) {
          throw this.error(node, key, `must be one of ${check.values.join(", ")}, got "${v}"`);
        }
        return check.values ? v.toLowerCase() : v;
      case "int":
      case "number":
        if (typeof v !== "number" || (check.kind === "int" && !Number.isInteger(v))) {
          throw this.error(node, key, `must be ${describe(check)}, got ${shown(node)}`);
        }
        if (v < check.min || v > check.max) {
          throw this.error(node, key, `must be ${describe(check)}, got ${v}`);
        }
        return v;
    }
  }

  map(node: Node, check: Check & { kind: "map" }, key: string): Record<string, unknown> {
    if (!isMap(node)) throw this.error(node, key, `must be a mapping of keys to values, got ${shown(node)}`);
    const out: Record<string, unknown> = {};
    for (const pair of (node as YAMLMap).items) {
      const keyNode = pair.key as Node;
      const name = isScalar(keyNode) ? String((keyNode as Scalar).value) : "";
      const path = key ? `${key}.${name}` : name;
      const field = check.fields[name];
      if (!field) {
        throw this.error(
          keyNode,
          path,
          `unknown key "${name}" (expected one of: ${Object.keys(check.fields).join(", ")})`,
        );
      }
      out[name] = this.value(pair.value as Node | null, field, path, keyNode);
      if (out[name] !== null) nodes.set(out, { ...nodes.get(out), [name]: (pair.value ?? keyNode) as Node });
    }
    for (const name of check.required ?? []) {
      if (!(name in out)) throw this.error(node, key ? `${key}.${name}` : name, "is required");
    }
    return out;
  }
}

/** Remembers the YAML node of each value, for errors found after the schema check. */
export const nodes = new WeakMap<object, Record<string, Node>>();

function describe(check: Check): string {
  switch (check.kind) {
    case "int":
      return check.max === Number.MAX_SAFE_INTEGER
        ? `an integer of at least ${check.min}`
        : `an integer from ${check.min} to ${check.max}`;
    case "number":
      return `a number from ${check.min} to ${check.max}`;
    case "bool":
      return "true or false";
    case "string":
      return check.values ? `one of ${check.values.join(", ")}` : "a string";
    case "strings":
      return "a list of strings";
    case "map":
      return "a mapping";
    case "list":
      return "a list";
    default:
      return "a value";
  }
}

function shown(node: Node | null): string {
  if (node === null) return "nothing";
  if (isMap(node)) return "a mapping";
  if (isSeq(node)) return "a list";
  if (isScalar(node)) return JSON.stringify(node.value) ?? String(node.value);
  return "an alias";
}

export function snake(camel: string): string {
  return camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

export function camel(snakeCase: string): string {
  return snakeCase.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}
