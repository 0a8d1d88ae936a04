/**
 * Protocol edges a peer's test suite found (issue 16), over real sockets with raw bytes: what goes
 * in and what comes out, for each protocol level concerned.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType, type ProtocolVersion } from "../../mod.ts";
import { RawClient, startBroker, type TestBroker, waitFor } from "../helpers.ts";
import { bin, frame, P, props, u16, utf8 } from "../packets/golden.ts";

/** A CONNECT variable header: protocol name and level, flags, keep alive 0. */
function connectHead(version: ProtocolVersion, flags: number): number[] {
  return [...utf8(version === 3 ? "MQIsdp" : "MQTT"), version, flags, ...u16(0)];
}

/** A CONNECT with a QoS 0 will (flags: clean start, will flag) and the given will topic. */
function connectWithWill(
  version: ProtocolVersion,
  clientId: string,
  willTopic: string,
  willProperties: number[] = [],
): number[] {
  if (version !== 5) {
    return frame(0x10, connectHead(version, 0x06), utf8(clientId), utf8(willTopic), bin(0x78));
  }
  return frame(
    0x10,
    connectHead(5, 0x06),
    props(),
    utf8(clientId),
    props(...willProperties),
    utf8(willTopic),
    bin(0x78),
  );
}

/** Sends the bytes on a new connection and returns every frame until the broker closes it. */
async function answerTo(broker: TestBroker, version: ProtocolVersion, bytes: number[]): Promise<number[][]> {
  const client = await RawClient.open(broker, version);
  try {
    await client.sendBytes(bytes);
    const frames: number[][] = [];
    for (;;) {
      const frame = await client.readBytes();
      if (frame === undefined) return frames;
      frames.push(frame);
    }
  } finally {
    client.close();
  }
}

/** CONNACK with a reason code and no properties (v5). */
const connack5 = (code: number) => [0x20, 0x03, 0x00, code, 0x00];

// ---------------------------------------------------------------------------------------------
// 1. An empty Will Topic [MQTT-4.7.3-1]

Deno.test("CONNECT with an empty Will Topic gets CONNACK 0x82 on v5 and is closed on v3.1.1 and v3.1", async () => {
  await using broker = await startBroker();
  assert.deepEqual(await answerTo(broker, 5, connectWithWill(5, "w5", "")), [connack5(0x82)]);
  assert.deepEqual(
    await answerTo(broker, 5, connectWithWill(5, "w5d", "", P.willDelayInterval(30))),
    [connack5(0x82)],
    "with a Will Delay Interval",
  );
  assert.deepEqual(await answerTo(broker, 4, connectWithWill(4, "w4", "")), [], "v3.1.1: closed, no CONNACK");
  assert.deepEqual(await answerTo(broker, 3, connectWithWill(3, "w3", "")), [], "v3.1: closed, no CONNACK");
  assert.equal(broker.server.info.clientsConnected, 0);
  assert.equal(broker.server.clients.get("w5"), undefined, "no session was set up");
});

Deno.test("CONNECT with a wildcard Will Topic gets CONNACK 0x90 on v5 and is closed on v3.1.1", async () => {
  await using broker = await startBroker();
  assert.deepEqual(await answerTo(broker, 5, connectWithWill(5, "w5", "a/+")), [connack5(0x90)]);
  assert.deepEqual(await answerTo(broker, 4, connectWithWill(4, "w4", "a/#")), []);
});

Deno.test("CONNECT with a Will Topic over maximumTopicLength or maximumTopicLevels is refused like a PUBLISH", async () => {
  await using broker = await startBroker({ capabilities: { maximumTopicLength: 8, maximumTopicLevels: 3 } });
  assert.deepEqual(await answerTo(broker, 5, connectWithWill(5, "long5", "abcdefghi")), [connack5(0x90)]);
  assert.deepEqual(await answerTo(broker, 5, connectWithWill(5, "deep5", "a/b/c/d")), [connack5(0x90)]);
  assert.deepEqual(await answerTo(broker, 4, connectWithWill(4, "long4", "abcdefghi")), []);
  // Within the limits it is accepted.
  const [ack] = await answerTo(broker, 5, [...connectWithWill(5, "fine5", "a/b/c"), 0xe0, 0x00]);
  assert.deepEqual(ack.slice(0, 4), [0x20, ack[1], 0x00, 0x00]);
});

