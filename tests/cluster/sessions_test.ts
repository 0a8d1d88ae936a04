/**
 * Cluster sessions end to end: takeover across nodes and a persistent session resumed on another
 * node, with a real redis-server and three broker processes.
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "mqtt";
import { delay, waitFor } from "../helpers.ts";
import { redisAvailable, redisRequired, startRedis } from "../storage/redis_server.ts";
import { type Node, startNodes, stopNodes } from "./nodes.ts";

const ignore = !(await redisAvailable()) && !redisRequired();

function connect(
  node: Node,
  clientId: string,
  protocolVersion: 4 | 5 = 5,
  options: mqtt.IClientOptions = {},
) {
  return mqtt.connectAsync(node.url, { clientId, protocolVersion, reconnectPeriod: 0, ...options });
}

Deno.test({
  name: "`cluster` sessions: takeover across nodes (old gets 0x8E) and a session resumed on another node",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const redis = await startRedis();
    let nodes: Node[] = [];
    try {
      nodes = await startNodes(redis.address, ["a", "b", "c"]);
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
    } finally {
      await stopNodes(nodes);
      await redis.stop();
    }
  },
});
