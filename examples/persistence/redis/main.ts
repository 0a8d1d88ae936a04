/**
 * A broker that keeps its state in Redis. `RedisHook` comes from `@x/broker/redis` (here the
 * relative path), so programs that do not use Redis never load its client.
 *
 * Run: `deno run -A examples/persistence/redis/main.ts [ADDRESS] [REDIS]` (default `:1883` and
 * `127.0.0.1:6379`; start one with `redis-server --appendonly yes --appendfsync always` for
 * durability across a Redis crash too). If Redis goes away while the broker runs, the broker
 * keeps serving, logs the outage once, holds QoS 1/2 acknowledgements until the writes are
 * stored, and catches up when Redis is back.
 */

import { configure, getConsoleSink } from "@logtape/logtape";
import { AllowHook, Server, TCP } from "../../../mod.ts";
import { RedisHook } from "../../../hooks/storage/redis.ts";

const address = Deno.args[0] ?? ":1883";
const redis = Deno.args[1] ?? "127.0.0.1:6379";

await configure({
  sinks: { console: getConsoleSink() },
  loggers: [
    { category: ["x-broker"], lowestLevel: "info", sinks: ["console"] },
    { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
  ],
});

const server = new Server();
await server.addHook(new AllowHook());
await server.addHook(new RedisHook(), {
  address: redis,
  prefix: "mqtt:",
  // username: "broker", password: Deno.env.get("REDIS_PASSWORD"), database: 0,
  // options: { tls: {} },   // any ioredis option
});
await server.addListener(new TCP({ id: "t1", address }));
await server.serve();
console.log(`Broker listening on ${server.listeners.get("t1")!.address}, state in Redis at ${redis}`);

const stop = () => server.close().then(() => Deno.exit(0));
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
