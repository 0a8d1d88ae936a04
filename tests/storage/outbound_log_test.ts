/**
 * The outbound log of the Deno KV backend against a model: random commits (deliveries to many
 * sessions, packet ids given to queued messages, PUBREL stages, acknowledgements, sessions removed),
 * each one's writes applied to a map as KV would, and what restores from the map compared with the
 * model. Also: the index read back from the map at any point carries on the same; and a commit cut
 * anywhere (KV's limits split a commit into several atomic writes, and a crash may come between
 * them) restores every record done neither before nor by it, and nothing done before it.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type AckValue,
  type ChunkValue,
  type GroupValue,
  type LogWrite,
  OutboundLog,
  restoreLog,
} from "../../hooks/storage/outbound_log.ts";
import type { InflightRecord, StoredMessage } from "../../src/storage.ts";
import type { QoS } from "../../src/packets/types.ts";
import { seededRandom } from "../helpers.ts";

type Store = Map<string, { key: Deno.KvKey; value: unknown }>;
/** What restores: per session, per sequence, a comparable description. */
type State = Map<string, Map<number, string>>;

function apply(store: Store, writes: LogWrite[]): void {
  for (const { key, value } of writes) {
    if (value === undefined) store.delete(JSON.stringify(key));
    else store.set(JSON.stringify(key), { key, value: structuredClone(value) });
  }
}

function sorted(store: Store, prefix: string): { key: Deno.KvKey; value: unknown }[] {
  return [...store.values()].filter((e) => e.key[0] === prefix).sort((a, b) => {
    for (let i = 1; i < Math.max(a.key.length, b.key.length); i++) {
      const x = a.key[i] as string | number;
      const y = b.key[i] as string | number;
      if (x !== y) return x < y ? -1 : 1;
    }
    return 0;
  });
}

function describe(record: InflightRecord): string {
  const m = record.message;
  return `${record.packetId}/${record.stage}${m ? `/${m.topic}/${m.qos}` : ""}`;
}

function restore(store: Store): State {
  const groups = new Map<number, GroupValue>();
  for (const { key, value } of sorted(store, "m")) groups.set(key[1] as number, value as GroupValue);
  const acks = new Map<string, AckValue>();
  for (const { key, value } of sorted(store, "a")) acks.set(key[1] as string, value as AckValue);
  const logs = new Map<string, [number, ChunkValue][]>();
  for (const { key, value } of sorted(store, "q")) {
    const part = key[1] as string;
    if (!logs.has(part)) logs.set(part, []);
    logs.get(part)!.push([key[2] as number, value as ChunkValue]);
  }
  const state: State = new Map();
  for (const [part, chunks] of logs) {
    const records = restoreLog(chunks, acks.get(part), groups);
    if (records.size > 0) state.set(part, new Map([...records].map(([seq, r]) => [seq, describe(r)])));
  }
  return state;
}

/** The index as the backend builds it on open. */
function reindex(store: Store): OutboundLog {
  const log = new OutboundLog(1);
  for (const { key, value } of sorted(store, "a")) log.addAcks(key[1] as string, value as AckValue);
  for (const { key, value } of sorted(store, "q")) {
    log.addChunk(key[1] as string, key[2] as number, value as ChunkValue);
  }
  log.settle(sorted(store, "m").map((e) => e.key[1] as number));
  return log;
}

function clone(state: State): State {
  return new Map([...state].map(([part, records]) => [part, new Map(records)]));
}

const estimate = (m: StoredMessage) => m.payload.length + 100;

