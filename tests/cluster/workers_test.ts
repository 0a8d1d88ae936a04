/**
 * `--workers N` end to end: the CLI as a real process with a real redis-server. Two workers share one
 * TCP and one WebSocket port, connections land on both, messages cross between them, a killed worker is
 * started again, and SIGTERM stops them all (no process left).
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "../mqtt.ts";
import { freePort, waitFor } from "../helpers.ts";
import { redisAvailable, redisRequired, startRedis } from "../storage/redis_server.ts";
import { parseCliArgs } from "../../src/app/cli.ts";
import { parseConfig } from "../../src/app/config.ts";
import { workerCount } from "../../src/app/workers.ts";

const ignore = !(await redisAvailable()) && !redisRequired();
const ROOT = new URL("../..", import.meta.url).pathname;

/** Whether a process exists and is not a zombie. */
function running(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

Deno.test("`cli` --workers: a count or auto, and only with a cluster", () => {
  assert.deepEqual(parseCliArgs(["--workers", "2", "--cluster", "redis://h:1"]), {
    workers: "2",
    cluster: "redis://h:1",
  });
  assert.throws(() => parseCliArgs(["--workers", "2"]), /--workers needs --cluster/);
  assert.throws(() => parseCliArgs(["--workers", "none", "--cluster", "redis://h:1"]), /"none"/);
  assert.equal(workerCount("auto"), navigator.hardwareConcurrency);
  const config = parseConfig("cluster:\n  redis:\n    address: h:1\n  workers: auto\n", "c.yml");
  assert.equal(config.cluster?.workers, "auto");
  assert.throws(
    () => parseConfig("cluster:\n  redis:\n    address: h:1\n  workers: 0\n", "c.yml"),
    /cluster\.workers/,
  );
});

Deno.test("`cli` --workers without a cluster in the config exits with a clear error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/b.yml`,
      "listeners:\n  - type: tcp\n    id: t\n    address: 127.0.0.1:0\n",
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "src/app/cli.ts", "--config", `${dir}/b.yml`, "--workers", "2"],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 2);
    assert.match(new TextDecoder().decode(out.stderr), /--workers.*needs --cluster/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "`cli` --workers 2: one port, connections on both, messages cross, a killed worker restarts, SIGTERM stops all",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const redis = await startRedis();
    const port = freePort();
    const wsPort = freePort();
    const infoPort = freePort();
    const parent = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "src/app/cli.ts",
        "--workers",
        "2",
        "--cluster",
        `redis://${redis.address}`,
        "--node-id",
        "wt",
        "--tcp",
        `127.0.0.1:${port}`,
        "--ws",
        `127.0.0.1:${wsPort}`,
        "--info",
        `127.0.0.1:${infoPort}`,
      ],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let text = "";
    const read = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) text += chunk;
    };
    const reading = Promise.all([read(parent.stdout), read(parent.stderr)]);
    let exited: number | undefined;
    const status = parent.status.then((s) => exited = s.code);
    const serving = () => text.match(/is serving/g)?.length ?? 0;
    const pids = () =>
      [...text.matchAll(/Worker (\d) \("?wt-w\d"?\) started: pid (\d+)/g)].map((m) => Number(m[2]));
    const clients: mqtt.MqttClient[] = [];
    try {
      await waitFor(() => serving() === 2 || exited !== undefined, 30_000, "two workers");
      assert.equal(exited, undefined, text);
      const [first, second] = pids();
      assert.ok(running(first) && running(second));

      // Connections land on both workers: 16 over TCP, 8 over WebSocket, all on the same ports.
      const received = new Map<string, number>();
      for (let i = 0; i < 24; i++) {
        const url = i < 16 ? `mqtt://127.0.0.1:${port}` : `ws://127.0.0.1:${wsPort}/mqtt`;
        const client = await mqtt.connectAsync(url, {
          clientId: `c${i}`,
          protocolVersion: i % 2 ? 4 : 5,
          reconnectPeriod: 0,
        });
        client.on("error", () => {});
        client.on("message", (topic) => received.set(topic, (received.get(topic) ?? 0) + 1));
        await client.subscribeAsync("x/#", { qos: 1 });
        clients.push(client);
      }
      type NodeInfo = { id: string; alive: boolean; connections: number };
      let nodes: NodeInfo[] = [];
      await waitFor(
        () => {
          fetch(`http://127.0.0.1:${infoPort}/api/info`).then((r) => r.json()).then((info) =>
            nodes = info.cluster_nodes
          ).catch(() => {});
          return nodes.length === 2 && nodes.reduce((sum, n) => sum + n.connections, 0) === 24;
        },
        10_000,
        "both workers to report their connections",
      );
      assert.deepEqual(nodes.map((n) => n.id), ["wt-w1", "wt-w2"]);
      assert.ok(nodes.every((n) => n.alive && n.connections > 0), JSON.stringify(nodes));

      // Every client publishes once; every client receives every message (so across workers).
      await Promise.all(clients.map((client, i) => client.publishAsync(`x/${i}`, "m", { qos: 1 })));
      await waitFor(
        () => received.size === 24 && [...received.values()].every((n) => n === 24),
        10_000,
        "fan-out",
      );

      // A killed worker is started again and serves.
      for (const client of clients) client.end(true);
      clients.length = 0;
      Deno.kill(first, "SIGKILL");
      await waitFor(
        () => /Worker 1 \("?wt-w1"?, pid \d+\) exited \("?signal SIGKILL"?\): restarting/.test(text),
        5000,
      );
      await waitFor(() => serving() === 3, 30_000, "the worker to restart");
      const restarted = pids()[2];
      assert.notEqual(restarted, first);
      assert.ok(running(restarted));
      const again = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
        clientId: "again",
        reconnectPeriod: 0,
      });
      await again.endAsync();

      // SIGTERM stops every worker, gracefully, and the supervisor exits 0.
      parent.kill("SIGTERM");
      await status;
      await reading;
      assert.equal(exited, 0, text);
      assert.match(text, /All workers stopped/);
      assert.equal(text.match(/Server stopped/g)?.length, 2);
      for (const pid of [second, restarted]) assert.ok(!running(pid), `worker pid ${pid} left running`);
    } finally {
      for (const client of clients) client.end(true);
      if (exited === undefined) {
        parent.kill("SIGKILL");
        for (const pid of pids()) {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch {
            // gone
          }
        }
        await status;
        await reading;
      }
      await redis.stop();
    }
  },
});