// ---------------------------------------------------------------------------------------------
// 2. An empty Response Topic, and every other Topic Name field

Deno.test("CONNECT with an empty Response Topic in the Will Properties gets CONNACK 0x82", async () => {
  await using broker = await startBroker();
  assert.deepEqual(
    await answerTo(broker, 5, connectWithWill(5, "r5", "will/t", P.responseTopic(""))),
    [connack5(0x82)],
  );
  assert.deepEqual(
    await answerTo(broker, 5, connectWithWill(5, "r5w", "will/t", P.responseTopic("r/+"))),
    [connack5(0x90)],
  );
});

Deno.test("PUBLISH with an empty or wildcard Response Topic gets DISCONNECT 0x82 or 0x90", async () => {
  await using broker = await startBroker();
  for (const [topic, code] of [["", 0x82], ["r/#", 0x90]] as const) {
    const { client } = await RawClient.connect(broker, `p-${code}`);
    await client.sendBytes(frame(0x30, utf8("t"), props(P.responseTopic(topic)), 0x78));
    assert.deepEqual(await client.readBytes(), [0xe0, 0x01, code]);
    assert.equal(await client.readBytes(), undefined, "closed");
    client.close();
  }
});

Deno.test("UNSUBSCRIBE with an invalid Topic Filter gets UNSUBACK 0x8F on v5", async () => {
  await using broker = await startBroker();
  const { client } = await RawClient.connect(broker, "u5");
  await client.subscribe([{ filter: "a/b", qos: 0 }]);
  // "a/b#" and "" are not filters [MQTT-4.7.1-1] [MQTT-4.7.3-1]; "a/b" is, and is subscribed.
  await client.sendBytes(frame(0xa2, u16(2), props(), utf8("a/b#"), utf8(""), utf8("a/b")));
  assert.deepEqual(await client.readBytes(), [0xb0, 0x06, 0x00, 0x02, 0x00, 0x8f, 0x8f, 0x00]);
  client.close();
});

// ---------------------------------------------------------------------------------------------
// 4. Fixed header flags per protocol level

Deno.test("MQTT 3.1 re-sent PUBREL, SUBSCRIBE and UNSUBSCRIBE with DUP set are answered", async () => {
  await using broker = await startBroker();
  const { client } = await RawClient.connect(broker, "v31", { version: 3 });
  await client.sendBytes(frame(0x34, utf8("q2/t"), u16(5), 0x78)); // PUBLISH QoS 2, id 5
  assert.deepEqual(await client.readBytes(), [0x50, 0x02, 0x00, 0x05]); // PUBREC
  await client.sendBytes([0x6a, 0x02, 0x00, 0x05]); // PUBREL, DUP (the PUBCOMP was lost, say)
  assert.deepEqual(await client.readBytes(), [0x70, 0x02, 0x00, 0x05]); // PUBCOMP
  await client.sendBytes([0x6a, 0x02, 0x00, 0x05]); // again: the id is released, PUBCOMP again
  assert.deepEqual(await client.readBytes(), [0x70, 0x02, 0x00, 0x05]);
  await client.sendBytes(frame(0x8a, u16(6), utf8("a/b"), 0x01)); // SUBSCRIBE, DUP
  assert.deepEqual(await client.readBytes(), [0x90, 0x03, 0x00, 0x06, 0x01]);
  await client.sendBytes(frame(0xaa, u16(7), utf8("a/b"))); // UNSUBSCRIBE, DUP
  assert.deepEqual(await client.readBytes(), [0xb0, 0x02, 0x00, 0x07]);
  await client.sendBytes([0xc1, 0x00]); // PINGREQ with an unused flag set: 3.1 does not use it
  assert.deepEqual(await client.readBytes(), [0xd0, 0x00]);
  client.close();
});

