/**
 * Malformed and forbidden input over real TCP sockets: the broker closes the offending connection
 * (v5: with a DISCONNECT, or a CONNACK before CONNECT was accepted, carrying the reason code the spec
 * asks for; v3.1.1: just closed) and keeps serving everyone else.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Packet, PacketType, type ProtocolVersion } from "../../mod.ts";
import { RawClient, startBroker, type TestBroker, waitFor } from "../helpers.ts";
import { bin, frame, GOLDEN, P, props, u16, utf8 } from "../packets/golden.ts";

const MAXIMUM_PACKET_SIZE = 4096;

/** What the broker must do with a connection that sends the bytes. */
type Outcome =
  /** A DISCONNECT with this reason code (v5), then the end of stream. */
  | { disconnect: number }
  /** The end of stream without any packet (v3/v4 after CONNECT). */
  | { closed: true }
  /** A CONNACK with this reason code (or v3 return code), then the end of stream. */
  | { connack: number };

/** One malformed-input case. */
interface Case {
  name: string;
  version: ProtocolVersion;
  /** Whether CONNECT/CONNACK is done first; false means `bytes` is the first thing sent. */
  connectFirst: boolean;
  bytes: number[];
  outcome: Outcome;
}

const MALFORMED = 0x81;
const PROTOCOL_ERROR = 0x82;

/** A v5/v4 CONNECT head: protocol name and level, flags, keep alive 0. */
function connectHead(name: string, level: number, flags: number): number[] {
  return [...utf8(name), level, flags, ...u16(0)];
}

/** A case sent after a successful CONNECT: v5 expects DISCONNECT `code`, v3/v4 a plain close. */
function after(name: string, version: ProtocolVersion, bytes: number[], code: number): Case {
  return {
    name,
    version,
    connectFirst: true,
    bytes,
    outcome: version === 5 ? { disconnect: code } : { closed: true },
  };
}

