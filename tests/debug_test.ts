import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { AllowHook, DebugHook, PacketType, Server } from "../mod.ts";
import { formatBytes } from "../hooks/debug.ts";
import { delay, mqttConnect, RawClient, startBroker, type TestBroker, waitFor } from "./helpers.ts";

/** Captures the broker's log records for the test's duration. */
async function capture(): Promise<LogRecord[]> {
  const records: LogRecord[] = [];
  await configure({
    sinks: { mem: (record) => records.push(record) },
    loggers: [
      { category: ["x-broker"], lowestLevel: "debug", sinks: ["mem"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["mem"] },
    ],
    reset: true,
  });
  return records;
}

async function debugBroker(config: Record<string, boolean>): Promise<TestBroker> {
  const broker = await startBroker({}, [new AllowHook()]);
  await broker.server.addHook(new DebugHook(), config);
  return broker;
}

function debugRecords(records: LogRecord[]): LogRecord[] {
  return records.filter((r) => r.category.join(".") === "x-broker.debug");
}

function packets(records: LogRecord[], type: string, direction: "in" | "out"): LogRecord[] {
  return debugRecords(records).filter((r) =>
    r.properties.type === type && r.properties.direction === direction
  );
}

Deno.test("DebugHook logs packets in and out with client id, direction and type", async () => {
  const records = await capture();
  try {
    await using broker = await debugBroker({});
    const client = await mqttConnect(broker, { clientId: "dbg1", username: "user", password: "secret" });
    await client.subscribeAsync("a/#", { qos: 1 });
    await client.publishAsync("a/b", "hello", { qos: 1 });
    await waitFor(() => packets(records, "PUBLISH", "out").length === 1);
    await client.endAsync();
    await waitFor(() => packets(records, "DISCONNECT", "in").length === 1);

    const connect = packets(records, "CONNECT", "in")[0];
    assert.equal(connect.level, "debug");
    assert.equal(connect.properties.client, "dbg1");
    assert.equal(connect.properties.username, "user");
    assert.equal(connect.properties.password, undefined); // neither shown nor masked without packet data
    assert.equal(connect.properties.packet, undefined);
    assert.deepEqual(connect.message, ["", "CONNECT", " in from ", "dbg1", ""]);
    const connack = packets(records, "CONNACK", "out")[0];
    assert.equal(connack.properties.reasonCode, 0);
    assert.equal(typeof connack.properties.size, "number");
    assert.deepEqual(connack.message, ["", "CONNACK", " out to ", "dbg1", ""]);
    assert.deepEqual(packets(records, "SUBSCRIBE", "in")[0].properties.filters, ["a/#"]);
    assert.deepEqual(packets(records, "SUBACK", "out")[0].properties.reasonCodes, [1]);
    const publish = packets(records, "PUBLISH", "in")[0];
    assert.equal(publish.properties.topic, "a/b");
    assert.equal(publish.properties.qos, 1);
    assert.equal(packets(records, "PUBACK", "out").length, 1);

    // The summary lines.
    const texts = debugRecords(records).map((r) => r.rawMessage);
    assert.ok(
      texts.includes(
        "Client {client} connecting from {remote} on {listener} (user {username}, version {version})",
      ),
    );
    assert.ok(texts.includes("Client {client} subscribed to {filters} with reason codes {reasonCodes}"));
    assert.ok(
      texts.includes("Client {client} published {size} bytes to {topic} (QoS {qos}, retain {retain})"),
    );
    await waitFor(() =>
      debugRecords(records).some((r) =>
        r.rawMessage === "Client {client} disconnected ({reason}); session {session}"
      )
    );
  } finally {
    await reset();
  }
});

Deno.test("DebugHook with showPacketData shows decoded fields and masks the password", async () => {
  const records = await capture();
  try {
    await using broker = await debugBroker({ showPacketData: true });
    const client = await mqttConnect(broker, {
      clientId: "dbg2",
      username: "user",
      password: "secret",
      will: { topic: "will/t", payload: Buffer.from("bye"), qos: 0, retain: false },
    });
    await client.subscribeAsync("bin/#");
    await client.publishAsync("bin/text", "hello");
    await client.publishAsync("bin/raw", Buffer.from([0, 1, 0xfe, 0xff]));
    await client.publishAsync("bin/big", "x".repeat(1000));
    await waitFor(() => packets(records, "PUBLISH", "out").length === 3);
    await client.endAsync();

    const connect = packets(records, "CONNECT", "in")[0].properties.packet as Record<
      string,
      Record<string, unknown>
    >;
    assert.equal(connect.connect.password, "******");
    assert.equal(connect.connect.username, "user");
    assert.equal(connect.connect.clientId, "dbg2");
    assert.equal(connect.connect.willTopic, "will/t");
    assert.equal(connect.connect.willPayload, "bye");
    assert.ok(!JSON.stringify(debugRecords(records).map((r) => r.properties)).includes("secret"));

    const payloads = packets(records, "PUBLISH", "out").map((r) =>
      (r.properties.packet as { payload: string }).payload
    );
    assert.equal(payloads[0], "hello");
    assert.equal(payloads[1], "0x0001feff");
    assert.equal(payloads[2], "x".repeat(256) + "… (1000 bytes)");
  } finally {
    await reset();
  }
});

Deno.test("DebugHook with showPasswords shows the CONNECT password", async () => {
  const records = await capture();
  try {
    await using broker = await debugBroker({ showPacketData: true, showPasswords: true });
    const client = await mqttConnect(broker, { clientId: "dbg3", username: "user", password: "secret" });
    await client.endAsync();
    const connect = packets(records, "CONNECT", "in")[0];
    assert.equal(connect.properties.password, "secret");
    assert.equal((connect.properties.packet as { connect: { password: string } }).connect.password, "secret");
  } finally {
    await reset();
  }
});

Deno.test("DebugHook logs PINGREQ and PINGRESP only with showPings", async () => {
  for (const showPings of [false, true]) {
    const records = await capture();
    try {
      await using broker = await debugBroker({ showPings });
      const { client } = await RawClient.connect(broker, `ping-${showPings}`);
      await client.send({ fixedHeader: { type: PacketType.Pingreq } });
      await client.expect(PacketType.Pingresp);
      await client.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode: 0 });
      await client.closed();
      client.close();
      await delay(10);
      assert.equal(packets(records, "PINGREQ", "in").length, showPings ? 1 : 0);
      assert.equal(packets(records, "PINGRESP", "out").length, showPings ? 1 : 0);
      assert.equal(packets(records, "CONNECT", "in").length, 1);
    } finally {
      await reset();
    }
  }
});

