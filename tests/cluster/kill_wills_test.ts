/**
 * Wills of a SIGKILLed node as the chaos run sends them: QoS 2 wills of clean sessions (v5 with and
 * without a will delay, v3.1.1) reach a persistent QoS 2 subscriber on another node exactly once,
 * also for a client that reconnected elsewhere with a clean start before the node was claimed (found
 * by the chaos run: that claim discarded the stored session, will included, so no will went out).
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "../mqtt.ts";
import { delay, waitFor } from "../helpers.ts";
import { redisAvailable, redisRequired } from "../storage/redis_server.ts";
import { connect, KeptStore, startNode, withCluster } from "./nodes.ts";

const ignore = !(await redisAvailable()) && !redisRequired();

for (const watcherOnKilled of [false, true]) {
  Deno.test({
    name: `\`cluster\` QoS 2 wills of a SIGKILLed node reach a persistent QoS 2 subscriber once${
      watcherOnKilled ? " (the subscriber on that node too, moving on)" : ""
    }`,
    ignore,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: () => killedWills(watcherOnKilled),
  });
}

async function killedWills(watcherOnKilled: boolean): Promise<void> {
  {
    await withCluster(["a", "b", "c"], async ({ redis, nodes, clients }) => {
      const [a, b, c] = nodes;
      const incomingStore = new KeptStore();
      const watcherOptions = { keepalive: 3, incomingStore, properties: { sessionExpiryInterval: 600 } };
      let watcher = await connect(watcherOnKilled ? c : a, "watcher", 5, { clean: true, ...watcherOptions });
      clients.push(watcher);
      const wills = new Map<string, number>();
      const onWill = (topic: string) => wills.set(topic, (wills.get(topic) ?? 0) + 1);
      watcher.on("message", onWill);
      await watcher.subscribeAsync("w/will/#", { qos: 2 });
      const expected: string[] = [];
      const carriers = [[c, "c5", 5, 0], [c, "c5d", 5, 1], [c, "c4", 4, 0], [c, "c5r", 5, 0], [
        b,
        "b5",
        5,
        0,
      ]] as const;
      for (
        const [node, id, version, willDelay] of carriers
      ) {
        const topic = `w/will/${id}/1`;
        if (node === c) expected.push(topic);
        clients.push(
          await connect(node, id, version, {
            clean: true,
            keepalive: 3,
            will: {
              topic,
              payload: topic,
              qos: 2,
              retain: false,
              ...(version === 5 ? { properties: { willDelayInterval: willDelay } } : {}),
            },
          }),
        );
      }
      await delay(300);
      await c.stop("SIGKILL");
      // One comes back at once with a clean start, on b, while c still holds its lease (its claim
      // waits for c's claimer): the will of its lost connection still goes out, once.
      const back = connect(b, "c5r", 5, {
        clean: true,
        keepalive: 3,
        will: { topic: "w/will/c5r/2", payload: "2", qos: 2, retain: false },
      });
      // Started again under the same id at once, as the chaos run does.
      await delay(500);
      nodes.push(await startNode(redis.address, "c"));
      clients.push(await back);
      if (watcherOnKilled) {
        // Resumed on a at once: its claim waits for c's claimer, which adopts the session with its wills.
        watcher = mqtt.connect(a.url, {
          clientId: "watcher",
          protocolVersion: 5,
          reconnectPeriod: 0,
          clean: false,
          ...watcherOptions,
        });
        watcher.on("message", onWill);
        watcher.on("error", () => {});
        clients.push(watcher);
      }
      await waitFor(() => expected.every((topic) => wills.has(topic)), 10_000, "the wills of c").catch(
        () => {},
      );
      await delay(1500);
      assert.deepEqual(
        [...wills].sort(),
        expected.sort().map((topic) => [topic, 1]),
        "each will of c once, none of b",
      );
    });
  }
}

Deno.test({
  name:
    "`cluster` a node stopped past its lease: the wills of its clients arrive once (not again when it wakes)",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withCluster(["a", "b", "c"], async ({ nodes, clients }) => {
      const [a, , c] = nodes;
      const watcherOptions = { keepalive: 3, properties: { sessionExpiryInterval: 600 } };
      const watcher = await connect(a, "watcher", 5, { clean: true, ...watcherOptions });
      clients.push(watcher);
      const wills = new Map<string, number>();
      const onWill = (topic: string) => wills.set(topic, (wills.get(topic) ?? 0) + 1);
      watcher.on("message", onWill);
      await watcher.subscribeAsync("w/will/#", { qos: 2 });
      const expected: string[] = [];
      for (const [id, version] of [["s5", 5], ["s4", 4]] as const) {
        const topic = `w/will/${id}`;
        expected.push(topic);
        // Their keep alive runs out while c is stopped: the timeouts fire as soon as it wakes.
        const client = await connect(c, id, version, {
          keepalive: 1,
          will: { topic, payload: topic, qos: 2, retain: false },
        });
        client.on("error", () => {});
        clients.push(client);
      }
      await delay(300);
      c.signal("SIGSTOP");
      await delay(4500);
      c.signal("SIGCONT");
      await waitFor(() => expected.every((topic) => wills.has(topic)), 8000, "the wills of c").catch(
        () => {},
      );
      await delay(2000);
      assert.deepEqual([...wills].sort(), expected.sort().map((topic) => [topic, 1]), "each will of c once");
    });
  },
});

Deno.test({
  name:
    "`cluster` a clean DISCONNECT is stored before its socket closes: a SIGKILL right after sends no will",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withCluster(["a", "b"], async ({ redis, nodes, clients }) => {
      const [a, b] = nodes;
      const watcher = await connect(a, "watcher", 5, { clean: true, keepalive: 3 });
      clients.push(watcher);
      const wills: string[] = [];
      watcher.on("message", (topic) => wills.push(topic));
      await watcher.subscribeAsync("w/will/#", { qos: 2 });
      const ids = ["d5", "d4", "d5s", "kept"];
      const carriers: mqtt.MqttClient[] = [];
      for (const id of ids) {
        const version = id === "d4" ? 4 : 5;
        carriers.push(
          await connect(b, id, version, {
            clean: true,
            keepalive: 3,
            will: { topic: `w/will/${id}`, payload: id, qos: 2, retain: false },
            ...(id === "d5s" ? { properties: { sessionExpiryInterval: 600 } } : {}),
          }),
        );
      }
      clients.push(...carriers);
      // A DISCONNECT without half-closing: the broker's close says the clean end is stored. With Redis
      // stalled, the close waits for it.
      redis.signal("SIGSTOP");
      let closed = 0;
      const closes = Promise.all(
        carriers.slice(0, 3).map((client) =>
          new Promise<void>((resolve) => {
            client.once("close", () => resolve(void closed++));
            client.stream.write(new Uint8Array([0xe0, 0x00]));
          })
        ),
      );
      await delay(400);
      redis.signal("SIGCONT");
      assert.equal(closed, 0, "no socket closed before its clean end was stored");
      await closes;
      await b.stop("SIGKILL");
      await waitFor(() => wills.length > 0, 10_000, "the will of the client still connected");
      await delay(1500);
      assert.deepEqual(wills, ["w/will/kept"], "no will of a clean disconnect");
    });
  },
});
