/**
 * Heap of idle connections: starts the broker (TCP listener only) in this process, connects N idle
 * v5 clients from a child process, then writes a heap snapshot and prints what the heap holds per
 * connection (self size by constructor, over what it held before the clients came).
 *
 * Run: `deno run -A --lock=tests/deno.lock bench/idle_heap.ts [N] [snapshot-dir] [--floor]` (`--floor`:
 * the same for Deno's floor, `bench/floor_server.ts`'s loop, in place of the broker).
 *
 * @module
 */

import v8 from "node:v8";
import { AllowHook, Server, TCP } from "../mod.ts";

const CLIENT = `
const [port, n] = Deno.args.map(Number);
const id = (i) => new TextEncoder().encode("idle-" + i);
function connect(i) {
  const cid = id(i);
  const body = [0, 4, 77, 81, 84, 84, 5, 2, 0, 0, 3, 0x21, 0xff, 0xff, 0, cid.length, ...cid];
  return new Uint8Array([0x10, body.length, ...body]);
}
const conns = [];
let next = 0;
async function worker() {
  while (next < n) {
    const i = next++;
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    await conn.write(connect(i));
    const buf = new Uint8Array(64);
    await conn.read(buf);
    conns.push(conn);
  }
}
const t0 = performance.now();
await Promise.all(Array.from({ length: 200 }, worker));
console.log("connected", n, Math.round(n / (performance.now() - t0) * 1000), "per s");
setInterval(() => {}, 1e6);
`;

const n = Number(Deno.args[0] ?? 3000);
const clientFile = Deno.makeTempFileSync({ suffix: ".js" });
Deno.writeTextFileSync(clientFile, CLIENT);
const dir = Deno.args[1] ?? "/tmp";

function summarize(path: string): Map<string, [number, number]> {
  const snapshot = JSON.parse(Deno.readTextFileSync(path));
  const meta = snapshot.snapshot.meta;
  const fields: string[] = meta.node_fields;
  const types: string[] = meta.node_types[0];
  const stride = fields.length;
  const typeAt = fields.indexOf("type");
  const nameAt = fields.indexOf("name");
  const sizeAt = fields.indexOf("self_size");
  const nodes: number[] = snapshot.nodes;
  const strings: string[] = snapshot.strings;
  const sums = new Map<string, [number, number]>();
  for (let i = 0; i < nodes.length; i += stride) {
    const type = types[nodes[i + typeAt]];
    const name = type === "object" || type === "native" || type === "closure"
      ? `${type}:${strings[nodes[i + nameAt]]}`
      : type;
    const entry = sums.get(name) ?? [0, 0];
    entry[0]++;
    entry[1] += nodes[i + sizeAt];
    sums.set(name, entry);
  }
  return sums;
}

// `--floor`: Deno's floor instead of the broker (bench/floor_server.ts's loop, in this process).
const floor = Deno.args.includes("--floor");
let connected = 0;
let port: number;
let server: Server | undefined;
if (floor) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  port = (listener.addr as Deno.NetAddr).port;
  const connack = new Uint8Array([0x20, 0x03, 0x00, 0x00, 0x00]);
  (async () => {
    for await (const conn of listener) {
      (async () => {
        conn.setNoDelay(true);
        const buffer = new Uint8Array(256);
        try {
          let n = await conn.read(buffer);
          await conn.write(connack);
          connected++;
          while (n !== null) n = await conn.read(buffer);
        } catch {
          // gone
        }
      })();
    }
  })();
} else {
  server = new Server();
  await server.addHook(new AllowHook());
  const tcp = new TCP({ id: "t1", address: "127.0.0.1:0" });
  await server.addListener(tcp);
  await server.serve();
  port = Number(tcp.address.split(":").pop());
}
await new Promise((r) => setTimeout(r, 200));
const before = `${dir}/idle-before.heapsnapshot`;
v8.writeHeapSnapshot(before);
const mem0 = Deno.memoryUsage();
const rss0 = mem0.rss;
const child = new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", clientFile, String(port), String(n)],
  stdout: "inherit",
  stderr: "inherit",
}).spawn();
while ((server ? server.clients.count : connected) < n) {
  await new Promise((r) => setTimeout(r, 1000));
}
await new Promise((r) => setTimeout(r, 1000));
const mem1 = Deno.memoryUsage();
const rss1 = mem1.rss;
const perConn = (key: keyof Deno.MemoryUsage) => ((mem1[key] - mem0[key]) / n / 1024).toFixed(2);
console.log(
  `before the snapshot, per connection: heapTotal ${perConn("heapTotal")} KiB, heapUsed ${
    perConn("heapUsed")
  } KiB, external ${perConn("external")} KiB`,
);
const after = `${dir}/idle-after.heapsnapshot`;
v8.writeHeapSnapshot(after);
const a = summarize(before);
const b = summarize(after);
const rows: [string, number, number][] = [];
let total = 0;
for (const [name, [count, size]] of b) {
  const [count0, size0] = a.get(name) ?? [0, 0];
  total += size - size0;
  if (count - count0 >= n / 2) rows.push([name, (count - count0) / n, (size - size0) / n]);
}
rows.sort((x, y) => y[2] - x[2]);
console.log(
  `heap per connection: ${(total / n).toFixed(0)} B; RSS per connection ${
    ((rss1 - rss0) / n / 1024).toFixed(2)
  } KiB`,
);
for (const [name, count, size] of rows.slice(0, 40)) {
  console.log(`${size.toFixed(0).padStart(6)} B  ${count.toFixed(2).padStart(5)} x  ${name}`);
}
child.kill();
await child.status;
await server?.close();
Deno.exit(0);
