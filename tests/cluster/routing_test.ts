/**
 * Cluster routing end to end: a real redis-server and three broker processes; MQTT.js v5 and v3.1.1
 * clients on different nodes.
 *
 * @module
 */

import assert from "node:assert/strict";
import { delay, waitFor } from "../helpers.ts";
import { redisAvailable, redisRequired } from "../storage/redis_server.ts";
import { connect, withCluster } from "./nodes.ts";

const ignore = !(await redisAvailable()) && !redisRequired();

Deno.test({
  name: "`cluster` routes QoS 0, 1 and 2 across three nodes started at once, once per client",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withCluster(["a", "b", "c"], { info: true }, async ({ nodes }) => {
      const [a, b, c] = nodes;
      const subB = await connect(b, "sub-b");
      const subC = await connect(c, "sub-c", 4);
      const received: Record<string, string[]> = { b: [], c: [] };
      subB.on("message", (topic, payload) => received.b.push(`${topic}=${payload}`));
      subC.on("message", (topic, payload) => received.c.push(`${topic}=${payload}`));
      // Overlapping subscriptions on b: one delivery at the highest QoS.
      await subB.subscribeAsync({ "r/#": { qos: 2 }, "r/+/x": { qos: 1 } });
      await subC.subscribeAsync("r/#", { qos: 2 });
      const pub = await connect(a, "pub-a");
      const sent: string[] = [];
      for (let i = 0; i < 30; i++) {
        const qos = (i % 3) as 0 | 1 | 2;
        await pub.publishAsync(`r/${qos}/x`, `m${i}`, { qos });
        sent.push(`r/${qos}/x=m${i}`);
      }
      await waitFor(() => received.b.length >= 30 && received.c.length >= 30, 10_000, "every message");
      await delay(300);
      // MQTT.js emits a QoS 2 message at PUBREL: order is compared per QoS level.
      for (const [name, got] of Object.entries(received)) {
        for (const qos of [0, 1, 2]) {
          const of = (list: string[]) => list.filter((m) => m.startsWith(`r/${qos}/`));
          assert.deepEqual(of(got), of(sent), `${name}: every QoS ${qos} message once, in order`);
        }
        assert.equal(got.length, sent.length, `${name}: no extra copies`);
      }
      // Local traffic on one node works too.
      const local: string[] = [];
      const subA = await connect(a, "sub-a");
      subA.on("message", (topic) => local.push(topic));
      await subA.subscribeAsync("local/t", { qos: 1 });
      await pub.publishAsync("local/t", "x", { qos: 1 });
      await waitFor(() => local.length === 1);
      // The node id and the cluster's nodes in /api/info, /metrics and $SYS.
      const info = await (await fetch(`${a.info}/api/info`)).json();
      assert.equal(info.node_id, "a");
      assert.deepEqual(info.cluster_nodes.map((n: { id: string; alive: boolean }) => [n.id, n.alive]), [
        ["a", true],
        ["b", true],
        ["c", true],
      ]);
      const metrics = await (await fetch(`${a.info}/metrics`)).text();
      assert.match(metrics, /mqtt_cluster_node_alive\{node="b"\} 1/);
      const sys: string[] = [];
      subA.on("message", (topic, payload) => sys.push(`${topic}=${payload}`));
      await subA.subscribeAsync("$SYS/broker/cluster/node_id");
      await waitFor(() => sys.includes("$SYS/broker/cluster/node_id=a"), 3000, "$SYS node id");
      await Promise.all([pub.endAsync(), subA.endAsync(), subB.endAsync(), subC.endAsync()]);
    });
  },
});