Deno.test("MQTT 3.1 CONNECT with unused fixed header and reserved connect flags is accepted; 3.1.1 is closed", async () => {
  await using broker = await startBroker();
  assert.deepEqual(
    await answerTo(broker, 3, [...frame(0x11, connectHead(3, 0x03), utf8("old")), 0xe0, 0x00]),
    [[0x20, 0x02, 0x00, 0x00]],
  );
  assert.deepEqual(await answerTo(broker, 4, frame(0x11, connectHead(4, 0x02), utf8("new"))), []);
  assert.deepEqual(await answerTo(broker, 4, frame(0x10, connectHead(4, 0x03), utf8("new"))), []);
});

Deno.test("MQTT 3.1.1 and 5 close the connection on PUBREL, SUBSCRIBE or UNSUBSCRIBE with DUP set", async () => {
  await using broker = await startBroker();
  const cases: [ProtocolVersion, number[]][] = [
    [4, [0x6a, 0x02, 0x00, 0x05]],
    [4, frame(0x8a, u16(6), utf8("a/b"), 0x01)],
    [4, frame(0xaa, u16(7), utf8("a/b"))],
    [4, [0xc1, 0x00]],
    [5, [0x6a, 0x02, 0x00, 0x05]],
    [5, frame(0x8a, u16(6), props(), utf8("a/b"), 0x01)],
  ];
  for (const [version, bytes] of cases) {
    const { client } = await RawClient.connect(broker, `strict${version}`, { version });
    await client.sendBytes(bytes);
    const expected = version === 5 ? [[0xe0, 0x01, 0x81]] : [];
    const frames: number[][] = [];
    for (let f = await client.readBytes(); f !== undefined; f = await client.readBytes()) frames.push(f);
    assert.deepEqual(frames, expected, `v${version} ${bytes[0].toString(16)}`);
    client.close();
  }
});

Deno.test("MQTT 3.1 session resumed after PUBREC gets its PUBREL again with DUP set (3.1.1: without)", async () => {
  await using broker = await startBroker();
  for (const version of [3, 4] as const) {
    const id = `resume${version}`;
    const first = await RawClient.connect(broker, id, { version, connect: { clean: false } });
    await first.client.subscribe([{ filter: `r${version}/t`, qos: 2 }]);
    const { client: publisher } = await RawClient.connect(broker, `pub${version}`, { version });
    await publisher.sendBytes(frame(0x34, utf8(`r${version}/t`), u16(1), 0x78)); // QoS 2
    await publisher.expect(PacketType.Pubrec);
    const message = await first.client.expect(PacketType.Publish);
    await first.client.sendBytes([0x50, 0x02, ...u16(message.packetId!)]); // PUBREC
    assert.deepEqual(await first.client.readBytes(), [0x62, 0x02, ...u16(message.packetId!)]);
    first.client.close(); // no PUBCOMP
    publisher.close();
    const second = await RawClient.connect(broker, id, { version, connect: { clean: false } });
    const dup = version === 3 ? 0x08 : 0;
    assert.deepEqual(await second.client.readBytes(), [0x62 | dup, 0x02, ...u16(message.packetId!)]);
    await second.client.sendBytes([0x70, 0x02, ...u16(message.packetId!)]);
    assert.deepEqual(await second.client.sync(), []);
    second.client.close();
  }
});

// ---------------------------------------------------------------------------------------------
// 5, 6. Every ack answers the flow in flight under its id: type, QoS, stage

/** A subscriber with one message of the given QoS in flight to it; returns it and the packet id. */
async function inFlight(
  broker: TestBroker,
  name: string,
  version: ProtocolVersion,
  qos: 1 | 2,
): Promise<{ client: RawClient; id: number }> {
  const { client } = await RawClient.connect(broker, name, { version });
  await client.subscribe([{ filter: `${name}/t`, qos }]);
  await broker.server.publish(`${name}/t`, "x", false, qos);
  const message = await client.expect(PacketType.Publish);
  assert.equal(message.fixedHeader.qos, qos);
  return { client, id: message.packetId! };
}

