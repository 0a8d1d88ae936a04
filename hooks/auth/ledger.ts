/**
 * The auth ledger: users, authentication rules and ACL rules, in the shape of Mochi's ledger
 * (keys `users`, `auth`, `acl`), read from YAML or JSON with line-precise errors, and compiled
 * into a {@linkcode CompiledLedger} that answers "may this client connect?" and "may it read or
 * write this topic?".
 *
 * ## Semantics
 *
 * **Patterns** (`client`, `username`, `remote` in `auth` and `acl` rules): an absent field
 * matches anything; `*` alone matches anything (including an empty user name); otherwise the
 * string must match exactly, where each `*` stands for any run of characters (`127.0.0.1:*`,
 * `sensor-*`). An empty string matches only an empty value (a client without a user name).
 * `remote` is the client's `host:port`.
 *
 * **Passwords** (`users.<name>.password`, `auth[].password`): plain text or a hash (bcrypt,
 * scrypt, PBKDF2; see `password.ts`). In an auth rule, an absent password or `"*"` matches any
 * password; an empty string matches only an empty or absent password (unlike Mochi, where an
 * empty password matched every password). Passwords are never wildcard patterns.
 *
 * **Authentication**: if `users` has the client's user name, that entry decides: `disallow: true`
 * denies, otherwise the password must verify (no fallback to `auth` rules, unlike Mochi). Else the
 * first `auth` rule whose client, user name, remote and password all match decides with its
 * `allow` (absent: false). No match denies.
 *
 * **ACL** (`write` true for publish, false for subscribe): the user's own `acl` is checked first,
 * then the `acl` rules in order. A rule is skipped unless its client, user name and remote match;
 * a matching rule without filters (or with `filters: {}`) allows everything (Mochi's "superuser"
 * rule). Within one filter set the MOST SPECIFIC filter that matches decides, whatever the order
 * they are written in: more literal levels first (`%u`/`%c` levels count as literal), then a
 * filter without `#` before one with `#`, then fewer `+` levels, then the longer filter, then the
 * one written first. So `{"#": ReadOnly, "updates/#": Deny}` denies `updates/x` and allows
 * `news`. If no filter of a set matches, the next rule is tried; if nothing decides, access is
 * ALLOWED (Mochi's default; end the list with `- filters: {"#": Deny}` for default-deny, and note
 * that `#` does not match `$SYS` topics [MQTT-4.7.2-1]). Matching follows the spec: `a/#` matches
 * `a` [MQTT-4.7.1-2] and `+`/`#` do not match a leading `$` level.
 *
 * **Subscriptions with wildcards**: a subscription filter S is allowed by the most specific rule
 * filter that COVERS it (matches every topic S can match: `a/#` covers `a/+/b`, `a/+` does not
 * cover `a/#`), unless a rule filter at least as specific that OVERLAPS S (shares a topic with
 * it) denies reading; then it is denied, because the broker does not check each delivery. So with
 * `{"#": ReadOnly, "updates/#": Deny}` a subscription to `#` or `+/x` is denied, `news/#` allowed.
 * `$share/{group}/` is removed before the check.
 *
 * **Placeholders**: `%u` (user name) and `%c` (client id) in ACL filters are replaced as in
 * Mosquitto. A filter is skipped (it neither allows nor denies) when the value it needs is empty
 * or contains `+`, `#`, `/` or U+0000, so a client id such as `#` cannot widen its access.
 *
 * @module
 */

import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import type { Document, Node as YamlNode } from "yaml";
import { matchTopic } from "../../src/topics.ts";
import { isValidTopicFilter, parseSharedFilter } from "../../src/packets/topic_rules.ts";
import { parseStoredPassword, type StoredPassword, verifyPassword } from "./password.ts";

/** Access levels of an ACL filter. Read is bit 1, write bit 2. */
export const Access = {
  /** Neither subscribe nor publish. */
  Deny: 0,
  /** Subscribe only. */
  ReadOnly: 1,
  /** Publish only. */
  WriteOnly: 2,
  /** Subscribe and publish. */
  ReadWrite: 3,
} as const;

/** One of the {@linkcode Access} values. */
export type Access = typeof Access[keyof typeof Access];

