/**
 * The chaos run's shared-group check (invariant 5) on made-up histories: a second member is allowed only
 * after a session end of the first that left the message unacknowledged (MQTT 5.0 §4.8.2).
 *
 * @module
 */

import assert from "node:assert/strict";
import { type MemberConnection, type SharedReceipt, sharedViolations } from "./chaos.ts";

const lost: MemberConnection = { node: "a", from: 0 }; // ended without a confirmed clean end
const clean: MemberConnection = { node: "a", from: 0, closedAt: 150 }; // the broker confirmed its clean end
const receipt = (member: string, at: number, connection = lost): SharedReceipt => ({
  member,
  at,
  connection,
});

function check(
  receipts: SharedReceipt[],
  ends: Record<string, [number, number][]> = {},
  faults: [string, number, number][] = [],
) {
  const faulted = (node: string, from: number, to: number) =>
    faults.some(([n, start, end]) => n === node && start <= to && end >= from);
  return sharedViolations(new Map([["m1", receipts]]), new Map(Object.entries(ends)), faulted);
}

Deno.test("`chaos` shared check: one member, or the same member twice, is fine", () => {
  assert.deepEqual(check([receipt("A", 100)]), { violations: [], handedOff: 0, afterDisconnect: [] });
  assert.deepEqual(check([receipt("A", 100), receipt("A", 300)]), {
    violations: [],
    handedOff: 0,
    afterDisconnect: [],
  });
});

Deno.test("`chaos` shared check: two members with no session end in between is a violation", () => {
  assert.equal(check([receipt("A", 100), receipt("B", 300)]).violations.length, 1);
  // A session end before A got it, or after B did, does not allow it either.
  assert.equal(check([receipt("A", 100), receipt("B", 300)], { A: [[50, 60]] }).violations.length, 1);
  assert.equal(check([receipt("A", 100), receipt("B", 300)], { A: [[400, 450]] }).violations.length, 1);
});

Deno.test("`chaos` shared check: a hand-off after A's session ended with the message unacknowledged is allowed", () => {
  assert.deepEqual(check([receipt("A", 100), receipt("B", 300)], { A: [[200, 250]] }), {
    violations: [],
    handedOff: 1,
    afterDisconnect: [],
  });
});

Deno.test("`chaos` shared check: A's clean end, confirmed by its node that then stayed up, means A acknowledged it", () => {
  const receipts = [receipt("A", 100, clean), receipt("B", 300)];
  assert.equal(check(receipts, { A: [[200, 250]] }).violations.length, 1);
  // A fault of A's node before the session ended may have lost the acknowledgement: allowed.
  assert.equal(check(receipts, { A: [[200, 250]] }, [["a", 160, 190]]).violations.length, 0);
  // A fault of another node changes nothing.
  assert.equal(check(receipts, { A: [[200, 250]] }, [["b", 160, 190]]).violations.length, 1);
});

Deno.test("`chaos` shared check: a third member needs a session end of each member before it", () => {
  const receipts = [receipt("A", 100), receipt("B", 300), receipt("C", 500)];
  assert.equal(check(receipts, { A: [[200, 250]] }).violations.length, 1); // B kept it: C may not have it
  assert.deepEqual(check(receipts, { A: [[200, 250]], B: [[400, 450]] }).violations, []);
});

Deno.test("`chaos` shared check: a copy that arrived after A wrote its DISCONNECT was not acknowledged", () => {
  // A wrote DISCONNECT at 90, the message arrived at 100 (its PUBACK followed the DISCONNECT, which nothing may
  // follow [MQTT-3.14.4-1]: the broker reads nothing after it), the broker closed the connection at 150, and A came
  // back with a clean start at 200: its session ended with the message unacknowledged.
  const late: SharedReceipt = { ...receipt("A", 100, { ...clean, disconnectAt: 90 }), afterDisconnect: true };
  const result = check([late, receipt("B", 300)], { A: [[200, 250]] });
  assert.deepEqual(result.violations, []);
  assert.equal(result.handedOff, 1);
  assert.equal(result.afterDisconnect.length, 1);
  assert.match(result.afterDisconnect[0], /from A to B: A got it after it wrote its DISCONNECT/);
  // A copy before the DISCONNECT on the same connection was acknowledged: still a violation.
  const early: SharedReceipt = receipt("A", 80, { ...clean, disconnectAt: 90 });
  assert.equal(check([early, late, receipt("B", 300)], { A: [[200, 250]] }).violations.length, 1);
});
