import assert from "node:assert/strict";
import { type Packet, PacketType } from "../mod.ts";
import { Inflight } from "../src/inflight.ts";
import { Queue } from "../src/queue.ts";

function message(id: number): Packet {
  return { fixedHeader: { type: PacketType.Publish, qos: 1 }, packetId: id, topicName: "t" };
}

Deno.test("`Inflight.nextPacketId` counts up from 1", () => {
  const inflight = new Inflight();
  assert.deepEqual([inflight.nextPacketId(), inflight.nextPacketId(), inflight.nextPacketId()], [1, 2, 3]);
});

Deno.test("`Inflight.nextPacketId` wraps from 65535 to 1, never giving 0", () => {
  const inflight = new Inflight();
  let id = 0;
  for (let i = 0; i < 65535; i++) id = inflight.nextPacketId();
  assert.equal(id, 65535);
  assert.equal(inflight.nextPacketId(), 1);
  assert.equal(inflight.nextPacketId(), 2);
});

Deno.test("`Inflight.nextPacketId` skips ids still in flight", () => {
  const inflight = new Inflight();
  inflight.outbound.set(2, message(2));
  inflight.outbound.set(3, message(3));
  inflight.outbound.set(65535, message(65535));
  inflight.outbound.set(1, message(1));
  assert.equal(inflight.nextPacketId(), 4, "1, 2 and 3 are taken");
  for (let i = 5; i < 65535; i++) assert.equal(inflight.nextPacketId(), i);
  // 65535 is taken, and so are 1 to 3: after 65534 comes 4 again (it was never stored).
  assert.equal(inflight.nextPacketId(), 4);
  inflight.outbound.delete(2);
  inflight.outbound.set(4, message(4));
  for (let i = 5; i < 65535; i++) inflight.outbound.set(i, message(i));
  assert.equal(inflight.nextPacketId(), 2, "the only free id");
});

Deno.test("`Inflight.nextPacketId` returns 0 when all 65535 ids are in use", () => {
  const inflight = new Inflight();
  for (let i = 1; i <= 65535; i++) {
    const id = inflight.nextPacketId();
    assert.equal(id, i);
    inflight.outbound.set(id, message(id));
  }
  assert.equal(inflight.nextPacketId(), 0);
  assert.equal(inflight.nextPacketId(), 0);
  inflight.outbound.delete(40000);
  assert.equal(inflight.nextPacketId(), 40000);
});

Deno.test("`Inflight` size counts in-flight and pending messages, and clear forgets everything", () => {
  const inflight = new Inflight();
  inflight.outbound.set(1, message(1));
  inflight.pending.push(message(0));
  inflight.pending.push(message(0));
  inflight.inboundQos2.add(9);
  assert.equal(inflight.size, 3);
  inflight.clear();
  assert.equal(inflight.size, 0);
  assert.equal(inflight.outbound.size, 0);
  assert.equal(inflight.pending.length, 0);
  assert.equal(inflight.inboundQos2.size, 0);
});

Deno.test("`Queue` keeps first-in first-out order across growth and wrap-around", () => {
  const queue = new Queue<number>(4);
  const expected: number[] = [];
  let next = 0;
  // Interleave pushes and shifts so the head moves around the ring before and while it grows.
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 3 + (round % 5); i++) {
      queue.push(next);
      expected.push(next++);
    }
    for (let i = 0; i < 2; i++) assert.equal(queue.shift(), expected.shift());
    assert.equal(queue.length, expected.length);
    assert.deepEqual([...queue], expected, `round ${round}`);
    assert.equal(queue.peek(), expected[0]);
  }
  while (expected.length > 0) assert.equal(queue.shift(), expected.shift());
  assert.equal(queue.length, 0);
  assert.equal(queue.shift(), undefined);
  assert.equal(queue.peek(), undefined);
});

Deno.test("`Queue` grows when full with the head in the middle of the ring", () => {
  const queue = new Queue<string>(4);
  queue.push("a");
  queue.push("b");
  queue.push("c");
  queue.push("d");
  assert.equal(queue.shift(), "a");
  assert.equal(queue.shift(), "b");
  queue.push("e");
  queue.push("f"); // full again: c d e f, wrapped around the end of the ring
  queue.push("g"); // grows
  assert.deepEqual([...queue], ["c", "d", "e", "f", "g"]);
  assert.deepEqual([queue.shift(), queue.shift(), queue.shift(), queue.shift(), queue.shift()], [
    "c",
    "d",
    "e",
    "f",
    "g",
  ]);
  assert.equal(queue.length, 0);
});

Deno.test("`Queue.clear` empties the queue and it stays usable", () => {
  const queue = new Queue<number>();
  for (let i = 0; i < 40; i++) queue.push(i);
  queue.shift();
  queue.clear();
  assert.equal(queue.length, 0);
  assert.deepEqual([...queue], []);
  queue.push(7);
  queue.push(8);
  assert.deepEqual([queue.shift(), queue.shift(), queue.shift()], [7, 8, undefined]);
});
