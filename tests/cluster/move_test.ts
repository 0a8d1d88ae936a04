/**
 * A persistent session that moves between live nodes keeps receiving: after a clean disconnect on one
 * node and a resume on another, messages published anywhere reach it (found by the chaos run: the
 * resumed session got session present and then nothing more).
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "../mqtt.ts";
import { delay, waitFor } from "../helpers.ts";
import { redisAvailable, redisRequired } from "../storage/redis_server.ts";
import { connect, KeptStore, withCluster } from "./nodes.ts";
import { Redis } from "ioredis";

const ignore = !(await redisAvailable()) && !redisRequired();
const persistent5 = { clean: false, properties: { sessionExpiryInterval: 300 } };

for (const version of [5, 4] as const) {
  Deno.test({
    name: `\`cluster\` a persistent session (MQTT ${
      version === 5 ? "5" : "3.1.1"
    }) moved between live nodes keeps receiving from every node`,
    ignore,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: () => moveBetweenLiveNodes(version),
  });
}

async function moveBetweenLiveNodes(version: 4 | 5): Promise<void> {
  const persistent = version === 5
    ? { protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 300 } }
    : { protocolVersion: 4 as const, clean: false };
  {
    await withCluster(["a", "b", "c"], async ({ nodes }) => {
      const [a, b, c] = nodes;
      const publishers = await Promise.all([a, b, c].map((n) => connect(n, `pub-${n.id}`)));
      let sub = await connect(a, "mover", 5, persistent);
      await sub.subscribeAsync("m/#", { qos: 1 });
      const got: string[] = [];
      const expected: string[] = [];
      let round = 0;
      const publishAll = async () => {
        for (const p of publishers) {
          const text = `r${round}-${p.options.clientId}`;
          expected.push(text);
          await p.publishAsync("m/x", text, { qos: 2 });
        }
        round++;
      };
      sub.on("message", (_t, payload) => got.push(String(payload)));
      await publishAll();
      await waitFor(() => got.length >= expected.length, 3000, "messages on a");
      for (const next of [b, c, a, c]) {
        await sub.endAsync();
        sub = mqtt.connect(next.url, {
          clientId: "mover",
          reconnectPeriod: 0,
          ...persistent,
        });
        sub.on("message", (_t, payload) => got.push(String(payload)));
        const connack = await new Promise<mqtt.IConnackPacket>((resolve) => sub.once("connect", resolve));
        assert.equal(connack.sessionPresent, true, `session present on ${next.id}`);
        await publishAll();
        await waitFor(() => got.length >= expected.length, 3000, `messages after the move to ${next.id}`)
          .catch(() => {});
        await delay(100);
        assert.deepEqual([...got].sort(), [...expected].sort(), `every message after the move to ${next.id}`);
      }
      await Promise.all([...publishers.map((p) => p.endAsync()), sub.endAsync()]);
    });
  }
}

Deno.test({
  name:
    "`cluster` a persistent session moved between live nodes under QoS 2 traffic gets every acknowledged message once",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withCluster(["a", "b", "c"], async ({ nodes }) => {
      const [a, b, c] = nodes;
      const publishers = await Promise.all([a, b, c].map((n) => connect(n, `pub-${n.id}`)));
      // One store across connections, as a client keeps its session state (QoS 2 exactly once).
      const incomingStore = new KeptStore();
      const options = { protocolVersion: 5 as const, reconnectPeriod: 0, incomingStore, ...persistent5 };
      let sub = await mqtt.connectAsync(a.url, { clientId: "mover", ...options });
      await sub.subscribeAsync("m/#", { qos: 2 });
      // A subscription is in effect everywhere within 1 s of its SUBACK (the first message from b or c sent
      // at once could miss it: seen once).
      await delay(1000);
      const got = new Set<string>();
      const twice: string[] = [];
      const acked: string[] = [];
      let running = true;
      // Every publisher publishes QoS 1 all along, each on its own node, the move included.
      const publishing = publishers.map(async (p) => {
        for (let i = 0; running; i++) {
          const text = `${p.options.clientId}-${i}`;
          await p.publishAsync("m/x", text, { qos: 2 });
          acked.push(text);
          await delay(5);
        }
      });
      const listen = (client: mqtt.MqttClient) =>
        client.on("message", (_t, payload) => {
          if (got.has(String(payload))) twice.push(String(payload));
          got.add(String(payload));
        });
      listen(sub);
      await delay(300);
      for (const next of [b, c, a, b, c]) {
        await sub.endAsync();
        // Listening before the CONNACK: queued messages follow it at once.
        sub = mqtt.connect(next.url, { clientId: "mover", ...options });
        listen(sub);
        await new Promise((resolve) => sub.once("connect", resolve));
        await delay(300);
      }
      running = false;
      await Promise.all(publishing);
      await waitFor(() => acked.every((text) => got.has(text)), 5000, "every acknowledged message").catch(
        () => {},
      );
      const missing = acked.filter((text) => !got.has(text));
      assert.deepEqual(twice, [], "no QoS 2 message twice");
      assert.deepEqual(missing, [], `${missing.length} of ${acked.length} acknowledged messages missing`);
      await Promise.all([...publishers.map((p) => p.endAsync()), sub.endAsync()]);
    });
  },
});

Deno.test({
  name:
    "`cluster` a session handed over between nodes is stored whole in one write, subscriptions and messages",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // The new owner rewrites the stored session from what the old owner handed over. Were the record
    // written first and the subscriptions after, a node dying between the two would leave its claimer
    // a session without subscriptions: resumed with session present, it would get nothing more (found
    // by the chaos run). So the rewrite carries the session's subscriptions and queued messages.
    await withCluster(["a", "b"], async ({ redis, nodes, clients }) => {
      const [a, b] = nodes;
      const sub = await connect(a, "mover", 5, persistent5);
      await sub.subscribeAsync("m/#", { qos: 1 });
      await sub.endAsync();
      const pub = await connect(a, "pub");
      clients.push(pub);
      await pub.publishAsync("m/x", "queued", { qos: 1 }); // queued in the session, on a
      const monitor = await new Redis(redis.port, "127.0.0.1").monitor();
      const rewrites: string[][] = [];
      monitor.on("monitor", (_time: string, args: string[]) => {
        if (args.includes("R") && args.some((arg) => arg.endsWith("session:mover"))) rewrites.push(args);
      });
      try {
        const got: string[] = [];
        const moved = mqtt.connect(b.url, {
          clientId: "mover",
          protocolVersion: 5,
          reconnectPeriod: 0,
          ...persistent5,
        });
        clients.push(moved);
        moved.on("message", (_t, payload) => got.push(String(payload)));
        const connack = await new Promise<mqtt.IConnackPacket>((resolve) => moved.once("connect", resolve));
        assert.equal(connack.sessionPresent, true);
        await waitFor(
          () => got.length > 0 && rewrites.length > 0,
          3000,
          "the queued message and the rewrite",
        );
        assert.deepEqual(got, ["queued"]);
        assert.equal(rewrites.length, 1, "one rewrite of the session");
        const fields = rewrites[0].map((arg) => arg.replaceAll("\\x00", "\0"));
        assert.ok(fields.includes("s\0m/#"), `the subscription in the rewrite: ${rewrites[0].join(" ")}`);
        assert.ok(fields.some((f) => f.startsWith("o\0")), `the queued message in the rewrite`);
      } finally {
        monitor.disconnect();
      }
    });
  },
});

Deno.test({
  name:
    "`cluster` a client that connects again while its first CONNECT waits for its dead node's claim gets its session whole",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // Found by the chaos run: MQTT.js gives up on a CONNECT after its timeout and connects again, while the
    // node still works on the first one. The two claims raced on the node, the first one's handoff reached
    // neither, and the session went on without its subscriptions.
    await withCluster(["a", "b", "c"], async ({ nodes, clients }) => {
      const [a, b, c] = nodes;
      const options = { protocolVersion: 5 as const, ...persistent5 };
      const sub = await connect(b, "mover", 5, persistent5);
      await sub.subscribeAsync("m/#", { qos: 1 });
      await sub.endAsync();
      await b.stop("SIGKILL");
      const pub = await connect(a, "pub");
      clients.push(pub);
      await pub.publishAsync("m/x", "while b was dead", { qos: 1 });
      // The first attempt waits on c until b is claimed (a lease or so): its client gives up after 500 ms.
      const first = mqtt.connect(c.url, {
        clientId: "mover",
        reconnectPeriod: 0,
        connectTimeout: 500,
        ...options,
      });
      clients.push(first);
      first.on("error", () => {});
      await new Promise<void>((resolve) => first.once("close", () => resolve()));
      const got: string[] = [];
      const second = mqtt.connect(c.url, {
        clientId: "mover",
        reconnectPeriod: 0,
        connectTimeout: 15_000,
        ...options,
      });
      clients.push(second);
      second.on("message", (_t, payload) => got.push(String(payload)));
      const connack = await new Promise<mqtt.IConnackPacket>((resolve) => second.once("connect", resolve));
      assert.equal(connack.sessionPresent, true, "session present");
      await waitFor(() => got.length >= 1, 5000, "the message queued while b was dead").catch(() => {});
      await delay(1000); // a route is in effect everywhere within 1 s
      await pub.publishAsync("m/x", "after", { qos: 1 });
      await waitFor(() => got.length >= 2, 5000, "a message published after").catch(() => {});
      assert.deepEqual(got, ["while b was dead", "after"]);
    });
  },
});
