/**
 * The chaos run inside the suite, as issue 17 asks: fixed seed, 60 s, 200 clients, every invariant
 * asserted (see `chaos.ts`), the final report printed every time. `deno task chaos` runs other seeds,
 * lengths and sizes.
 *
 * @module
 */

import assert from "node:assert/strict";
import { redisAvailable, redisRequired } from "../storage/redis_server.ts";
import { runChaos } from "./chaos.ts";

const ignore = !(await redisAvailable()) && !redisRequired();

Deno.test({
  name: "`chaos` seed 1, 60 s, 200 clients: every invariant holds",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const report = await runChaos({ seconds: 60, clients: 200, seed: 1 });
    console.log(report.text);
    assert.ok(report.faults.length >= 4, "faults were injected");
    assert.deepEqual(report.violations.slice(0, 10), [], `seed ${report.seed}`);
  },
});
