/**
 * The engine's session rules, on a real redis-server through {@linkcode RedisBus}: who may write a session
 * while it is handed over, and what a claimer adopts when the claiming node dies before the handoff.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisBus } from "../../hooks/cluster/redis_bus.ts";
import type { BusListener } from "../../hooks/cluster/bus.ts";
import { redisAvailable, redisRequired, startRedis } from "../storage/redis_server.ts";

const ignore = !(await redisAvailable()) && !redisRequired();
const quiet: BusListener = { route() {}, routesDropped() {}, retained() {}, reconnected() {} };

Deno.test({
  name:
    "`cluster` engine: a session's previous owner writes until its handoff, and its claimer's claimer adopts it whole",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const redis = await startRedis();
    const buses = {
      a: new RedisBus({ address: redis.address }),
      b: new RedisBus({ address: redis.address }),
    };
    const c = new RedisBus({ address: redis.address });
    const look = new Redis(redis.port, "127.0.0.1");
    try {
      for (const [node, bus] of [...Object.entries(buses), ["c", c] as const]) {
        await bus.connect(quiet);
        assert.ok(await bus.join(node, "{}", 60_000));
      }
      const session = () => look.hgetall("mqtt:cluster:session:s");
      // a owns the session, with a subscription.
      const first = await buses.a.claimSession("s", "a", false, "{}");
      await buses.a.storeSessions("a", [{ clientId: "s", epoch: first.epoch, ops: [["S", "s\0t/#", "{}"]] }]);
      // c claims it from a (alive): until c stores the handoff, a's writes under its epoch still count.
      const claim = await c.claimSession("s", "c", false, "{}");
      assert.equal(claim.previous, "a");
      assert.deepEqual(claim.filters, ["t/#"]);
      await buses.a.storeSessions("a", [{ clientId: "s", epoch: first.epoch, ops: [["S", "o\x001", "m1"]] }]);
      assert.equal((await session())["o\x001"], "m1", "the previous owner's write before the handoff");
      // c dies before it reads the handoff: b claims c and adopts the session as a left it.
      await c.close();
      await look.del("mqtt:cluster:lease:c");
      assert.ok(await buses.b.claim("c", "b"));
      const adopted = await buses.b.adoptSessions("c", "b");
      assert.deepEqual(adopted.map((entry) => entry.clientId), ["s"]);
      assert.equal(adopted[0].fields["o\x001"], "m1");
      assert.equal(adopted[0].fields["s\0t/#"], "{}");
      // From the adoption on, a's writes are refused.
      await buses.a.storeSessions("a", [{ clientId: "s", epoch: first.epoch, ops: [["S", "o\x002", "m2"]] }]);
      assert.equal((await session())["o\x002"], undefined, "a write after the adoption");
    } finally {
      look.disconnect();
      await Promise.all([buses.a.close(), buses.b.close()]);
      await redis.stop();
    }
  },
});

Deno.test({
  name: "`cluster` engine: once the new owner stores the handoff, the previous owner's writes are refused",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const redis = await startRedis();
    const a = new RedisBus({ address: redis.address });
    const c = new RedisBus({ address: redis.address });
    const look = new Redis(redis.port, "127.0.0.1");
    try {
      await a.connect(quiet);
      await c.connect(quiet);
      assert.ok(await a.join("a", "{}", 60_000));
      assert.ok(await c.join("c", "{}", 60_000));
      const first = await a.claimSession("s", "a", false, "{}");
      const claim = await c.claimSession("s", "c", false, "{}");
      // The handoff, stored whole by the new owner.
      await c.storeSessions("c", [{
        clientId: "s",
        epoch: claim.epoch,
        ops: [["D", "", ""], ["S", "c", "{}"], ["S", "s\0t/#", "{}"]],
        from: "a",
      }]);
      await a.storeSessions("a", [{ clientId: "s", epoch: first.epoch, ops: [["H", "s\0t/#", ""]] }]);
      assert.deepEqual(await look.hgetall("mqtt:cluster:session:s"), { c: "{}", "s\0t/#": "{}" });
    } finally {
      look.disconnect();
      await Promise.all([a.close(), c.close()]);
      await redis.stop();
    }
  },
});

Deno.test({
  name:
    "`cluster` engine: a node's writes under an earlier epoch count while it has owned the session since, not after a break",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const redis = await startRedis();
    const a = new RedisBus({ address: redis.address });
    const b = new RedisBus({ address: redis.address });
    const look = new Redis(redis.port, "127.0.0.1");
    try {
      for (const [node, bus] of [["a", a], ["b", b]] as const) {
        await bus.connect(quiet);
        assert.ok(await bus.join(node, "{}", 60_000));
      }
      const session = () => look.hgetall("mqtt:cluster:session:s");
      const write = (bus: RedisBus, node: string, epoch: number, field: string) =>
        bus.storeSessions(node, [{ clientId: "s", epoch, ops: [["S", field, "x"]] }]);
      const first = await a.claimSession("s", "a", false, "{}");
      // a claims the id again (its client reconnected to it): a commit made under the first epoch counts.
      const again = await a.claimSession("s", "a", false, "{}");
      assert.equal(again.previous, "a");
      await write(a, "a", first.epoch, "o\x001");
      assert.equal((await session())["o\x001"], "x", "a write of the same run of ownership");
      // b claims it: a's writes under either epoch count until the handoff.
      const claim = await b.claimSession("s", "b", false, "{}");
      await write(a, "a", first.epoch, "o\x002");
      assert.equal((await session())["o\x002"], "x", "the previous owner's write under its earlier epoch");
      await b.storeSessions("b", [{ clientId: "s", epoch: claim.epoch, ops: [], from: "a" }]);
      // a claims it back: what it wrote before b had it no longer counts.
      const back = await a.claimSession("s", "a", false, "{}");
      assert.equal(back.previous, "b");
      await write(a, "a", again.epoch, "o\x003");
      assert.equal((await session())["o\x003"], undefined, "a write from before the break");
      // A clean start begins a new run: the writes of the old session no longer count.
      const clean = await a.claimSession("s", "a", true, "{}");
      await write(a, "a", back.epoch, "o\x004");
      assert.equal((await session())["o\x004"], undefined, "a write for the session a clean start discarded");
      await write(a, "a", clean.epoch, "o\x005");
      assert.equal((await session())["o\x005"], "x");
    } finally {
      look.disconnect();
      await Promise.all([a.close(), b.close()]);
      await redis.stop();
    }
  },
});

Deno.test({
  name:
    "`cluster` engine: a commit applies its session writes with its forwards, each write fenced by its epoch",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const redis = await startRedis();
    const a = new RedisBus({ address: redis.address });
    const look = new Redis(redis.port, "127.0.0.1");
    try {
      await a.connect(quiet);
      assert.ok(await a.join("a", "{}", 60_000));
      const owned = await a.claimSession("s", "a", false, '{"will":1}');
      await a.storeSessions("a", [{ clientId: "s", epoch: owned.epoch, ops: [["S", "o\x001", "m1"]] }]);
      const other = await a.claimSession("t", "a", false, "{}");
      await a.commit("a", {
        forwards: new Map([["b", new Uint8Array([1, 2, 3])]]),
        routes: [],
        retained: [],
        delivered: [],
        endedSessions: [],
        sessions: [
          { clientId: "s", epoch: owned.epoch, ops: [["S", "c", "{}"], ["H", "o\x001", ""]] },
          { clientId: "t", epoch: other.epoch - 1, ops: [["S", "o\x002", "stale"]] }, // not its epoch: skipped
        ],
      });
      assert.deepEqual(await look.hgetall("mqtt:cluster:session:s"), { c: "{}" }, "the will and m1 removed");
      assert.equal((await look.hgetall("mqtt:cluster:session:t"))["o\x002"], undefined);
      assert.equal(await look.xlen("mqtt:cluster:inbox:b"), 1, "the forward, in the same transaction");
    } finally {
      look.disconnect();
      await a.close();
      await redis.stop();
    }
  },
});
