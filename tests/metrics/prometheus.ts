/**
 * A strict parser for the Prometheus text exposition format (0.0.4), written for the tests: it
 * rejects what Prometheus would reject and also what our conventions forbid (samples without
 * HELP/TYPE, duplicate series, counters not ending in `_total`, inconsistent histograms).
 *
 * @module
 */

/** One sample line. */
export interface Sample {
  /** The sample name (for histograms: `x_bucket`, `x_sum`, `x_count`). */
  name: string;
  /** Its labels. */
  labels: Record<string, string>;
  /** Its value. */
  value: number;
}

/** A metric family: HELP, TYPE and samples. */
export interface Family {
  /** The family name. */
  name: string;
  /** counter, gauge, histogram, summary or untyped. */
  type: string;
  /** The HELP text, unescaped. */
  help: string;
  /** The samples, in order. */
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

function fail(line: number, message: string): never {
  throw new Error(`Exposition line ${line}: ${message}`);
}

function unescapeHelp(text: string): string {
  return text.replace(/\\(\\|n)/g, (_, c) => (c === "n" ? "\n" : "\\"));
}

function parseValue(text: string, line: number): number {
  if (text === "NaN") return NaN;
  if (text === "+Inf" || text === "Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) fail(line, `"${text}" is not a number`);
  return Number(text);
}

/** Parses `{a="x",b="y"}` starting at `text[start] === "{"`; returns the labels and the index after `}`. */
function parseLabels(text: string, start: number, line: number): [Record<string, string>, number] {
  const labels: Record<string, string> = {};
  let i = start + 1;
  for (;;) {
    while (text[i] === " ") i++;
    if (text[i] === "}") return [labels, i + 1];
    const eq = text.indexOf("=", i);
    if (eq < 0) fail(line, "label without =");
    const name = text.slice(i, eq).trim();
    if (!LABEL_NAME.test(name)) fail(line, `bad label name "${name}"`);
    if (name in labels) fail(line, `duplicate label "${name}"`);
    if (text[eq + 1] !== '"') fail(line, `label "${name}" value is not quoted`);
    let value = "";
    let j = eq + 2;
    for (;; j++) {
      const c = text[j];
      if (c === undefined) fail(line, "unterminated label value");
      if (c === '"') break;
      if (c === "\\") {
        const next = text[++j];
        if (next === "n") value += "\n";
        else if (next === "\\" || next === '"') value += next;
        else fail(line, `bad escape \\${next}`);
      } else value += c;
    }
    labels[name] = value;
    i = j + 1;
    if (text[i] === ",") i++;
    else if (text[i] !== "}") fail(line, `expected , or } after label "${name}"`);
  }
}

function familyOf(name: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(name);
  if (direct && direct.type !== "histogram" && direct.type !== "summary") return direct;
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!name.endsWith(suffix)) continue;
    const base = families.get(name.slice(0, -suffix.length));
    if (base && (base.type === "histogram" || (base.type === "summary" && suffix !== "_bucket"))) return base;
  }
  return direct?.type === "summary" ? direct : undefined;
}

/**
 * Parses and checks an exposition.
 *
 * @param text The exposition text.
 * @returns The families by name.
 * @throws {Error} On any syntax or convention error, naming the line.
 */
export function parsePrometheus(text: string): Map<string, Family> {
  if (!text.endsWith("\n")) throw new Error("Exposition does not end with a newline");
  const families = new Map<string, Family>();
  const helps = new Map<string, string>();
  const seen = new Set<string>();
  const lines = text.slice(0, -1).split("\n");
  for (let n = 0; n < lines.length; n++) {
    const line = n + 1;
    const raw = lines[n];
    if (raw.trim() === "") continue;
    if (raw.startsWith("#")) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(raw);
      if (!m) continue; // a comment
      const [, kind, name, rest = ""] = m;
      if (!NAME.test(name)) fail(line, `bad metric name "${name}"`);
      if (kind === "HELP") {
        if (helps.has(name)) fail(line, `second HELP for ${name}`);
        helps.set(name, unescapeHelp(rest));
        const family = families.get(name);
        if (family) family.help = helps.get(name)!;
      } else {
        if (families.has(name)) fail(line, `second TYPE for ${name}`);
        if (!TYPES.has(rest.trim())) fail(line, `unknown type "${rest}"`);
        families.set(name, { name, type: rest.trim(), help: helps.get(name) ?? "", samples: [] });
      }
      continue;
    }
    const nameEnd = raw.search(/[{ ]/);
    if (nameEnd < 0) fail(line, "sample without a value");
    const name = raw.slice(0, nameEnd);
    if (!NAME.test(name)) fail(line, `bad metric name "${name}"`);
    let labels: Record<string, string> = {};
    let i = nameEnd;
    if (raw[i] === "{") [labels, i] = parseLabels(raw, i, line);
    const parts = raw.slice(i).trim().split(/\s+/);
    if (parts.length < 1 || parts.length > 2 || parts[0] === "") {
      fail(line, "expected a value and an optional timestamp");
    }
    const value = parseValue(parts[0], line);
    if (parts.length === 2 && !/^-?\d+$/.test(parts[1])) fail(line, `bad timestamp "${parts[1]}"`);
    const family = familyOf(name, families);
    if (!family) fail(line, `sample ${name} has no TYPE line before it`);
    const key = name + JSON.stringify(Object.entries(labels).sort());
    if (seen.has(key)) fail(line, `duplicate series ${key}`);
    seen.add(key);
    family.samples.push({ name, labels, value });
  }
  for (const family of families.values()) {
    if (!family.help) throw new Error(`Family ${family.name} has no HELP`);
    if (family.type === "counter") {
      if (!family.name.endsWith("_total")) throw new Error(`Counter ${family.name} does not end in _total`);
      for (const s of family.samples) {
        if (!(s.value >= 0)) throw new Error(`Counter ${family.name} has a negative or NaN value`);
      }
    }
    if (family.type !== "counter" && family.name.endsWith("_total")) {
      throw new Error(`${family.type} ${family.name} ends in _total, which is reserved for counters`);
    }
    if (family.type === "histogram") checkHistogram(family);
  }
  return families;
}

function checkHistogram(family: Family): void {
  const buckets = family.samples.filter((s) => s.name === family.name + "_bucket");
  const count = family.samples.find((s) => s.name === family.name + "_count");
  const sum = family.samples.find((s) => s.name === family.name + "_sum");
  if (!count || !sum) throw new Error(`Histogram ${family.name} lacks _count or _sum`);
  let previousBound = -Infinity;
  let previous = 0;
  for (const b of buckets) {
    const bound = parseValue(b.labels.le ?? "", 0);
    if (!(bound > previousBound)) throw new Error(`Histogram ${family.name}: le not ascending`);
    if (b.value < previous) throw new Error(`Histogram ${family.name}: buckets not cumulative`);
    previousBound = bound;
    previous = b.value;
  }
  if (previousBound !== Infinity) throw new Error(`Histogram ${family.name} has no +Inf bucket`);
  if (previous !== count.value) throw new Error(`Histogram ${family.name}: +Inf bucket != _count`);
}

/**
 * The sum of a family's samples whose labels include `labels`.
 *
 * @param families Parsed families.
 * @param name A sample name (`x_total`, `x_count`, ...).
 * @param labels Labels that must match.
 * @returns The sum; 0 when nothing matches.
 */
export function metric(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number {
  const family = familyOf(name, families);
  if (!family) throw new Error(`No metric family for ${name}`);
  let total = 0;
  for (const s of family.samples) {
    if (s.name !== name) continue;
    if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) total += s.value;
  }
  return total;
}