/** An access level as written in a ledger: a number 0 to 3, or its name. */
export type AccessValue = Access | keyof typeof Access;

/** ACL filters and their access, keyed by topic filter (may contain `%u` and `%c`). */
export type Filters = Record<string, AccessValue>;

/** A user known by name. */
export interface UserRule {
  /** The password: plain text or a hash (see `password.ts`); `"*"` accepts any password. */
  password: string;
  /** The user's own ACL, checked before the `acl` rules. */
  acl?: Filters;
  /** Refuse this user even with the right password. */
  disallow?: boolean;
  /** Mochi writes the user name here too; if present it must equal the key. */
  username?: string;
}

/** An authentication rule; the first that matches decides. */
export interface AuthRule {
  /** Client id pattern. */
  client?: string;
  /** User name pattern. */
  username?: string;
  /** Remote address (`host:port`) pattern. */
  remote?: string;
  /** The password (plain text or a hash); absent or `"*"` for any, `""` for none. */
  password?: string;
  /** Whether a matching client may connect; absent means false. */
  allow?: boolean;
}

/** An ACL rule; the first that matches the client and has a matching filter decides. */
export interface ACLRule {
  /** Client id pattern. */
  client?: string;
  /** User name pattern. */
  username?: string;
  /** Remote address (`host:port`) pattern. */
  remote?: string;
  /** Filters and their access; absent or empty allows everything. */
  filters?: Filters;
}

/** The rules, as written in YAML or JSON (compatible with Mochi's ledger). */
export interface Ledger {
  /** Users by name. */
  users?: Record<string, UserRule>;
  /** Authentication rules, in order. */
  auth?: AuthRule[];
  /** ACL rules, in order. */
  acl?: ACLRule[];
}

/** Who is asking: what the rules match against. */
export interface Identity {
  /** The client id. */
  clientId: string;
  /** The user name, empty if none. */
  username: string;
  /** The remote address, `host:port`. */
  remote: string;
}

/** A ledger that failed validation; the message names the source, line and field. */
export class LedgerError extends Error {
  /** The file name, `"data"` or `"ledger"`. */
  readonly source: string;
  /** The 1-based line, when known. */
  readonly line: number | undefined;
  /** The field, e.g. `acl[1].filters["a/#"]`. */
  readonly field: string;

  /**
   * Creates the error.
   *
   * @param source The file name, `"data"` or `"ledger"`.
   * @param line The line, if known.
   * @param field The field path.
   * @param problem What is wrong.
   */
  constructor(source: string, line: number | undefined, field: string, problem: string) {
    const where = line === undefined ? "" : ` at line ${line}`;
    const what = field === "" ? "" : `, field ${field}`;
    super(`Bad auth rules in ${source}${where}${what}: ${problem}`);
    this.name = "LedgerError";
    this.source = source;
    this.line = line;
    this.field = field;
  }
}

// ------------------------------------------------------------------------------------------------
// Reading: YAML/JSON text or a JS value -> a tree with line numbers -> a validated Ledger

interface SourceNode {
  kind: "map" | "seq" | "scalar";
  line?: number;
  value?: unknown;
  entries?: { key: string; line?: number; node: SourceNode }[];
  items?: SourceNode[];
}

function fromYaml(
  node: unknown,
  doc: Document,
  lines: LineCounter,
  source: string,
  field: string,
): SourceNode {
  if (isAlias(node)) node = node.resolve(doc);
  const range = (node as YamlNode | null)?.range;
  const line = range ? lines.linePos(range[0]).line : undefined;
  if (isMap(node)) {
    const entries = node.items.map((pair) => {
      const key = pair.key;
      const keyLine = (key as YamlNode | null)?.range
        ? lines.linePos((key as YamlNode).range![0]).line
        : line;
      if (!isScalar(key) || typeof key.value === "object") {
        throw new LedgerError(source, keyLine, field, "map keys must be strings");
      }
      const name = String(key.value);
      const child = pair.value == null
        ? { kind: "scalar" as const, line: keyLine, value: null }
        : fromYaml(pair.value, doc, lines, source, `${field}.${name}`);
      return { key: name, line: keyLine, node: child };
    });
    return { kind: "map", line, entries };
  }
  if (isSeq(node)) {
    return {
      kind: "seq",
      line,
      items: node.items.map((item, i) => fromYaml(item, doc, lines, source, `${field}[${i}]`)),
    };
  }
  return { kind: "scalar", line, value: isScalar(node) ? node.value : null };
}