const CASES: Case[] = [
  // Fixed header [MQTT-2.2.2-2]
  after("SUBSCRIBE with flags 0000", 5, frame(0x80, u16(1), props(), utf8("a"), 0), MALFORMED),
  after("SUBSCRIBE with flags 0000", 4, frame(0x80, u16(1), utf8("a"), 0), MALFORMED),
  after("PUBREL with flags 0000", 5, frame(0x60, u16(1)), MALFORMED),
  after("PUBREL with flags 0000", 4, frame(0x60, u16(1)), MALFORMED),
  after("PINGREQ with flags 0001", 5, [0xc1, 0x00], MALFORMED),
  // [MQTT-3.3.1-4]
  after("PUBLISH QoS 3", 5, frame(0x36, utf8("t"), u16(1), props()), MALFORMED),
  after("PUBLISH QoS 3", 4, frame(0x36, utf8("t"), u16(1)), MALFORMED),
  // [MQTT-3.3.1-2]
  after("PUBLISH DUP on QoS 0", 5, frame(0x38, utf8("t"), props()), PROTOCOL_ERROR),
  after("PUBLISH DUP on QoS 0", 4, frame(0x38, utf8("t")), PROTOCOL_ERROR),
  // Spec 1.5.5: at most four bytes of Remaining Length.
  after("Remaining Length of five bytes", 5, [0x30, 0xff, 0xff, 0xff, 0xff, 0x01], MALFORMED),
  after("Remaining Length of five bytes", 4, [0x30, 0xff, 0xff, 0xff, 0xff, 0x01], MALFORMED),
  // Spec 3.2.2.3.6: a packet over the server's Maximum Packet Size.
  after(
    "PUBLISH larger than the Maximum Packet Size",
    5,
    frame(0x30, utf8("t"), props(), new Uint8Array(MAXIMUM_PACKET_SIZE)),
    0x95,
  ),
  after(
    "PUBLISH larger than the Maximum Packet Size",
    4,
    frame(0x30, utf8("t"), new Uint8Array(MAXIMUM_PACKET_SIZE)),
    0x95,
  ),
  // Spec 2.2.2.2, 3.3.2.3
  after(
    "PUBLISH with a duplicate Content Type",
    5,
    frame(0x30, utf8("t"), props(P.contentType("a"), P.contentType("b"))),
    PROTOCOL_ERROR,
  ),
  after(
    "PUBLISH with a Session Expiry Interval (not allowed there)",
    5,
    frame(0x30, utf8("t"), props(P.sessionExpiryInterval(5))),
    MALFORMED,
  ),
  after(
    "SUBSCRIBE with a Topic Alias (not allowed there)",
    5,
    frame(0x82, u16(1), props(P.topicAlias(1)), utf8("a"), 0),
    MALFORMED,
  ),
  // [MQTT-3.3.2-8]
  after("PUBLISH with Topic Alias 0", 5, frame(0x30, utf8("t"), props(P.topicAlias(0))), 0x94),
  // Spec 3.8.3.1
  after("SUBSCRIBE with Retain Handling 3", 5, frame(0x82, u16(1), props(), utf8("a"), 0x30), PROTOCOL_ERROR),
  // [MQTT-3.8.3-5]
  after("SUBSCRIBE with reserved option bits", 5, frame(0x82, u16(1), props(), utf8("a"), 0x40), MALFORMED),
  after("SUBSCRIBE with reserved option bits", 4, frame(0x82, u16(1), utf8("a"), 0x04), MALFORMED),
  // [MQTT-1.5.4-1] [MQTT-1.5.4-2]
  after("PUBLISH topic with ill-formed UTF-8", 5, frame(0x30, bin(0x61, 0xc3, 0x28), props()), MALFORMED),
  after("PUBLISH topic with ill-formed UTF-8", 4, frame(0x30, bin(0x61, 0xff)), MALFORMED),
  after("PUBLISH topic with an encoded surrogate", 5, frame(0x30, bin(0xed, 0xa0, 0x80), props()), MALFORMED),
  after("PUBLISH topic with U+0000", 5, frame(0x30, bin(0x61, 0x00, 0x62), props()), MALFORMED),
  after("PUBLISH topic with U+0000", 4, frame(0x30, bin(0x61, 0x00)), MALFORMED),
  after("SUBSCRIBE filter with U+0000", 5, frame(0x82, u16(1), props(), bin(0x61, 0x00), 0), MALFORMED),
  // [MQTT-3.3.2-2]
  after("PUBLISH topic with +", 5, frame(0x30, utf8("a/+"), props()), 0x90),
  after("PUBLISH topic with #", 5, frame(0x30, utf8("a/#"), props()), 0x90),
  after("PUBLISH topic with #", 4, frame(0x30, utf8("#")), 0x90),
  // [MQTT-2.2.1-3]
  after("PUBLISH QoS 1 with packet id 0", 5, frame(0x32, utf8("t"), u16(0), props()), PROTOCOL_ERROR),
  after("PUBLISH QoS 1 with packet id 0", 4, frame(0x32, utf8("t"), u16(0)), PROTOCOL_ERROR),
  after("SUBSCRIBE with packet id 0", 5, frame(0x82, u16(0), props(), utf8("a"), 0), PROTOCOL_ERROR),
  // [MQTT-3.8.3-2]
  after("SUBSCRIBE without filters", 5, frame(0x82, u16(1), props()), PROTOCOL_ERROR),
  after("SUBSCRIBE without filters", 4, frame(0x82, u16(1)), PROTOCOL_ERROR),
  after("UNSUBSCRIBE without filters", 5, frame(0xa2, u16(1), props()), PROTOCOL_ERROR),
  // Packets only a server sends.
  after("CONNACK sent by a client", 5, frame(0x20, 0, 0, props()), PROTOCOL_ERROR),
  after("CONNACK sent by a client", 4, frame(0x20, 0, 0), PROTOCOL_ERROR),
  after("SUBACK sent by a client", 5, frame(0x90, u16(1), props(), 0), PROTOCOL_ERROR),
  after("UNSUBACK sent by a client", 5, frame(0xb0, u16(1), props(), 0), PROTOCOL_ERROR),
  after("PINGRESP sent by a client", 5, [0xd0, 0x00], PROTOCOL_ERROR),
  after("PINGRESP sent by a client", 4, [0xd0, 0x00], PROTOCOL_ERROR),
  // [MQTT-3.1.0-2]
  after(
    "a second CONNECT",
    5,
    frame(0x10, connectHead("MQTT", 5, 0x02), props(), utf8("again")),
    PROTOCOL_ERROR,
  ),
  after("a second CONNECT", 4, frame(0x10, connectHead("MQTT", 4, 0x02), utf8("again")), PROTOCOL_ERROR),
  // Spec 4.12: AUTH without an enhanced authentication exchange (no onAuthPacket hook).
  after(
    "AUTH when no hook handles it",
    5,
    frame(0xf0, 0x18, props(P.authenticationMethod("m"))),
    PROTOCOL_ERROR,
  ),
  after("AUTH on v3.1.1 (reserved packet type)", 4, [0xf0, 0x00], MALFORMED),
  // [MQTT-3.14.2-2]
  after(
    "DISCONNECT raising a Session Expiry Interval of 0",
    5,
    frame(0xe0, 0x00, props(P.sessionExpiryInterval(60))),
    PROTOCOL_ERROR,
  ),

  // Before CONNECT is accepted: v5 gets a CONNACK with the reason code [MQTT-4.13.1-1].
  {
    name: "CONNECT with Receive Maximum 0",
    version: 5,
    connectFirst: false,
    bytes: frame(0x10, connectHead("MQTT", 5, 0x02), props(P.receiveMaximum(0)), utf8("c")),
    outcome: { connack: PROTOCOL_ERROR },
  },
  {
    name: "CONNECT with Maximum Packet Size 0",
    version: 5,
    connectFirst: false,
    bytes: frame(0x10, connectHead("MQTT", 5, 0x02), props(P.maximumPacketSize(0)), utf8("c")),
    outcome: { connack: PROTOCOL_ERROR },
  },
  {
    name: "CONNECT with a duplicate Session Expiry Interval",
    version: 5,
    connectFirst: false,
    bytes: frame(
      0x10,
      connectHead("MQTT", 5, 0x02),
      props(P.sessionExpiryInterval(1), P.sessionExpiryInterval(1)),
      utf8("c"),
    ),
    outcome: { connack: PROTOCOL_ERROR },
  },
  {
    name: "CONNECT with a Topic Alias (not allowed there)",
    version: 5,
    connectFirst: false,
    bytes: frame(0x10, connectHead("MQTT", 5, 0x02), props(P.topicAlias(1)), utf8("c")),
    outcome: { connack: MALFORMED },
  },
  // [MQTT-3.1.2-1] an unknown protocol name: 0x84 (v3.1.1 return code 1).
  {
    name: "CONNECT with protocol name MQTX",
    version: 5,
    connectFirst: false,
    bytes: frame(0x10, connectHead("MQTX", 5, 0x02), props(), utf8("c")),
    outcome: { connack: 0x84 },
  },
  {
    name: "CONNECT with protocol name MQTX",
    version: 4,
    connectFirst: false,
    bytes: frame(0x10, connectHead("MQTX", 4, 0x02), utf8("c")),
    outcome: { connack: 1 },
  },
  // [MQTT-3.1.2-2] an unknown protocol level.
  {
    name: "CONNECT with protocol level 6",
    version: 4,
    connectFirst: false,
    bytes: frame(0x10, connectHead("MQTT", 6, 0x02), utf8("c")),
    outcome: { connack: 1 },
  },
  // [MQTT-3.1.2-3] the reserved CONNECT flag.
  {
    name: "CONNECT with the reserved flag set",
    version: 5,
    connectFirst: false,
    bytes: frame(0x10, connectHead("MQTT", 5, 0x03), props(), utf8("c")),
    outcome: { connack: MALFORMED },
  },
  {
    name: "CONNECT with the reserved flag set",
    version: 4,
    connectFirst: false,
    bytes: frame(0x10, connectHead("MQTT", 4, 0x03), utf8("c")),
    outcome: { closed: true },
  },
  // [MQTT-3.1.2-12] Will QoS 3.
  {
    name: "CONNECT with Will QoS 3",
    version: 5,
    connectFirst: false,
    bytes: frame(0x10, connectHead("MQTT", 5, 0x1e), props(), utf8("c"), props(), utf8("w"), bin()),
    outcome: { connack: MALFORMED },
  },
  // Framing errors before CONNECT: there is no session to answer in, the connection just closes.
  {
    name: "Remaining Length of five bytes before CONNECT",
    version: 5,
    connectFirst: false,
    bytes: [0x10, 0xff, 0xff, 0xff, 0xff, 0x01],
    outcome: { closed: true },
  },
  {
    name: "CONNECT larger than the Maximum Packet Size",
    version: 5,
    connectFirst: false,
    bytes: frame(0x10, connectHead("MQTT", 5, 0x02), props(), utf8("c".repeat(MAXIMUM_PACKET_SIZE))),
    outcome: { closed: true },
  },
  // [MQTT-3.1.0-1] the first packet must be CONNECT.
  {
    name: "PINGREQ before CONNECT",
    version: 5,
    connectFirst: false,
    bytes: [0xc0, 0x00],
    outcome: { closed: true },
  },
];

