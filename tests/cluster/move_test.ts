/**
 * A persistent session that moves between live nodes keeps receiving: after a clean disconnect on one
 * node and a resume on another, messages published anywhere reach it (found by the chaos run: the
 * resumed session got session present and then nothing more).
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "../mqtt.ts";
import { delay, waitFor } from "../helpers.ts";
import { redisAvailable, redisRequired, startRedis } from "../storage/redis_server.ts";
import { type Node, startNodes, stopNodes } from "./nodes.ts";

const ignore = !(await redisAvailable()) && !redisRequired();

function connect(node: Node, clientId: string, options: mqtt.IClientOptions = {}) {
  return mqtt.connectAsync(node.url, { clientId, protocolVersion: 5, reconnectPeriod: 0, ...options });
}

const persistent = { clean: false, properties: { sessionExpiryInterval: 300 } };

Deno.test({
  name: "`cluster` a persistent session moved between live nodes keeps receiving from every node",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const redis = await startRedis();
    let nodes: Node[] = [];
    try {
      nodes = await startNodes(redis.address, ["a", "b", "c"]);
      const [a, b, c] = nodes;
      const publishers = await Promise.all([a, b, c].map((n) => connect(n, `pub-${n.id}`)));
      let sub = await connect(a, "mover", persistent);
      await sub.subscribeAsync("m/#", { qos: 1 });
      const got: string[] = [];
      const expected: string[] = [];
      let round = 0;
      const publishAll = async () => {
        for (const p of publishers) {
          const text = `r${round}-${p.options.clientId}`;
          expected.push(text);
          await p.publishAsync("m/x", text, { qos: 1 });
        }
        round++;
      };
      sub.on("message", (_t, payload) => got.push(String(payload)));
      await publishAll();
      await waitFor(() => got.length >= expected.length, 3000, "messages on a");
      for (const next of [b, c, a, c]) {
        await sub.endAsync();
        sub = mqtt.connect(next.url, {
          clientId: "mover",
          protocolVersion: 5,
          reconnectPeriod: 0,
          ...persistent,
        });
        sub.on("message", (_t, payload) => got.push(String(payload)));
        const connack = await new Promise<mqtt.IConnackPacket>((resolve) => sub.once("connect", resolve));
        assert.equal(connack.sessionPresent, true, `session present on ${next.id}`);
        await publishAll();
        await waitFor(() => got.length >= expected.length, 3000, `messages after the move to ${next.id}`)
          .catch(() => {});
        await delay(100);
        assert.deepEqual([...got].sort(), [...expected].sort(), `every message after the move to ${next.id}`);
      }
      await Promise.all([...publishers.map((p) => p.endAsync()), sub.endAsync()]);
    } finally {
      await stopNodes(nodes);
      await redis.stop();
    }
  },
});
