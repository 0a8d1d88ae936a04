import assert, { strictEqual } from "node:assert/strict";
import { runServerFuzz } from "./server_fuzz.ts";

/** The fixed seed of the run inside `deno task test`; `deno task fuzz --target server` takes any seed. */
const SEED = 20_240_602;

Deno.test("server fuzz: 600 mutated packets and 60 valid sequences over real sockets, bystander unharmed", async () => {
  const started = performance.now();
  const stats = await runServerFuzz({ seed: SEED, cases: 600, sequences: 60 });
  const seconds = (performance.now() - started) / 1000;
  const codes = [...stats.disconnectCodes.entries()].sort((a, b) => a[0] - b[0])
    .map(([code, n]) => `0x${code.toString(16)}×${n}`).join(" ");
  console.log(
    `server fuzz, seed ${SEED}: ${stats.cases} mutated packets (${stats.exact} with a known outcome), ` +
      `${stats.sequences} valid sequences (${stats.sequencePackets} packets), ` +
      `${stats.bystanderRoundTrips} bystander round trips; DISCONNECT codes ${codes} in ${
        seconds.toFixed(1)
      } s`,
  );
  for (const failure of stats.failures.slice(0, 5)) {
    console.error(
      `${failure.detail}\n  ${failure.origin}${failure.bytes ? `\n  bytes [${failure.bytes}]` : ""}`,
    );
  }
  strictEqual(stats.failures.length, 0, `${stats.failures.length} failures`);
  strictEqual(stats.cases, 600);
  strictEqual(stats.sequences, 60);
  assert(stats.exact > 400, `only ${stats.exact} cases with a known outcome`);
  for (const code of [0x81, 0x82, 0x95]) {
    assert(stats.disconnectCodes.has(code), `0x${code.toString(16)} never sent`);
  }
});
