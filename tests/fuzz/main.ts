/**
 * `deno task fuzz`: runs the codec and/or server fuzzers for a number of cases or seconds and prints
 * the counts. Exits with status 1 if any property failed, printing the inputs that show it (add each
 * as a golden case in `tests/packets/golden.ts` once fixed).
 *
 * ```sh
 * deno task fuzz --seed 1 --seconds 120
 * deno task fuzz --target codec --cases 1000000
 * deno task fuzz --target server --cases 5000 --seed 7
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { runCodecFuzz, summarize } from "./codec_fuzz.ts";
import { runServerFuzz } from "./server_fuzz.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seed: { type: "string" },
    cases: { type: "string" },
    seconds: { type: "string" },
    target: { type: "string", default: "all" },
    help: { type: "boolean", short: "h" },
  },
});

if (values.help) {
  console.log("deno task fuzz [--seed N] [--cases N] [--seconds N] [--target codec|server|all]");
  Deno.exit(0);
}

const target = values.target;
if (target !== "codec" && target !== "server" && target !== "all") {
  console.error(`Unknown target "${target}": use codec, server or all`);
  Deno.exit(2);
}
const seed = values.seed === undefined ? Math.floor(Math.random() * 0x7fffffff) : Number(values.seed);
const cases = values.cases === undefined ? undefined : Number(values.cases);
let seconds = values.seconds === undefined ? undefined : Number(values.seconds);
for (const [name, value] of [["seed", seed], ["cases", cases], ["seconds", seconds]] as const) {
  if (value !== undefined && !(Number.isFinite(value) && value >= 0)) {
    console.error(`--${name} must be a non-negative number, not "${values[name]}"`);
    Deno.exit(2);
  }
}
if (cases === undefined && seconds === undefined) seconds = 10;
// With both targets and a time limit, the codec gets two thirds of it and the server the rest.
const codecSeconds = seconds === undefined ? undefined : target === "all" ? (seconds * 2) / 3 : seconds;
const serverSeconds = seconds === undefined ? undefined : target === "all" ? seconds / 3 : seconds;

console.log(
  `fuzz: seed ${seed}, target ${target}, ${cases ?? "unlimited"} cases, ${seconds ?? "unlimited"} s`,
);
let failed = false;

if (target !== "server") {
  const started = performance.now();
  const stats = runCodecFuzz({
    seed,
    cases,
    seconds: codecSeconds,
    onProgress: (s) => {
      if (s.cases % 1_024_000 === 0 && s.cases > 0) console.log(`  codec: ${s.cases} cases...`);
    },
  });
  const elapsed = (performance.now() - started) / 1000;
  console.log(`codec: ${summarize(stats)} in ${elapsed.toFixed(1)} s`);
  console.log(`codec: crashes (property violations): ${stats.failureCount}`);
  for (const failure of stats.failures) {
    failed = true;
    console.log(`  ${failure.property}: ${failure.detail}`);
    console.log(
      `    ${failure.origin}; v${failure.version}, maximum packet size ${failure.maximumPacketSize}`,
    );
    console.log(`    bytes: [${failure.bytes.join(", ")}]`);
  }
  if (stats.failureCount > 0) failed = true;
}

if (target !== "codec") {
  const started = performance.now();
  const stats = await runServerFuzz({
    seed,
    cases,
    sequences: cases === undefined ? undefined : Math.ceil(cases / 10),
    seconds: serverSeconds,
    onProgress: (s) => {
      if (s.cases % 5000 === 0) console.log(`  server: ${s.cases} cases...`);
    },
  });
  const elapsed = (performance.now() - started) / 1000;
  const codes = [...stats.disconnectCodes.entries()].sort((a, b) => a[0] - b[0])
    .map(([code, n]) => `0x${code.toString(16)}×${n}`).join(" ");
  console.log(
    `server: ${stats.cases} mutated packets (${stats.exact} with a known outcome), ${stats.sequences} valid ` +
      `sequences (${stats.sequencePackets} packets), ${stats.bystanderRoundTrips} bystander round trips; ` +
      `${stats.disconnectCodes.size} distinct DISCONNECT codes: ${codes}; in ${elapsed.toFixed(1)} s`,
  );
  console.log(`server: failures: ${stats.failures.length}`);
  for (const failure of stats.failures) {
    failed = true;
    console.log(
      `  ${failure.detail}\n    ${failure.origin}${
        failure.bytes ? `\n    bytes: [${failure.bytes.join(", ")}]` : ""
      }`,
    );
  }
}

Deno.exit(failed ? 1 : 0);
