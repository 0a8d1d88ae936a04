/**
 * A node stalled past its lease (SIGSTOP, then SIGCONT) after a survivor claimed it, end to end: the
 * claim happens once (wills once, sessions adopted), its clients move to another node meanwhile, and
 * when it wakes it closes its old connections at once (DISCONNECT 0x8B), acknowledges nothing more
 * for them, and joins again as a new member that serves new clients. Real redis-server, three broker
 * processes.
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "../mqtt.ts";
import { delay, waitFor } from "../helpers.ts";
import { redisAvailable, redisRequired } from "../storage/redis_server.ts";
import { connect, type Node, withCluster } from "./nodes.ts";

const ignore = !(await redisAvailable()) && !redisRequired();

/** The ids of the clients connected to a node, from its admin API. */
async function connectedOn(node: Node): Promise<string[]> {
  const response = await fetch(`${node.info}/api/clients?limit=1000`, { signal: AbortSignal.timeout(2000) });
  const body = await response.json() as { clients: { id: string; connected: boolean }[] };
  return body.clients.filter((client) => client.connected).map((client) => client.id);
}

Deno.test({
  name:
    "`cluster` a node stalled past its lease and claimed meanwhile drops its clients (0x8B) when it wakes and joins again",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const options = { info: true, logOnFailure: /WRN|ERR|INF.*cluster/ };
    await withCluster(["a", "b", "c"], options, async ({ nodes, clients }) => {
      const [a, b, c] = nodes;
      const watcher = await connect(a, "watcher", 5);
      clients.push(watcher);
      const wills: string[] = [];
      watcher.on("message", (topic) => wills.push(topic));
      await watcher.subscribeAsync("will/#", { qos: 1 });

      // Clients of b: persistent and clean, v5 and v3.1.1, with wills; a persistent subscriber.
      const quiet = { sessionExpiryInterval: 300 };
      const will = (topic: string) => ({ topic, payload: topic, qos: 1 as const, retain: false });
      const old = {
        persistent: await connect(b, "s-persistent", 5, {
          clean: false,
          properties: quiet,
          will: will("will/p"),
        }),
        clean: await connect(b, "s-clean", 5, { will: will("will/c") }),
        v4: await connect(b, "s-v4", 4, { will: will("will/v4") }),
        sub: await connect(b, "s-sub", 5, { clean: false, properties: quiet }),
        pub: await connect(b, "s-pub", 5),
      };
      const disconnects = new Map<string, number>();
      const closedAt = new Map<string, number>();
      for (const [name, client] of Object.entries(old)) {
        clients.push(client);
        client.on("error", () => {});
        client.on("disconnect", (packet) => disconnects.set(name, packet.reasonCode ?? 0));
        client.on("close", () => closedAt.set(name, Date.now()));
      }
      await old.sub.subscribeAsync("data/#", { qos: 1 });
      const pub = await connect(a, "s-pub-a", 5);
      clients.push(pub);
      const acked: string[] = [];
      const before: string[] = [];
      old.sub.on("message", (topic) => before.push(topic));
      await pub.publishAsync("data/before", "x", { qos: 1 });
      await waitFor(() => before.includes("data/before"), 3000, "a message to b before the stall");
      await delay(300);

      const mark = b.output().length;
      b.signal("SIGSTOP");
      const stoppedAt = Date.now();
      for (let i = 0; i < 5; i++) {
        await pub.publishAsync(`data/${i}`, "x", { qos: i % 2 === 0 ? 1 : 2 });
        acked.push(`data/${i}`);
      }
      // The old publisher on b sends while b is stalled: whatever b acknowledges must arrive.
      const fromB: string[] = [];
      for (let i = 0; i < 5; i++) {
        old.pub.publishAsync(`data/b${i}`, "x", { qos: 1 }).then(() => fromB.push(`data/b${i}`), () => {});
      }
      await waitFor(() => /Adopted \d+ sessions of b/.test(a.output() + c.output()), 8000, "the claim of b");
      const claimedAt = Date.now();
      await waitFor(() => ["will/p", "will/c", "will/v4"].every((w) => wills.includes(w)), 3000, "the wills");

      // The clients move to c while b is stalled (the old connections look alive to them).
      const sub = mqtt.connect(c.url, {
        clientId: "s-sub",
        protocolVersion: 5,
        clean: false,
        reconnectPeriod: 0,
        properties: quiet,
      });
      clients.push(sub);
      const received: string[] = [];
      sub.on("message", (topic) => received.push(topic));
      const connack = await new Promise<mqtt.IConnackPacket>((resolve) => sub.once("connect", resolve));
      assert.equal(connack.sessionPresent, true, "the adopted session is present on c");
      const moved = await connect(c, "s-persistent", 5, { clean: false, properties: quiet });
      clients.push(moved);
      const movedClean = await connect(c, "s-clean", 5);
      clients.push(movedClean);

      await delay(Math.max(0, 700 - (Date.now() - claimedAt)));
      b.signal("SIGCONT");
      const wokeAt = Date.now();
      console.log(`b stalled ${wokeAt - stoppedAt} ms, claimed ${claimedAt - stoppedAt} ms after the stall`);
      await waitFor(
        () => Object.keys(old).every((name) => closedAt.has(name)),
        3000,
        "b's old connections closed",
      );
      const closedAfter = Math.max(...closedAt.values()) - wokeAt;
      console.log(`b's old connections closed ${closedAfter} ms after it woke`);
      for (const name of ["persistent", "clean", "sub", "pub"]) {
        assert.equal(disconnects.get(name), 0x8b, `${name}: DISCONNECT 0x8B`);
      }
      await waitFor(() => /joined the cluster again/.test(b.output().slice(mark)), 8000, "b joining again");

      // No client id is connected on two nodes.
      const connected = await Promise.all(nodes.map(connectedOn));
      const seen = new Map<string, string>();
      for (const [i, ids] of connected.entries()) {
        for (const id of ids) {
          assert.ok(!seen.has(id), `${id} connected on ${seen.get(id)} and ${nodes[i].id}`);
          seen.set(id, nodes[i].id);
        }
      }
      assert.equal(seen.get("s-sub"), "c");
      assert.equal(seen.get("s-persistent"), "c");
      assert.deepEqual(connected[1], [], "b has no connection left");

      // b serves new clients, and messages cross it both ways.
      const fresh = await connect(b, "s-fresh", 5);
      clients.push(fresh);
      const freshGot: string[] = [];
      fresh.on("message", (topic) => freshGot.push(topic));
      await fresh.subscribeAsync("fresh/#", { qos: 1 });
      await delay(1000); // a route is in effect on every node within 1 s of its SUBACK
      await pub.publishAsync("fresh/1", "x", { qos: 1 });
      await waitFor(() => freshGot.includes("fresh/1"), 3000, "a message from a to b's new client");
      await fresh.publishAsync("data/from-fresh", "x", { qos: 1 });
      acked.push("data/from-fresh");
      for (let i = 5; i < 10; i++) {
        await pub.publishAsync(`data/${i}`, "x", { qos: 1 });
        acked.push(`data/${i}`);
      }

      // Nothing acknowledged is lost: by a, by b's new member, or by b before it knew.
      acked.push(...fromB);
      await waitFor(
        () => acked.every((topic) => received.includes(topic)),
        5000,
        "every acknowledged message",
      )
        .catch((error) => {
          throw new Error(`${error.message}: missing ${acked.filter((t) => !received.includes(t))}`);
        });
      console.log(`b acknowledged ${fromB.length} of the 5 messages sent to it while it stalled`);
      await delay(1000);
      assert.deepEqual([...wills].sort(), ["will/c", "will/p", "will/v4"], "each will once");
      const claims = (a.output() + c.output()).match(/Adopted \d+ sessions of b/g) ?? [];
      assert.equal(claims.length, 1, "b claimed once");
      assert.match(b.output().slice(mark), /was declared dead and claimed/);
    });
  },
});