/** Every frame until the broker closes the connection. */
async function framesUntilClosed(client: RawClient): Promise<number[][]> {
  const frames: number[][] = [];
  for (let f = await client.readBytes(); f !== undefined; f = await client.readBytes()) frames.push(f);
  return frames;
}

Deno.test("An ack of the wrong type for the message in flight closes the connection (v5: DISCONNECT 0x82)", async () => {
  await using broker = await startBroker({ inlineClient: true });
  // [type of the first byte, QoS in flight, whether it is sent after the PUBREC/PUBREL exchange]
  const wrong: [string, number, 1 | 2, boolean][] = [
    ["PUBREC for QoS 1", 0x50, 1, false],
    ["PUBCOMP for QoS 1", 0x70, 1, false],
    ["PUBACK for QoS 2", 0x40, 2, false],
    ["PUBCOMP for QoS 2 before PUBREC", 0x70, 2, false],
    ["PUBACK for QoS 2 after PUBREL", 0x40, 2, true],
  ];
  let n = 0;
  for (const version of [3, 4, 5] as const) {
    for (const [label, first, qos, released] of wrong) {
      const { client, id } = await inFlight(broker, `wrong${++n}`, version, qos);
      if (released) {
        await client.sendBytes([0x50, 0x02, ...u16(id)]);
        assert.deepEqual(await client.readBytes(), [0x62, 0x02, ...u16(id)]);
      }
      await client.sendBytes([first, 0x02, ...u16(id)]);
      // No PUBREL for a QoS 1 id (v3.1.1 used to run a QoS 2 flow on it), nothing but the close.
      assert.deepEqual(
        await framesUntilClosed(client),
        version === 5 ? [[0xe0, 0x01, 0x82]] : [],
        `v${version} ${label}`,
      );
      client.close();
    }
  }
  await waitFor(() => broker.server.info.clientsConnected === 0, 1000, "every connection released");
});

Deno.test("PUBREC with a failure reason code gets no PUBREL: the id is freed and the connection goes on", async () => {
  await using broker = await startBroker({ inlineClient: true });
  const { client, id } = await inFlight(broker, "refuser", 5, 2);
  const session = broker.server.clients.get("refuser")!;
  assert.equal(session.state.inflight.outbound.size, 1);
  await client.sendBytes([0x50, 0x03, ...u16(id), 0x80]); // PUBREC 0x80 Unspecified error
  assert.deepEqual(await client.sync(), [], "no PUBREL");
  assert.equal(session.state.inflight.outbound.size, 0, "the id is free");
  assert.equal(broker.server.info.inflight, 0);
  // The same failed PUBREC again (the id is unknown now) is not answered either.
  await client.sendBytes([0x50, 0x03, ...u16(id), 0x80]);
  assert.deepEqual(await client.sync(), []);
  // The connection is usable: the next message goes through a whole QoS 2 flow.
  await broker.server.publish("refuser/t", "y", false, 2);
  const next = await client.expect(PacketType.Publish);
  await client.sendBytes([0x50, 0x02, ...u16(next.packetId!)]);
  assert.deepEqual(await client.readBytes(), [0x62, 0x02, ...u16(next.packetId!)]);
  await client.sendBytes([0x70, 0x02, ...u16(next.packetId!)]);
  assert.deepEqual(await client.sync(), []);
  assert.equal(session.state.inflight.outbound.size, 0);
  client.close();
});

Deno.test("PUBREC for an unknown id gets PUBREL 0x92 (v5) or PUBREL (v3.1.1); a repeated PUBREC gets the PUBREL again", async () => {
  await using broker = await startBroker({ inlineClient: true });
  for (const version of [4, 5] as const) {
    const { client, id } = await inFlight(broker, `unknown${version}`, version, 2);
    await client.sendBytes([0x50, 0x02, ...u16(id)]);
    assert.deepEqual(await client.readBytes(), [0x62, 0x02, ...u16(id)]);
    await client.sendBytes([0x50, 0x02, ...u16(id)]); // our PUBREL was lost, say
    assert.deepEqual(await client.readBytes(), [0x62, 0x02, ...u16(id)]);
    await client.sendBytes([0x70, 0x02, ...u16(id)]);
    await client.sendBytes([0x50, 0x02, 0x12, 0x34]);
    assert.deepEqual(
      await client.readBytes(),
      version === 5 ? [0x62, 0x03, 0x12, 0x34, 0x92] : [0x62, 0x02, 0x12, 0x34],
    );
    // A PUBACK or PUBCOMP for an unknown id is ignored (a duplicate, say).
    await client.sendBytes([0x40, 0x02, 0x12, 0x35, 0x70, 0x02, 0x12, 0x36]);
    assert.deepEqual(await client.sync(), []);
    client.close();
  }
});

