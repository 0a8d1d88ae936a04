import assert, { deepStrictEqual, strictEqual } from "node:assert/strict";
import { isValidTopicFilter, isValidTopicName, parseSharedFilter } from "../../src/packets/mod.ts";

Deno.test("isValidTopicName accepts ordinary topic names", () => {
  for (
    const topic of [
      "a",
      "a/b",
      "/",
      "/a",
      "a/",
      "a//b",
      "$SYS/x",
      "ü/€/😀",
      " ",
      "\ufeffa",
      "x".repeat(65535),
    ]
  ) {
    assert(isValidTopicName(topic), JSON.stringify(topic.slice(0, 20)));
  }
});

Deno.test("isValidTopicName rejects empty names, wildcards, U+0000, lone surrogates and long names", () => {
  for (
    const topic of [
      "",
      "+",
      "#",
      "a/+",
      "a/#",
      "a+b",
      "a#",
      "a\u0000b",
      "a\ud800",
      "\udc00",
      "x".repeat(65536),
    ]
  ) {
    strictEqual(isValidTopicName(topic), false, JSON.stringify(topic.slice(0, 20)));
  }
  // 21846 three-byte characters are 65538 bytes.
  strictEqual(isValidTopicName("€".repeat(21845)), true);
  strictEqual(isValidTopicName("€".repeat(21846)), false);
});

Deno.test("isValidTopicFilter accepts wildcards in whole levels", () => {
  for (
    const filter of [
      "#",
      "+",
      "a/#",
      "a/+",
      "+/+",
      "+/#",
      "/+",
      "+/",
      "a/+/b",
      "/#",
      "$SYS/#",
      "a//b",
      "sport/tennis/+/#",
    ]
  ) {
    assert(isValidTopicFilter(filter), filter);
  }
});

Deno.test("isValidTopicFilter rejects misplaced wildcards and invalid strings", () => {
  for (
    const filter of [
      "",
      "a#",
      "#/a",
      "a/#/b",
      "a/b#",
      "##",
      "a+",
      "+a",
      "a/+b",
      "a/b+/c",
      "++",
      "a\u0000",
      "\ud800",
    ]
  ) {
    strictEqual(isValidTopicFilter(filter), false, filter);
  }
});

Deno.test("isValidTopicFilter checks shared subscription filters [MQTT-4.8.2-1] [MQTT-4.8.2-2]", () => {
  for (
    const filter of ["$share/g/a", "$share/g/#", "$share/g/+/b", "$share/group-1//", "$share/g/$share/x/y"]
  ) {
    assert(isValidTopicFilter(filter), filter);
  }
  for (
    const filter of [
      "$share/",
      "$share/g",
      "$share/g/",
      "$share//a",
      "$share/+/a",
      "$share/#/a",
      "$share/g+/a",
      "$share/g/a#",
    ]
  ) {
    strictEqual(isValidTopicFilter(filter), false, filter);
  }
  // Not shared: the prefix is case-sensitive and a whole level.
  assert(isValidTopicFilter("$SHARE/g"));
  assert(isValidTopicFilter("$sharex/g"));
  // `$share` alone is a share with no group [MQTT-4.8.2-1].
  strictEqual(isValidTopicFilter("$share"), false);
});

Deno.test("parseSharedFilter splits group and filter", () => {
  deepStrictEqual(parseSharedFilter("$share/g/a/b"), { group: "g", filter: "a/b" });
  deepStrictEqual(parseSharedFilter("$share/g/#"), { group: "g", filter: "#" });
  deepStrictEqual(parseSharedFilter("$share//a"), { group: "", filter: "a" });
  deepStrictEqual(parseSharedFilter("$share/g/"), { group: "g", filter: "" });
  strictEqual(parseSharedFilter("$share/g"), undefined);
  strictEqual(parseSharedFilter("$SHARE/g/a"), undefined);
  strictEqual(parseSharedFilter("a/b"), undefined);
});
