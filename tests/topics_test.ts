import assert from "node:assert/strict";
import { type Packet, PacketType, type QoS } from "../src/packets/types.ts";
import { isValidTopicName } from "../src/packets/topic_rules.ts";
import { type Delivery, matchTopic, parseFilter, type Subscribers, TopicsIndex } from "../src/topics.ts";

/** The client ids matched by a topic, sorted, without shared groups. */
function clients(index: TopicsIndex, topic: string): string[] {
  return [...index.subscribers(topic).subscriptions.keys()].sort();
}

/** Subscribes `c1` to each filter at QoS 0. */
function subscribeAll(index: TopicsIndex, filters: string[], clientId = "c1"): void {
  for (const filter of filters) index.subscribe(clientId, { filter, qos: 0 });
}

/** The filters (subscribed by clients named after them) that match a topic. */
function matchingFilters(index: TopicsIndex, topic: string): string[] {
  return clients(index, topic);
}

function publish(topicName: string, payload: number[] = [1], qos: QoS = 0): Packet {
  return {
    fixedHeader: { type: PacketType.Publish, qos, retain: true },
    topicName,
    payload: new Uint8Array(payload),
  };
}

function topicsOf(packets: Packet[]): string[] {
  return packets.map((p) => p.topicName!).sort();
}

/** Sends `count` messages to a topic and returns which client each shared group picked, in order. */
function rotate(
  index: TopicsIndex,
  topic: string,
  count: number,
  eligible?: (id: string) => boolean,
): string[] {
  const picked: string[] = [];
  for (let i = 0; i < count; i++) {
    const subs = index.subscribers(topic);
    index.selectShared(subs, eligible);
    picked.push(...[...subs.subscriptions.values()].filter((d) => d.shared).map((d) => d.clientId));
  }
  return picked;
}

Deno.test("parseFilter accepts valid filters and splits $share", () => {
  assert.deepEqual(parseFilter("a/b"), { group: undefined, topicFilter: "a/b", wildcard: false });
  assert.deepEqual(parseFilter("a/+/#"), { group: undefined, topicFilter: "a/+/#", wildcard: true });
  assert.deepEqual(parseFilter("#"), { group: undefined, topicFilter: "#", wildcard: true });
  assert.deepEqual(parseFilter("+"), { group: undefined, topicFilter: "+", wildcard: true });
  assert.deepEqual(parseFilter("/"), { group: undefined, topicFilter: "/", wildcard: false });
  assert.deepEqual(parseFilter("+/+//#"), { group: undefined, topicFilter: "+/+//#", wildcard: true });
  assert.deepEqual(parseFilter("$share/g/a/#"), { group: "g", topicFilter: "a/#", wildcard: true });
  assert.deepEqual(parseFilter("$share/g//"), { group: "g", topicFilter: "/", wildcard: false });
  // Case-sensitive: "$SHARE" and "$shared" are ordinary first levels.
  assert.deepEqual(parseFilter("$SHARE/g/a"), {
    group: undefined,
    topicFilter: "$SHARE/g/a",
    wildcard: false,
  });
  assert.deepEqual(parseFilter("$shared/a"), { group: undefined, topicFilter: "$shared/a", wildcard: false });
});

Deno.test("parseFilter rejects invalid filters", () => {
  for (
    const filter of [
      "", // [MQTT-4.7.3-1]
      "a\u0000b", // [MQTT-4.7.3-2]
      "a/#/b", // [MQTT-4.7.1-1]
      "a#",
      "#/",
      "a/b#",
      "a+", // [MQTT-4.7.1-2]
      "a/+b",
      "+a/b",
      "++",
      "$share", // [MQTT-4.8.2-1]
      "$share/",
      "$share//a",
      "$share/g",
      "$share/g/", // [MQTT-4.8.2-2]
      "$share/g+/a",
      "$share/#/a",
      "$share/g/a#",
    ]
  ) {
    assert.equal(parseFilter(filter), undefined, JSON.stringify(filter));
  }
});

Deno.test("isValidTopicName rejects empty names, wildcards and U+0000", () => {
  assert.equal(isValidTopicName("a/b"), true);
  assert.equal(isValidTopicName("/"), true);
  assert.equal(isValidTopicName("$SYS/x"), true);
  assert.equal(isValidTopicName(""), false);
  assert.equal(isValidTopicName("a/+"), false);
  assert.equal(isValidTopicName("a/#"), false);
  assert.equal(isValidTopicName("a\u0000"), false);
});

