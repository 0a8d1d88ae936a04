/**
 * A will sent, and messages a shared group's member gives back, leave the stored session and go to other
 * nodes in one Redis transaction: a node killed between the two writes neither loses them nor has its
 * claimer send them again. The node is killed at that point by a test fault (`hooks/cluster/test_fault.ts`):
 * it never sends the commit that forwards them, and dies 300 ms later while its session store writes on.
 * Before the change, the session store's write (the will removed from the record, the messages from the
 * session) was committed apart from the forward, so both tests lost the message. A persistent subscriber on
 * the dying node gets the will only once that commit is stored (it got it twice before: from the node, and
 * from its claimer).
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../mod.ts";
import { delay, RawClient, waitFor } from "../helpers.ts";
import { redisAvailable, redisRequired } from "../storage/redis_server.ts";
import { connect, connecting, type Node, startNode, withCluster } from "./nodes.ts";

const ignore = !(await redisAvailable()) && !redisRequired();
const FAULT = "BROKER_TEST_DIE_BEFORE_FORWARD";

function address(node: Node) {
  const url = new URL(node.url);
  return { host: url.hostname, port: Number(url.port) };
}

Deno.test({
  name: "`cluster` a will forwarded by a node that dies before the commit: its claimer sends it, once",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withCluster(["b"], { logOnFailure: /WRN|ERR|TEST/ }, async ({ redis, nodes, clients }) => {
      const [b] = nodes;
      const watcher = await connect(b, "watcher", 5, {
        clean: true,
        properties: { sessionExpiryInterval: 600 },
      });
      clients.push(watcher);
      const wills: string[] = [];
      watcher.on("message", (_topic, payload) => wills.push(String(payload)));
      await watcher.subscribeAsync("w/will/#", { qos: 2 });
      const a = await startNode(redis.address, "a", { env: { [FAULT]: "will-of-w1" } });
      nodes.push(a);
      // A persistent session: its record (with the will) is stored, and the will's removal is a session write.
      const carrier = await connect(a, "w1", 5, {
        clean: true,
        properties: { sessionExpiryInterval: 300 },
        will: { topic: "w/will/w1", payload: "will-of-w1", qos: 2, retain: false },
      });
      carrier.on("error", () => {});
      clients.push(carrier);
      await delay(300);
      carrier.stream.destroy(); // connection lost: the will goes out now (no delay)
      await waitFor(() => a.output().includes(`${FAULT}:`), 5000, "the test fault");
      await waitFor(() => wills.length > 0, 10_000, "the will, sent by a's claimer").catch(() => {});
      await delay(1500);
      assert.deepEqual(wills, ["will-of-w1"], "the will once");
    });
  },
});

Deno.test({
  name:
    "`cluster` a will reaches a persistent subscriber on the node that sends it only once its commit is stored, so once",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withCluster(["b"], { logOnFailure: /WRN|ERR|TEST/ }, async ({ redis, nodes, clients }) => {
      const [b] = nodes;
      const remote = await connect(b, "remote-watcher", 5, { properties: { sessionExpiryInterval: 600 } });
      clients.push(remote);
      await remote.subscribeAsync("w/will/#", { qos: 2 }); // so that the will is forwarded (the commit)
      const a = await startNode(redis.address, "a", { env: { [FAULT]: "will-of-w2" } });
      nodes.push(a);
      const persistent = { clean: false, properties: { sessionExpiryInterval: 600 } };
      const wills: string[] = [];
      const local = await connect(a, "local-watcher", 5, persistent);
      local.on("error", () => {});
      local.on("message", (_topic, payload) => wills.push(String(payload)));
      clients.push(local);
      // QoS 1: MQTT.js hands a QoS 1 message over as it arrives (a QoS 2 one only at its PUBREL, which a
      // client that delivers at PUBLISH, as MQTT 5.0 §4.3.3 allows, would not wait for).
      await local.subscribeAsync("w/will/#", { qos: 1 });
      const carrier = await connect(a, "w2", 5, {
        properties: { sessionExpiryInterval: 300 },
        will: { topic: "w/will/w2", payload: "will-of-w2", qos: 2, retain: false },
      });
      carrier.on("error", () => {});
      clients.push(carrier);
      await delay(300);
      carrier.stream.destroy(); // the will goes out now; a dies instead of committing it
      await waitFor(() => a.output().includes(`${FAULT}:`), 5000, "the test fault");
      await waitFor(() => /Adopted \d+ sessions of a/.test(b.output()), 10_000, "a's claim");
      // Listening before the CONNACK: the queued will follows it at once.
      const again = connecting(b, "local-watcher", persistent);
      clients.push(again.client);
      await again.connack;
      await waitFor(() => wills.length + again.got.length > 0, 5000, "the will").catch(() => {});
      await delay(1500);
      assert.deepEqual([...wills, ...again.got], ["will-of-w2"], "the will once, from a's claimer");
    });
  },
});

Deno.test({
  name:
    "`cluster` messages a shared member gives back, forwarded by a node that dies before the commit: another member gets them once",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withCluster(["b"], { logOnFailure: /WRN|ERR|TEST/ }, async ({ redis, nodes, clients }) => {
      const [b] = nodes;
      const a = await startNode(redis.address, "a", { env: { [FAULT]: "handoff-2" } });
      nodes.push(a);
      const { client: m } = await RawClient.connect(address(a), "member-m", {
        connect: { clean: true },
        properties: { receiveMaximum: 1, sessionExpiryInterval: 300 },
      });
      try {
        await m.subscribe([{ filter: "$share/g/t", qos: 1 }]);
        const pub = await connect(b, "pub");
        clients.push(pub);
        await delay(1000); // m's route is known on b
        for (const payload of ["handoff-1", "handoff-2", "handoff-3"]) {
          await pub.publishAsync("t", payload, { qos: 1 });
        }
        // handoff-1 in flight to m (never acknowledged), the others queued for it.
        assert.equal(
          new TextDecoder().decode((await m.expect(PacketType.Publish, 5000)).payload),
          "handoff-1",
        );
        const c = await connect(b, "member-c");
        clients.push(c);
        const got: string[] = [];
        c.on("message", (_topic, payload) => got.push(String(payload)));
        await c.subscribeAsync("$share/g/t", { qos: 1 });
        await delay(1000); // c's route is known on a
        // m leaves the group: what was queued for it goes to c, on b, through a's commit that never comes.
        await m.send({
          fixedHeader: { type: PacketType.Unsubscribe },
          packetId: 2,
          filters: [{ filter: "$share/g/t", qos: 0 }],
        });
        await waitFor(() => a.output().includes(`${FAULT}:`), 5000, "the test fault");
        m.close();
        await waitFor(() => /Adopted \d+ sessions of a/.test(b.output()), 10_000, "b's claim of a");
        assert.deepEqual(got, [], "nothing forwarded before a died");
        // m's session, adopted by b, still holds the messages: back with a clean start, it ends and they go on.
        const { client: again } = await RawClient.connect(address(b), "member-m", {
          connect: { clean: true },
        });
        again.close();
        await waitFor(() => got.length >= 3, 5000, "the messages of m's session, on c").catch(() => {});
        await delay(500);
        assert.deepEqual(got, ["handoff-1", "handoff-2", "handoff-3"], "each message once, to c");
      } finally {
        m.close();
      }
    });
  },
});

Deno.test({
  name:
    "`cluster` a shared member back with a clean start on its node, which dies before the hand-off commit: another member gets them once",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withCluster(["b"], { logOnFailure: /WRN|ERR|TEST/ }, async ({ redis, nodes, clients }) => {
      const [b] = nodes;
      const a = await startNode(redis.address, "a", { env: { [FAULT]: "clean-2" } });
      nodes.push(a);
      const persistent = { clean: true, properties: { receiveMaximum: 1, sessionExpiryInterval: 300 } };
      const { client: m } = await RawClient.connect(address(a), "member-m", persistent);
      await m.subscribe([{ filter: "$share/g/t", qos: 1 }]);
      const pub = await connect(b, "pub");
      clients.push(pub);
      const c = await connect(b, "member-c");
      clients.push(c);
      const got: string[] = [];
      c.on("message", (_topic, payload) => got.push(String(payload)));
      await delay(1000); // m's route is known on b
      m.close(); // m is away: its session (on a) keeps what the group gives it
      for (const payload of ["clean-1", "clean-2", "clean-3"]) {
        await pub.publishAsync("t", payload, { qos: 1 });
      }
      await c.subscribeAsync("$share/g/t", { qos: 1 });
      await delay(1000); // c's route is known on a
      got.length = 0; // only what m's session gives back counts
      // m comes back to a with a clean start: its session ends, and what it held goes to c, on b, through
      // a's commit that never comes.
      const { client: back } = await RawClient.connect(address(a), "member-m", { connect: { clean: true } })
        .catch(() => ({ client: undefined }));
      back?.close();
      await waitFor(() => a.output().includes(`${FAULT}:`), 5000, "the test fault");
      await waitFor(() => /Adopted \d+ sessions of a/.test(b.output()), 10_000, "b's claim of a");
      // m's session, adopted by b, still holds them: back with a clean start there, it ends and they go on.
      const { client: again } = await RawClient.connect(address(b), "member-m", { connect: { clean: true } });
      again.close();
      await waitFor(() => got.length >= 3, 5000, "the messages of m's session, on c").catch(() => {});
      await delay(500);
      assert.deepEqual(got.sort(), ["clean-1", "clean-2", "clean-3"], "each message once, to c");
    });
  },
});