function fromValue(value: unknown): SourceNode {
  if (Array.isArray(value)) return { kind: "seq", items: value.map(fromValue) };
  if (value !== null && typeof value === "object" && !(value instanceof Uint8Array)) {
    return {
      kind: "map",
      entries: Object.entries(value).filter(([, v]) => v !== undefined).map(([key, v]) => ({
        key,
        node: fromValue(v),
      })),
    };
  }
  return { kind: "scalar", value };
}

const ACCESS_NAMES = new Map<string, Access>(
  Object.entries(Access).map(([name, value]) => [name.toLowerCase(), value]),
);

class Validator {
  constructor(readonly source: string) {}

  fail(node: { line?: number } | undefined, field: string, problem: string): never {
    throw new LedgerError(this.source, node?.line, field, problem);
  }

  /** Checks that a node is a map with only the given keys; null counts as an empty map. */
  map(
    node: SourceNode,
    field: string,
    keys?: readonly string[],
  ): { key: string; line?: number; node: SourceNode }[] {
    if (node.kind === "scalar" && node.value === null) return [];
    if (node.kind !== "map") this.fail(node, field, `expected a map, got ${describe(node)}`);
    if (keys) {
      for (const entry of node.entries!) {
        if (!keys.includes(entry.key)) {
          this.fail(entry, field, `unknown key "${entry.key}" (expected one of: ${keys.join(", ")})`);
        }
      }
    }
    return node.entries!;
  }

  seq(node: SourceNode, field: string): SourceNode[] {
    if (node.kind === "scalar" && node.value === null) return [];
    if (node.kind !== "seq") this.fail(node, field, `expected a list, got ${describe(node)}`);
    return node.items!;
  }

  string(node: SourceNode, field: string): string {
    if (node.kind !== "scalar" || typeof node.value !== "string") {
      this.fail(node, field, `expected a string (quote it), got ${describe(node)}`);
    }
    return node.value;
  }

  boolean(node: SourceNode, field: string): boolean {
    if (node.kind !== "scalar" || typeof node.value !== "boolean") {
      this.fail(node, field, `expected true or false, got ${describe(node)}`);
    }
    return node.value;
  }

  password(node: SourceNode, field: string): string {
    const password = this.string(node, field);
    if (password !== "*") {
      try {
        parseStoredPassword(password);
      } catch (error) {
        this.fail(node, field, (error as Error).message);
      }
    }
    return password;
  }

  access(node: SourceNode, field: string): Access {
    const value = node.kind === "scalar" ? node.value : undefined;
    if (typeof value === "number" && (value === 0 || value === 1 || value === 2 || value === 3)) return value;
    if (typeof value === "string") {
      const access = ACCESS_NAMES.get(value.toLowerCase());
      if (access !== undefined) return access;
    }
    return this.fail(
      node,
      field,
      `the access must be 0, 1, 2, 3, Deny, ReadOnly, WriteOnly or ReadWrite, got ${describe(node)}`,
    );
  }

  filters(node: SourceNode, field: string): Record<string, Access> {
    const filters: Record<string, Access> = {};
    for (const entry of this.map(node, field)) {
      const key = `${field}[${JSON.stringify(entry.key)}]`;
      const template = entry.key.replaceAll("%u", "x").replaceAll("%c", "x");
      if (!isValidTopicFilter(template) || template.startsWith("$share/")) {
        this.fail(entry, key, `"${entry.key}" is not a valid topic filter`);
      }
      filters[entry.key] = this.access(entry.node, key);
    }
    return filters;
  }

  patterns(entry: { key: string; node: SourceNode }, field: string, rule: Record<string, unknown>): boolean {
    if (entry.key !== "client" && entry.key !== "username" && entry.key !== "remote") return false;
    rule[entry.key] = this.string(entry.node, `${field}.${entry.key}`);
    return true;
  }

