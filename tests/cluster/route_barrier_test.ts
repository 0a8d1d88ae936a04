/**
 * A session that moves to a node where its route is new loses nothing that a third node, slow to apply
 * route announcements, publishes meanwhile (issue 12's route barrier). The third node is started with
 * the test-only `BROKER_TEST_ROUTE_ANNOUNCEMENT_DELAY_MS` (see `hooks/cluster/test_fault.ts`): it applies
 * every other node's route announcement 500 ms late, as a node with a busy event loop might. Before the
 * barrier, the new owner trusted its new route to be known everywhere 100 ms after it was stored: what
 * the slow node routed to the old owner only, after the old owner had let the session go, was lost
 * although its publisher had its PUBACK.
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "../mqtt.ts";
import { delay, waitFor } from "../helpers.ts";
import { redisAvailable, redisRequired } from "../storage/redis_server.ts";
import { connect, startNode, withCluster } from "./nodes.ts";
import { ROUTE_DELAY_ENV } from "../../hooks/cluster/test_fault.ts";
import { type BarrierNode, RouteBarriers } from "../../hooks/cluster/route_barrier.ts";

const ignore = !(await redisAvailable()) && !redisRequired();

Deno.test({
  name:
    "`cluster` a session moving to a node where its route is new gets every message a node slow to apply routes acknowledged",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withCluster(
      ["a", "b"],
      { logOnFailure: /WRN|ERR|mover|[Bb]arrier/ },
      async ({ redis, nodes, clients }) => {
        const [a, b] = nodes;
        const c = await startNode(redis.address, "c", { env: { [ROUTE_DELAY_ENV]: "500" } });
        nodes.push(c);
        const options = {
          protocolVersion: 5 as const,
          reconnectPeriod: 0,
          clean: false,
          properties: { sessionExpiryInterval: 300 },
        };
        const got = new Set<string>();
        const listen = (client: mqtt.MqttClient) =>
          client.on("message", (_t, payload) => got.add(String(payload)));
        let sub = await mqtt.connectAsync(a.url, { clientId: "mover", ...options });
        clients.push(sub);
        listen(sub);
        await sub.subscribeAsync("m/#", { qos: 1 });
        await delay(1000); // c has a's route (it applies it 500 ms late)
        const pub = await connect(c, "pub-c");
        clients.push(pub);
        const acked: string[] = [];
        let running = true;
        const publishing = (async () => {
          for (let i = 0; running; i++) {
            if (!(await pub.publishAsync("m/x", `c-${i}`, { qos: 1 }).then(() => true, () => false))) break;
            acked.push(`c-${i}`);
            await delay(2);
          }
        })();
        await delay(300);
        const moves: number[] = [];
        // Each move makes the route new where it goes: the node left drops its route, and the reservation
        // a claim makes goes a lease (2.5 s) after it.
        for (const next of [b, a, b]) {
          await sub.endAsync();
          const started = Date.now();
          sub = mqtt.connect(next.url, { clientId: "mover", connectTimeout: 5000, ...options });
          clients.push(sub);
          listen(sub);
          const connack = await new Promise<mqtt.IConnackPacket>((resolve, reject) => {
            sub.once("connect", resolve);
            sub.once("close", () => reject(new Error(`the move to ${next.id} failed`)));
          });
          moves.push(Date.now() - started);
          assert.equal(connack.sessionPresent, true, `session present on ${next.id}`);
          await delay(3000);
        }
        running = false;
        await publishing;
        await waitFor(() => acked.every((text) => got.has(text)), 5000, "every acknowledged message").catch(
          () => {},
        );
        const missing = acked.filter((text) => !got.has(text));
        console.log(`moves took ${moves.join(", ")} ms; ${acked.length} messages acknowledged`);
        assert.ok(acked.length > 500, `published all along (${acked.length})`);
        assert.deepEqual(missing, [], `${missing.length} of ${acked.length} acknowledged messages missing`);
      },
    );
  },
});

/** A node for {@linkcode RouteBarriers} alone: what it sends, and members to change at will. */
function fakeNode(id: string, others: string[]) {
  const sent: { to: string; control: Record<string, unknown> }[] = [];
  const members = new Map<string, string>([[id, "1"], ...others.map((o) => [o, "1"] as [string, string])]);
  const applied = new Map<string, number>();
  const stored = new Map<string, number>();
  let seq = 0;
  const node: BarrierNode = {
    nodeId: id,
    leaseMs: 200,
    members: () =>
      Promise.resolve([...members].map(([id, incarnation]) => ({ id, lease: "{}", incarnation }))),
    control: (to, control) => sent.push({ to, control }),
    sync: () => Promise.resolve(),
    routeSeq: () => seq,
    appliedSeq: (node) => applied.get(node),
    loadRoutes: (node) => {
      if (stored.has(node)) applied.set(node, stored.get(node)!);
      return Promise.resolve();
    },
    gone: () => false,
  };
  return { node, sent, members, applied, stored, addRoute: () => ++seq };
}

Deno.test("`RouteBarriers` asks every other node once per unconfirmed route, and goes on with their answers", async () => {
  const b = fakeNode("b", ["a", "c"]);
  const barriers = new RouteBarriers(b.node);
  barriers.created("m/#", b.addRoute());
  const first = barriers.known(["m/#"]);
  const second = barriers.known(["m/#"]); // the same barrier
  await delay(5);
  assert.deepEqual(b.sent.map(({ to, control }) => [to, control.kind, control.seq]), [
    ["a", "barrier", 1],
    ["c", "barrier", 1],
  ]);
  let done = false;
  Promise.all([first, second]).then(() => done = true);
  const id = b.sent[0].control.id;
  assert.equal(barriers.controlled({ kind: "barrier-ack", id, node: "a" }), true);
  await delay(5);
  assert.equal(done, false, "waits for c");
  barriers.controlled({ kind: "barrier-ack", id, node: "c" });
  await Promise.all([first, second]);
  await barriers.known(["m/#"]); // confirmed: nothing sent
  assert.equal(b.sent.length, 2);
  assert.equal(barriers.controlled({ kind: "release" }), false, "not a barrier's");
});

Deno.test("`RouteBarriers` stops waiting for a node once it is claimed or joined again, not while it is registered", async () => {
  const b = fakeNode("b", ["a", "c"]);
  const barriers = new RouteBarriers(b.node);
  barriers.created("m/#", b.addRoute());
  let done = false;
  const known = barriers.known(["m/#"]).then(() => done = true);
  await delay(5);
  barriers.controlled({ kind: "barrier-ack", id: b.sent[0].control.id, node: "a" });
  await delay(250);
  assert.equal(done, false, "c is still registered (with or without a lease)");
  b.members.set("c", "2"); // claimed, and joined again (it loaded every route as it joined)
  await known;
});

Deno.test("`RouteBarriers` answers a barrier once its table has the sender's routes, loading them if needed", async () => {
  const c = fakeNode("c", ["b"]);
  const barriers = new RouteBarriers(c.node);
  c.applied.set("b", 3);
  c.stored.set("b", 5);
  assert.equal(barriers.controlled({ kind: "barrier", node: "b", seq: 3, id: "x" }), true);
  assert.equal(barriers.controlled({ kind: "barrier", node: "b", seq: 5, id: "y" }), true);
  await delay(5);
  assert.deepEqual(c.sent.map(({ to, control }) => [to, control.kind, control.id, control.node]), [
    ["b", "barrier-ack", "x", "c"],
    ["b", "barrier-ack", "y", "c"],
  ]);
  assert.equal(c.applied.get("b"), 5, "loaded");
});
