/**
 * Unit tests of the forwarded messages' ids (`wire.ts`) and of delivering each id once
 * (`delivered_once.ts`): no Redis, no processes.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packets/types.ts";
import { ByteWriter } from "../../src/packets/writer.ts";
import {
  encodeMessage,
  messageRecord,
  readRecords,
  type WireMessage,
  writeRecord,
} from "../../hooks/cluster/wire.ts";
import { ClaimWindows, idKey, OriginSequences } from "../../hooks/cluster/delivered_once.ts";

const packet = {
  fixedHeader: { type: PacketType.Publish, qos: 2 as const },
  topicName: "a/b",
  payload: new TextEncoder().encode("hello"),
  created: 1000,
  expiry: 0,
  origin: "pub",
};

Deno.test("`writeRecord` carries the message id; a retained record carries none", () => {
  const out = new ByteWriter(256);
  const encoded = encodeMessage(packet);
  writeRecord(out, packet, encoded, true, ["g/a/#"], { epoch: 0xfedcba98, seq: 2 ** 40 + 7 });
  writeRecord(out, packet, encoded, false, [], { epoch: 1, seq: 1 });
  const [first, second] = readRecords(out.toBytes()) as WireMessage[];
  assert.deepEqual([first.epoch, first.seq, first.plain, first.groups], [0xfedcba98, 2 ** 40 + 7, true, [
    "g/a/#",
  ]]);
  assert.deepEqual([second.epoch, second.seq, second.plain], [1, 1, false]);
  assert.equal(new TextDecoder().decode(first.packet.payload), "hello");
  assert.equal(first.packet.origin, "pub");
  const retained = readRecords(messageRecord(packet))[0] as WireMessage;
  assert.deepEqual([retained.epoch, retained.seq, retained.packet.topicName], [0, 0, "a/b"]);
});

Deno.test("`OriginSequences` drops a batch read twice, and starts again with a new process", () => {
  const seen = new OriginSequences();
  assert.deepEqual([1, 2, 3].map((seq) => seen.fresh("a", 5, seq)), [true, true, true]);
  assert.deepEqual([2, 3].map((seq) => seen.fresh("a", 5, seq)), [false, false], "the retried write's copy");
  assert.equal(seen.fresh("b", 5, 1), true, "another origin node");
  assert.equal(seen.fresh("a", 9, 1), true, "the node's id in a new process");
  assert.equal(seen.fresh("a", 9, 1), false);
  assert.equal(seen.fresh("a", 0, 0), true, "records without an id are never dropped");
  assert.equal(seen.fresh("a", 0, 0), true);
});

Deno.test("`ClaimWindows` gives each adopted session one copy, whichever comes first", () => {
  const windows = new ClaimWindows();
  assert.equal(windows.active, false);
  const window = windows.open(new Set(["s1", "s2"]));
  assert.equal(windows.active, true);
  // Through this node's inbox first: the dead node's copy goes to shared groups only.
  assert.equal(windows.inbox(idKey("p", 1, 1), true), undefined);
  assert.equal(windows.orphan(window, idKey("p", 1, 1), true), false);
  // Through the dead node's inbox first: this node's copy skips the adopted sessions.
  assert.equal(windows.orphan(window, idKey("p", 1, 2), true), true);
  assert.deepEqual(windows.inbox(idKey("p", 1, 2), true), new Set(["s1", "s2"]));
  // Only in one of them: delivered.
  assert.equal(windows.orphan(window, idKey("p", 1, 3), true), true);
  assert.equal(windows.inbox(idKey("q", 1, 3), true), undefined, "another origin's message");
  // A copy for shared groups only is never a duplicate of a non-shared delivery.
  assert.equal(windows.inbox(idKey("p", 1, 4), false), undefined);
  assert.equal(windows.orphan(window, idKey("p", 1, 4), true), true);
  windows.close(window);
  assert.equal(windows.active, false);
});
