/**
 * The group commit of {@linkcode StorageHook}: one commit per turn, at most one in flight, retries
 * with backoff that never drop a write, `sync()` that waits for durability, one log line per outage.
 *
 * @module
 */

import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { AllowHook, type Client, type Packet, PacketType } from "../../mod.ts";
import { ByteWriter, encodePacket } from "../../src/packets/mod.ts";
import { MemoryHook, MemoryStore } from "../../hooks/storage/memory.ts";
import { coalesce, StorageHook, type WriteOp } from "../../hooks/storage/storage.ts";
import { KVBackend } from "../../hooks/storage/kv.ts";
import { delay, RawClient, startBroker, waitFor } from "../helpers.ts";

/** A store that fails a set number of commits, and can hold commits until released. */
class FlakyStore extends MemoryStore {
  failures = 0;
  attempts = 0;
  batches: WriteOp[][] = [];
  gate: Promise<void> | undefined;

  override async commit(ops: WriteOp[]): Promise<void> {
    this.attempts++;
    if (this.gate) await this.gate;
    if (this.failures > 0) {
      this.failures--;
      throw new Error("store unreachable");
    }
    this.batches.push([...ops]);
    await super.commit(ops);
  }
}

const client = { id: "c" } as Client;

function retained(topic: string): Packet {
  return {
    fixedHeader: { type: PacketType.Publish, qos: 1, retain: true },
    topicName: topic,
    payload: new TextEncoder().encode(topic),
  };
}