Deno.test("DebugHook logs nothing when debug is not enabled, and rejects a bad config", async () => {
  const records: LogRecord[] = [];
  await configure({
    sinks: { mem: (record) => records.push(record) },
    loggers: [
      { category: ["x-broker"], lowestLevel: "info", sinks: ["mem"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["mem"] },
    ],
    reset: true,
  });
  try {
    await using broker = await debugBroker({ showPacketData: true });
    const client = await mqttConnect(broker, { clientId: "quiet" });
    await client.publishAsync("a", "b");
    await client.endAsync();
    assert.equal(debugRecords(records).length, 0);
    const server = new Server();
    await assert.rejects(
      server.addHook(new DebugHook(), { showPackets: true }),
      /Unknown DebugHook config key "showPackets"/,
    );
    await assert.rejects(server.addHook(new DebugHook(), { showPings: "yes" }), /must be true or false/);
    await server.close();
  } finally {
    await reset();
  }
});

Deno.test("formatBytes shows UTF-8 as text, other bytes as hex, and cuts long values", () => {
  const encode = (text: string) => new TextEncoder().encode(text);
  assert.equal(formatBytes(encode("héllo")), "héllo");
  assert.equal(formatBytes(new Uint8Array([0x68, 0x00])), "0x6800"); // control characters: hex
  assert.equal(formatBytes(new Uint8Array(300).fill(0xff)), "0x" + "ff".repeat(256) + "… (300 bytes)");
  // A multi-byte character cut at the limit is still text.
  assert.equal(formatBytes(encode("a".repeat(255) + "é")), "a".repeat(255) + "… (257 bytes)");
  assert.equal(formatBytes(new Uint8Array()), "");
});
