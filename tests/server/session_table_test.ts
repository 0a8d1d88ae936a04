/**
 * The session table (issue 16, item 3): what a new connection with a client id finds of the session
 * an earlier connection (A) left under it, for every combination of A's kind of session (clean or
 * persistent; v5: Clean Start and Session Expiry Interval), whether A's connection is still alive
 * (a takeover) or already dropped, the new connection's (B's) Clean Start / CleanSession, and the
 * protocol level. Each row gives Session Present, whether A's state (its subscription and its
 * unacknowledged QoS 1 message) carries over, and when A's will is published, with the spec clause.
 *
 * A has a will (v5: Will Delay Interval 5 s), a QoS 1 subscription, and one QoS 1 message in flight
 * that it never acknowledges. "Dropped" means A's socket closed without DISCONNECT.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Packet, PacketType, type ProtocolVersion } from "../../mod.ts";
import { RawClient, startBroker, type TestBroker, waitFor } from "../helpers.ts";

/** When A's will is published. */
type Will = "at A's drop" | "at B's CONNECT" | "not sent";

interface Row {
  version: ProtocolVersion;
  /** A's CleanSession (v3.1.1) or Clean Start (v5). */
  aClean: boolean;
  /** A's Session Expiry Interval (v5 only; v3.1.1: 0 for a clean session, kept for ever otherwise). */
  aExpiry: number;
  /** Whether A's connection is still open when B connects (a takeover). */
  aAlive: boolean;
  /** B's CleanSession / Clean Start. */
  bClean: boolean;
  /** B's CONNACK Session Present. */
  present: boolean;
  /** Whether B gets A's subscription and A's unacknowledged message (resent with DUP). */
  carried: boolean;
  will: Will;
  /** The spec clauses the row checks. */
  clause: string;
}

const NEVER = 0xffffffff;

function row(
  version: ProtocolVersion,
  a: [clean: boolean, expiry: number, alive: boolean],
  bClean: boolean,
  expect: [present: boolean, carried: boolean, will: Will],
  clause: string,
): Row {
  const [aClean, aExpiry, aAlive] = a;
  const [present, carried, will] = expect;
  return { version, aClean, aExpiry, aAlive, bClean, present, carried, will, clause };
}

const ALIVE = true;
const DROPPED = false;
const CLEAN = true;
const RESUME = false;

