/**
 * The lease gate that withholds acknowledgements until the node's lease is known current.
 *
 * @module
 */

import assert from "node:assert/strict";
import { LeaseGate } from "../../hooks/cluster/health.ts";

Deno.test("`LeaseGate` holds until a renewal finds the lease current, and lets go for good once stopped", async () => {
  const gate = new LeaseGate();
  const waiting = gate.held();
  assert.ok(waiting, "no renewal yet: held");
  gate.renewed(Date.now(), 10_000);
  await waiting;
  assert.equal(gate.held(), undefined, "current");
  gate.closed = true;
  assert.ok(gate.held(), "closed: held whatever the clock says");
  const before = gate.held()!;
  gate.stop();
  await before;
  assert.equal(gate.held(), undefined, "a wait begun after the stop ends at once");
});