Deno.test("A failed PUBREC after the PUBREL closes the connection (the flow was accepted)", async () => {
  await using broker = await startBroker({ inlineClient: true });
  const { client, id } = await inFlight(broker, "late", 5, 2);
  await client.sendBytes([0x50, 0x02, ...u16(id)]);
  assert.deepEqual(await client.readBytes(), [0x62, 0x02, ...u16(id)]);
  await client.sendBytes([0x50, 0x03, ...u16(id), 0x80]);
  assert.deepEqual(await framesUntilClosed(client), [[0xe0, 0x01, 0x82]]);
  client.close();
});

// ---------------------------------------------------------------------------------------------
// 7. Outbound packets that cannot fit the client's Maximum Packet Size

/** A v5 CONNECT (clean start) with a Maximum Packet Size and maybe a Session Expiry Interval. */
function connectWithMaximum(clientId: string, maximum: number, expiry = 0): number[] {
  const properties = [...P.maximumPacketSize(maximum), ...(expiry ? P.sessionExpiryInterval(expiry) : [])];
  return frame(0x10, connectHead(5, expiry ? 0x00 : 0x02), props(...properties), utf8(clientId));
}

Deno.test("CONNECT with a Maximum Packet Size too small for any CONNACK is closed at once", async () => {
  await using broker = await startBroker();
  const started = Date.now();
  assert.deepEqual(await answerTo(broker, 5, connectWithMaximum("tiny", 2)), []);
  assert.ok(Date.now() - started < 1500, "closed, not left open");
  // Room for a bare CONNACK but not for the real one: CONNACK 0x95 Packet Too Large, then closed.
  assert.deepEqual(await answerTo(broker, 5, connectWithMaximum("small", 5)), [connack5(0x95)]);
  assert.equal(broker.server.clients.get("small"), undefined, "no session was set up");
  assert.equal(broker.server.info.clientsConnected, 0);
});

Deno.test("CONNECT with a Maximum Packet Size that just holds the CONNACK is accepted", async () => {
  await using broker = await startBroker();
  const [connack] = await answerTo(broker, 5, [...connectWithMaximum("probe", 0x0fffffff), 0xe0, 0x00]);
  // The CONNACK carries the same properties whatever the client's maximum.
  const [ack] = await answerTo(broker, 5, [...connectWithMaximum("exact", connack.length), 0xe0, 0x00]);
  assert.equal(ack.length, connack.length);
  assert.equal(ack[3], 0x00);
  assert.deepEqual(await answerTo(broker, 5, connectWithMaximum("short", connack.length - 1)), [
    connack5(0x95),
  ]);
});

Deno.test("An ack too large for the client's maximum loses its User Properties, not the ack", async () => {
  await using broker = await startBroker();
  const client = await RawClient.open(broker, 5);
  await client.sendBytes(connectWithMaximum("acked", 64));
  await client.expect(PacketType.Connack);
  // The PUBACK would copy the PUBLISH's user property (over 64 bytes) [MQTT-3.4.2-3].
  const big = P.userProperty("k", "v".repeat(80));
  await client.sendBytes(frame(0x32, utf8("a/t"), u16(9), props(...big), 0x78));
  assert.deepEqual(await client.readBytes(), [0x40, 0x03, 0x00, 0x09, 0x10]); // 0x10: nobody subscribed
  await client.sendBytes(frame(0x34, utf8("a/t"), u16(10), props(...big), 0x78));
  assert.deepEqual(await client.readBytes(), [0x50, 0x03, 0x00, 0x0a, 0x10]);
  client.close();
});

