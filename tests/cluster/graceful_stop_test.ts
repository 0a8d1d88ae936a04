/**
 * A node stopped gracefully (SIGTERM): the persistent sessions it held keep collecting their QoS 1
 * messages, published on the other nodes while and after it stops, and resume elsewhere with all of them;
 * the wills of its clients go out once (a delayed one too, from the node that adopted its session).
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
  name:
    "`cluster` a node stopped gracefully: its persistent sessions keep collecting and resume on another node",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withCluster(["a", "b"], async ({ nodes, clients }) => {
      const [a, b] = nodes;
      const persistent = { clean: false, properties: { sessionExpiryInterval: 300 } };
      const subscriber = await connect(a, "keeper", 5, persistent);
      await subscriber.subscribeAsync("g/#", { qos: 1 });
      subscriber.end(true);
      const publisher = await connect(b, "pub", 5);
      clients.push(publisher);
      // Wills of clients on a: one sent at once, one after a 1 s delay (its session lives on).
      const wills = new Map<string, number>();
      publisher.on(
        "message",
        (topic) => topic.startsWith("will/") && wills.set(topic, (wills.get(topic) ?? 0) + 1),
      );
      await publisher.subscribeAsync("will/#", { qos: 1 });
      for (const [id, willDelayInterval] of [["w0", 0], ["w1", 1]] as const) {
        clients.push(
          await connect(a, id, 5, {
            clean: true,
            properties: { sessionExpiryInterval: 300 },
            will: {
              topic: `will/${id}`,
              payload: id,
              qos: 1,
              retain: false,
              properties: { willDelayInterval },
            },
          }),
        );
      }
      await delay(1000); // a route is in effect everywhere within 1 s of its SUBACK
      assert.equal(await a.stop(), 0, "a stops cleanly");
      for (let i = 0; i < 5; i++) await publisher.publishAsync("g/x", String(i), { qos: 1 });
      const back = mqtt.connect(b.url, {
        clientId: "keeper",
        protocolVersion: 5,
        reconnectPeriod: 0,
        ...persistent,
      });
      clients.push(back);
      const got: string[] = [];
      back.on("message", (topic, payload) => topic === "g/x" && got.push(payload.toString()));
      const connack = await new Promise<mqtt.IConnackPacket>((resolve, reject) => {
        back.once("connect", resolve);
        back.once("error", reject);
      });
      assert.equal(connack.sessionPresent, true, "session present on b");
      await waitFor(() => got.length >= 5, 5000, "the five messages").catch(() => {});
      assert.deepEqual(got, ["0", "1", "2", "3", "4"]);
      await delay(1500);
      assert.deepEqual([...wills].sort(), [["will/w0", 1], ["will/w1", 1]], "each will once");
    });
  },
});