let counter = 0;

/** Connects (unless told not to), sends the bytes and checks what the broker answers. */
async function check(broker: TestBroker, c: Case): Promise<void> {
  const label = `v${c.version} ${c.name}`;
  const connectedBefore = broker.server.info.clientsConnected;
  let client: RawClient;
  if (c.connectFirst) {
    const connected = await RawClient.connect(broker, `bad-${++counter}`, { version: c.version });
    client = connected.client;
    assert.equal(connected.connack.reasonCode, 0, label);
  } else {
    client = await RawClient.open(broker, c.version);
  }
  try {
    await client.sendBytes(c.bytes);
    const seen = await client.closed();
    const summary = JSON.stringify(seen.map((p) => [p.fixedHeader.type, p.reasonCode]));
    if ("disconnect" in c.outcome) {
      assert.equal(seen.length, 1, `${label}: ${summary}`);
      assert.equal(seen[0].fixedHeader.type, PacketType.Disconnect, `${label}: ${summary}`);
      assert.equal(seen[0].reasonCode, c.outcome.disconnect, `${label}: ${summary}`);
    } else if ("connack" in c.outcome) {
      assert.equal(seen.length, 1, `${label}: ${summary}`);
      assert.equal(seen[0].fixedHeader.type, PacketType.Connack, `${label}: ${summary}`);
      assert.equal(seen[0].reasonCode, c.outcome.connack, `${label}: ${summary}`);
      assert.equal(seen[0].sessionPresent, false, label);
    } else {
      assert.deepEqual(seen, [], `${label}: ${summary}`);
    }
    assert.ok(client.ended, label);
  } finally {
    client.close();
  }
  // The broker has really let go of the connection, not just stopped answering [MQTT-4.13.1-1].
  await waitFor(
    () => broker.server.info.clientsConnected === connectedBefore,
    1000,
    `${label}: connection released`,
  );
}

