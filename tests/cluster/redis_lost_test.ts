/**
 * A Redis that restarts without its data (no persistence), end to end: every node notices it on its
 * next lease renewal, says so once, closes its connections (0x8B), resets its retained mirror and
 * joins again; the cluster then works as new. A node warns at start when Redis runs that way
 * (`appendonly no`). Real redis-server, two broker processes.
 *
 * @module
 */

import assert from "node:assert/strict";
import { delay, waitFor } from "../helpers.ts";
import { redisAvailable, redisRequired } from "../storage/redis_server.ts";
import { connect, withCluster } from "./nodes.ts";

const ignore = !(await redisAvailable()) && !redisRequired();

Deno.test({
  name:
    "`cluster` Redis restarted without its data: nodes notice, drop their clients (0x8B), reset and join again",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withCluster(["a", "b"], { logOnFailure: /WRN|ERR|cluster/ }, async ({ redis, nodes, clients }) => { // no persistence: a restart comes back empty
      const [a, b] = nodes;
      const oldPub = await connect(a, "old-pub");
      const oldSub = await connect(b, "old-sub", 5, {
        clean: false,
        properties: { sessionExpiryInterval: 300 },
      });
      clients.push(oldPub, oldSub);
      const codes: number[] = [];
      for (const client of [oldPub, oldSub]) {
        client.on("error", () => {});
        client.on("disconnect", (packet) => codes.push(packet.reasonCode ?? 0));
      }
      await oldSub.subscribeAsync("t/#", { qos: 1 });
      await oldPub.publishAsync("r/old", "old", { qos: 1, retain: true });
      const marks = nodes.map((node) => node.output().length);

      await redis.kill("SIGKILL");
      await redis.restart();
      await waitFor(
        () => nodes.every((node, i) => /lost the cluster's data/.test(node.output().slice(marks[i]))),
        5000,
        "both nodes to notice",
      );
      await waitFor(() => codes.length === 2, 3000, "the old connections closed");
      assert.deepEqual(codes, [0x8b, 0x8b]);
      await waitFor(
        () => nodes.every((node, i) => /joined the cluster again/.test(node.output().slice(marks[i]))),
        5000,
        "both nodes joining again",
      );

      // The cluster works as new: routing across nodes, retained messages from version 1 again.
      const sub = await connect(b, "sub");
      const pub = await connect(a, "pub");
      clients.push(sub, pub);
      const got: string[] = [];
      sub.on("message", (topic) => got.push(topic));
      await sub.subscribeAsync("t/#", { qos: 1 });
      await delay(1000); // a route is in effect on every node within 1 s of its SUBACK
      await pub.publishAsync("t/1", "x", { qos: 1 });
      await waitFor(() => got.includes("t/1"), 3000, "a message across nodes after the reset");
      await pub.publishAsync("r/new", "new", { qos: 1, retain: true });
      const late = await connect(b, "late");
      clients.push(late);
      const retained: string[] = [];
      late.on("message", (topic) => retained.push(topic));
      await late.subscribeAsync("r/#", { qos: 1 });
      await waitFor(() => retained.includes("r/new"), 3000, "a retained message set after the reset");
      assert.deepEqual(retained, ["r/new"], "the lost retained message is gone from every mirror");
      for (const [i, node] of nodes.entries()) {
        const lines = node.output().slice(marks[i]).match(/lost the cluster's data/g) ?? [];
        assert.equal(lines.length, 1, `${node.id}: said once`);
        assert.doesNotMatch(node.output().slice(marks[i]), /was declared dead|stopped renewing/);
      }
    });
  },
});

Deno.test({
  name:
    "`cluster` a node warns at start when Redis keeps its writes in memory only (appendonly no), not otherwise",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const warning =
      /\[WRN\].*appendonly no: acknowledged messages and sessions outlive a node's death but not a restart/;
    await withCluster(["a"], ({ nodes }) => {
      assert.match(nodes[0].output(), warning);
      return Promise.resolve();
    });
    await withCluster(["a"], { redis: { appendonly: true } }, ({ nodes }) => {
      assert.doesNotMatch(nodes[0].output(), warning);
      return Promise.resolve();
    });
  },
});
