/**
 * `deno task soak`: runs the soak test (see `soak.ts`) and prints its report as tables and as one
 * JSON line. Exits with status 1 when any check fails.
 *
 * ```sh
 * deno task soak                         # 5 minutes, 200 clients, a random seed
 * deno task soak --seconds 60 --seed 7
 * deno task soak --clients 500 --seconds 600
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { formatReport, runSoak } from "./soak.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "300" },
    clients: { type: "string", default: "200" },
    seed: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});

if (values.help) {
  console.log("deno task soak [--seconds N (300)] [--clients N (200)] [--seed N (random)]");
  Deno.exit(0);
}

const seconds = Number(values.seconds);
const clients = Number(values.clients);
const seed = values.seed === undefined ? Math.floor(Math.random() * 0x7fffffff) : Number(values.seed);
for (
  const [name, value, min] of [["seconds", seconds, 1], ["clients", clients, 12], ["seed", seed, 0]] as const
) {
  if (!Number.isInteger(value) || value < min) {
    console.error(`--${name} must be an integer of at least ${min}, not "${values[name]}"`);
    Deno.exit(2);
  }
}

const report = await runSoak({ seconds, clients, seed, progress: (line) => console.error(`soak: ${line}`) });
console.log(formatReport(report));
console.log(JSON.stringify(report));
Deno.exit(report.ok ? 0 : 1);
