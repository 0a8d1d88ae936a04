/**
 * A takeover across nodes of a session that ends with its connection (v3.1.1 clean session, v5
 * Session Expiry Interval 0) hands nothing over (issue 16, item 3, on the cluster path).
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "../mqtt.ts";
import { delay } from "../helpers.ts";
import { redisAvailable, redisRequired } from "../storage/redis_server.ts";
import { withCluster } from "./nodes.ts";

const ignore = !(await redisAvailable()) && !redisRequired();

Deno.test({
  name:
    "`cluster` takeover of a clean or expiry-0 session on another node: Session Present 0, nothing carried",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withCluster(["a", "b"], async ({ nodes }) => {
      const [a, b] = nodes;
      for (const protocolVersion of [4, 5] as const) {
        const id = `clean-${protocolVersion}`;
        const options = { clientId: id, protocolVersion, reconnectPeriod: 0 };
        const first = await mqtt.connectAsync(a.url, { ...options, clean: true });
        await first.subscribeAsync(`clean/${id}`, { qos: 1 });
        const closed = new Promise<void>((resolve) => first.on("close", () => resolve()));
        const second = mqtt.connect(b.url, { ...options, clean: false });
        const connack = await new Promise<mqtt.IConnackPacket>((resolve) => second.once("connect", resolve));
        assert.equal(connack.sessionPresent, false, `v${protocolVersion}: Session Present 0`);
        await closed;
        const got: string[] = [];
        second.on("message", (topic) => got.push(topic));
        const pub = await mqtt.connectAsync(a.url, { clientId: `pub-${id}`, reconnectPeriod: 0 });
        await pub.publishAsync(`clean/${id}`, "x", { qos: 1 });
        await delay(300);
        assert.deepEqual(got, [], `v${protocolVersion}: the clean session's subscription did not move`);
        await Promise.all([second.endAsync(), pub.endAsync()]);
      }
    });
  },
});