Deno.test("A SUBACK too large for the client's maximum ends the connection with DISCONNECT 0x95", async () => {
  await using broker = await startBroker();
  const client = await RawClient.open(broker, 5);
  await client.sendBytes(connectWithMaximum("subber", 20));
  assert.deepEqual((await client.readBytes())?.slice(0, 4), [0x20, 0x0e, 0x00, 0x00]); // 16 bytes: fits
  const filters = Array.from({ length: 30 }, (_, i) => [...utf8(`f/${i}`), 0x00]).flat();
  await client.sendBytes(frame(0x82, u16(1), props(), filters)); // its SUBACK is 35 bytes
  assert.deepEqual(await framesUntilClosed(client), [[0xe0, 0x01, 0x95]]);
  client.close();
});

Deno.test("A message in flight that no longer fits the resumed connection's maximum is discarded and counted", async () => {
  await using broker = await startBroker({ inlineClient: true });
  const first = await RawClient.open(broker, 5);
  await first.sendBytes(connectWithMaximum("shrinker", 1000, 60));
  await first.expect(PacketType.Connack);
  await first.subscribe([{ filter: "s/#", qos: 1 }]);
  await broker.server.publish("s/big", "y".repeat(200), false, 1);
  assert.equal((await first.expect(PacketType.Publish)).topicName, "s/big");
  first.close(); // not acknowledged: it will be resent...
  const session = broker.server.clients.get("shrinker")!;
  await waitFor(() => session.closed, 1000, "the first connection to end");
  const dropped = broker.server.info.messagesDropped;
  const second = await RawClient.open(broker, 5);
  await second.sendBytes(connectWithMaximum("shrinker", 100, 60)); // ...to a connection taking 100 bytes
  const connack = await second.expect(PacketType.Connack);
  assert.equal(connack.sessionPresent, true);
  assert.deepEqual(await second.sync(), [], "not resent");
  const resumed = broker.server.clients.get("shrinker")!;
  assert.equal(resumed.state.inflight.outbound.size, 0, "its packet id is free");
  assert.equal(broker.server.info.inflight, 0);
  assert.equal(broker.server.info.messagesDropped, dropped + 1);
  await broker.server.publish("s/small", "fits", false, 1);
  assert.equal((await second.expect(PacketType.Publish)).topicName, "s/small");
  second.close();
});

// ---------------------------------------------------------------------------------------------
// 0x10 No Matching Subscribers (compatibility switch ackNoMatchingSubscribers, on by default)

Deno.test("v5 PUBACK/PUBREC carry 0x10 when nothing matched, 0x00 when something did; v3.1.1 acks have no code", async () => {
  await using broker = await startBroker();
  const { client: sub } = await RawClient.connect(broker, "nm-sub");
  await sub.subscribe([{ filter: "nm/matched", qos: 0 }]);
  const { client: pub } = await RawClient.connect(broker, "nm-pub");
  await pub.sendBytes(frame(0x32, utf8("nm/nobody"), u16(1), props(), 0x78));
  assert.deepEqual(await pub.readBytes(), [0x40, 0x03, 0x00, 0x01, 0x10]);
  await pub.sendBytes(frame(0x34, utf8("nm/nobody"), u16(2), props(), 0x78));
  assert.deepEqual(await pub.readBytes(), [0x50, 0x03, 0x00, 0x02, 0x10]);
  await pub.sendBytes([0x62, 0x02, 0x00, 0x02]); // 0x10 is a success: the flow goes on
  assert.deepEqual(await pub.readBytes(), [0x70, 0x02, 0x00, 0x02]);
  await pub.sendBytes(frame(0x32, utf8("nm/matched"), u16(3), props(), 0x78));
  assert.deepEqual(await pub.readBytes(), [0x40, 0x02, 0x00, 0x03]);
  // A retained message that nobody holds a subscription for is still "no matching subscribers".
  await pub.sendBytes(frame(0x33, utf8("nm/kept"), u16(4), props(), 0x78));
  assert.deepEqual(await pub.readBytes(), [0x40, 0x03, 0x00, 0x04, 0x10]);
  const { client: v4 } = await RawClient.connect(broker, "nm-v4", { version: 4 });
  await v4.sendBytes(frame(0x32, utf8("nm/nobody"), u16(5), 0x78));
  assert.deepEqual(await v4.readBytes(), [0x40, 0x02, 0x00, 0x05]);
  for (const client of [sub, pub, v4]) client.close();
});

