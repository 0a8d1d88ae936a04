/**
 * The outbound log's ring of awaited entries against a `Map` model: in-order traffic, entries left
 * behind (they move out of the ring), gaps in the sequences, rewrites of old entries, and memory
 * that stays in proportion to what is held.
 *
 * @module
 */

import assert from "node:assert/strict";
import { LiveEntries } from "../../hooks/storage/live_entries.ts";
import { seededRandom } from "../helpers.ts";

interface Chunk {
  id: number;
}
interface Group {
  id: number;
}
type Entry = [Chunk, number, Group | undefined, number];

function check(live: LiveEntries<Chunk, Group>, model: Map<number, Entry>, probe: Iterable<number>): void {
  assert.equal(live.size, model.size);
  for (const sequence of probe) {
    const want = model.get(sequence);
    assert.equal(live.find(sequence), want !== undefined, `sequence ${sequence}`);
    if (want) {
      assert.deepEqual([live.chunk, live.stage, live.group, live.index], want, `sequence ${sequence}`);
    }
  }
  const groups: Group[] = [];
  live.forEachGroup((group) => groups.push(group));
  const wanted = [...model.values()].map((e) => e[2]).filter((g) => g !== undefined);
  assert.deepEqual(
    groups.map((g) => g.id).sort((a, b) => a - b),
    wanted.map((g) => g.id).sort((a, b) => a - b),
  );
}

Deno.test("LiveEntries matches a Map under random traffic", () => {
  const random = seededRandom(14);
  for (let run = 0; run < 20; run++) {
    const live = new LiveEntries<Chunk, Group>();
    const model = new Map<number, Entry>();
    let next = 1 + Math.floor(random() * 5);
    const stuckEvery = 1 + Math.floor(random() * 50);
    for (let step = 0; step < 3000; step++) {
      const r = random();
      if (r < 0.45) {
        // A new sequence, sometimes after a gap.
        if (random() < 0.05) next += Math.floor(random() * 5000);
        const entry: Entry = [
          { id: step },
          Math.floor(random() * 5),
          random() < 0.8 ? { id: step } : undefined,
          step % 200,
        ];
        live.set(next, ...entry);
        model.set(next, entry);
        next++;
      } else if (r < 0.9 && model.size > 0) {
        // Done, mostly the oldest; some stay behind.
        const keys = [...model.keys()];
        let sequence = random() < 0.8 ? Math.min(...keys) : keys[Math.floor(random() * keys.length)];
        if (sequence % stuckEvery === 0 && random() < 0.9) sequence = keys[keys.length - 1];
        live.delete(sequence);
        model.delete(sequence);
      } else if (model.size > 0) {
        // A later entry of a sequence held (a packet id given, the PUBREL stage).
        const keys = [...model.keys()];
        const sequence = keys[Math.floor(random() * keys.length)];
        const entry: Entry = [{ id: -step }, 1, undefined, 0];
        live.set(sequence, ...entry);
        model.set(sequence, entry);
      }
      if (step % 97 === 0) {
        const keys = [...model.keys()];
        const low = Math.max(0, Math.min(...keys, next) - 3);
        check(live, model, [...keys, low, next, next + 1, next + 10_000, ...keys.map((k) => k + 1)]);
      }
    }
    check(live, model, [...model.keys()]);
    for (const sequence of [...model.keys()]) live.delete(sequence);
    assert.equal(live.size, 0);
  }
});

Deno.test("LiveEntries keeps an entry left behind without growing with the traffic after it", () => {
  const live = new LiveEntries<Chunk, Group>();
  const chunk = { id: 1 };
  live.set(1, chunk, 2, undefined, 0); // never acknowledged
  for (let sequence = 2; sequence < 1_000_000; sequence++) {
    live.set(sequence, chunk, 3, undefined, 0);
    if (sequence > 9) live.delete(sequence - 8);
  }
  assert.equal(live.size, 9);
  assert.ok(live.find(1));
  assert.equal(live.stage, 2);
  assert.ok(live.capacity <= 64, `ring of ${live.capacity} slots`); // it spans the recent entries only
  live.delete(1);
  assert.equal(live.size, 8);
  assert.ok(!live.find(1));
});

Deno.test("LiveEntries keeps its ring while it is used and shrinks it once traffic is smaller", () => {
  const live = new LiveEntries<Chunk, Group>();
  const chunk = { id: 1 };
  let sequence = 1;
  const burst = (n: number) => {
    const first = sequence;
    for (let i = 0; i < n; i++) live.set(sequence++, chunk, 2, undefined, 0);
    for (let s = first; s < sequence; s++) live.delete(s);
    assert.equal(live.size, 0);
  };
  burst(5000);
  const large = live.capacity;
  assert.ok(large >= 5000);
  burst(4000);
  assert.equal(live.capacity, large); // not reallocated for a burst of the same size
  burst(10);
  assert.ok(live.capacity <= 32, `ring of ${live.capacity} slots`);
});