Deno.test("matchTopic follows the wildcard and $ rules", () => {
  const cases: [string, string, boolean][] = [
    ["a/b", "a/b", true],
    ["a/b", "a/c", false],
    ["a/b", "a/b/c", false],
    ["a/b/c", "a/b", false],
    ["a/+", "a/b", true],
    ["a/+", "a", false],
    ["a/+", "a/", true],
    ["a/+", "a/b/c", false],
    ["a/#", "a", true],
    ["a/#", "a/b/c", true],
    ["a/#", "ab", false],
    ["#", "a/b", true],
    ["#", "/", true],
    ["#", "$SYS/x", false],
    ["+/x", "$SYS/x", false],
    ["$SYS/#", "$SYS/x", true],
    ["$SYS/+", "$SYS/x", true],
    ["a/+/#", "a", false],
    ["a/+/#", "a/b", true],
    ["+", "", true],
    ["a//b", "a//b", true],
    ["a/+/b", "a//b", true],
    ["/a", "/a", true],
    ["+/a", "/a", true],
    ["/a", "a", false],
  ];
  for (const [filter, topic, expected] of cases) {
    assert.equal(matchTopic(filter, topic), expected, `${filter} vs ${topic}`);
  }
});

Deno.test("TopicsIndex.subscribers matches exact filters", () => {
  const index = new TopicsIndex();
  index.subscribe("c1", { filter: "a/b/c", qos: 1 });
  index.subscribe("c2", { filter: "a/b", qos: 0 });
  assert.deepEqual(clients(index, "a/b/c"), ["c1"]);
  assert.deepEqual(clients(index, "a/b"), ["c2"]);
  assert.deepEqual(clients(index, "a"), []);
  assert.deepEqual(clients(index, "a/b/c/d"), []);
  assert.deepEqual(clients(index, "A/b/c"), []);
});

Deno.test("TopicsIndex.subscribers answers a topic again from its kept match, fresh, until subscriptions change", () => {
  const index = new TopicsIndex();
  index.subscribe("c1", { filter: "a/+", qos: 1 });
  const first = index.subscribers("a/b").subscriptions.get("c1")!;
  first.qos = 0; // a caller's change stays its own
  first.identifiers.push(9);
  const second = index.subscribers("a/b").subscriptions.get("c1")!;
  assert.notEqual(second, first);
  assert.equal(second.qos, 1);
  assert.deepEqual(second.identifiers, []);
  index.subscribe("c1", { filter: "a/+", qos: 2, identifier: 4 }); // options replaced
  assert.equal(index.subscribers("a/b").subscriptions.get("c1")!.qos, 2);
  assert.deepEqual(index.subscribers("a/b").subscriptions.get("c1")!.identifiers, [4]);
  index.subscribe("c2", { filter: "a/b", qos: 0 });
  assert.deepEqual(clients(index, "a/b"), ["c1", "c2"]);
  index.subscribe("c3", { filter: "$share/g/a/b", qos: 1 }); // a topic with a shared group is matched afresh
  assert.equal(index.subscribers("a/b").shared.size, 1);
  index.unsubscribe("c1", "a/+");
  index.unsubscribe("c3", "$share/g/a/b");
  assert.deepEqual(clients(index, "a/b"), ["c2"]);
  assert.equal(index.subscribers("a/b").shared.size, 0);
  index.unsubscribe("c2", "a/b");
  assert.deepEqual(clients(index, "a/b"), []);
});

Deno.test("TopicsIndex.subscribers matches + and #", () => {
  const index = new TopicsIndex();
  for (const filter of ["a/+", "a/+/c", "+/+/+", "a/#", "a/b/#", "+/b/#", "#", "b/#"]) {
    index.subscribe(filter, { filter, qos: 0 });
  }
  assert.deepEqual(matchingFilters(index, "a/b"), ["#", "+/b/#", "a/#", "a/+", "a/b/#"]);
  assert.deepEqual(matchingFilters(index, "a/b/c"), ["#", "+/+/+", "+/b/#", "a/#", "a/+/c", "a/b/#"]);
  assert.deepEqual(matchingFilters(index, "a/x/c/d"), ["#", "a/#"]);
  assert.deepEqual(matchingFilters(index, "z"), ["#"]);
});

Deno.test("TopicsIndex.subscribers matches the parent level with #", () => {
  const index = new TopicsIndex();
  index.subscribe("c1", { filter: "a/#", qos: 0 });
  index.subscribe("c2", { filter: "a/b/#", qos: 0 });
  index.subscribe("c3", { filter: "a/+/#", qos: 0 });
  assert.deepEqual(clients(index, "a"), ["c1"]); // "a/#" matches "a"
  assert.deepEqual(clients(index, "a/b"), ["c1", "c2", "c3"]);
  assert.deepEqual(clients(index, "ab"), []);
});