  ledger(root: SourceNode): Ledger {
    const ledger: Ledger = {};
    for (const section of this.map(root, "", ["users", "auth", "acl"])) {
      const node = section.node;
      if (section.key === "users") {
        const users: Record<string, UserRule> = {};
        for (const entry of this.map(node, "users")) {
          const field = `users[${JSON.stringify(entry.key)}]`;
          const user: Partial<UserRule> = {};
          for (const item of this.map(entry.node, field, ["password", "acl", "disallow", "username"])) {
            const f = `${field}.${item.key}`;
            if (item.key === "password") user.password = this.password(item.node, f);
            else if (item.key === "acl") user.acl = this.filters(item.node, f);
            else if (item.key === "disallow") user.disallow = this.boolean(item.node, f);
            else if (this.string(item.node, f) !== entry.key) {
              this.fail(item.node, f, `the user name must match the key "${entry.key}"`);
            }
          }
          if (user.password === undefined) {
            this.fail(entry, field, `the user has no password (use "*" for any)`);
          }
          users[entry.key] = user as UserRule;
        }
        ledger.users = users;
      } else if (section.key === "auth") {
        ledger.auth = this.seq(node, "auth").map((item, i) => {
          const field = `auth[${i}]`;
          const rule: AuthRule = {};
          for (const entry of this.map(item, field, ["client", "username", "remote", "password", "allow"])) {
            if (this.patterns(entry, field, rule as Record<string, unknown>)) continue;
            if (entry.key === "password") rule.password = this.password(entry.node, `${field}.password`);
            else rule.allow = this.boolean(entry.node, `${field}.allow`);
          }
          return rule;
        });
      } else {
        ledger.acl = this.seq(node, "acl").map((item, i) => {
          const field = `acl[${i}]`;
          const rule: ACLRule = {};
          for (const entry of this.map(item, field, ["client", "username", "remote", "filters"])) {
            if (this.patterns(entry, field, rule as Record<string, unknown>)) continue;
            rule.filters = this.filters(entry.node, `${field}.filters`);
          }
          return rule;
        });
      }
    }
    return ledger;
  }
}

function describe(node: SourceNode): string {
  if (node.kind !== "scalar") return `a ${node.kind === "seq" ? "list" : "map"}`;
  const value = node.value;
  if (value === null) return "nothing";
  return typeof value === "string" ? `"${value}"` : `${typeof value} ${String(value)}`;
}

/**
 * Parses and validates a ledger from YAML or JSON text (JSON is read as YAML 1.2).
 *
 * @param text The YAML or JSON text.
 * @param source Names the text in errors: a file name, or `"data"`.
 * @returns The validated ledger (access levels as numbers).
 * @throws {LedgerError} On a syntax error, an unknown key or a bad value: the message names the
 * source, the line and the field.
 *
 * @example Parsing YAML
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseLedger } from "./ledger.ts";
 *
 * const ledger = parseLedger("auth:\n  - username: peach\n    password: pw\n    allow: true\n");
 * assert.equal(ledger.auth?.[0].username, "peach");
 * assert.throws(() => parseLedger("acl:\n  - filters:\n      'a/#': Nope\n", "auth.yaml"), {
 *   name: "LedgerError",
 *   line: 3,
 *   message: /^Bad auth rules in auth\.yaml at line 3/,
 * });
 * ```
 */
export function parseLedger(text: string, source = "data"): Ledger {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const error = doc.errors[0];
  if (error) {
    const line = lines.linePos(error.pos[0]).line;
    throw new LedgerError(source, line, "", error.message.split("\n")[0]);
  }
  const root = fromYaml(doc.contents, doc, lines, source, "");
  return new Validator(source).ledger(root);
}

/**
 * Reads, parses and validates a ledger file (YAML or JSON).
 *
 * @param path The file.
 * @returns The validated ledger.
 * @throws {LedgerError} When the rules are bad (the message names the file, line and field).
 *
 * @example Loading a file
 * ```ts
 * import assert from "node:assert/strict";
 * import { Access, loadLedger } from "./ledger.ts";
 *
 * const path = await Deno.makeTempFile({ suffix: ".yaml" });
 * await Deno.writeTextFile(path, 'acl:\n  - filters: { "#": ReadOnly }\n');
 * const ledger = await loadLedger(path);
 * assert.equal(ledger.acl?.[0].filters?.["#"], Access.ReadOnly); // access levels as numbers
 * await Deno.remove(path);
 * ```
 */
