/**
 * The chaos run inside the suite: fixed seed, 20 s, 30 clients (the full run, `deno task chaos`,
 * is 60 s with 200 clients). Only the invariants that hold today are asserted; the report, printed
 * every time, shows the others. Known violations (README, "Cluster"): acknowledged QoS 1/2 messages
 * missing for persistent subscribers that moved between nodes (even cleanly, between live nodes) or
 * whose node was killed or stopped, QoS 2 messages and wills delivered twice, `orphan:{node}` streams
 * left in Redis.
 *
 * @module
 */

import assert from "node:assert/strict";
import { redisAvailable, redisRequired } from "../storage/redis_server.ts";
import { runChaos } from "./chaos.ts";

const ignore = !(await redisAvailable()) && !redisRequired();

Deno.test({
  name: "`chaos` seed 1, 20 s, 30 clients: no client id live twice, no shared message to two members",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const report = await runChaos({ seconds: 20, clients: 30, seed: 1 });
    console.log(report.text);
    assert.ok(report.faults.length >= 2, "faults were injected");
    const asserted = report.violations.filter((v) => /two live connections|Shared message/.test(v));
    assert.deepEqual(asserted, [], `seed ${report.seed}`);
  },
});