Deno.test("TopicsIndex.subscribers keeps # and + away from $ topics", () => {
  const index = new TopicsIndex();
  index.subscribe("hash", { filter: "#", qos: 0 });
  index.subscribe("plus", { filter: "+/x", qos: 0 });
  index.subscribe("plusHash", { filter: "+/#", qos: 0 });
  index.subscribe("sys", { filter: "$SYS/#", qos: 0 });
  index.subscribe("sysPlus", { filter: "$SYS/+", qos: 0 });
  index.subscribe("shared", { filter: "$share/g/#", qos: 0 });
  assert.deepEqual(clients(index, "$SYS/x"), ["sys", "sysPlus"]); // [MQTT-4.7.2-1]
  assert.deepEqual(clients(index, "$SYS"), ["sys"]);
  assert.deepEqual(clients(index, "$"), []);
  assert.equal(index.subscribers("$SYS/x").shared.size, 0);
  assert.deepEqual(clients(index, "a/x"), ["hash", "plus", "plusHash"]);
  assert.equal(index.subscribers("a/x").shared.size, 1);
  // Only the first level counts: "a/$b" is an ordinary topic.
  assert.deepEqual(clients(index, "a/$x"), ["hash", "plusHash"]);
});

Deno.test("TopicsIndex.subscribers treats empty levels as levels", () => {
  const index = new TopicsIndex();
  index.subscribe("empty", { filter: "a//b", qos: 0 });
  index.subscribe("plus", { filter: "a/+/b", qos: 0 });
  index.subscribe("lead", { filter: "/a", qos: 0 });
  index.subscribe("leadPlus", { filter: "+/a", qos: 0 });
  index.subscribe("trail", { filter: "a/", qos: 0 });
  index.subscribe("hash", { filter: "a/#", qos: 0 });
  assert.deepEqual(clients(index, "a//b"), ["empty", "hash", "plus"]);
  assert.deepEqual(clients(index, "a/b"), ["hash"]);
  assert.deepEqual(clients(index, "/a"), ["lead", "leadPlus"]);
  assert.deepEqual(clients(index, "a"), ["hash"]);
  assert.deepEqual(clients(index, "a/"), ["hash", "trail"]);
});

Deno.test("TopicsIndex.subscribers merges overlapping subscriptions of a client", () => {
  const index = new TopicsIndex();
  index.subscribe("c1", { filter: "a/+", qos: 0, identifier: 1, noLocal: true });
  index.subscribe("c1", { filter: "a/#", qos: 2, identifier: 2, retainAsPublished: true });
  index.subscribe("c1", { filter: "a/b", qos: 1, noLocal: true });
  index.subscribe("c2", { filter: "a/b", qos: 1, noLocal: true, identifier: 9 });
  const subs = index.subscribers("a/b");
  assert.equal(subs.subscriptions.size, 2);
  const c1 = subs.subscriptions.get("c1")!;
  assert.equal(c1.qos, 2); // [MQTT-3.3.4-2]
  assert.deepEqual([...c1.identifiers].sort(), [1, 2]); // [MQTT-3.3.4-4]
  assert.equal(c1.noLocal, false); // one subscription without No Local is enough
  assert.equal(c1.retainAsPublished, true);
  assert.equal(c1.shared, false);
  assert.deepEqual(
    subs.subscriptions.get("c2"),
    {
      clientId: "c2",
      qos: 1,
      noLocal: true,
      retainAsPublished: false,
      identifiers: [9],
      shared: false,
      groups: undefined,
    } satisfies Delivery,
  );
  // Only "a/#" matches "a".
  assert.deepEqual(index.subscribers("a").subscriptions.get("c1")?.identifiers, [2]);
});

Deno.test("TopicsIndex.subscribers gives one identifier per subscription, repeats included", () => {
  const index = new TopicsIndex();
  index.subscribe("c1", { filter: "a/+", qos: 0, identifier: 5 });
  index.subscribe("c1", { filter: "+/b", qos: 0, identifier: 5 });
  index.subscribe("c1", { filter: "a/b", qos: 0 });
  // Spec 3.3.4: several matching subscriptions with the same identifier carry it several times.
  assert.deepEqual(index.subscribers("a/b").subscriptions.get("c1")?.identifiers, [5, 5]);
  assert.deepEqual(index.subscribers("x/b").subscriptions.get("c1")?.identifiers, [5]);
  index.subscribe("c2", { filter: "a/b", qos: 0 });
  assert.deepEqual(index.subscribers("a/b").subscriptions.get("c2")?.identifiers, []);
});

Deno.test("TopicsIndex.subscribers returns fresh results", () => {
  const index = new TopicsIndex();
  index.subscribe("c1", { filter: "a", qos: 1, identifier: 3 });
  const first = index.subscribers("a");
  first.subscriptions.get("c1")!.identifiers.push(4);
  first.subscriptions.get("c1")!.qos = 0;
  assert.deepEqual(index.subscribers("a").subscriptions.get("c1")?.identifiers, [3]);
  assert.equal(index.subscribers("a").subscriptions.get("c1")?.qos, 1);
});