const ROWS: Row[] = [
  // v3.1.1: a clean session lasts as long as its connection; a persistent one is kept.
  row(
    4,
    [CLEAN, 0, ALIVE],
    RESUME,
    [false, false, "at B's CONNECT"],
    "[MQTT-3.1.2-6] clean session not reused; [MQTT-3.2.2-3] SP 0; [MQTT-3.1.4-2] takeover; [MQTT-3.1.2-8] will",
  ),
  row(
    4,
    [CLEAN, 0, ALIVE],
    CLEAN,
    [false, false, "at B's CONNECT"],
    "[MQTT-3.2.2-1] SP 0; [MQTT-3.1.4-2]; [MQTT-3.1.2-8]",
  ),
  row(
    4,
    [CLEAN, 0, DROPPED],
    RESUME,
    [false, false, "at A's drop"],
    "[MQTT-3.1.2-6] ended with its connection; [MQTT-3.2.2-3] SP 0; [MQTT-3.1.2-8]",
  ),
  row(4, [CLEAN, 0, DROPPED], CLEAN, [false, false, "at A's drop"], "[MQTT-3.2.2-1] SP 0; [MQTT-3.1.2-8]"),
  row(
    4,
    [RESUME, NEVER, ALIVE],
    RESUME,
    [true, true, "at B's CONNECT"],
    "[MQTT-3.1.2-4] resumed; [MQTT-3.2.2-2] SP 1; [MQTT-4.4.0-1] resend with DUP; [MQTT-3.1.2-8] the takeover closed A",
  ),
  row(
    4,
    [RESUME, NEVER, ALIVE],
    CLEAN,
    [false, false, "at B's CONNECT"],
    "[MQTT-3.1.2-6] previous session discarded; [MQTT-3.2.2-1] SP 0; [MQTT-3.1.2-8]",
  ),
  row(
    4,
    [RESUME, NEVER, DROPPED],
    RESUME,
    [true, true, "at A's drop"],
    "[MQTT-3.1.2-4] [MQTT-3.1.2-5] kept after the drop; [MQTT-3.2.2-2] SP 1; [MQTT-4.4.0-1]",
  ),
  row(
    4,
    [RESUME, NEVER, DROPPED],
    CLEAN,
    [false, false, "at A's drop"],
    "[MQTT-3.1.2-6] discarded; [MQTT-3.2.2-1] SP 0",
  ),
  // v5: a session with Session Expiry Interval 0 ends with its connection, whatever its Clean Start.
  ...[CLEAN, RESUME].flatMap((aClean) => [
    row(
      5,
      [aClean, 0, ALIVE],
      RESUME,
      [false, false, "at B's CONNECT"],
      "3.1.2.11.2 expiry 0 ends with the connection; [MQTT-3.1.2-6] new session; [MQTT-3.2.2-3] SP 0; [MQTT-3.1.4-3] takeover; [MQTT-3.1.2-8] will at session end",
    ),
    row(
      5,
      [aClean, 0, ALIVE],
      CLEAN,
      [false, false, "at B's CONNECT"],
      "[MQTT-3.1.2-4] discarded; [MQTT-3.2.2-2] SP 0; [MQTT-3.1.2-8]",
    ),
    row(
      5,
      [aClean, 0, DROPPED],
      RESUME,
      [false, false, "at A's drop"],
      "3.1.2.11.2 ended at the drop; [MQTT-3.2.2-3] SP 0; [MQTT-3.1.2-8] will at session end, before its delay",
    ),
    row(5, [aClean, 0, DROPPED], CLEAN, [false, false, "at A's drop"], "[MQTT-3.2.2-2] SP 0; [MQTT-3.1.2-8]"),
    row(
      5,
      [aClean, 60, ALIVE],
      RESUME,
      [true, true, "not sent"],
      "[MQTT-3.1.2-5] resumed; [MQTT-3.2.2-3] SP 1; [MQTT-4.4.0-1] resend; [MQTT-3.1.3-9] no will within its delay",
    ),
    row(
      5,
      [aClean, 60, ALIVE],
      CLEAN,
      [false, false, "at B's CONNECT"],
      "[MQTT-3.1.2-4] discarded; [MQTT-3.2.2-2] SP 0; [MQTT-3.1.2-8] the session ended before the delay",
    ),
    row(
      5,
      [aClean, 60, DROPPED],
      RESUME,
      [true, true, "not sent"],
      "[MQTT-3.1.2-5] resumed; [MQTT-3.2.2-3] SP 1; [MQTT-4.4.0-1]; [MQTT-3.1.3-9]",
    ),
    row(
      5,
      [aClean, 60, DROPPED],
      CLEAN,
      [false, false, "at B's CONNECT"],
      "[MQTT-3.1.2-4] discarded; [MQTT-3.2.2-2] SP 0; [MQTT-3.1.2-8]",
    ),
  ]),
];

function describe(r: Row): string {
  const a = r.version === 5
    ? `A Clean Start ${+r.aClean} expiry ${r.aExpiry}`
    : `A CleanSession ${+r.aClean}`;
  const b = r.version === 5 ? `B Clean Start ${+r.bClean}` : `B CleanSession ${+r.bClean}`;
  return `v${r.version === 5 ? 5 : "3.1.1"} ${a}, ${r.aAlive ? "alive" : "dropped"}; ${b}`;
}

/** The wills among packets a watcher received. */
function wills(packets: Packet[]): string[] {
  return packets.filter((p) => p.fixedHeader.type === PacketType.Publish).map((p) => p.topicName!);
}

let counter = 0;

