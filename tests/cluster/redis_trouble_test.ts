/**
 * The cluster when its Redis is in trouble, end to end (a real redis-server, broker processes):
 * unreachable (killed, then back on the same port), stalled for under a second (SIGSTOP), and
 * refusing the credentials at start.
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "../mqtt.ts";
import { delay, waitFor } from "../helpers.ts";
import { redisAvailable, redisRequired } from "../storage/redis_server.ts";
import { connect, type Node, startNode, withCluster } from "./nodes.ts";

const ignore = !(await redisAvailable()) && !redisRequired();
const ROOT = new URL("../..", import.meta.url).pathname;

/** The warning and error lines a node logged after `from` (an offset into its output). */
function troubles(node: Node, from: number): string[] {
  return node.output().slice(from).split("\n").filter((line) => /\[(WRN|ERR|FTL)\]/.test(line));
}

Deno.test({
  name:
    "`cluster` Redis unreachable: local QoS 0 goes on, new sessions get 0x88, a QoS 1 ack waits until stored, one warning, recovery",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withCluster(["a", "b"], { redis: { appendonly: true } }, async ({ redis, nodes, clients }) => {
      const [a, b] = nodes;
      const remote = await connect(b, "remote-sub");
      const local = await connect(a, "local-sub");
      const pub = await connect(a, "pub");
      clients.push(remote, local, pub);
      const got: string[] = [];
      const gotLocal: string[] = [];
      remote.on("message", (topic) => got.push(topic));
      local.on("message", (topic) => gotLocal.push(topic));
      await remote.subscribeAsync("t/#", { qos: 1 });
      await local.subscribeAsync("l/#", { qos: 0 });
      await pub.publishAsync("t/0", "before", { qos: 1 });
      await waitFor(() => got.includes("t/0"), 3000, "a message across nodes");
      // An offline persistent session on a: its messages are stored in Redis before they are acknowledged.
      const persistent = { clean: false, properties: { sessionExpiryInterval: 300 } };
      const away = await connect(a, "away", 5, persistent);
      await away.subscribeAsync("p/#", { qos: 1 });
      await away.endAsync();

      const marks = nodes.map((node) => node.output().length);
      await redis.kill("SIGKILL");
      await waitFor(
        () => nodes.every((node, i) => /is unreachable/.test(node.output().slice(marks[i]))),
        3000,
        "both nodes to notice",
      );
      // Local QoS 0 goes on.
      await pub.publishAsync("l/1", "x", { qos: 0 });
      await waitFor(() => gotLocal.includes("l/1"), 2000, "local QoS 0 during the outage");
      // A new session cannot be recorded: refused with 0x88 (server unavailable).
      await assert.rejects(connect(a, "newcomer"), (error: { code?: number }) => error.code === 0x88);
      // A QoS 1 message for another node is not acknowledged while it cannot be stored.
      let acked = 0;
      const pending = pub.publishAsync("t/1", "during", { qos: 1 }).then(() => acked = Date.now());
      let ackedQueued = 0;
      const queued = pub.publishAsync("p/1", "queued", { qos: 1 }).then(() => ackedQueued = Date.now());
      await delay(3000); // past a lease: every lease lapses in Redis meanwhile
      assert.equal(acked, 0, "no PUBACK while Redis is down");
      assert.equal(ackedQueued, 0, "no PUBACK for a message queued for a stored session");

      const back = Date.now();
      await redis.restart();
      await Promise.all([pending, queued]);
      assert.ok(acked - back < 3000, `PUBACK ${acked - back} ms after Redis came back`);
      assert.ok(ackedQueued - back < 3000, `PUBACK ${ackedQueued - back} ms after Redis came back`);
      await waitFor(() => got.includes("t/1"), 5000, "the withheld message delivered");
      const newcomer = await connect(a, "newcomer");
      clients.push(newcomer);
      await pub.publishAsync("t/2", "after", { qos: 1 });
      await waitFor(() => got.includes("t/2"), 3000, "routing after recovery");
      await delay(3000); // a lease and more: nobody is declared dead after the outage
      assert.deepEqual(got, ["t/0", "t/1", "t/2"], "every message once, in order");
      // The queued message was stored: the session resumes with it on the other node.
      const resumed: string[] = [];
      const again = mqtt.connect(b.url, {
        clientId: "away",
        protocolVersion: 5,
        reconnectPeriod: 0,
        ...persistent,
      });
      clients.push(again);
      again.on("message", (topic) => resumed.push(topic));
      await waitFor(() => resumed.includes("p/1"), 5000, "the queued message after a move to b");
      for (const [i, node] of nodes.entries()) {
        const after = node.output().slice(marks[i]);
        assert.doesNotMatch(after, /stopped renewing/, `${node.id}: no node declared dead`);
        const lines = troubles(node, marks[i]);
        assert.equal(lines.length, 1, `${node.id}: one warning for the outage:\n${lines.join("\n")}`);
        assert.match(lines[0], new RegExp(`Redis at "?${redis.address}"? is unreachable`));
        assert.equal(after.match(/is back/g)?.length, 1, `${node.id}: one line when it is back`);
      }
    });
  },
});