export async function loadLedger(path: string): Promise<Ledger> {
  return parseLedger(await Deno.readTextFile(path), path);
}

/**
 * Validates a ledger given as a value (for example built in code, or from `JSON.parse`).
 *
 * @param value The ledger.
 * @param source Names it in errors.
 * @returns The validated ledger (access levels as numbers).
 * @throws {LedgerError} On an unknown key or a bad value.
 *
 * @example Rejecting an unknown key
 * ```ts
 * import assert from "node:assert/strict";
 * import { validateLedger } from "./ledger.ts";
 *
 * assert.throws(() => validateLedger({ auth: [{ usename: "x", allow: true }] }), {
 *   name: "LedgerError",
 *   message: /unknown key "usename"/,
 * });
 * ```
 */
export function validateLedger(value: unknown, source = "ledger"): Ledger {
  return new Validator(source).ledger(fromValue(value ?? null));
}

// ------------------------------------------------------------------------------------------------
// Compiled rules

type Matcher = ((value: string) => boolean) | null;

function compilePattern(pattern: string | undefined): Matcher {
  if (pattern === undefined || pattern === "*") return null;
  if (!pattern.includes("*")) return (value) => value === pattern;
  const source = pattern.split("*").map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".*");
  const regex = new RegExp(`^${source}$`, "s");
  return (value) => regex.test(value);
}

const ANY_PASSWORD = "any";

interface CompiledFilter {
  filter: string;
  access: Access;
  placeholders: boolean;
  literal: number;
  hash: boolean;
  plus: number;
  order: number;
}

interface CompiledUser {
  password: StoredPassword | typeof ANY_PASSWORD;
  disallow: boolean;
  acl: CompiledFilter[] | null;
}

interface CompiledAuthRule {
  client: Matcher;
  username: Matcher;
  remote: Matcher;
  password: StoredPassword | typeof ANY_PASSWORD;
  allow: boolean;
}

interface CompiledACLRule {
  client: Matcher;
  username: Matcher;
  remote: Matcher;
  filters: CompiledFilter[] | null;
}

function compileFilters(filters: Filters | undefined): CompiledFilter[] | null {
  if (filters === undefined) return null;
  const compiled = Object.entries(filters).map(([filter, access], order): CompiledFilter => {
    const levels = filter.split("/");
    return {
      filter,
      access: typeof access === "number" ? access : ACCESS_NAMES.get(access.toLowerCase())!,
      placeholders: filter.includes("%u") || filter.includes("%c"),
      literal: levels.filter((l) => l !== "+" && l !== "#").length,
      hash: levels[levels.length - 1] === "#",
      plus: levels.filter((l) => l === "+").length,
      order,
    };
  });
  if (compiled.length === 0) return null;
  // Most specific first, so that the first filter that applies decides.
  compiled.sort((a, b) =>
    b.literal - a.literal || Number(a.hash) - Number(b.hash) || a.plus - b.plus ||
    b.filter.length - a.filter.length || a.order - b.order
  );
  return compiled;
}

function compilePassword(password: string | undefined): StoredPassword | typeof ANY_PASSWORD {
  return password === undefined || password === "*" ? ANY_PASSWORD : parseStoredPassword(password);
}

