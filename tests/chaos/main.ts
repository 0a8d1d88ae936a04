/**
 * `deno task chaos [--seconds 60] [--clients 200] [--seed N] [--rate 1]`: the cluster chaos test
 * (see `chaos.ts`). Prints the faults, the counts and the first violation with the seed; exits 1 on
 * any violation.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { runChaos } from "./chaos.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "60" },
    clients: { type: "string", default: "200" },
    seed: { type: "string" },
    rate: { type: "string", default: "1" },
  },
});
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
console.log(`chaos: seed ${seed}`);
const report = await runChaos({
  seconds: Number(values.seconds),
  clients: Number(values.clients),
  rate: Number(values.rate),
  seed,
  log: (line) => console.log(line),
});
console.log(report.text);
const kinds = new Map<string, number>();
for (const violation of report.violations) {
  const kind = violation.replace(/^t\+[\d.]+s /, "").replace(/(pub|sub|member|will)-\d+(:\d+)?/g, "$1-N")
    .replace(/\/\d+ /g, "/N ").replace(/ \d+ times/, " N times").replace(/ \(.*\)$/, "").replace(
      /sent t\+[\d.]+s/,
      "sent t",
    );
  kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
}
for (const [kind, n] of kinds) console.log(`  ${n} x ${kind}`);
for (const violation of report.violations.slice(0, 20)) console.log(`  violation: ${violation}`);
if (Deno.env.get("CHAOS_ALL")) { for (const violation of report.violations) console.error(violation); }
Deno.exit(report.violations.length === 0 ? 0 : 1);
