/**
 * The cost of durability: QoS 1 throughput through one broker with no storage, with Deno KV
 * (`durability: "sync"`, acks after the write; and `"async"`), and with Redis (sync), side by side.
 *
 * Run: `deno run -A bench/durability.ts [--messages 20000] [--publishers 4] [--window 100] [--rounds 3]`
 *
 * Each run: a QoS 1 subscriber (persistent session) and N publishers, each keeping `window`
 * QoS 1 publishes unacknowledged; the clock runs from the first publish until every PUBACK
 * arrived and the subscriber got every message. The broker and the clients share this process;
 * Redis is a `redis-server` started here on a free port (`--appendonly no`: the write path, not
 * the disk), skipped when it is not installed. KV writes go to a file in a temporary folder. After
 * a warm-up, each configuration runs `rounds` times in rotating order; the median is shown.
 *
 * @module
 */

import { parseArgs } from "node:util";
import mqtt from "../tests/mqtt.ts";
import { AllowHook, type Hook, KVHook, Server, TCP } from "../mod.ts";
import { RedisHook } from "../hooks/storage/redis.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    messages: { type: "string", default: "20000" },
    publishers: { type: "string", default: "4" },
    window: { type: "string", default: "100" },
    rounds: { type: "string", default: "3" },
  },
});
const MESSAGES = Number(values.messages);
const PUBLISHERS = Number(values.publishers);
const WINDOW = Number(values.window);
const ROUNDS = Number(values.rounds);
const PAYLOAD = "x".repeat(64);

interface Result {
  name: string;
  seconds: number;
  rate: number;
}

function connect(url: string, options: mqtt.IClientOptions): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0, ...options });
}

async function run(
  name: string,
  storage: () => Hook | undefined,
  durability: "sync" | "async",
): Promise<Result> {
  const server = new Server({ durability, sysTopicResendInterval: 0 });
  await server.addHook(new AllowHook());
  const hook = storage();
  if (hook) await server.addHook(hook);
  const tcp = new TCP({ id: "bench", address: "127.0.0.1:0" });
  await server.addListener(tcp);
  await server.serve();
  const url = `mqtt://${tcp.address}`;
  const sub = await connect(url, {
    clientId: "bench-sub",
    clean: false,
    properties: { sessionExpiryInterval: 60 },
  });
  await sub.subscribeAsync("bench/#", { qos: 1 });
  const pubs = await Promise.all(
    Array.from({ length: PUBLISHERS }, (_, i) => connect(url, { clientId: `bench-pub-${i}` })),
  );
  let received = 0;
  const { promise: allReceived, resolve } = Promise.withResolvers<void>();
  sub.on("message", () => {
    if (++received === MESSAGES) resolve();
  });
  const start = performance.now();
  const perPublisher = Math.ceil(MESSAGES / PUBLISHERS);
  await Promise.all(pubs.map(async (pub, p) => {
    const count = Math.min(perPublisher, MESSAGES - p * perPublisher);
    let next = 0;
    const worker = async () => {
      while (next < count) {
        next++;
        await pub.publishAsync(`bench/${p}`, PAYLOAD, { qos: 1 });
      }
    };
    await Promise.all(Array.from({ length: WINDOW }, worker));
  }));
  await allReceived;
  const seconds = (performance.now() - start) / 1000;
  await Promise.all(pubs.map((p) => p.endAsync()));
  await sub.endAsync();
  await server.close();
  return { name, seconds, rate: MESSAGES / seconds };
}

async function startRedis(): Promise<{ address: string; stop(): Promise<void> } | undefined> {
  const dir = await Deno.makeTempDir({ prefix: "bench-redis-" });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("redis-server", {
      args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
      stdout: "null",
      stderr: "null",
    }).spawn();
  } catch {
    await Deno.remove(dir, { recursive: true });
    return undefined;
  }
  for (let i = 0; i < 250; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  return {
    address: `127.0.0.1:${port}`,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const dir = await Deno.makeTempDir({ prefix: "bench-kv-" });
const redis = await startRedis();
let n = 0;
const configs: [string, () => Hook | undefined, "sync" | "async"][] = [
  ["no storage", () => undefined, "sync"],
  ["Deno KV (sync)", () => new KVHook({ path: `${dir}/kv${++n}.kv` }), "sync"],
  ["Deno KV (async)", () => new KVHook({ path: `${dir}/kv${++n}.kv` }), "async"],
];
if (redis) {
  configs.push([
    "Redis (sync)",
    () => new RedisHook({ address: redis.address, prefix: `bench${++n}:` }),
    "sync",
  ]);
}
const runs = new Map<string, Result[]>(configs.map(([name]) => [name, []]));
try {
  await run("warm-up", () => undefined, "sync");
  // Rounds in rotating order, so that no configuration always runs first or last.
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < configs.length; i++) {
      const [name, storage, durability] = configs[(i + round) % configs.length];
      runs.get(name)!.push(await run(name, storage, durability));
    }
  }
} finally {
  await redis?.stop();
  await Deno.remove(dir, { recursive: true });
}
const results = configs.map(([name]) => {
  const sorted = runs.get(name)!.sort((a, b) => a.rate - b.rate);
  return sorted[Math.floor(sorted.length / 2)];
});

console.log(
  `QoS 1 throughput: ${MESSAGES} messages of ${PAYLOAD.length} bytes, ${PUBLISHERS} publishers x ${WINDOW} ` +
    `in flight, 1 subscriber; median of ${ROUNDS} rounds`,
);
const base = results[0].rate;
console.log("| storage | time | messages/s | vs no storage |");
console.log("| --- | ---: | ---: | ---: |");
for (const r of results) {
  console.log(
    `| ${r.name} | ${r.seconds.toFixed(2)} s | ${Math.round(r.rate)} | ${(r.rate / base).toFixed(2)} |`,
  );
}
if (!redis) console.log("(Redis skipped: redis-server is not installed)");
