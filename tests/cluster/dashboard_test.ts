/**
 * The dashboard's live data shows the cluster: this node's id and every node, alive or not, with its
 * connections, from each node's stats listener.
 *
 * @module
 */

import assert from "node:assert/strict";
import { delay } from "../helpers.ts";
import { redisAvailable, redisRequired } from "../storage/redis_server.ts";
import { type Node, withCluster } from "./nodes.ts";

const ignore = !(await redisAvailable()) && !redisRequired();

interface LiveCluster {
  nodeId: string;
  nodes: { id: string; alive: boolean; connections: number; messagesPerSecond: number }[];
}

async function liveCluster(node: Node): Promise<LiveCluster | null> {
  const response = await fetch(`${node.info}/api/live`);
  assert.equal(response.status, 200);
  return (await response.json()).cluster;
}

Deno.test({
  name: "`cluster` the dashboard's live data names this node and shows every node of the cluster",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withCluster(["a", "b"], { info: true }, async ({ nodes }) => {
      const [a, b] = nodes;
      let seenByA = await liveCluster(a);
      for (let tries = 0; (seenByA?.nodes.length ?? 0) < 2 && tries < 50; tries++) {
        await delay(100);
        seenByA = await liveCluster(a);
      }
      assert.ok(seenByA, "a cluster section in /api/live");
      assert.equal(seenByA.nodeId, "a");
      assert.deepEqual(seenByA.nodes.map((n) => [n.id, n.alive]).sort(), [["a", true], ["b", true]]);
      assert.equal((await liveCluster(b))!.nodeId, "b");
      const page = await (await fetch(`${a.info}/index.html`)).text();
      assert.match(page, /id="nodes-section"/, "the dashboard has the cluster table");
    });
  },
});
