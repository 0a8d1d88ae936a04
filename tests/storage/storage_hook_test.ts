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
import type { WriteOp } from "../../hooks/storage/storage.ts";
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