Deno.test({
  name: "`cluster` a Redis stall under a second loses no message and declares no node dead",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withCluster(["a", "b", "c"], async ({ redis, nodes, clients }) => {
      const [a, b, c] = nodes;
      const received: Record<string, string[]> = { b: [], c: [] };
      for (const [name, node] of [["b", b], ["c", c]] as const) {
        const sub = await connect(node, `sub-${name}`, 5, {
          clean: false,
          properties: { sessionExpiryInterval: 60 },
        });
        clients.push(sub);
        sub.on("message", (_topic, payload) => received[name].push(String(payload)));
        await sub.subscribeAsync("s/#", { qos: 1 });
      }
      const pub = await connect(a, "pub");
      clients.push(pub);
      const marks = nodes.map((node) => node.output().length);
      const acked: string[] = [];
      let publishing = true;
      const publisher = (async () => {
        for (let i = 0; publishing; i++) {
          await pub.publishAsync(`s/${i % 3}`, `m${i}`, { qos: 1 });
          acked.push(`m${i}`);
          await delay(10);
        }
      })();
      await delay(700);
      redis.signal("SIGSTOP");
      await delay(800);
      redis.signal("SIGCONT");
      await delay(1500);
      publishing = false;
      await publisher;
      await waitFor(
        () => acked.every((m) => received.b.includes(m) && received.c.includes(m)),
        5000,
        "every acknowledged message on b and c",
      );
      await delay(2500); // more than a lease after the stall
      for (const name of ["b", "c"]) {
        assert.deepEqual(
          received[name].slice(0, acked.length),
          acked,
          `${name}: every message, in order, once`,
        );
      }
      for (const [i, node] of nodes.entries()) {
        assert.deepEqual(troubles(node, marks[i]), [], `${node.id}: nothing to report`);
      }
      assert.ok(acked.length > 50, `${acked.length} messages published`);
    });
  },
});

Deno.test({
  name: "`cluster` bad Redis credentials at start: an error naming the address, exit code 1",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withCluster([], { redis: { args: ["--requirepass", "s3cret"] } }, async ({ redis, nodes }) => {
      for (const credentials of ["", ":hunter2x@"]) {
        const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            "src/app/cli.ts",
            "--tcp",
            "127.0.0.1:0",
            "--ws",
            "off",
            "--info",
            "off",
            "--cluster",
            `redis://${credentials}${redis.address}`,
          ],
          cwd: ROOT,
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).output();
        const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
        assert.equal(code, 1, output);
        assert.match(output, new RegExp(`Redis at ${redis.address} refused the credentials`));
        assert.doesNotMatch(output, /hunter2x/, "the password is not logged");
      }
      nodes.push(await startNode(`:s3cret@${redis.address}`, "good"));
    });
  },
});
