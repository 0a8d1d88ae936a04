/**
 * The chaos run inside the suite: fixed seed, 20 s, 30 clients (the full run, `deno task chaos`,
 * is 60 s with 200 clients). Every invariant is asserted (see `chaos.ts`) but one class of QoS 2
 * duplicates: a message published in the instant between a dead node's claimer storing routes for
 * the sessions it adopted and the other nodes dropping the dead node's routes goes to both, and
 * reaches those sessions twice (directly, and from the dead node's inbox). It shows in some seeds
 * (seed 2 at 30 s, 40 clients); the report, printed every time, lists it. Nor is a will sent after a
 * clean disconnect from a node that was killed or stopped about then: the DISCONNECT reached the node but
 * its "ended cleanly" record was not yet in Redis when the node died, so the claimer sent the will (seen
 * in about one suite run of two, for one client). Both are in the README's "Not yet" list.
 *
 * @module
 */

import assert from "node:assert/strict";
import { redisAvailable, redisRequired } from "../storage/redis_server.ts";
import { runChaos } from "./chaos.ts";

const ignore = !(await redisAvailable()) && !redisRequired();

Deno.test({
  name: "`chaos` seed 1, 20 s, 30 clients: every invariant holds (but two known races around a claim)",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const report = await runChaos({ seconds: 20, clients: 30, seed: 1 });
    console.log(report.text);
    assert.ok(report.faults.length >= 2, "faults were injected");
    const known = [
      /^QoS 2 message \S+ delivered \d+ times to /,
      /^Will \S+ delivered \d+ times after a clean disconnect /,
    ];
    const asserted = report.violations.filter((v) => !known.some((pattern) => pattern.test(v)));
    assert.deepEqual(asserted.slice(0, 10), [], `seed ${report.seed}`);
  },
});