/** A client connected before the bad ones, subscribed to its own topic. */
async function witness(
  broker: TestBroker,
): Promise<{ roundTrip(text: string): Promise<void>; close(): void }> {
  const { client } = await RawClient.connect(broker, `witness-${++counter}`);
  await client.send({
    fixedHeader: { type: PacketType.Subscribe },
    packetId: 1,
    filters: [{ filter: "witness/#", qos: 1 }],
  });
  await client.expect(PacketType.Suback);
  let packetId = 1;
  return {
    async roundTrip(text: string) {
      const payload = new TextEncoder().encode(text);
      const publish: Packet = {
        fixedHeader: { type: PacketType.Publish, qos: 1 },
        packetId: ++packetId,
        topicName: "witness/echo",
        payload,
      };
      await client.send(publish);
      const received: Packet[] = [];
      while (received.length < 2) {
        const packet = await client.read();
        assert.ok(packet, `the witness was disconnected (${text})`);
        received.push(packet);
      }
      const ack = received.find((p) => p.fixedHeader.type === PacketType.Puback);
      const message = received.find((p) => p.fixedHeader.type === PacketType.Publish);
      assert.equal(ack?.packetId, packetId, text);
      assert.equal(ack?.reasonCode, 0, text);
      assert.ok(message, text);
      assert.equal(new TextDecoder().decode(message.payload), text);
      await client.send({
        fixedHeader: { type: PacketType.Puback },
        packetId: message.packetId,
        reasonCode: 0,
      });
    },
    close: () => client.close(),
  };
}

