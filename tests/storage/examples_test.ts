/**
 * The persistence examples as real processes: a persistent subscriber's messages survive a restart
 * of the example broker (Deno KV file, and Redis).
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "../mqtt.ts";
import { startExample } from "../helpers.ts";
import { redisAvailable, redisRequired, startRedis } from "./redis_server.ts";

function connect(url: string, options: mqtt.IClientOptions): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, ...options });
}

const persistent = { clientId: "keeper", clean: false, properties: { sessionExpiryInterval: 3600 } };

async function survivesRestart(script: string, args: string[]): Promise<void> {
  let example = await startExample(script, ...args);
  try {
    const sub = await connect(example.url, persistent);
    await sub.subscribeAsync("demo/#", { qos: 1 });
    await sub.endAsync();
    const pub = await connect(example.url, { clientId: "writer" });
    for (let i = 0; i < 3; i++) await pub.publishAsync("demo/x", `m${i}`, { qos: 1 });
    await pub.publishAsync("demo/retained", "kept", { qos: 1, retain: true });
    await pub.endAsync();
    await example.stop();
    example = await startExample(script, ...args);
    const got: string[] = [];
    const { promise: all, resolve } = Promise.withResolvers<void>();
    const again = mqtt.connect(example.url, { protocolVersion: 5, reconnectPeriod: 0, ...persistent });
    again.on("message", (_topic, payload) => {
      got.push(payload.toString());
      if (got.length === 4) resolve();
    });
    await all;
    await again.endAsync();
    assert.deepEqual(got, ["m0", "m1", "m2", "kept"]);
  } finally {
    await example.stop();
  }
}

Deno.test("examples/persistence/kv keeps sessions, queued and retained messages across a restart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "example-kv-" });
  try {
    await survivesRestart("examples/persistence/kv/main.ts", [`${dir}/broker.kv`]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "examples/persistence/redis keeps sessions, queued and retained messages across a restart",
  ignore: !(await redisAvailable()) && !redisRequired(),
}, async () => {
  const redis = await startRedis();
  try {
    await survivesRestart("examples/persistence/redis/main.ts", [redis.address]);
  } finally {
    await redis.stop();
  }
});