async function capture(): Promise<LogRecord[]> {
  const records: LogRecord[] = [];
  await configure({
    sinks: { mem: (record) => records.push(record) },
    loggers: [
      { category: ["x-broker", "storage"], lowestLevel: "info", sinks: ["mem"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["mem"] },
    ],
    reset: true,
  });
  return records;
}

Deno.test("StorageHook commits every write made in one turn in one commit", async () => {
  const store = new FlakyStore();
  const hook = new MemoryHook({ store });
  await hook.init();
  for (let i = 0; i < 500; i++) hook.onRetainMessage(client, retained(`t/${i}`), 1);
  await hook.sync();
  assert.equal(store.batches.length, 1);
  assert.equal(store.batches[0].length, 500);
  assert.equal(store.retained.size, 500);
  await hook.stop();
});

Deno.test("StorageHook keeps one commit in flight and puts everything queued meanwhile in the next", async () => {
  const store = new FlakyStore();
  const hook = new MemoryHook({ store });
  await hook.init();
  const { promise: gate, resolve: open } = Promise.withResolvers<void>();
  store.gate = gate;
  hook.onRetainMessage(client, retained("first"), 1);
  await delay(0); // the first commit is now in flight
  for (let i = 0; i < 10; i++) hook.onRetainMessage(client, retained(`next/${i}`), 1);
  await delay(0);
  hook.onRetainMessage(client, retained("last"), 1);
  let synced = false;
  const done = hook.sync().then(() => synced = true);
  await delay(20);
  assert.equal(synced, false, "sync waits for the commit");
  assert.equal(store.attempts, 1);
  store.gate = undefined;
  open();
  await done;
  assert.deepEqual(store.batches.map((b) => b.length), [1, 11]);
  await hook.stop();
});

Deno.test("StorageHook retries failed commits without losing or reordering writes, logging once per outage", async () => {
  const records = await capture();
  try {
    const store = new FlakyStore();
    const hook = new MemoryHook({ store, id: "flaky" });
    await hook.init();
    store.failures = 3;
    hook.onRetainMessage(client, retained("a"), 1);
    hook.onRetainMessage(client, retained("b"), 1);
    let synced = false;
    const done = hook.sync().then(() => synced = true);
    await delay(30);
    hook.onRetainMessage(client, retained("a"), -1); // cleared while the store is down
    hook.onRetainMessage(client, retained("c"), 1);
    await delay(20);
    assert.equal(synced, false, "sync waits while the store is down");
    await done;
    await hook.sync();
    assert.equal(store.attempts, 4);
    assert.deepEqual([...store.retained.keys()].sort(), ["b", "c"]);
    const errors = records.filter((r) => r.level === "error");
    const recovered = records.filter((r) => r.level === "info");
    assert.equal(errors.length, 1, "one error per outage");
    assert.equal(recovered.length, 1);

    store.failures = 2; // a second outage is logged again
    hook.onRetainMessage(client, retained("d"), 1);
    await hook.sync();
    assert.equal(records.filter((r) => r.level === "error").length, 2);
    assert.ok(store.retained.has("d"));
    await hook.stop();
  } finally {
    await reset();
  }
});

Deno.test("StorageHook batches a burst of QoS 1 publishes read in one turn into few commits and acks after them", async () => {
  const store = new FlakyStore();
  await using broker = await startBroker({}, [new AllowHook(), new MemoryHook({ store })]);
  const { client: sub } = await RawClient.connect(broker, "sub", {
    connect: { clean: false },
    properties: { sessionExpiryInterval: 60 },
  });
  await sub.subscribe([{ filter: "b/#", qos: 1 }]);
  sub.close();
  await waitFor(() => broker.server.clients.get("sub")?.closed === true);
  const { client: pub } = await RawClient.connect(broker, "pub");
  try {
    const out = new ByteWriter(64 * 1024);
    for (let i = 1; i <= 200; i++) {
      encodePacket(
        {
          fixedHeader: { type: PacketType.Publish, qos: 1 },
          topicName: "b/x",
          packetId: i,
          payload: new Uint8Array([i & 0xff]),
        },
        5,
        out,
      );
    }
    await waitFor(() => store.attempts === store.commits);
    const before = store.commits;
    await pub.sendBytes(out.toBytes()); // one write: read and handled in (nearly) one turn
    for (let i = 1; i <= 200; i++) {
      const puback = await pub.expect(PacketType.Puback);
      assert.equal(puback.packetId, i);
    }
    const commits = store.commits - before;
    assert.ok(commits <= 5, `200 publishes took ${commits} commits`);
    assert.equal(store.inflight.get("sub")?.size, 200, "every acknowledged message is stored");
  } finally {
    pub.close();
  }
});

Deno.test("StorageHook writes nothing for the traffic of sessions that end with their connection", async () => {
  const store = new FlakyStore();
  // An earlier persistent session of "sub5": a clean session under its id must remove it.
  store.clients.set("sub5", { id: "sub5" } as never);
  await using broker = await startBroker({}, [new AllowHook(), new MemoryHook({ store })]);
  const { client: sub5 } = await RawClient.connect(broker, "sub5"); // v5, session expiry 0
  const { client: sub4 } = await RawClient.connect(broker, "sub4", { version: 4 }); // clean session
  await sub5.subscribe([{ filter: "c/#", qos: 2 }]);
  await sub4.subscribe([{ filter: "c/#", qos: 1 }]);
  await waitFor(() => store.attempts === store.commits);
  assert.equal(store.clients.has("sub5"), false, "the older persistent session is gone");
  const before = store.writes;
  const { client: pub } = await RawClient.connect(broker, "pub", { version: 4 });
  await pub.send(publishOf("c/1", 1, 1));
  await pub.expect(PacketType.Puback);
  await pub.send(publishOf("c/2", 2, 2));
  await pub.expect(PacketType.Pubrec);
  await pub.send({ fixedHeader: { type: PacketType.Pubrel, qos: 1 }, packetId: 2 });
  await pub.expect(PacketType.Pubcomp);
  for (const sub of [sub5, sub4]) {
    for (const p of await sub.sync()) {
      if (p.fixedHeader.qos === 1) {
        await sub.send({ fixedHeader: { type: PacketType.Puback }, packetId: p.packetId });
      }
      if (p.fixedHeader.qos === 2) {
        await sub.send({ fixedHeader: { type: PacketType.Pubrec }, packetId: p.packetId });
      }
    }
    await sub.sync();
  }
  await sub5.send({
    fixedHeader: { type: PacketType.Unsubscribe },
    packetId: 3,
    filters: [{ filter: "c/#", qos: 0 }],
  });
  await sub5.expect(PacketType.Unsuback);
  for (const c of [pub, sub5, sub4]) c.close();
  await waitFor(() => broker.server.info.clientsConnected === 0);
  await delay(20);
  assert.equal(store.writes - before, 0, "no storage write for clean sessions");
  assert.equal(store.clients.size + store.subscriptions.size + store.inflight.size, 0);
});

function publishOf(topic: string, qos: 1 | 2, packetId: number): Packet {
  return {
    fixedHeader: { type: PacketType.Publish, qos },
    topicName: topic,
    packetId,
    payload: new Uint8Array([1, 2, 3]),
  };
}

Deno.test("coalesce drops in-flight writes that a later write of the same batch makes pointless", () => {
  const message = { topic: "t", payload: new Uint8Array([1]), qos: 1, retain: false, created: 0, expiry: 0 };
  const put = (clientId: string, sequence: number, stage: "publish" | "pubrel" = "publish"): WriteOp => ({
    op: "putInflight",
    record: { clientId, direction: "out", sequence, packetId: sequence, stage, message } as never,
  });
  const del = (clientId: string, id: number): WriteOp => ({
    op: "deleteInflight",
    clientId,
    direction: "out",
    id,
  });
  const ops = [
    put("a", 1),
    put("b", 1),
    del("a", 1),
    put("a", 2),
    put("a", 2, "pubrel"),
    put("a", 1),
    del("c", 9),
  ];
  assert.deepEqual(coalesce([...ops]), [ops[1], ops[2], ops[4], ops[5], ops[6]]);
  const untouched = [put("a", 1), del("a", 2)];
  assert.equal(coalesce(untouched), untouched);
  // Knowing what was written before: deletes of records never written go too.
  const written = new Map([["a", new Set([1])]]);
  const batch = [put("a", 2), del("a", 2), del("a", 1), del("b", 5), put("c", 3)];
  assert.deepEqual(coalesce([...batch], written), [batch[2], batch[4]]);
  assert.deepEqual(written, new Map([["c", new Set([3])]]));
});

/** A KV backend whose commits fail on demand: before writing, or after writing (the reply lost). */
class FlakyKV extends KVBackend {
  failBefore = 0;
  failAfter = 0;
  override async commit(ops: WriteOp[]): Promise<void> {
    if (this.failBefore > 0) {
      this.failBefore--;
      throw new Error("KV down");
    }
    await super.commit(ops);
    if (this.failAfter > 0) {
      this.failAfter--;
      throw new Error("reply lost");
    }
  }
}

Deno.test("StorageHook retries failed commits of outbound events (KV) and restores exactly what is awaited", async () => {
  const records = await capture(); // the outage's log lines
  const kv = await Deno.openKv(":memory:");
  try {
    const backend = new FlakyKV({ kv });
    const hook = new StorageHook("flaky-kv", backend);
    await hook.init();
    await hook.storedClients(); // loaded, as the server does at start
    const clients = ["a", "b", "c"].map((id) =>
      ({ id, properties: { sessionExpiryInterval: 60 }, state: {} }) as unknown as Client
    );
    const payload = new TextEncoder().encode("m");
    const expected = new Map<string, number>();
    let sequence = 0;
    for (let round = 0; round < 40; round++) {
      if (round % 7 === 3) backend.failBefore = 1;
      if (round % 7 === 5) backend.failAfter = 1;
      sequence++;
      const message: Packet = {
        fixedHeader: { type: PacketType.Publish, qos: 1 },
        topicName: `t/${round}`,
        payload,
        sequence,
        packetId: sequence,
      };
      for (const client of clients) {
        hook.onQosPublish(client, message);
        expected.set(`${client.id}/${sequence}`, sequence);
      }
      // Acknowledge two rounds back, but not every third message of client "b".
      if (sequence > 2) {
        const acked = { ...message, sequence: sequence - 2, packetId: sequence - 2 };
        for (const client of clients) {
          if (client.id === "b" && (sequence - 2) % 3 === 0) continue;
          hook.onQosComplete(client, acked);
          expected.delete(`${client.id}/${sequence - 2}`);
        }
      }
      await delay(round % 4 === 0 ? 60 : 1);
    }
    await hook.sync();
    assert.ok(records.some((r) => r.level === "error"), "the outages happened");
    await hook.stop();

    const reopened = new KVBackend({ kv });
    await reopened.open();
    const state = await reopened.load();
    const got = new Map(
      state.inflight.filter((r) => r.direction === "out").map((
        r,
      ) => [`${r.clientId}/${r.sequence}`, r.packetId]),
    );
    assert.deepEqual([...got].sort(), [...expected].sort());
    for (const r of state.inflight) assert.equal(r.message?.topic, `t/${r.sequence - 1}`);
    await reopened.close();
  } finally {
    kv.close();
    await reset();
  }
});
