/**
 * The storage suite on {@linkcode RedisHook} with a real redis-server, and the outage test: Redis
 * killed and restarted under load. Skipped when redis-server is missing, except on CI (`CI` set),
 * where a missing redis-server fails the run.
 *
 * @module
 */

import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { AllowHook, PacketType } from "../../mod.ts";
import { collect, delay, mqttConnect, RawClient, startBroker, waitFor } from "../helpers.ts";
import { RedisBackend, RedisHook } from "../../hooks/storage/redis.ts";
import { Redis } from "ioredis";
import { runStorageSuite } from "./suite.ts";
import { redisAvailable, redisRequired, startRedis } from "./redis_server.ts";

const ignore = !(await redisAvailable()) && !redisRequired();

Deno.test({ name: "RedisHook passes the storage suite", ignore }, async (t) => {
  const redis = await startRedis();
  let n = 0;
  try {
    await runStorageSuite(t, () => {
      const prefix = `suite${++n}:`;
      return Promise.resolve({
        hook: () => new RedisHook({ address: redis.address, prefix }),
        backend: () => new RedisBackend({ address: redis.address, prefix }),
        close: () => Promise.resolve(),
        messageCopies: async () => {
          const [host, port] = redis.address.split(":");
          const client = new Redis({ host, port: Number(port), lazyConnect: true });
          try {
            await client.connect();
            const groups = Object.values(await client.hgetall(`${prefix}messages`));
            return groups.reduce((n, group) => n + (JSON.parse(group) as { m: unknown[] }).m.length, 0);
          } finally {
            client.disconnect();
          }
        },
      });
    });
  } finally {
    await redis.stop();
  }
});

Deno.test({ name: "RedisHook fails to start when Redis is unreachable", ignore }, async () => {
  const redis = await startRedis();
  const address = redis.address;
  await redis.stop();
  const hook = new RedisHook({ address });
  await assert.rejects(hook.init());
});

Deno.test({
  name:
    "A broker on Redis keeps serving while Redis is down, holds QoS 1 acks, and writes everything once it is back",
  ignore,
}, async () => {
  const records = await captureStorageLogs();
  const redis = await startRedis({ appendonly: true });
  try {
    const options = { address: redis.address, prefix: "fault:" };
    let broker = await startBroker({}, [new AllowHook(), new RedisHook(options)]);
    const { client: q } = await RawClient.connect(broker, "q", {
      connect: { clean: false },
      properties: { sessionExpiryInterval: 3600 },
    });
    await q.subscribe([{ filter: "f/#", qos: 1 }]);
    q.close();
    await waitFor(() => broker.server.clients.get("q")?.closed === true);
    const live = await mqttConnect(broker, { clientId: "live" });
    const seen = collect(live);
    await live.subscribeAsync("f/#", { qos: 0 });
    const pub = await mqttConnect(broker, { clientId: "pub" });
    try {
      for (let i = 0; i < 5; i++) await pub.publishAsync("f/before", `b${i}`, { qos: 1 });

      await redis.kill("SIGKILL");
      await pub.publishAsync("f/zero", "qos0 while down", { qos: 0 });
      await waitFor(
        () => seen.some((m) => m.payload === "qos0 while down"),
        3000,
        "QoS 0 while Redis is down",
      );
      let acked = 0;
      const pending = Array.from(
        { length: 5 },
        (_, i) => pub.publishAsync("f/during", `d${i}`, { qos: 1 }).then(() => acked++),
      );
      await waitFor(() => seen.filter((m) => m.topic === "f/during").length === 5, 3000, "live delivery");
      await delay(500);
      assert.equal(acked, 0, "no PUBACK before the messages are stored");

      await redis.restart();
      await Promise.all(pending);
      assert.equal(acked, 5);
    } finally {
      await pub.endAsync();
      await live.endAsync();
    }
    assert.equal(records.filter((r) => r.level === "error").length, 1, "the outage is logged once");
    assert.equal(records.filter((r) => r.level === "info").length, 1, "and its end once");

    await broker.close();
    broker = await startBroker({}, [new AllowHook(), new RedisHook(options)]);
    try {
      const { client: q2, connack } = await RawClient.connect(broker, "q", {
        connect: { clean: false },
        properties: { sessionExpiryInterval: 3600 },
      });
      try {
        assert.equal(connack.sessionPresent, true);
        const got: string[] = [];
        for (let i = 0; i < 10; i++) {
          const m = await q2.expect(PacketType.Publish);
          got.push(new TextDecoder().decode(m.payload));
          await q2.send({ fixedHeader: { type: PacketType.Puback }, packetId: m.packetId, reasonCode: 0 });
        }
        assert.deepEqual(got, ["b0", "b1", "b2", "b3", "b4", "d0", "d1", "d2", "d3", "d4"]);
      } finally {
        q2.close();
      }
    } finally {
      await broker.close();
    }
  } finally {
    await redis.stop();
    await reset();
  }
});

async function captureStorageLogs(): Promise<LogRecord[]> {
  const records: LogRecord[] = [];
  await configure({
    sinks: { mem: (record) => records.push(record) },
    loggers: [
      { category: ["x-broker", "storage"], lowestLevel: "info", sinks: ["mem"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["mem"] },
    ],
    reset: true,
  });
  return records;
}