const UNSAFE_LEVEL = /[+#/]/;

/** A value safe to put in a topic filter level for `%u`/`%c`. */
function safeLevel(value: string): boolean {
  return value.length > 0 && !UNSAFE_LEVEL.test(value) && !value.includes("\u0000");
}

function substitute(filter: string, identity: Identity): string | undefined {
  if (filter.includes("%u")) {
    if (!safeLevel(identity.username)) return undefined;
    filter = filter.replaceAll("%u", identity.username);
  }
  if (filter.includes("%c")) {
    if (!safeLevel(identity.clientId)) return undefined;
    filter = filter.replaceAll("%c", identity.clientId);
  }
  return filter;
}

function startsWithDollar(levels: string[]): boolean {
  return levels[0].charCodeAt(0) === 0x24;
}

function isWildcard(level: string): boolean {
  return level === "+" || level === "#";
}

/**
 * Whether every topic matched by filter `inner` is also matched by filter `outer`.
 *
 * @param outer A topic filter (a rule's).
 * @param inner A topic filter (a subscription's).
 * @returns True when `outer` covers `inner`.
 *
 * @example Covering
 * ```ts
 * import assert from "node:assert/strict";
 * import { filterCovers } from "./ledger.ts";
 *
 * assert.equal(filterCovers("a/#", "a/+/b"), true);
 * assert.equal(filterCovers("a/+", "a/#"), false); // "a/#" also matches "a/b/c"
 * assert.equal(filterCovers("a/#", "a"), true); // "#" matches the parent level too
 * ```
 */
export function filterCovers(outer: string, inner: string): boolean {
  const o = outer.split("/");
  const s = inner.split("/");
  if (isWildcard(o[0]) && !isWildcard(s[0]) && startsWithDollar(s)) return false; // [MQTT-4.7.2-1]
  for (let i = 0;; i++) {
    if (i < o.length && o[i] === "#") return true;
    if (i >= s.length) return i === o.length;
    if (i >= o.length) return false;
    if (s[i] === "#") return false;
    if (s[i] === "+") {
      if (o[i] !== "+") return false;
    } else if (o[i] !== "+" && o[i] !== s[i]) return false;
  }
}

/**
 * Whether some topic is matched by both filters.
 *
 * @param a A topic filter.
 * @param b A topic filter.
 * @returns True when they overlap.
 *
 * @example Overlapping
 * ```ts
 * import assert from "node:assert/strict";
 * import { filtersOverlap } from "./ledger.ts";
 *
 * assert.equal(filtersOverlap("#", "updates/x"), true);
 * assert.equal(filtersOverlap("+/x", "updates/#"), true); // both match "updates/x"
 * assert.equal(filtersOverlap("a/+", "b/#"), false);
 * ```
 */
export function filtersOverlap(a: string, b: string): boolean {
  const x = a.split("/");
  const y = b.split("/");
  if (isWildcard(x[0]) && !isWildcard(y[0]) && startsWithDollar(y)) return false; // [MQTT-4.7.2-1]
  if (isWildcard(y[0]) && !isWildcard(x[0]) && startsWithDollar(x)) return false;
  for (let i = 0;; i++) {
    if ((i < x.length && x[i] === "#") || (i < y.length && y[i] === "#")) return true;
    if (i >= x.length || i >= y.length) return x.length === y.length;
    if (x[i] !== "+" && y[i] !== "+" && x[i] !== y[i]) return false;
  }
}

/**
 * Decides with one filter set: true/false, or undefined when no filter applies.
 * `target` is a topic, or a filter (with `isFilter`) for subscriptions.
 */
function decide(
  filters: CompiledFilter[],
  identity: Identity,
  target: string,
  isFilter: boolean,
  want: number,
): boolean | undefined {
  for (let i = 0; i < filters.length; i++) {
    const f = filters[i];
    const filter = f.placeholders ? substitute(f.filter, identity) : f.filter;
    if (filter === undefined) continue;
    if (!isFilter) {
      if (matchTopic(filter, target)) return (f.access & want) !== 0;
      continue;
    }
    if (!filtersOverlap(filter, target)) continue;
    if ((f.access & want) === 0) return false; // would let part of the subscription through
    if (filterCovers(filter, target)) return true;
  }
  return undefined;
}

/**
 * A validated ledger ready for checks. Immutable: to change the rules, compile a new one (the
 * {@linkcode AuthHook} swaps them atomically).
 *
 * @example Checking a client
 * ```ts
 * import assert from "node:assert/strict";
 * import { CompiledLedger } from "./ledger.ts";
 *
 * const rules = new CompiledLedger({
 *   auth: [{ username: "peach", password: "pw", allow: true }],
 *   acl: [{ filters: { "#": "ReadOnly", "updates/#": "Deny" } }],
 * });
 * const peach = { clientId: "c1", username: "peach", remote: "127.0.0.1:5000" };
 * assert.equal(await rules.authenticate(peach, new TextEncoder().encode("pw")), true);
 * assert.equal(rules.checkACL(peach, "news", false), true); // read allowed by "#"
 * assert.equal(rules.checkACL(peach, "updates/x", false), false); // the more specific Deny wins
 * assert.equal(rules.checkACL(peach, "news", true), false); // ReadOnly: no writes
 * ```
 */
export class CompiledLedger {
  /** The validated ledger these rules were compiled from. */
  readonly ledger: Ledger;
  readonly #users = new Map<string, CompiledUser>();
  readonly #auth: CompiledAuthRule[];
  readonly #acl: CompiledACLRule[];

  /**
   * Validates and compiles a ledger.
   *
   * @param ledger The rules.
   * @param source Names the ledger in errors.
   * @throws {LedgerError} When the ledger is invalid.
   */
  constructor(ledger: Ledger, source = "ledger") {
    this.ledger = validateLedger(ledger, source);
    for (const [name, user] of Object.entries(this.ledger.users ?? {})) {
      this.#users.set(name, {
        password: compilePassword(user.password),
        disallow: user.disallow === true,
        acl: compileFilters(user.acl),
      });
    }
    this.#auth = (this.ledger.auth ?? []).map((rule) => ({
      client: compilePattern(rule.client),
      username: compilePattern(rule.username),
      remote: compilePattern(rule.remote),
      password: compilePassword(rule.password),
      allow: rule.allow === true,
    }));
    this.#acl = (this.ledger.acl ?? []).map((rule) => ({
      client: compilePattern(rule.client),
      username: compilePattern(rule.username),
      remote: compilePattern(rule.remote),
      filters: compileFilters(rule.filters),
    }));
  }

  /**
   * Decides whether a client may connect.
   *
   * @param identity The client id, user name and remote address.
   * @param password The password from CONNECT, if any.
   * @returns Whether to allow; a Promise when a hashed password had to be verified.
   */
  authenticate(identity: Identity, password?: Uint8Array): boolean | Promise<boolean> {
    const pw = password ?? EMPTY;
    const user = this.#users.get(identity.username);
    if (user !== undefined) {
      if (user.disallow) return false;
      return user.password === ANY_PASSWORD || verifyPassword(user.password, pw);
    }
    return this.#authFrom(identity, pw, 0);
  }

  #authFrom(identity: Identity, password: Uint8Array, start: number): boolean | Promise<boolean> {
    const rules = this.#auth;
    for (let i = start; i < rules.length; i++) {
      const rule = rules[i];
      if (!matchesIdentity(rule, identity)) continue;
      if (rule.password === ANY_PASSWORD) return rule.allow;
      const ok = verifyPassword(rule.password, password);
      if (ok instanceof Promise) {
        return ok.then((matched) => matched ? rule.allow : this.#authFrom(identity, password, i + 1));
      }
      if (ok) return rule.allow;
    }
    return false;
  }

  /**
   * Decides whether a client may read (subscribe to) or write (publish to) a topic.
   *
   * @param identity The client id, user name and remote address.
   * @param topic A topic name, or for reads a topic filter (wildcards and `$share/` allowed).
   * @param write True for publish, false for subscribe.
   * @returns Whether to allow.
   */
  checkACL(identity: Identity, topic: string, write: boolean): boolean {
    const want = write ? Access.WriteOnly : Access.ReadOnly;
    if (topic.startsWith("$share/")) topic = parseSharedFilter(topic)?.filter ?? topic;
    const isFilter = topic.includes("+") || topic.includes("#");
    const user = this.#users.get(identity.username);
    if (user?.acl) {
      const decision = decide(user.acl, identity, topic, isFilter, want);
      if (decision !== undefined) return decision;
    }
    const rules = this.#acl;
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i];
      if (!matchesIdentity(rule, identity)) continue;
      if (rule.filters === null) return true;
      const decision = decide(rule.filters, identity, topic, isFilter, want);
      if (decision !== undefined) return decision;
    }
    return true;
  }
}

const EMPTY = new Uint8Array(0);

/** Whether a rule's client, user name and remote patterns (null: any) all match an identity. */
function matchesIdentity(
  rule: { client: Matcher; username: Matcher; remote: Matcher },
  identity: Identity,
): boolean {
  return (rule.client === null || rule.client(identity.clientId)) &&
    (rule.username === null || rule.username(identity.username)) &&
    (rule.remote === null || rule.remote(identity.remote));
}
