/**
 * The inbox streams' hot path on a real redis-server: batches written by `ForwardCommand` and read
 * back by `InboxReader` (replies spanning many socket reads, the count, the block timeout, a password
 * and a database, a restarted server), and the views staying valid after later reads.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { ForwardCommand, InboxReader } from "../../hooks/cluster/redis_streams.ts";
import { redisAvailable, redisRequired, type RedisServer, startRedis } from "../storage/redis_server.ts";

const ignore = !(await redisAvailable()) && !redisRequired();

/** A batch of `size` bytes whose every byte says which batch it is. */
function batch(n: number, size: number): Uint8Array {
  return new Uint8Array(size).fill(n % 251);
}

async function withRedis(
  args: string[],
  body: (server: RedisServer, redis: Redis) => Promise<void>,
): Promise<void> {
  const server = await startRedis({ args });
  const password = args.includes("--requirepass") ? args[args.indexOf("--requirepass") + 1] : undefined;
  const redis = new Redis({ port: server.port, host: "127.0.0.1", password, db: 3, lazyConnect: true });
  try {
    await redis.connect();
    await body(server, redis);
  } finally {
    redis.disconnect();
    await server.stop();
  }
}

async function forward(redis: Redis, n: number, size: number): Promise<void> {
  const command = new ForwardCommand("inbox:a", "node-b", batch(n, size));
  redis.sendCommand(command);
  await command.promise;
}

Deno.test({
  name: "InboxReader reads what ForwardCommand wrote: large entries, count, order, views that stay valid",
  ignore,
  fn: () =>
    withRedis(["--requirepass", "secret"], async (server, redis) => {
      const sizes = [1, 70_000, 65_536, 3, 200_000, 64 * 1024 + 5, 10, 66_000, 1_000_000, 7];
      for (const [n, size] of sizes.entries()) await forward(redis, n, size);
      const reader = new InboxReader({
        hostname: "127.0.0.1",
        port: server.port,
        password: "secret",
        database: 3,
      });
      try {
        const read: { id: string; from: string; records: Uint8Array }[] = [];
        let after = "0";
        for (let reads = 0; read.length < sizes.length && reads < 20; reads++) {
          const entries = await reader.read("inbox:a", after, 3, 100);
          assert.ok(entries.length <= 3);
          read.push(...entries);
          if (entries.length > 0) after = entries[entries.length - 1].id;
        }
        assert.equal(read.length, sizes.length);
        for (const [n, entry] of read.entries()) {
          assert.equal(entry.from, "node-b");
          assert.equal(entry.records.length, sizes[n]);
          assert.ok(entry.records.every((byte) => byte === n % 251), `entry ${n} intact`);
        }
        assert.deepEqual(await reader.read("inbox:a", after, 3, 50), []); // the wait ends empty
        await forward(redis, 42, 1234);
        const [last] = await reader.read("inbox:a", after, 3, 1000);
        assert.equal(last.records.length, 1234);
        for (const [n, entry] of read.entries()) {
          assert.ok(entry.records.every((byte) => byte === n % 251), `entry ${n} still intact`);
        }
      } finally {
        reader.close();
      }
    }),
});

Deno.test({
  name: "InboxReader fails a read when Redis refuses or goes away, and connects again on the next",
  ignore,
  fn: () =>
    withRedis(["--requirepass", "secret"], async (server, redis) => {
      const wrong = new InboxReader({
        hostname: "127.0.0.1",
        port: server.port,
        password: "nope",
        database: 0,
      });
      await assert.rejects(wrong.read("inbox:a", "0", 1, 10), /AUTH/);
      wrong.close();
      const reader = new InboxReader({
        hostname: "127.0.0.1",
        port: server.port,
        password: "secret",
        database: 3,
      });
      try {
        await forward(redis, 1, 10);
        assert.equal((await reader.read("inbox:a", "0", 1, 10)).length, 1);
        redis.disconnect();
        await server.kill("SIGKILL");
        await assert.rejects(reader.read("inbox:a", "0", 1, 10));
        await server.restart();
        assert.deepEqual(await reader.read("inbox:a", "0", 1, 10), []); // no persistence: empty again
      } finally {
        reader.close();
      }
      await assert.rejects(reader.read("inbox:a", "0", 1, 10), /closed/);
    }),
});