Deno.test({
  name: "`cluster` retained messages: 1,000 publish-on-a/subscribe-on-b trials, cleared on b for c",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withCluster(["a", "b", "c"], async ({ nodes }) => {
      const [a, b, c] = nodes;
      const lanes = 10;
      const trials = 1000;
      const late: string[] = [];
      const started = Date.now();
      await Promise.all(Array.from({ length: lanes }, async (_, lane) => {
        const pub = await connect(a, `ret-pub-${lane}`);
        const sub = await connect(b, `ret-sub-${lane}`);
        let expected = "";
        let seen: () => void = () => {};
        sub.on("message", (topic, payload, packet) => {
          if (packet.retain && `${topic}=${payload}` === expected) seen();
        });
        for (let i = lane; i < trials; i += lanes) {
          const topic = `ret/${i}`;
          expected = `${topic}=v${i}`;
          await pub.publishAsync(topic, `v${i}`, { qos: 1, retain: true });
          const arrived = new Promise<boolean>((resolve) => {
            seen = () => resolve(true);
            setTimeout(() => resolve(false), 1000);
          });
          await sub.subscribeAsync(topic, { qos: 0 });
          if (!(await arrived)) late.push(topic);
          await sub.unsubscribeAsync(topic);
        }
        await Promise.all([pub.endAsync(), sub.endAsync()]);
      }));
      assert.deepEqual(
        late,
        [],
        "every retained message seen by a later subscribe on another node within 1 s",
      );
      console.log(`${trials} retained trials in ${Date.now() - started} ms`);

      // Cleared on b: a subscribe on c sees nothing; replaced on c: a sees the new value.
      const clearer = await connect(b, "ret-clear");
      await clearer.publishAsync("ret/7", "", { qos: 1, retain: true });
      await clearer.publishAsync("ret/8", "new", { qos: 1, retain: true });
      const viewer = await connect(c, "ret-view");
      const got: string[] = [];
      viewer.on("message", (topic, payload) => got.push(`${topic}=${payload}`));
      await viewer.subscribeAsync(["ret/7", "ret/8"], { qos: 1 });
      await delay(300);
      assert.deepEqual(got, ["ret/8=new"]);
      await Promise.all([clearer.endAsync(), viewer.endAsync()]);
    });
  },
});

Deno.test({
  name: "`cluster` shared subscriptions: one member per message cluster-wide, even over 3 members on 2 nodes",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withCluster(["a", "b", "c"], async ({ nodes }) => {
      const [a, b, c] = nodes;
      const members = [await connect(b, "m1"), await connect(b, "m2", 4), await connect(c, "m3")];
      const counts = [0, 0, 0];
      const seen = new Map<string, number>();
      members.forEach((member, i) => {
        member.on("message", (_topic, payload) => {
          counts[i]++;
          seen.set(String(payload), (seen.get(String(payload)) ?? 0) + 1);
        });
      });
      for (const member of members) await member.subscribeAsync("$share/g/work/#", { qos: 1 });
      const pub = await connect(a, "work-pub");
      const total = 600;
      for (let i = 0; i < total; i++) await pub.publishAsync(`work/${i % 7}`, `job${i}`, { qos: 1 });
      await waitFor(() => seen.size === total, 10_000, "every job");
      await delay(300);
      assert.equal(counts.reduce((x, y) => x + y), total, "each job to exactly one member");
      for (const count of counts) {
        assert.ok(Math.abs(count - total / 3) <= total / 30, `spread within 10%: ${counts.join(", ")}`);
      }
      await Promise.all([pub.endAsync(), ...members.map((m) => m.endAsync())]);
    });
  },
});

Deno.test({
  name: "`cluster` a bad Redis address at start: a clear error naming it, exit code 1",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { startNode } = await import("./nodes.ts");
    const node = await startNode("127.0.0.1:1", "lonely", { noWait: true });
    const code = await node.stop("SIGCONT");
    assert.equal(code, 1);
    assert.match(node.output(), /Cannot reach the cluster's Redis at 127\.0\.0\.1:1/);
  },
});

Deno.test({
  name:
    "`cluster` shared subscriptions: a node whose members are all disconnected gets none of a group's new messages while a member elsewhere is connected",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withCluster(["a", "b"], async ({ nodes, clients }) => {
      const [a, b] = nodes;
      const persistent = { clean: false, properties: { sessionExpiryInterval: 300 } };
      const away = await connect(a, "member-away", 5, persistent);
      await away.subscribeAsync("$share/g/s/+", { qos: 1 });
      await away.endAsync(); // its session on a keeps what the group gives it
      const here = await connect(b, "member-here");
      clients.push(here);
      const got: string[] = [];
      here.on("message", (_topic, payload) => got.push(String(payload)));
      await here.subscribeAsync("$share/g/s/+", { qos: 1 });
      const pubA = await connect(a, "pub-a");
      const pubB = await connect(b, "pub-b");
      clients.push(pubA, pubB);
      await delay(1500); // routes known, and each node's lease report says who is connected
      const sent: string[] = [];
      for (let i = 0; i < 10; i++) {
        for (const pub of [pubA, pubB]) {
          const text = `${pub.options.clientId}-${i}`;
          await pub.publishAsync("s/x", text, { qos: 1 });
          sent.push(text);
        }
      }
      await waitFor(() => got.length >= sent.length, 5000, "every message, on b").catch(() => {});
      assert.deepEqual(got.sort(), sent.sort(), "every message to the connected member");
      // The disconnected member's session got none of them.
      const queued: string[] = [];
      const back = await connect(a, "member-away", 5, persistent);
      clients.push(back);
      back.on("message", (_topic, payload) => queued.push(String(payload)));
      await delay(500);
      assert.deepEqual(queued, [], "nothing waited in the disconnected member's session");
    });
  },
});
