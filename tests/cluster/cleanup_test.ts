/**
 * Nothing is left behind in Redis: once every client is gone, its session expired, and the retained
 * messages expired or cleared, the cluster's keys are only the live nodes' membership. Real
 * redis-server, three broker processes (one SIGKILLed on the way).
 *
 * @module
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { delay } from "../helpers.ts";
import { redisAvailable, redisRequired } from "../storage/redis_server.ts";
import { connect, withCluster } from "./nodes.ts";

const ignore = !(await redisAvailable()) && !redisRequired();
const PREFIX = "mqtt:cluster:";

/** What is in Redis that is not a live node's membership: keys, non-empty inboxes, routes. */
async function leftovers(redis: Redis, live: string[]): Promise<string[]> {
  const allowed = new Set([`${PREFIX}nodes`, `${PREFIX}retained:version`, `${PREFIX}generation`]);
  for (const node of live) {
    for (const kind of ["lease", "routes", "inbox"]) allowed.add(`${PREFIX}${kind}:${node}`);
  }
  const found: string[] = [];
  for (const key of (await redis.keys(`${PREFIX}*`)).sort()) {
    if (!allowed.has(key)) found.push(key);
    else if (key.includes(":inbox:") && await redis.xlen(key) > 0) {
      found.push(`${key} (${await redis.xlen(key)})`);
    } else if (key.includes(":routes:")) {
      const fields = (await redis.hkeys(key)).filter((field) => field !== "\u0000seq");
      if (fields.length > 0) found.push(`${key} ${JSON.stringify(fields)}`);
    }
  }
  const nodes = (await redis.hkeys(`${PREFIX}nodes`)).sort();
  if (JSON.stringify(nodes) !== JSON.stringify([...live].sort())) found.push(`nodes: ${nodes}`);
  return found;
}

Deno.test({
  name:
    "`cluster` leaves no keys behind: sessions, routes, inboxes and retained messages are removed when they end",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withCluster(["a", "b", "c"], async ({ redis: server, nodes, clients }) => {
      const [host, port] = server.address.split(":");
      const redis = new Redis({ host, port: Number(port), lazyConnect: true });
      await redis.connect();
      try {
        const [a, b, c] = nodes;
        const short = { clean: false, properties: { sessionExpiryInterval: 2 } };
        // A persistent session that goes offline with messages queued for it (stored in Redis).
        const away = await connect(a, "away", 5, short);
        await away.subscribeAsync("x/#", { qos: 1 });
        await away.endAsync();
        // A clean session with a plain and a shared subscription, on another node.
        const plain = await connect(b, "plain");
        await plain.subscribeAsync({ "x/#": { qos: 2 }, "$share/g/x/#": { qos: 1 } });
        // A session taken over across nodes.
        const before = await connect(a, "mover", 5, {
          ...short,
          will: { topic: "w/mover", payload: "w", qos: 1 },
        });
        before.on("error", () => {});
        await before.subscribeAsync("y/#", { qos: 1 });
        const mover = await connect(b, "mover", 5, short);
        // A persistent session on a node that dies.
        const doomed = await connect(c, "doomed", 5, short);
        doomed.on("error", () => {});
        await doomed.subscribeAsync("x/#", { qos: 1 });
        clients.push(plain, mover, doomed, before);

        const pub = await connect(a, "pub");
        clients.push(pub);
        for (let i = 0; i < 6; i++) await pub.publishAsync(`x/${i}`, `m${i}`, { qos: (1 + i % 2) as 1 | 2 });
        await pub.publishAsync("r/expires", "soon", {
          qos: 1,
          retain: true,
          properties: { messageExpiryInterval: 1 },
        });
        await pub.publishAsync("r/cleared", "kept", { qos: 1, retain: true });
        await pub.publishAsync("r/cleared", "", { qos: 1, retain: true });
        await c.stop("SIGKILL");
        for (let i = 6; i < 10; i++) await pub.publishAsync(`x/${i}`, `m${i}`, { qos: 1 });
        await Promise.all([plain.endAsync(), mover.endAsync(), pub.endAsync()]);

        // The claim of c (about 3 s), session expiry (2 s), sweeps: everything gone within 12 s.
        const end = Date.now() + 12_000;
        let left = await leftovers(redis, ["a", "b"]);
        while (left.length > 0 && Date.now() < end) {
          await delay(250);
          left = await leftovers(redis, ["a", "b"]);
        }
        console.log(`clean ${12_000 - (end - Date.now())} ms after the last client left`);
        assert.deepEqual(left, [], "only the live nodes' membership keys are left");
      } finally {
        redis.disconnect();
      }
    });
  },
});