Deno.test("v5 PUBACK is 0x00 when nothing matched and ackNoMatchingSubscribers is off", async () => {
  await using broker = await startBroker({
    capabilities: { compatibilities: { ackNoMatchingSubscribers: false } },
  });
  const { client: pub } = await RawClient.connect(broker, "nm-off");
  await pub.sendBytes(frame(0x32, utf8("nm/nobody"), u16(1), props(), 0x78));
  assert.deepEqual(await pub.readBytes(), [0x40, 0x02, 0x00, 0x01]);
  pub.close();
});

Deno.test("v5 PUBACK is 0x10 when the only subscription is the publisher's own No Local one", async () => {
  await using broker = await startBroker();
  const { client } = await RawClient.connect(broker, "nm-local");
  await client.subscribe([{ filter: "nm/self", qos: 1, noLocal: true }]);
  await client.sendBytes(frame(0x32, utf8("nm/self"), u16(1), props(), 0x78));
  assert.deepEqual(await client.readBytes(), [0x40, 0x03, 0x00, 0x01, 0x10]);
  client.close();
});

// ---------------------------------------------------------------------------------------------
// 3. A clean session's state does not survive a takeover (the whole table: session_table_test.ts)

Deno.test("A takeover of a clean session (v3.1.1) or an expiry-0 session (v5) answers Session Present 0 and carries nothing", async () => {
  await using broker = await startBroker({ inlineClient: true });
  for (const version of [4, 5] as const) {
    const a = await RawClient.open(broker, version);
    // v3.1.1 CleanSession 1; v5 Clean Start 1 with no Session Expiry Interval (0).
    await a.sendBytes(frame(0x10, connectHead(version, 0x02), version === 5 ? props() : [], utf8("same")));
    assert.equal((await a.readBytes())?.[3], 0x00);
    await a.sendBytes(frame(0x82, u16(1), version === 5 ? props() : [], utf8("taken/t"), 0x01));
    await a.expect(PacketType.Suback);
    const b = await RawClient.open(broker, version);
    // CleanSession 0 / Clean Start 0 while A is connected.
    await b.sendBytes(frame(0x10, connectHead(version, 0x00), version === 5 ? props() : [], utf8("same")));
    const connack = await b.readBytes();
    assert.deepEqual(connack?.slice(0, 4), [0x20, connack![1], 0x00, 0x00], `v${version}: Session Present 0`);
    assert.deepEqual(
      await framesUntilClosed(a),
      version === 5 ? [[0xe0, 0x01, 0x8e]] : [],
      `v${version}: A taken over`,
    );
    await broker.server.publish("taken/t", "x", false, 1);
    assert.deepEqual(await b.sync(), [], `v${version}: A's subscription did not carry over`);
    a.close();
    b.close();
  }
});

Deno.test("A will to a $ topic is not published, as a PUBLISH there would not be", async () => {
  await using broker = await startBroker({ inlineClient: true });
  const seen: string[] = [];
  await broker.server.subscribe("$SYS/fake/#", 1, (_client, _sub, packet) => seen.push(packet.topicName!));
  const a = await RawClient.open(broker, 4);
  await a.sendBytes(connectWithWill(4, "sys-will", "$SYS/fake/will"));
  assert.equal((await a.readBytes())?.[3], 0x00);
  a.close();
  await waitFor(() => broker.server.clients.get("sys-will") === undefined, 2000, "the session to end");
  await broker.server.publish("$SYS/fake/check", "x", false, 0); // the inline client may publish there
  assert.deepEqual(seen, ["$SYS/fake/check"]);
});