Deno.test("Server closes connections that send malformed or forbidden packets, with the spec's reason code", async (t) => {
  await using broker = await startBroker({ capabilities: { maximumPacketSize: MAXIMUM_PACKET_SIZE } });
  const other = await witness(broker);
  try {
    for (const c of CASES) {
      await t.step({
        name: `v${c.version} ${c.name}`,
        fn: async () => {
          await check(broker, c);
          await other.roundTrip(`after v${c.version} ${c.name}`);
        },
        sanitizeOps: false,
        sanitizeResources: false,
      });
    }
  } finally {
    other.close();
  }
});

/** Client-to-server packet types (CONNECT excluded: the golden CONNECT cases are checked by the codec). */
const CLIENT_TYPES = new Set<number>([
  PacketType.Publish,
  PacketType.Puback,
  PacketType.Pubrec,
  PacketType.Pubrel,
  PacketType.Pubcomp,
  PacketType.Subscribe,
  PacketType.Unsubscribe,
  PacketType.Pingreq,
  PacketType.Disconnect,
  PacketType.Auth,
]);

Deno.test("Server closes the connection with the golden reason code for every bad client packet", async (t) => {
  await using broker = await startBroker();
  const other = await witness(broker);
  const golden = GOLDEN.filter((c) => c.error !== undefined && CLIENT_TYPES.has(c.bytes[0] >> 4));
  assert.ok(golden.length >= 80, `only ${golden.length} golden error cases`);
  try {
    for (const g of golden) {
      await t.step({
        name: `v${g.version} ${g.name}`,
        fn: () => check(broker, after(g.name, g.version, g.bytes, g.error!)),
        sanitizeOps: false,
        sanitizeResources: false,
      });
    }
    await other.roundTrip("after the golden cases");
  } finally {
    other.close();
  }
});

Deno.test("Server processes nothing that follows a bad packet in the same read", async (t) => {
  await using broker = await startBroker();
  const other = await witness(broker);
  const follower = frame(0x30, utf8("witness/echo"), props(), new TextEncoder().encode("must not arrive"));
  const bad: [string, number[], number][] = [
    ["a PUBLISH with DUP on QoS 0", frame(0x38, utf8("t"), props()), PROTOCOL_ERROR],
    ["a CONNACK", frame(0x20, 0, 0, props()), PROTOCOL_ERROR],
    ["a PUBLISH with Topic Alias 0", frame(0x30, utf8("t"), props(P.topicAlias(0))), 0x94],
  ];
  try {
    for (const [name, bytes, code] of bad) {
      await t.step({
        name,
        fn: async () => {
          await check(broker, after(`${name}, then a PUBLISH`, 5, [...bytes, ...follower], code));
          await other.roundTrip(`after ${name}`);
        },
        sanitizeOps: false,
        sanitizeResources: false,
      });
    }
  } finally {
    other.close();
  }
});
