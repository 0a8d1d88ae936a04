/**
 * Messages held for a session while it moves to a node outlive that node: they are stored in the
 * session, and whoever gets the session after the node's death delivers them into it.
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "../mqtt.ts";
import { delay, waitFor } from "../helpers.ts";
import { redisAvailable, redisRequired } from "../storage/redis_server.ts";
import { connect, withCluster } from "./nodes.ts";

const ignore = !(await redisAvailable()) && !redisRequired();
const persistent = { clean: false, properties: { sessionExpiryInterval: 300 } };

Deno.test({
  name: "`cluster` a message acknowledged while a session moves to a node that then dies reaches the session",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
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
        await delay(1000); // the route is in effect everywhere
        // a stalls (shorter than its lease): it does not read b's request to release the session, so
        // b holds what its own clients publish for the session meanwhile.
        a.signal("SIGSTOP");
        const mover = mqtt.connect(b.url, {
          clientId: "mover",
          reconnectPeriod: 0,
          connectTimeout: 30_000,
          ...persistent,
        });
        clients.push(mover);
        mover.on("error", () => {});
        await waitFor(() => /Claimed mover at epoch/.test(b.output()), 1500, "b's claim");
        await delay(300); // the release is asked for
        await pub.publishAsync("m/x", "held on b", { qos: 1 });
        await b.stop("SIGKILL");
        a.signal("SIGCONT");
        // b is claimed (a lease or so) and its sessions adopted; the client comes back on c.
        await waitFor(() => /Adopted \d+ sessions of b/.test(a.output() + c.output()), 10_000, "b's claim");
        const got: string[] = [];
        const back = mqtt.connect(c.url, {
          clientId: "mover",
          reconnectPeriod: 0,
          connectTimeout: 15_000,
          ...persistent,
        });
        clients.push(back);
        back.on("message", (_t, payload) => got.push(String(payload)));
        const connack = await new Promise<mqtt.IConnackPacket>((resolve) => back.once("connect", resolve));
        assert.equal(connack.sessionPresent, true, "session present");
        await waitFor(() => got.length >= 1, 5000, "the message held on b").catch(() => {});
        await delay(500);
        assert.deepEqual(got, ["held on b"]);
      },
    );
  },
});