Deno.test("TopicsIndex.subscribe replaces a subscription to the same filter", () => {
  const index = new TopicsIndex();
  assert.equal(index.subscribe("c1", { filter: "a/+", qos: 0, identifier: 1, noLocal: true }), true);
  assert.equal(index.subscribe("c1", { filter: "a/+", qos: 2, identifier: 7 }), false); // [MQTT-3.8.4-3]
  assert.equal(index.subscriptionCount, 1);
  const delivery = index.subscribers("a/b").subscriptions.get("c1")!;
  assert.equal(delivery.qos, 2);
  assert.deepEqual(delivery.identifiers, [7]);
  assert.equal(delivery.noLocal, false);
  // Without an identifier the replacement drops the old one.
  assert.equal(index.subscribe("c1", { filter: "a/+", qos: 1 }), false);
  assert.deepEqual(index.subscribers("a/b").subscriptions.get("c1")?.identifiers, []);
  // Another client, or the same filter shared, is a different subscription.
  assert.equal(index.subscribe("c2", { filter: "a/+", qos: 1 }), true);
  assert.equal(index.subscribe("c1", { filter: "$share/g/a/+", qos: 1 }), true);
  assert.equal(index.subscribe("c1", { filter: "$share/g/a/+", qos: 0 }), false);
  assert.equal(index.subscribe("c1", { filter: "$share/h/a/+", qos: 0 }), true);
  assert.equal(index.subscriptionCount, 2);
  assert.equal(index.sharedSubscriptionCount, 2);
  assert.equal(index.sharedGroups.size, 2);
});

Deno.test("TopicsIndex.subscribe stores a normalised copy", () => {
  const index = new TopicsIndex();
  const sub = { filter: "$share/g/a/#", qos: 1 as const, identifier: 4 };
  index.subscribe("c1", sub);
  index.subscribe("c2", { filter: "a/b", qos: 2, noLocal: true, retainAsPublished: true, retainHandling: 2 });
  sub.qos = 1;
  sub.identifier = 5;
  const all = [...index.allSubscriptions()].sort((x, y) => x.clientId.localeCompare(y.clientId));
  assert.deepEqual(all, [
    {
      filter: "$share/g/a/#",
      topicFilter: "a/#",
      group: "g",
      clientId: "c1",
      qos: 1,
      noLocal: false,
      retainAsPublished: false,
      retainHandling: 0,
      identifier: 4,
    },
    {
      filter: "a/b",
      topicFilter: "a/b",
      clientId: "c2",
      qos: 2,
      noLocal: true,
      retainAsPublished: true,
      retainHandling: 2,
    },
  ]);
});

Deno.test("TopicsIndex.subscribe throws on invalid filters", () => {
  const index = new TopicsIndex();
  for (const filter of ["", "a/#/b", "a+", "$share/g", "$share//a"]) {
    assert.throws(() => index.subscribe("c1", { filter, qos: 0 }), TypeError);
  }
  assert.equal(index.nodeCount, 1);
  assert.equal(index.subscriptionCount, 0);
});

Deno.test("TopicsIndex.unsubscribe removes subscriptions and says whether they existed", () => {
  const index = new TopicsIndex();
  index.subscribe("c1", { filter: "a/b", qos: 0 });
  index.subscribe("c2", { filter: "a/b", qos: 0 });
  index.subscribe("c1", { filter: "$share/g/a/b", qos: 0 });
  assert.equal(index.unsubscribe("c1", "a/b"), true);
  assert.equal(index.unsubscribe("c1", "a/b"), false);
  assert.equal(index.unsubscribe("c3", "a/b"), false);
  assert.equal(index.unsubscribe("c1", "a/c"), false);
  assert.equal(index.unsubscribe("c1", "a"), false);
  assert.equal(index.unsubscribe("c1", "a/#/b"), false); // invalid: cannot exist
  assert.equal(index.unsubscribe("c1", "$share/h/a/b"), false);
  assert.equal(index.unsubscribe("c2", "$share/g/a/b"), false);
  assert.deepEqual(clients(index, "a/b"), ["c2"]);
  assert.equal(index.subscribers("a/b").shared.size, 1);
  assert.equal(index.unsubscribe("c1", "$share/g/a/b"), true);
  assert.equal(index.subscribers("a/b").shared.size, 0);
  assert.equal(index.subscriptionCount, 1);
  assert.equal(index.sharedSubscriptionCount, 0);
  assert.equal(index.sharedGroups.size, 0);
});