async function check(broker: TestBroker, watcher: RawClient, r: Row): Promise<void> {
  const id = `table-${++counter}`;
  const topic = `t/${id}`;
  const label = describe(r);
  const v5 = r.version === 5;
  const { client: a, connack: aAck } = await RawClient.connect(broker, id, {
    version: r.version,
    connect: {
      clean: r.aClean,
      willFlag: true,
      willTopic: `will/${id}`,
      willPayload: new TextEncoder().encode("gone"),
      willQos: 0,
      willRetain: false,
      willProperties: v5 ? { willDelayInterval: 5 } : undefined,
    },
    properties: v5 ? { sessionExpiryInterval: r.aExpiry } : undefined,
  });
  assert.equal(aAck.reasonCode, 0, label);
  await a.subscribe([{ filter: topic, qos: 1 }]);
  await broker.server.publish(topic, "first", false, 1);
  const first = await a.expect(PacketType.Publish); // never acknowledged
  assert.equal(first.fixedHeader.dup, false);

  let atDrop: string[] = [];
  if (!r.aAlive) {
    a.close();
    await waitFor(() => broker.server.clients.get(id)?.closed ?? true, 2000, `${label}: A's drop seen`);
    atDrop = wills(await watcher.sync());
  }

  const { client: b, connack } = await RawClient.connect(broker, id, {
    version: r.version,
    connect: { clean: r.bClean },
    properties: v5 ? { sessionExpiryInterval: 60 } : undefined,
  });
  assert.equal(connack.reasonCode, 0, label);
  assert.equal(connack.sessionPresent, r.present, `${label}: Session Present (${r.clause})`);
  if (r.aAlive) {
    const toA = await a.closed();
    const expected = v5 ? [[PacketType.Disconnect, 0x8e]] : [];
    assert.deepEqual(toA.map((p) => [p.fixedHeader.type, p.reasonCode]), expected, `${label}: A taken over`);
  }
  a.close();
  const atConnect = wills(await watcher.sync());
  const will: Will = atDrop.length > 0 ? "at A's drop" : atConnect.length > 0 ? "at B's CONNECT" : "not sent";
  assert.equal(will, r.will, `${label}: will (${r.clause})`);
  assert.equal(atDrop.length + atConnect.length <= 1, true, `${label}: one will at most`);

  // A's unacknowledged message comes again with DUP only if the session was resumed.
  const resent = await b.sync();
  if (r.carried) {
    assert.equal(resent.length, 1, `${label}: in-flight message resent (${r.clause})`);
    assert.equal(resent[0].fixedHeader.dup, true, label);
    assert.equal(resent[0].packetId, first.packetId, label);
    await b.send({ fixedHeader: { type: PacketType.Puback }, packetId: resent[0].packetId, reasonCode: 0 });
  } else {
    assert.deepEqual(resent, [], `${label}: nothing of A's in flight (${r.clause})`);
  }
  // A's subscription delivers to B only if the session was resumed.
  await broker.server.publish(topic, "second", false, 1);
  const delivered = await b.sync();
  assert.equal(delivered.length, r.carried ? 1 : 0, `${label}: A's subscription (${r.clause})`);
  for (const p of delivered) {
    await b.send({ fixedHeader: { type: PacketType.Puback }, packetId: p.packetId, reasonCode: 0 });
  }
  await b.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode: 0 });
  await b.closed();
  b.close();
}

Deno.test("Session table: Session Present, carried state and the will for every (A session, A alive, B clean, level)", async (t) => {
  assert.ok(ROWS.length >= 16, `${ROWS.length} rows`);
  assert.equal(new Set(ROWS.map(describe)).size, ROWS.length, "every row is a distinct combination");
  await using broker = await startBroker({ inlineClient: true });
  const { client: watcher } = await RawClient.connect(broker, "table-watcher");
  await watcher.subscribe([{ filter: "will/#", qos: 0 }]);
  try {
    for (const r of ROWS) {
      await t.step({
        name: `${describe(r)} -> SP ${+r.present}, ${r.carried ? "state carried" : "fresh"}, will ${r.will}`,
        fn: () => check(broker, watcher, r),
        sanitizeOps: false,
        sanitizeResources: false,
      });
    }
  } finally {
    watcher.close();
  }
});
