/**
 * A broker process for the crash test: TCP on a free loopback port, AllowHook, and KVHook or
 * RedisHook. Prints `READY <port>` once serving.
 *
 *   deno run -A tests/storage/crash_broker.ts --backend kv --path ./data/crash.kv
 *   deno run -A tests/storage/crash_broker.ts --backend redis --address 127.0.0.1:6379 --prefix crash:
 *
 * @module
 */

import { parseArgs } from "node:util";
import { AllowHook, KVHook, Server, TCP } from "../../mod.ts";
import type { StorageHook } from "../../hooks/storage/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    backend: { type: "string", default: "kv" },
    path: { type: "string", default: "./data/crash.kv" },
    address: { type: "string", default: "127.0.0.1:6379" },
    prefix: { type: "string", default: "crash:" },
    durability: { type: "string", default: "sync" },
  },
});

const server = new Server({ durability: values.durability === "async" ? "async" : "sync" });
await server.addHook(new AllowHook());
let storage: StorageHook;
if (values.backend === "redis") {
  const { RedisHook } = await import("../../hooks/storage/redis.ts");
  storage = new RedisHook({ address: values.address, prefix: values.prefix });
} else {
  storage = new KVHook({ path: values.path });
}
await server.addHook(storage);
const tcp = new TCP({ id: "t1", address: "127.0.0.1:0" });
await server.addListener(tcp);
await server.serve();
console.log(`READY ${tcp.address.split(":").pop()}`);

Deno.addSignalListener("SIGTERM", async () => {
  await server.close();
  Deno.exit(0);
});