Deno.test("TopicsIndex.unsubscribe prunes empty nodes back to the root", () => {
  const index = new TopicsIndex();
  const filters: string[] = [];
  for (let i = 0; i < 1000; i++) {
    const filter = i % 4 === 0
      ? `a/${i}/+/c`
      : i % 4 === 1
      ? `$share/g${i % 7}/b/${i % 13}/#`
      : i % 4 === 2
      ? `x/${i}//y/${i}`
      : `${i % 10}/${i}/+/#`;
    filters.push(filter);
  }
  for (const [i, filter] of filters.entries()) index.subscribe(`c${i % 3}`, { filter, qos: 1 });
  assert.ok(index.nodeCount > 1000);
  assert.equal(index.subscriptionCount + index.sharedSubscriptionCount, 1000);
  // Unsubscribe in a different order than subscribed.
  for (const [i, filter] of [...filters.entries()].reverse()) {
    assert.equal(index.unsubscribe(`c${i % 3}`, filter), true, filter);
  }
  assert.equal(index.nodeCount, 1);
  assert.equal(index.subscriptionCount, 0);
  assert.equal(index.sharedSubscriptionCount, 0);
  assert.equal(index.sharedGroups.size, 0);
  assert.deepEqual([...index.allSubscriptions()], []);
});

Deno.test("TopicsIndex.unsubscribe keeps nodes still in use", () => {
  const index = new TopicsIndex();
  subscribeAll(index, ["a", "a/b", "a/b/c"]);
  const nodes = index.nodeCount;
  assert.equal(nodes, 4);
  index.unsubscribe("c1", "a/b");
  assert.equal(index.nodeCount, 4); // "a/b" is still the path to "a/b/c"
  assert.deepEqual(clients(index, "a/b/c"), ["c1"]);
  index.unsubscribe("c1", "a/b/c");
  assert.equal(index.nodeCount, 2);
  assert.deepEqual(clients(index, "a"), ["c1"]);
});

Deno.test("TopicsIndex.selectShared gives each group one message", () => {
  const index = new TopicsIndex();
  index.subscribe("a1", { filter: "$share/ga/s/+", qos: 1 });
  index.subscribe("a2", { filter: "$share/ga/s/+", qos: 1 });
  index.subscribe("b1", { filter: "$share/gb/s/#", qos: 2 });
  index.subscribe("b2", { filter: "$share/gb/s/#", qos: 2 });
  // Same group name on another filter: another group.
  index.subscribe("c1", { filter: "$share/ga/s/x", qos: 0 });
  const subs = index.subscribers("s/x");
  assert.deepEqual([...subs.shared.keys()].sort(), ["ga/s/+", "ga/s/x", "gb/s/#"]);
  assert.deepEqual([...subs.shared.get("ga/s/+")!.keys()], ["a1", "a2"]);
  assert.equal(subs.subscriptions.size, 0);
  index.selectShared(subs);
  assert.deepEqual([...subs.subscriptions.keys()].sort(), ["a1", "b1", "c1"]);
  assert.equal(subs.subscriptions.get("b1")?.qos, 2);
  assert.equal(subs.subscriptions.get("b1")?.shared, true);
});

Deno.test("TopicsIndex.selectShared rotates round robin through members", () => {
  const index = new TopicsIndex();
  for (const id of ["m1", "m2", "m3"]) index.subscribe(id, { filter: "$share/g/jobs/#", qos: 1 });
  const picked = rotate(index, "jobs/1", 6);
  assert.deepEqual(picked, ["m1", "m2", "m3", "m1", "m2", "m3"]);
  // Rotation is per group, across topics matching it.
  assert.deepEqual(rotate(index, "jobs/2/x", 2), ["m1", "m2"]);
  // Replacing a member's options keeps its place.
  index.subscribe("m1", { filter: "$share/g/jobs/#", qos: 2 });
  assert.deepEqual(rotate(index, "jobs", 4), ["m3", "m1", "m2", "m3"]);
});

Deno.test("TopicsIndex.selectShared survives removal mid-rotation", () => {
  const index = new TopicsIndex();
  for (const id of ["m1", "m2", "m3", "m4"]) index.subscribe(id, { filter: "$share/g/t", qos: 0 });
  assert.deepEqual(rotate(index, "t", 2), ["m1", "m2"]);
  index.unsubscribe("m2", "$share/g/t"); // already served
  assert.deepEqual(rotate(index, "t", 1), ["m3"]);
  index.unsubscribe("m4", "$share/g/t"); // due next
  assert.deepEqual(rotate(index, "t", 3), ["m1", "m3", "m1"]);
  index.subscribe("m5", { filter: "$share/g/t", qos: 0 }); // joins at the end
  assert.deepEqual(rotate(index, "t", 3), ["m3", "m5", "m1"]);
  index.unsubscribe("m5", "$share/g/t");
  index.unsubscribe("m3", "$share/g/t");
  assert.deepEqual(rotate(index, "t", 2), ["m1", "m1"]);
  index.unsubscribe("m1", "$share/g/t");
  assert.deepEqual(rotate(index, "t", 1), []);
  assert.equal(index.nodeCount, 1);
});

