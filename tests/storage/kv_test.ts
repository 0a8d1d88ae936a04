/**
 * The storage suite on {@linkcode KVHook}: an in-memory database and a database file. Plus the
 * KV-specific parts: chunks of large records are never left behind, and the hook takes its
 * options from `addHook`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { KVBackend, KVHook } from "../../hooks/storage/kv.ts";
import type { StoredMessage } from "../../src/storage.ts";
import { AllowHook, Server } from "../../mod.ts";
import { runStorageSuite } from "./suite.ts";

/** Messages in the outbound log's message groups. */
async function messageCopies(kv: Deno.Kv): Promise<number> {
  let n = 0;
  for await (const entry of kv.list<{ m: unknown[] }>({ prefix: ["m"] })) n += entry.value.m.length;
  return n;
}

Deno.test("KVHook on :memory: passes the storage suite", async (t) => {
  await runStorageSuite(t, async () => {
    const kv = await Deno.openKv(":memory:");
    return {
      hook: () => new KVHook({ kv }),
      backend: () => new KVBackend({ kv }),
      close: () => Promise.resolve(kv.close()),
      messageCopies: () => messageCopies(kv),
    };
  });
});

Deno.test("KVHook on a file passes the storage suite", async (t) => {
  await runStorageSuite(t, async () => {
    const dir = await Deno.makeTempDir({ prefix: "broker-kv-" });
    const path = `${dir}/nested/broker.kv`;
    return {
      hook: () => new KVHook({ path }),
      backend: () => new KVBackend({ path }),
      close: () => Deno.remove(dir, { recursive: true }),
      messageCopies: async () => {
        using kv = await Deno.openKv(path);
        return await messageCopies(kv);
      },
    };
  });
});

async function chunkKeys(kv: Deno.Kv): Promise<number> {
  let n = 0;
  for await (const _ of kv.list({ prefix: ["x"] })) n++;
  return n;
}

Deno.test("KVBackend splits large records into chunks and never leaves chunks behind", async () => {
  await using kv = await Deno.openKv(":memory:");
  const backend = new KVBackend({ kv });
  await backend.open();
  const message = (payload: Uint8Array): StoredMessage => ({
    topic: "big",
    payload,
    qos: 0,
    retain: true,
    created: 1,
    expiry: 0,
    origin: "p",
  });
  const big = new Uint8Array(300_000).map((_, i) => i % 251);
  await backend.commit([{ op: "putRetained", message: message(big) }]);
  assert.equal(await chunkKeys(kv), 6); // 300,000 bytes plus the serialization header, in 60 KB chunks
  const bigger = new Uint8Array(700_000).map((_, i) => i % 13);
  await backend.commit([{ op: "putRetained", message: message(bigger) }]);
  assert.equal(await chunkKeys(kv), 12, "the old version's chunks are gone");
  assert.deepEqual((await backend.load()).retained[0].payload, bigger);
  await backend.commit([{ op: "putRetained", message: message(new Uint8Array(10)) }]);
  assert.equal(await chunkKeys(kv), 0, "a small value drops the chunks");
  await backend.commit([{ op: "putRetained", message: message(big) }, {
    op: "deleteRetained",
    topic: "big",
  }]);
  assert.equal(await chunkKeys(kv), 0);
  assert.deepEqual((await backend.load()).retained, []);

  // Chunks written by an interrupted commit (no record points at them) are removed on load.
  await kv.set(["x", "r", "ghost", "1", 0], new Uint8Array(3));
  const reopened = new KVBackend({ kv });
  await reopened.open();
  await reopened.load();
  assert.equal(await chunkKeys(kv), 0);
  await reopened.close();
  await backend.close();
});

Deno.test("KVHook takes its options from addHook and closes the database it opened", async () => {
  const dir = await Deno.makeTempDir({ prefix: "broker-kv-" });
  try {
    const server = new Server();
    await server.addHook(new AllowHook());
    await server.addHook(new KVHook(), { path: `${dir}/a.kv` });
    await server.serve();
    await server.close();
    const stat = await Deno.stat(`${dir}/a.kv`);
    assert.ok(stat.isFile);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("KVBackend stores a large queued message once, restores it to each session, and leaves no keys when done", async () => {
  await using kv = await Deno.openKv(":memory:");
  const backend = new KVBackend({ kv });
  await backend.open();
  const payload = new Uint8Array(200_000).map((_, i) => i % 241);
  const message: StoredMessage = {
    topic: "big",
    payload,
    qos: 2,
    retain: false,
    created: 1,
    expiry: 0,
    origin: "p",
  };
  const sessions = ["a", "b", "c"];
  await backend.commit(sessions.map((clientId, i) => ({
    op: "putInflight",
    record: { clientId, direction: "out", sequence: 1, packetId: i, stage: "publish", message },
  })));
  let blobKeys = 0;
  for await (const _ of kv.list({ prefix: ["x", "m"] })) blobKeys++;
  assert.equal(blobKeys, 4, "one copy of 200 KB, in 60 KB chunks");
  // A new backend on the same store (a restart) restores it to each session and carries on.
  const reopened = new KVBackend({ kv });
  await reopened.open();
  const { inflight } = await reopened.load();
  assert.deepEqual(inflight.map((r) => [r.clientId, r.packetId, r.message?.payload.length]).sort(), [
    ["a", 0, 200_000],
    ["b", 1, 200_000],
    ["c", 2, 200_000],
  ]);
  assert.deepEqual(inflight[0].message?.payload, payload);
  await reopened.commit([
    {
      op: "putInflight",
      record: { clientId: "a", direction: "out", sequence: 1, packetId: 7, stage: "pubrel" },
    },
    { op: "deleteInflight", clientId: "b", direction: "out", id: 1 },
  ]);
  assert.deepEqual(
    (await reopened.load()).inflight.map((r) => [r.clientId, r.stage, r.packetId]).sort(),
    [["a", "pubrel", 7], ["c", "publish", 2]],
  );
  await reopened.commit([
    { op: "deleteInflight", clientId: "a", direction: "out", id: 1 },
    { op: "deleteClient", clientId: "c" },
  ]);
  const left: Deno.KvKey[] = [];
  for await (const entry of kv.list({ prefix: [] })) left.push(entry.key);
  assert.deepEqual(left, []);
  await reopened.close();
  await backend.close();
});
