/**
 * The cluster tests' own helper: `withCluster` stops what it started and what the body added, and
 * reports the body's failure rather than one of the tear-down.
 *
 * @module
 */

import assert from "node:assert/strict";
import { redisAvailable, redisRequired } from "../storage/redis_server.ts";
import { type Node, withCluster } from "./nodes.ts";

const ignore = !(await redisAvailable()) && !redisRequired();

/** A node that only records what is done to it; its stop fails when `failing`. */
function fakeNode(id: string, done: string[], failing = false): Node {
  return {
    id,
    url: "mqtt://127.0.0.1:1",
    info: undefined,
    pid: 0,
    output: () => "",
    signal: (signal) => void done.push(`${id} ${signal}`),
    stop: () => {
      done.push(`${id} stop`);
      return failing ? Promise.reject(new Error(`${id} did not stop`)) : Promise.resolve(0);
    },
  };
}

Deno.test({
  name: "`withCluster` reports the body's failure, not the tear-down's, and still stops everything",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const done: string[] = [];
    let address = "";
    await assert.rejects(
      withCluster([], async ({ redis, nodes }) => {
        address = redis.address;
        nodes.push(fakeNode("late", done, true), fakeNode("other", done));
        await Promise.resolve();
        throw new Error("the body failed");
      }),
      /the body failed/,
    );
    assert.deepEqual(done, ["late SIGCONT", "other SIGCONT", "late stop", "other stop"]);
    const [hostname, port] = address.split(":");
    await assert.rejects(Deno.connect({ hostname, port: Number(port) }), "the redis-server stopped");
  },
});

Deno.test({
  name: "`withCluster` throws a failing tear-down when the body passed",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const done: string[] = [];
    await assert.rejects(
      withCluster([], { redis: {} }, async ({ nodes }) => {
        nodes.push(fakeNode("late", done, true));
        await Promise.resolve();
      }),
      /late did not stop/,
    );
    assert.deepEqual(done, ["late SIGCONT", "late stop"]);
  },
});