Deno.test("TopicsIndex.selectShared prefers eligible members", () => {
  const index = new TopicsIndex();
  for (const id of ["m1", "m2", "m3"]) index.subscribe(id, { filter: "$share/g/t", qos: 0 });
  const online = new Set(["m1", "m3"]);
  const eligible = (id: string) => online.has(id);
  assert.deepEqual(rotate(index, "t", 4, eligible), ["m1", "m3", "m1", "m3"]);
  online.clear();
  // Nobody eligible: the rotation goes on anyway.
  assert.deepEqual(rotate(index, "t", 3, eligible), ["m1", "m2", "m3"]);
  online.add("m2");
  assert.deepEqual(rotate(index, "t", 2, eligible), ["m2", "m2"]);
});

Deno.test("TopicsIndex.selectShared honours narrowed candidate maps", () => {
  const index = new TopicsIndex();
  for (const id of ["m1", "m2", "m3"]) index.subscribe(id, { filter: "$share/g/t", qos: 0 });
  const subs = index.subscribers("t");
  const members = subs.shared.get("g/t")!;
  subs.shared.set("g/t", new Map([...members].filter(([id]) => id !== "m1")));
  index.selectShared(subs);
  assert.deepEqual([...subs.subscriptions.keys()], ["m2"]);
  assert.deepEqual(rotate(index, "t", 1), ["m3"]);
  // A group removed from the result is not delivered.
  const none = index.subscribers("t");
  none.shared.clear();
  index.selectShared(none);
  assert.equal(none.subscriptions.size, 0);
});

Deno.test("TopicsIndex.selectShared still delivers when the group went away meanwhile", () => {
  const index = new TopicsIndex();
  index.subscribe("m1", { filter: "$share/g/t", qos: 1 });
  const subs = index.subscribers("t");
  const snapshot = new Map(subs.shared.get("g/t")!);
  index.unsubscribe("m1", "$share/g/t");
  subs.shared.set("g/t", snapshot);
  index.selectShared(subs);
  assert.deepEqual([...subs.subscriptions.keys()], ["m1"]);
});

Deno.test("TopicsIndex.subscribe treats $SHARE as an ordinary filter", () => {
  const index = new TopicsIndex();
  index.subscribe("c1", { filter: "$SHARE/g/t", qos: 0 });
  index.subscribe("c2", { filter: "$SHARE/g/t", qos: 0 });
  assert.equal(index.subscriptionCount, 2);
  assert.equal(index.sharedSubscriptionCount, 0);
  assert.deepEqual(clients(index, "$SHARE/g/t"), ["c1", "c2"]);
  assert.deepEqual(clients(index, "t"), []);
  assert.equal(index.subscribers("t").shared.size, 0);
});

Deno.test("TopicsIndex.selectShared merges with the client's non-shared subscriptions", () => {
  const index = new TopicsIndex();
  index.subscribe("c1", { filter: "a/+", qos: 0, identifier: 1, noLocal: true });
  index.subscribe("c1", { filter: "$share/g/a/#", qos: 2, identifier: 2 });
  index.subscribe("c1", { filter: "$share/h/a/b", qos: 1, identifier: 3 });
  const subs: Subscribers = index.subscribers("a/b");
  index.selectShared(subs);
  assert.equal(subs.subscriptions.size, 1);
  const delivery = subs.subscriptions.get("c1")!;
  assert.equal(delivery.qos, 2);
  assert.deepEqual([...delivery.identifiers].sort(), [1, 2, 3]);
  assert.equal(delivery.noLocal, false);
  assert.equal(delivery.shared, false);
  assert.deepEqual(delivery.groups?.sort(), ["g/a/#", "h/a/b"]); // the groups that picked c1
  // From shared groups only.
  const onlyShared = index.subscribers("a");
  index.selectShared(onlyShared);
  assert.deepEqual(
    onlyShared.subscriptions.get("c1"),
    {
      clientId: "c1",
      qos: 2,
      noLocal: false,
      retainAsPublished: false,
      identifiers: [2],
      shared: true,
      groups: ["g/a/#"],
    } satisfies Delivery,
  );
});

