import assert from "node:assert/strict";
import { formatReport, runSoak } from "./soak.ts";

/** The fixed seed of the run inside `deno task test`; `deno task soak` takes any seed. */
const SEED = 20_240_607;

Deno.test("soak: 200 clients for 60 s deliver QoS 1/2 as the spec says and leave nothing behind", async () => {
  const report = await runSoak({ seconds: 60, clients: 200, seed: SEED });
  console.log(formatReport(report));
  for (const check of report.checks) assert.ok(check.ok, `${check.name}: ${check.detail}`);
  assert.ok(report.elapsedSeconds < 90, `the run took ${report.elapsedSeconds} s`);
});
