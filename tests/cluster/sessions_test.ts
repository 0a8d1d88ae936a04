/**
 * Cluster sessions end to end: takeover across nodes and a persistent session resumed on another
 * node, with a real redis-server and three broker processes.
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "../mqtt.ts";
import { delay, waitFor } from "../helpers.ts";
import { redisAvailable, redisRequired } from "../storage/redis_server.ts";
import { connect, withCluster } from "./nodes.ts";

const ignore = !(await redisAvailable()) && !redisRequired();

Deno.test({
  name: "`cluster` sessions: takeover across nodes (old gets 0x8E) and a session resumed on another node",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withCluster(["a", "b", "c"], async ({ nodes }) => {
      const [a, b, c] = nodes;

      // Takeover: the same id on b while connected on a.
      const first = await connect(a, "dev-1", 5, {
        clean: false,
        properties: { sessionExpiryInterval: 300 },
      });
      await first.subscribeAsync("cmd/dev-1/#", { qos: 1 });
      const reasons: number[] = [];
      first.on("disconnect", (packet) => reasons.push(packet.reasonCode ?? -1));
      const closed = new Promise<void>((resolve) => first.on("close", () => resolve()));
      const second = await connect(b, "dev-1", 5, {
        clean: false,
        properties: { sessionExpiryInterval: 300 },
      });
      assert.equal(second.connected, true);
      await closed;
      assert.deepEqual(reasons, [0x8e], "the old connection got DISCONNECT 0x8E");

      // The subscription moved with the session: a publish on c reaches the new connection on b.
      const got: string[] = [];
      second.on("message", (topic, payload) => got.push(`${topic}=${payload}`));
      const pub = await connect(c, "cmd-pub");
      await pub.publishAsync("cmd/dev-1/a", "1", { qos: 1 });
      await waitFor(() => got.length === 1, 3000, "the message on the new owner");

      // Offline: messages queue on b; the client resumes on c and gets them all, in order.
      await second.endAsync();
      const sent: string[] = [];
      for (let i = 0; i < 20; i++) {
        await pub.publishAsync(`cmd/dev-1/q`, `m${i}`, { qos: 1 });
        sent.push(`cmd/dev-1/q=m${i}`);
      }
      const resumed: string[] = [];
      const third = mqtt.connect(c.url, {
        clientId: "dev-1",
        protocolVersion: 5,
        clean: false,
        reconnectPeriod: 0,
        properties: { sessionExpiryInterval: 300 },
      });
      third.on("message", (topic, payload) => resumed.push(`${topic}=${payload}`));
      const connack = await new Promise<mqtt.IConnackPacket>((resolve) => third.once("connect", resolve));
      assert.equal(connack.sessionPresent, true, "session present on another node");
      await waitFor(() => resumed.length >= sent.length, 5000, "the queued messages");
      await delay(200);
      assert.deepEqual(resumed, sent, "every queued message, in order, once");

      // v3.1.1 takeover across nodes: the old connection is closed.
      const old3 = await connect(a, "dev-3", 4, { clean: false });
      const old3Closed = new Promise<void>((resolve) => old3.on("close", () => resolve()));
      const new3 = await connect(b, "dev-3", 4, { clean: false });
      await old3Closed;
      assert.equal(new3.connected, true);
      await Promise.all([third.endAsync(), pub.endAsync(), new3.endAsync()]);
    });
  },
});

Deno.test({
  name:
    "`cluster` a SIGKILLed node is claimed once within 3 s, its routes dropped; its clients connect elsewhere",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withCluster(["a", "b", "c"], async ({ nodes }) => {
      const [a, b, c] = nodes;
      const victim = await connect(b, "on-b", 5, {
        clean: false,
        properties: { sessionExpiryInterval: 300 },
      });
      await victim.subscribeAsync("k/#", { qos: 1 });
      victim.on("error", () => {});
      const killedAt = Date.now();
      await b.stop("SIGKILL");
      await waitFor(
        () => /Node b stopped renewing its lease/.test(a.output() + c.output()),
        5000,
        "a survivor to claim b",
      );
      const detected = Date.now() - killedAt;
      assert.ok(detected < 3500, `detected in ${detected} ms`);
      const claims = (a.output() + c.output()).match(/Node b stopped renewing its lease/g) ?? [];
      assert.equal(claims.length, 1, "claimed exactly once");
      // The id is free at once for a connection on another node (the dead owner is not waited for).
      const started = Date.now();
      const again = await connect(c, "on-b", 5, { clean: false, properties: { sessionExpiryInterval: 300 } });
      assert.ok(Date.now() - started < 1000, "CONNACK without waiting for the dead node");
      // Routing among the survivors goes on.
      const got: string[] = [];
      again.on("message", (topic) => got.push(topic));
      await again.subscribeAsync("k/#", { qos: 1 });
      const pub = await connect(a, "k-pub");
      await pub.publishAsync("k/1", "x", { qos: 1 });
      await waitFor(() => got.length === 1, 3000, "delivery after the death");
      await Promise.all([pub.endAsync(), again.endAsync(), victim.endAsync(true)]);
    });
  },
});