Deno.test("TopicsIndex.subscribers agrees with matchTopic on random filters", () => {
  // A small xorshift generator keeps the test deterministic.
  let seed = 0x2545f491;
  const random = (n: number) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const words = ["a", "b", "", "$SYS", "c"];
  const filterLevels = [...words, "+", "+"];
  const index = new TopicsIndex();
  const filters = new Set<string>();
  for (let i = 0; i < 400; i++) {
    const depth = 1 + random(4);
    const levels: string[] = [];
    for (let d = 0; d < depth; d++) levels.push(filterLevels[random(filterLevels.length)]);
    if (random(3) === 0) levels.push("#");
    if (levels.join("/") !== "") filters.add(levels.join("/")); // "" is not a valid filter
  }
  for (const filter of filters) index.subscribe(filter, { filter, qos: 0 });
  for (let i = 0; i < 500; i++) {
    const depth = 1 + random(5);
    const levels: string[] = [];
    for (let d = 0; d < depth; d++) levels.push(words[random(words.length)]);
    const topic = levels.join("/");
    const expected = [...filters].filter((filter) => matchTopic(filter, topic)).sort();
    assert.deepEqual(matchingFilters(index, topic), expected, topic);
  }
});

Deno.test("TopicsIndex.retain stores, replaces and clears retained messages", () => {
  const index = new TopicsIndex();
  const first = publish("a/b", [1]);
  assert.equal(index.retain(first), 1); // [MQTT-3.3.1-5]
  assert.equal(index.retained("a/b"), first);
  assert.equal(index.retainedCount, 1);
  const second = publish("a/b", [2]);
  assert.equal(index.retain(second), 1);
  assert.equal(index.retained("a/b"), second);
  assert.equal(index.retainedCount, 1);
  assert.equal(index.retain(publish("a", [3])), 1);
  assert.equal(index.retainedCount, 2);
  assert.equal(index.retained("a/c"), undefined);
  assert.equal(index.retained("a/b/c"), undefined);
  // An empty payload clears [MQTT-3.3.1-6] and is not stored [MQTT-3.3.1-7].
  assert.equal(index.retain(publish("a/b", [])), -1);
  assert.equal(index.retained("a/b"), undefined);
  assert.equal(index.retainedCount, 1);
  assert.equal(index.retain(publish("a/b", [])), 0);
  assert.equal(index.retain({ fixedHeader: { type: PacketType.Publish }, topicName: "x/y" }), 0);
  assert.equal(index.retainedCount, 1);
  assert.equal(index.retained("a")?.payload?.[0], 3);
  assert.equal(index.retain(publish("a", [])), -1);
  assert.equal(index.retainedCount, 0);
  assert.equal(index.retainedNodeCount, 1);
  assert.throws(
    () => index.retain({ fixedHeader: { type: PacketType.Publish }, payload: new Uint8Array(1) }),
    TypeError,
  );
});

Deno.test("TopicsIndex.retain prunes the retained trie", () => {
  const index = new TopicsIndex();
  index.retain(publish("a/b/c"));
  index.retain(publish("a"));
  assert.equal(index.retainedNodeCount, 4);
  index.retain(publish("a/b/c", []));
  assert.equal(index.retainedNodeCount, 2);
  assert.deepEqual(topicsOf(index.retainedMessages("#")), ["a"]);
  index.retain(publish("a", []));
  assert.equal(index.retainedNodeCount, 1);
});

Deno.test("TopicsIndex.retainedMessages matches filters with + and #", () => {
  const index = new TopicsIndex();
  for (const topic of ["a", "a/b", "a/b/c", "a/x/c", "a/x/d", "b/b/c", "a//c", "/a", "a/"]) {
    index.retain(publish(topic));
  }
  assert.deepEqual(topicsOf(index.retainedMessages("a/b")), ["a/b"]);
  assert.deepEqual(topicsOf(index.retainedMessages("a/b/c/d")), []);
  assert.deepEqual(topicsOf(index.retainedMessages("a/+/c")), ["a//c", "a/b/c", "a/x/c"]);
  assert.deepEqual(topicsOf(index.retainedMessages("+/b/c")), ["a/b/c", "b/b/c"]);
  assert.deepEqual(topicsOf(index.retainedMessages("a/+")), ["a/", "a/b"]);
  assert.deepEqual(topicsOf(index.retainedMessages("+")), ["a"]);
  assert.deepEqual(topicsOf(index.retainedMessages("+/+")), ["/a", "a/", "a/b"]);
  assert.deepEqual(topicsOf(index.retainedMessages("a/#")), [
    "a",
    "a/",
    "a//c",
    "a/b",
    "a/b/c",
    "a/x/c",
    "a/x/d",
  ]);
  assert.deepEqual(topicsOf(index.retainedMessages("a/x/#")), ["a/x/c", "a/x/d"]);
  assert.deepEqual(topicsOf(index.retainedMessages("a/+/#")), [
    "a/",
    "a//c",
    "a/b",
    "a/b/c",
    "a/x/c",
    "a/x/d",
  ]);
  assert.deepEqual(topicsOf(index.retainedMessages("#")).length, 9);
  assert.deepEqual(topicsOf(index.retainedMessages("/#")), ["/a"]);
  assert.deepEqual(topicsOf(index.retainedMessages("z/#")), []);
  assert.deepEqual(index.retainedMessages("a/#/b"), []); // invalid
  // No retained messages for shared subscriptions (3.3.1.3: only new non-shared subscriptions get them).
  assert.deepEqual(index.retainedMessages("$share/g/a/#"), []);
});