function run(seed: number, commits: number, crashes: boolean): void {
  const rand = seededRandom(seed);
  const pick = <T>(items: T[]): T => items[Math.floor(rand() * items.length)];
  const sessions = Array.from({ length: 6 }, (_, i) => `c${i}`);
  const store: Store = new Map();
  let log = new OutboundLog(1);
  log.settle([]);
  let model: State = new Map();
  let nextSeq = 1;
  let stored = 0;
  for (let commit = 0; commit < commits; commit++) {
    const before = clone(model);
    const ops = 1 + Math.floor(rand() * 40);
    for (let i = 0; i < ops; i++) {
      const r = rand();
      if (r < 0.35) {
        // A message delivered to some sessions (one payload, QoS per subscriber), queued or sent.
        const payload = new Uint8Array(Math.floor(rand() * 3) === 0 ? 30_000 : 10);
        const topic = `t/${++stored}`;
        const base: StoredMessage = {
          topic,
          payload,
          qos: 1,
          retain: false,
          created: 1,
          expiry: 0,
          origin: "p",
        };
        const variants = [base, { ...base, qos: 2 as QoS }];
        const seq = nextSeq++;
        for (const part of sessions) {
          if (rand() < 0.5) continue;
          const message = pick(variants);
          const packetId = rand() < 0.5 ? 0 : 1 + Math.floor(rand() * 65535);
          log.put(part, {
            clientId: part,
            direction: "out",
            sequence: seq,
            packetId,
            stage: "publish",
            message,
          }, estimate);
          if (!model.has(part)) model.set(part, new Map());
          model.get(part)!.set(seq, `${packetId}/publish/${topic}/${message.qos}`);
        }
      } else {
        const part = pick(sessions);
        const records = model.get(part);
        if (!records || records.size === 0) continue;
        const seq = pick([...records.keys()]);
        const current = records.get(seq)!;
        if (r < 0.45) {
          // The packet id of a queued message, or a resend.
          const match = /^\d+\/publish\/(.*)\/(\d)$/.exec(current);
          if (!match) continue;
          const packetId = 1 + Math.floor(rand() * 65535);
          const message: StoredMessage = {
            topic: match[1],
            payload: new Uint8Array(1),
            qos: Number(match[2]) as QoS,
            retain: false,
            created: 1,
            expiry: 0,
            origin: "p",
          };
          log.put(part, {
            clientId: part,
            direction: "out",
            sequence: seq,
            packetId,
            stage: "publish",
            message,
          }, estimate);
          records.set(seq, current.replace(/^\d+/, String(packetId)));
        } else if (r < 0.55) {
          const packetId = Number(current.split("/")[0]) || 1;
          log.put(
            part,
            { clientId: part, direction: "out", sequence: seq, packetId, stage: "pubrel" },
            estimate,
          );
          records.set(seq, `${packetId}/pubrel`);
        } else if (r < 0.97) {
          log.complete(part, seq);
          records.delete(seq);
        } else {
          log.drop(part);
          model.delete(part);
          // The backend deletes every key of the session itself.
          for (const [id, { key }] of store) if (key[1] === part && key[0] !== "m") store.delete(id);
        }
      }
    }
    for (const [part, records] of model) if (records.size === 0) model.delete(part);
    const writes = log.flush();
    if (crashes && rand() < 0.15) {
      // Cut anywhere: what restores is the state before or after for each record, never a record
      // done before the commit, and always one untouched by it.
      apply(store, writes.slice(0, Math.floor(rand() * (writes.length + 1))));
      const restored = restore(store);
      const after = model;
      for (const part of new Set([...restored.keys(), ...before.keys(), ...after.keys()])) {
        const got = restored.get(part) ?? new Map();
        const was = before.get(part) ?? new Map();
        const is = after.get(part) ?? new Map();
        for (const [seq, description] of got) {
          assert.ok(
            was.get(seq) === description || is.get(seq) === description,
            `seed ${seed} commit ${commit}: ${part} ${seq} restored as ${description}, was ${
              was.get(seq)
            }, is ${is.get(seq)}`,
          );
        }
        for (const [seq, description] of was) {
          if (is.get(seq) === description) {
            assert.equal(got.get(seq), description, `seed ${seed} commit ${commit}: ${part} ${seq} lost`);
          }
        }
      }
      // A restart: the index and the model from what is stored.
      log = reindex(store);
      model = restored;
      continue;
    }
    apply(store, writes);
    assert.deepEqual(restore(store), model, `seed ${seed} commit ${commit}`);
    if (rand() < 0.1) log = reindex(store);
  }
  // Everything done: nothing is left but what is awaited.
  for (const [part, records] of model) for (const seq of records.keys()) log.complete(part, seq);
  apply(store, log.flush());
  assert.deepEqual(restore(store), new Map());
  assert.deepEqual([...store.keys()], [], `seed ${seed}: garbage left`);
}

Deno.test("the KV outbound log restores what the model holds after every commit", () => {
  for (let seed = 1; seed <= 30; seed++) run(seed, 150, false);
});

Deno.test("the KV outbound log restores safely from a commit cut anywhere", () => {
  for (let seed = 100; seed <= 130; seed++) run(seed, 150, true);
});

Deno.test("the KV outbound log writes one chunk per session per commit and each message once", () => {
  const log = new OutboundLog(1);
  log.settle([]);
  const payload = new Uint8Array(64);
  const message: StoredMessage = {
    topic: "t",
    payload,
    qos: 1,
    retain: false,
    created: 1,
    expiry: 0,
    origin: "p",
  };
  const qos2 = { ...message, qos: 2 as QoS };
  for (let seq = 1; seq <= 10; seq++) {
    for (let s = 0; s < 100; s++) {
      const m = s % 2 === 0 ? message : qos2;
      log.put(`s${s}`, {
        clientId: `s${s}`,
        direction: "out",
        sequence: seq,
        packetId: seq,
        stage: "publish",
        message: m,
      }, estimate);
    }
  }
  const writes = log.flush();
  assert.equal(writes.filter((w) => w.key[0] === "q").length, 100, "one chunk per session");
  const groups = writes.filter((w) => w.key[0] === "m");
  assert.equal(groups.length, 1);
  assert.equal((groups[0].value as GroupValue).m.length, 1, "the message once, for both QoS");
  // Half acknowledged: one acknowledgement map per session, no delete.
  for (let s = 0; s < 100; s++) for (let seq = 1; seq <= 5; seq++) log.complete(`s${s}`, seq);
  const acks = log.flush();
  assert.equal(acks.length, 100);
  assert.ok(acks.every((w) => w.key[0] === "a" && w.value !== undefined));
  // The rest: the chunks, the maps and the message go.
  for (let s = 0; s < 100; s++) for (let seq = 6; seq <= 10; seq++) log.complete(`s${s}`, seq);
  const done = log.flush();
  assert.equal(done.length, 100 + 100 + 1);
  assert.ok(done.every((w) => w.value === undefined));
});
