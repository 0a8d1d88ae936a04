/**
 * Messages held for a session while it moves to a node outlive that node: they are stored in the
 * session, and whoever gets the session after the node's death delivers them into it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { delay, waitFor } from "../helpers.ts";
import { redisAvailable, redisRequired } from "../storage/redis_server.ts";
import { connect, connecting, withCluster } from "./nodes.ts";

const ignore = !(await redisAvailable()) && !redisRequired();
const persistent = { clean: false, properties: { sessionExpiryInterval: 300 } };

for (const early of [false, true]) {
  Deno.test({
    name:
      `\`cluster\` a message acknowledged while a session moves to a node that then dies reaches the session${
        early ? " (its client back before that death is known)" : ""
      }`,
    ignore,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: () => heldOnDeadNode(early),
  });
}

/**
 * b holds a message for a session moving to it from a (stalled), and dies. With `early`, the client comes
 * back on c before b's death is known: c's claim is then pending on b when b's claimer adopts the session.
 */
async function heldOnDeadNode(early: boolean): Promise<void> {
  await withCluster(
    ["a", "b", "c"],
    { args: ["--log-level", "debug"], logOnFailure: /mover|held|Adopt|claim/i },
    async ({ nodes, clients }) => {
      const [a, b, c] = nodes;
      const old = await connect(a, "mover", 5, persistent);
      clients.push(old);
      old.on("error", () => {});
      await old.subscribeAsync("m/#", { qos: 1 });
      const pub = await connect(b, "pub");
      clients.push(pub);
      // Another session with the same filter moves to b first: its route barrier makes b's route for
      // m/# known everywhere, so that b asks a for mover's release at once (a new route would wait
      // for a's answer to a route barrier of its own, and a stalls: see `route_barrier.ts`).
      const warm = await connect(a, "warm", 5, persistent);
      await warm.subscribeAsync("m/#", { qos: 1 });
      await warm.endAsync();
      clients.push(await connect(b, "warm", 5, persistent));
      await delay(1000); // the route is in effect everywhere
      // a stalls (shorter than its lease): it does not read b's request to release the session, so
      // b holds what its own clients publish for the session meanwhile.
      a.signal("SIGSTOP");
      clients.push(connecting(b, "mover", { connectTimeout: 30_000, ...persistent }).client);
      await waitFor(() => /Claimed mover at epoch/.test(b.output()), 1500, "b's claim");
      await delay(300); // the release is asked for
      await pub.publishAsync("m/x", "held on b", { qos: 1 });
      await b.stop("SIGKILL");
      a.signal("SIGCONT");
      // b is claimed (a lease or so) and its sessions adopted; the client comes back on c.
      if (!early) {
        await waitFor(() => /Adopted \d+ sessions of b/.test(a.output() + c.output()), 10_000, "b's claim");
      }
      const { client: back, got, connack } = connecting(c, "mover", {
        connectTimeout: 15_000,
        ...persistent,
      });
      clients.push(back);
      assert.equal((await connack).sessionPresent, true, "session present");
      await waitFor(() => got.length >= 1, 5000, "the message held on b").catch(() => {});
      await delay(500);
      assert.deepEqual(got, ["held on b"]);
    },
  );
}

Deno.test({
  name:
    "`cluster` a client that gives up on one node and connects to another while its session is on its way gets it whole",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // b waits for the session from a (stalled); the client goes to c meanwhile, which claims it from b.
    // b passes on what a hands over, with what it held for it: nothing is lost, nothing comes twice.
    await withCluster(
      ["a", "b", "c"],
      { args: ["--log-level", "debug"], logOnFailure: /mover|held|Passed|passed/i },
      async ({ nodes, clients }) => {
        const [a, b, c] = nodes;
        const first = await connect(a, "mover", 5, persistent);
        await first.subscribeAsync("m/#", { qos: 1 });
        await first.endAsync();
        // Sessions with the same filter move to b and to c first: their route barriers make the routes
        // for m/# known everywhere, so that neither claim below waits for the stalled a to answer one.
        for (const [id, node] of [["warm-b", b], ["warm-c", c]] as const) {
          const warm = await connect(a, id, 5, persistent);
          await warm.subscribeAsync("m/#", { qos: 1 });
          await warm.endAsync();
          clients.push(await connect(node, id, 5, persistent));
        }
        const pubA = await connect(a, "pub-a");
        const pubB = await connect(b, "pub-b");
        const pubC = await connect(c, "pub-c");
        clients.push(pubA, pubB, pubC);
        await pubA.publishAsync("m/x", "queued on a", { qos: 1 });
        await delay(1000); // routes in effect everywhere
        a.signal("SIGSTOP"); // shorter than its lease
        clients.push(connecting(b, "mover", { connectTimeout: 30_000, ...persistent }).client);
        await waitFor(() => /Claimed mover at epoch/.test(b.output()), 1500, "b's claim");
        await delay(200);
        await pubB.publishAsync("m/x", "held on b", { qos: 1 });
        const { client: onC, got, connack } = connecting(c, "mover", {
          connectTimeout: 30_000,
          ...persistent,
        });
        clients.push(onC);
        await waitFor(() => /Claimed mover at epoch/.test(c.output()), 1500, "c's claim");
        await delay(200);
        await pubC.publishAsync("m/x", "held on c", { qos: 1 });
        a.signal("SIGCONT");
        assert.equal((await connack).sessionPresent, true, "session present on c");
        await waitFor(() => got.length >= 3, 5000, "every message").catch(() => {});
        await delay(500);
        assert.deepEqual(got, ["queued on a", "held on b", "held on c"]);
        await delay(1000);
        await pubA.publishAsync("m/x", "after", { qos: 1 });
        await waitFor(() => got.length >= 4, 5000, "a message published after").catch(() => {});
        assert.deepEqual(got, ["queued on a", "held on b", "held on c", "after"]);
      },
    );
  },
});