Deno.test("TopicsIndex.retainedMessages keeps # and + away from $ topics", () => {
  const index = new TopicsIndex();
  for (const topic of ["$SYS/x", "$SYS/y/z", "$", "a/$x", "a"]) index.retain(publish(topic));
  assert.deepEqual(topicsOf(index.retainedMessages("#")), ["a", "a/$x"]); // [MQTT-4.7.2-1]
  assert.deepEqual(topicsOf(index.retainedMessages("+")), ["a"]);
  assert.deepEqual(topicsOf(index.retainedMessages("+/x")), []);
  assert.deepEqual(topicsOf(index.retainedMessages("+/#")), ["a", "a/$x"]);
  assert.deepEqual(topicsOf(index.retainedMessages("$SYS/#")), ["$SYS/x", "$SYS/y/z"]);
  assert.deepEqual(topicsOf(index.retainedMessages("$SYS/+")), ["$SYS/x"]);
  assert.deepEqual(topicsOf(index.retainedMessages("$")), ["$"]);
  assert.deepEqual(topicsOf(index.retainedMessages("a/+")), ["a/$x"]);
  assert.equal([...index.allRetained()].length, 5);
});

Deno.test("TopicsIndex.retainedMessages agrees with matchTopic", () => {
  const index = new TopicsIndex();
  const topics: string[] = [];
  const words = ["a", "b", "", "$SYS"];
  for (const x of words) {
    for (const y of words) {
      topics.push(x, `${x}/${y}`);
      for (const z of words) topics.push(`${x}/${y}/${z}`);
    }
  }
  const unique = [...new Set(topics)].filter((topic) => topic !== ""); // "" is not a topic name
  for (const topic of unique) index.retain(publish(topic));
  assert.equal(index.retainedCount, unique.length);
  for (const filter of ["#", "+", "+/+", "+/#", "a/#", "/#", "+/b/+", "$SYS/#", "+//#", "a/+/#", "//"]) {
    const expected = unique.filter((topic) => matchTopic(filter, topic)).sort();
    assert.deepEqual(topicsOf(index.retainedMessages(filter)), expected, filter);
  }
});

Deno.test("TopicsIndex retained index handles 10,000 topics quickly", () => {
  const index = new TopicsIndex();
  const started = performance.now();
  for (let i = 0; i < 10_000; i++) {
    index.retain(publish(`site/${i % 10}/device/${i}/state`));
  }
  assert.equal(index.retainedCount, 10_000);
  assert.equal(index.retainedMessages("#").length, 10_000);
  assert.equal(index.retainedMessages("site/3/#").length, 1_000);
  assert.equal(index.retainedMessages("site/+/device/42/state").length, 1);
  assert.equal(index.retainedMessages("site/+/device/+/state").length, 10_000);
  assert.equal(index.retainedMessages("+/+/+/+").length, 0);
  assert.equal([...index.allRetained()].length, 10_000);
  for (let i = 0; i < 10_000; i += 2) index.retain(publish(`site/${i % 10}/device/${i}/state`, []));
  assert.equal(index.retainedCount, 5_000);
  assert.equal(index.retainedMessages("#").length, 5_000);
  for (let i = 1; i < 10_000; i += 2) index.retain(publish(`site/${i % 10}/device/${i}/state`, []));
  assert.equal(index.retainedCount, 0);
  assert.equal(index.retainedNodeCount, 1);
  const elapsed = performance.now() - started;
  assert.ok(elapsed < 2_000, `took ${elapsed.toFixed(0)} ms`);
});

Deno.test("TopicsIndex.retainedMessages does not scan unrelated branches", () => {
  const index = new TopicsIndex();
  for (let i = 0; i < 100_000; i++) index.retain(publish(`bulk/${i}`));
  index.retain(publish("a/1/c"));
  index.retain(publish("a/2/c"));
  let started = performance.now();
  for (let i = 0; i < 1_000; i++) assert.equal(index.retainedMessages("a/+/c").length, 2);
  const narrow = performance.now() - started;
  started = performance.now();
  assert.equal(index.retainedMessages("#").length, 100_002);
  const all = performance.now() - started;
  // 1,000 narrow lookups cost about as much as nothing next to one scan of 100,000 topics.
  assert.ok(narrow < 200, `a/+/c x1000 took ${narrow.toFixed(1)} ms`);
  assert.ok(all < 1_000, `# took ${all.toFixed(1)} ms`);
});
