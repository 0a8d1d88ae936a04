/**
 * CONNECT and CONNACK over real TCP sockets: protocol levels, the capabilities CONNACK advertises,
 * client identifiers, authentication, keep alive and the CONNECT timeout.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Hook, MqttError, type Packet, PacketType } from "../../mod.ts";
import { connectPacket, delay, mqttConnect, RawClient, startBroker } from "../helpers.ts";
import { frame, props, u16, utf8 } from "../packets/golden.ts";

const PROTOCOL_ERROR = 0x82;
const UNSUPPORTED_PROTOCOL_VERSION = 0x84;
const BAD_USER_NAME_OR_PASSWORD = 0x86;
const KEEP_ALIVE_TIMEOUT = 0x8d;

/** v3 CONNACK return codes. */
const V3_UNACCEPTABLE_PROTOCOL_VERSION = 1;
const V3_IDENTIFIER_REJECTED = 2;
const V3_BAD_USER_NAME_OR_PASSWORD = 4;

const DENY: Hook = { id: "deny", onConnectAuthenticate: () => false };

// ---------------------------------------------------------------------------------------------
// Protocol levels

Deno.test("CONNECT at level 3 (MQIsdp) is accepted with a v3 CONNACK", async () => {
  await using broker = await startBroker();
  const { client, connack } = await RawClient.connect(broker, "v31", { version: 3 });
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.sessionPresent, false);
  assert.equal(connack.properties, undefined);
  await client.send({ fixedHeader: { type: PacketType.Pingreq } });
  await client.expect(PacketType.Pingresp);
  client.close();
});

Deno.test("CONNECT at level 4 (v3.1.1) is accepted from a raw client and from MQTT.js", async () => {
  await using broker = await startBroker();
  const { client, connack } = await RawClient.connect(broker, "v311", { version: 4 });
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.sessionPresent, false);
  assert.equal(connack.properties, undefined);
  client.close();
  const mqttClient = await mqttConnect(broker, { clientId: "v311-js", protocolVersion: 4 });
  assert.equal(mqttClient.connected, true);
  await mqttClient.endAsync();
});

Deno.test("CONNECT at level 5 is accepted from a raw client and from MQTT.js", async () => {
  await using broker = await startBroker();
  const { client, connack } = await RawClient.connect(broker, "v5");
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.sessionPresent, false);
  client.close();
  const mqttClient = await mqttConnect(broker, { clientId: "v5-js", protocolVersion: 5 });
  assert.equal(mqttClient.connected, true);
  await mqttClient.endAsync();
});

Deno.test("CONNECT with an unsupported protocol level gets return code 1 and is closed", async () => {
  await using broker = await startBroker();
  const client = await RawClient.open(broker, 4);
  // "MQTT" level 6: the server cannot know the format, so it answers in the v3.1.1 one.
  await client.sendBytes(frame(0x10, utf8("MQTT"), 6, 0x02, u16(0), props(), utf8("level6")));
  const seen = await client.closed();
  assert.equal(seen.length, 1);
  assert.equal(seen[0].fixedHeader.type, PacketType.Connack);
  assert.equal(seen[0].reasonCode, V3_UNACCEPTABLE_PROTOCOL_VERSION);
  assert.equal(seen[0].sessionPresent, false);
  client.close();
});

Deno.test("CONNECT at level 5 with a wrong protocol name gets CONNACK 0x84 and is closed", async () => {
  await using broker = await startBroker();
  const client = await RawClient.open(broker, 5);
  await client.sendBytes(frame(0x10, utf8("MQIsdp"), 5, 0x02, u16(0), props(), utf8("badname")));
  const seen = await client.closed();
  assert.equal(seen.length, 1);
  assert.equal(seen[0].fixedHeader.type, PacketType.Connack);
  assert.equal(seen[0].reasonCode, UNSUPPORTED_PROTOCOL_VERSION);
  client.close();
});

Deno.test("CONNECT at level 4 is refused with return code 1 when minimumProtocolVersion is 5", async () => {
  await using broker = await startBroker({ capabilities: { minimumProtocolVersion: 5 } });
  const { client, connack } = await RawClient.connect(broker, "old", { version: 4 });
  assert.equal(connack.reasonCode, V3_UNACCEPTABLE_PROTOCOL_VERSION);
  assert.deepEqual(await client.closed(), []);
  client.close();
  await assert.rejects(mqttConnect(broker, { clientId: "old-js", protocolVersion: 4 }), /protocol version/i);
  const v5 = await RawClient.connect(broker, "new");
  assert.equal(v5.connack.reasonCode, 0);
  v5.client.close();
});

Deno.test("CONNECT at level 3 is refused with return code 1 when minimumProtocolVersion is 4", async () => {
  await using broker = await startBroker({ capabilities: { minimumProtocolVersion: 4 } });
  const { client, connack } = await RawClient.connect(broker, "older", { version: 3 });
  assert.equal(connack.reasonCode, V3_UNACCEPTABLE_PROTOCOL_VERSION);
  assert.deepEqual(await client.closed(), []);
  client.close();
});

// ---------------------------------------------------------------------------------------------
// CONNACK capabilities

Deno.test("CONNACK advertises receiveMaximum, maximumPacketSize and topicAliasMaximum by default", async () => {
  await using broker = await startBroker();
  const { client, connack } = await RawClient.connect(broker, "defaults");
  assert.deepEqual(connack.properties, {
    receiveMaximum: 1024,
    maximumPacketSize: 1024 * 1024,
    topicAliasMaximum: 0xffff,
  });
  client.close();
});

Deno.test("CONNACK advertises every capability that is limited or turned off", async () => {
  await using broker = await startBroker({
    capabilities: {
      receiveMaximum: 10,
      maximumQos: 1,
      retainAvailable: 0,
      maximumPacketSize: 2048,
      topicAliasMaximum: 5,
      wildcardSubAvailable: 0,
      subIdAvailable: 0,
      sharedSubAvailable: 0,
    },
  });
  const { client, connack } = await RawClient.connect(broker, "limited");
  assert.equal(connack.reasonCode, 0);
  assert.deepEqual(connack.properties, {
    receiveMaximum: 10,
    maximumQoS: 1,
    retainAvailable: 0,
    maximumPacketSize: 2048,
    topicAliasMaximum: 5,
    wildcardSubscriptionAvailable: 0,
    subscriptionIdentifierAvailable: 0,
    sharedSubscriptionAvailable: 0,
  });
  client.close();
});

Deno.test("CONNACK advertises maximumQoS 0 and omits topicAliasMaximum when aliases are off", async () => {
  await using broker = await startBroker({ capabilities: { maximumQos: 0, topicAliasMaximum: 0 } });
  const { client, connack } = await RawClient.connect(broker, "qos0");
  assert.deepEqual(connack.properties, {
    receiveMaximum: 1024,
    maximumQoS: 0,
    maximumPacketSize: 1024 * 1024,
  });
  client.close();
});

Deno.test("CONNACK to a v5 MQTT.js client carries the advertised capabilities", async () => {
  await using broker = await startBroker({ capabilities: { maximumQos: 1, retainAvailable: 0 } });
  const mqttClient = await mqttConnect(broker, { clientId: "js-caps" });
  // MQTT.js keeps the CONNACK it got; its type is private, so read it through a cast.
  const connack = (mqttClient as unknown as { connackPacket: { properties?: Record<string, unknown> } })
    .connackPacket;
  assert.equal(connack.properties?.maximumQoS, 1);
  assert.equal(connack.properties?.retainAvailable, false);
  await mqttClient.endAsync();
});

// ---------------------------------------------------------------------------------------------
// Client identifiers

Deno.test("CONNECT with an empty client id on v5 gets an assigned identifier", async () => {
  await using broker = await startBroker();
  const { client, connack } = await RawClient.connect(broker, "");
  assert.equal(connack.reasonCode, 0);
  const assigned = connack.properties?.assignedClientIdentifier;
  assert.equal(typeof assigned, "string");
  assert.ok(assigned!.length > 0);
  assert.ok(broker.server.clients.get(assigned!), "the session is known by the assigned id");
  const other = await RawClient.connect(broker, "");
  assert.notEqual(other.connack.properties?.assignedClientIdentifier, assigned);
  client.close();
  other.client.close();
});

Deno.test("CONNECT with a client id on v5 gets no assigned identifier", async () => {
  await using broker = await startBroker();
  const { client, connack } = await RawClient.connect(broker, "named");
  assert.equal(connack.properties?.assignedClientIdentifier, undefined);
  client.close();
});

Deno.test("CONNECT with an empty client id on v3.1.1 with clean session is accepted", async () => {
  await using broker = await startBroker();
  const { client, connack } = await RawClient.connect(broker, "", { version: 4, connect: { clean: true } });
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.sessionPresent, false);
  await client.send({ fixedHeader: { type: PacketType.Pingreq } });
  await client.expect(PacketType.Pingresp);
  client.close();
});

Deno.test("CONNECT with an empty client id on v3.1.1 without clean session gets return code 2", async () => {
  await using broker = await startBroker();
  const { client, connack } = await RawClient.connect(broker, "", { version: 4, connect: { clean: false } });
  assert.equal(connack.reasonCode, V3_IDENTIFIER_REJECTED);
  assert.deepEqual(await client.closed(), []);
  client.close();
});

Deno.test("CONNECT with an empty client id on v3.1 gets return code 2", async () => {
  await using broker = await startBroker();
  const { client, connack } = await RawClient.connect(broker, "", { version: 3, connect: { clean: true } });
  assert.equal(connack.reasonCode, V3_IDENTIFIER_REJECTED);
  assert.deepEqual(await client.closed(), []);
  client.close();
});

// ---------------------------------------------------------------------------------------------
// Authentication

Deno.test("CONNECT refused by an auth hook gets CONNACK 0x86 on v5 and return code 4 on v3", async () => {
  await using broker = await startBroker({}, [DENY]);
  const v5 = await RawClient.connect(broker, "denied5");
  assert.equal(v5.connack.reasonCode, BAD_USER_NAME_OR_PASSWORD);
  assert.deepEqual(await v5.client.closed(), []);
  v5.client.close();
  for (const version of [3, 4] as const) {
    const v3 = await RawClient.connect(broker, `denied${version}`, { version });
    assert.equal(v3.connack.reasonCode, V3_BAD_USER_NAME_OR_PASSWORD);
    assert.deepEqual(await v3.client.closed(), []);
    v3.client.close();
  }
  await assert.rejects(mqttConnect(broker, { clientId: "denied-js", protocolVersion: 4 }));
});

Deno.test("CONNECT with no auth hook at all is refused (deny by default)", async () => {
  await using broker = await startBroker({}, []);
  const v5 = await RawClient.connect(broker, "nobody5");
  assert.equal(v5.connack.reasonCode, BAD_USER_NAME_OR_PASSWORD);
  assert.deepEqual(await v5.client.closed(), []);
  v5.client.close();
  const v4 = await RawClient.connect(broker, "nobody4", { version: 4 });
  assert.equal(v4.connack.reasonCode, V3_BAD_USER_NAME_OR_PASSWORD);
  assert.deepEqual(await v4.client.closed(), []);
  v4.client.close();
  await assert.rejects(mqttConnect(broker, { clientId: "nobody-js" }));
  assert.equal(broker.server.info.clientsConnected, 0);
});

Deno.test("CONNACK to a v3 client carries only return codes 0-5 whatever the refusal", async () => {
  const refuseInOnConnect: Hook = {
    id: "refuse",
    onConnectAuthenticate: (client) => !client.id.startsWith("denied"),
    onACLCheck: () => true,
    onConnect: (client) => {
      if (client.id.startsWith("quota")) throw new MqttError(0x97);
      if (client.id.startsWith("banned")) throw new MqttError(0x8a);
      if (client.id.startsWith("busy")) throw new MqttError(0x89);
    },
  };
  await using broker = await startBroker({ capabilities: { maximumQos: 1 } }, [refuseInOnConnect]);
  for (const version of [3, 4] as const) {
    const cases: [string, Partial<NonNullable<Packet["connect"]>>][] = [
      [`denied${version}`, {}],
      [`quota${version}`, {}],
      [`banned${version}`, {}],
      [`busy${version}`, {}],
      // A will QoS above the maximum QoS is refused with 0x9B in v5.
      [`willqos${version}`, { willFlag: true, willTopic: "w", willPayload: new Uint8Array(), willQos: 2 }],
    ];
    for (const [clientId, connect] of cases) {
      const { client, connack } = await RawClient.connect(broker, clientId, { version, connect });
      assert.ok(
        connack.reasonCode! >= 1 && connack.reasonCode! <= 5,
        `${clientId} got return code ${connack.reasonCode}`,
      );
      assert.deepEqual(await client.closed(), []);
      client.close();
    }
  }
  const ok = await RawClient.connect(broker, "fine", { version: 4 });
  assert.equal(ok.connack.reasonCode, 0);
  ok.client.close();
});

// ---------------------------------------------------------------------------------------------
// Keep alive, session expiry in CONNACK

Deno.test("CONNACK carries Server Keep Alive when the client asks for more than maximumKeepAlive or 0", async () => {
  await using broker = await startBroker({ capabilities: { maximumKeepAlive: 30 } });
  const more = await RawClient.connect(broker, "ka-more", { connect: { keepAlive: 600 } });
  assert.equal(more.connack.properties?.serverKeepAlive, 30);
  more.client.close();
  const zero = await RawClient.connect(broker, "ka-zero", { connect: { keepAlive: 0 } });
  assert.equal(zero.connack.properties?.serverKeepAlive, 30);
  zero.client.close();
  const less = await RawClient.connect(broker, "ka-less", { connect: { keepAlive: 20 } });
  assert.equal(less.connack.properties?.serverKeepAlive, undefined);
  less.client.close();
});

Deno.test("CONNACK carries no Server Keep Alive when maximumKeepAlive is 0 (no limit)", async () => {
  await using broker = await startBroker();
  const { client, connack } = await RawClient.connect(broker, "ka", { connect: { keepAlive: 0xffff } });
  assert.equal(connack.properties?.serverKeepAlive, undefined);
  client.close();
});

Deno.test("CONNACK returns the Session Expiry Interval capped by maximumSessionExpiryInterval", async () => {
  await using broker = await startBroker({ capabilities: { maximumSessionExpiryInterval: 100 } });
  const capped = await RawClient.connect(broker, "sei-capped", {
    properties: { sessionExpiryInterval: 3600 },
  });
  assert.equal(capped.connack.properties?.sessionExpiryInterval, 100);
  capped.client.close();
  const never = await RawClient.connect(broker, "sei-never", {
    properties: { sessionExpiryInterval: 0xffffffff },
  });
  assert.equal(never.connack.properties?.sessionExpiryInterval, 100);
  never.client.close();
  // Within the cap the client's own value stands, so CONNACK need not repeat it.
  const within = await RawClient.connect(broker, "sei-within", { properties: { sessionExpiryInterval: 50 } });
  assert.ok([undefined, 50].includes(within.connack.properties?.sessionExpiryInterval));
  within.client.close();
});

// ---------------------------------------------------------------------------------------------
// Packet order

Deno.test("CONNECT not being the first packet closes the connection without an answer", async () => {
  await using broker = await startBroker();
  for (const version of [4, 5] as const) {
    const client = await RawClient.open(broker, version);
    await client.send({ fixedHeader: { type: PacketType.Pingreq } });
    assert.deepEqual(await client.closed(), []);
    client.close();
  }
  const client = await RawClient.open(broker, 5);
  await client.send({
    fixedHeader: { type: PacketType.Publish, qos: 0 },
    topicName: "a",
    payload: new Uint8Array([1]),
  });
  assert.deepEqual(await client.closed(), []);
  client.close();
});

Deno.test("CONNECT sent twice gets DISCONNECT 0x82 on v5 and the connection is closed", async () => {
  await using broker = await startBroker();
  const { client } = await RawClient.connect(broker, "twice");
  await client.send(connectPacket("twice"));
  const seen = await client.closed();
  assert.equal(seen.length, 1);
  assert.equal(seen[0].fixedHeader.type, PacketType.Disconnect);
  assert.equal(seen[0].reasonCode, PROTOCOL_ERROR);
  client.close();
});

Deno.test("CONNECT sent twice on v3.1.1 closes the connection", async () => {
  await using broker = await startBroker();
  const { client } = await RawClient.connect(broker, "twice4", { version: 4 });
  await client.send(connectPacket("twice4", 4));
  assert.deepEqual(await client.closed(), []);
  client.close();
});

Deno.test("CONNECT timeout closes a connection that never sends CONNECT", async () => {
  await using broker = await startBroker({ capabilities: { connectTimeout: 1 } });
  const started = Date.now();
  const client = await RawClient.open(broker);
  assert.deepEqual(await client.closed(3000), []);
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 900 && elapsed < 2500, `closed after ${elapsed} ms`);
  client.close();
});

Deno.test("CONNECT timeout does not close a connection that sent CONNECT", async () => {
  await using broker = await startBroker({ capabilities: { connectTimeout: 1 } });
  const { client, connack } = await RawClient.connect(broker, "in-time");
  assert.equal(connack.reasonCode, 0);
  await delay(1300);
  await client.send({ fixedHeader: { type: PacketType.Pingreq } });
  await client.expect(PacketType.Pingresp);
  assert.equal(client.ended, false);
  client.close();
});

// ---------------------------------------------------------------------------------------------
// Keep alive

Deno.test("Keep alive of 1 s disconnects a silent v5 client after about 1.5 s with DISCONNECT 0x8D", async () => {
  await using broker = await startBroker();
  const started = Date.now();
  const { client } = await RawClient.connect(broker, "silent", { connect: { keepAlive: 1 } });
  const seen = await client.closed(4000);
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 1400 && elapsed < 2500, `closed after ${elapsed} ms`);
  assert.equal(seen.length, 1, JSON.stringify(seen));
  assert.equal(seen[0].fixedHeader.type, PacketType.Disconnect);
  assert.equal(seen[0].reasonCode, KEEP_ALIVE_TIMEOUT);
  client.close();
});

Deno.test("Keep alive of 1 s closes a silent v3.1.1 client after about 1.5 s", async () => {
  await using broker = await startBroker();
  const started = Date.now();
  const { client } = await RawClient.connect(broker, "silent4", { version: 4, connect: { keepAlive: 1 } });
  assert.deepEqual(await client.closed(4000), []);
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 1400 && elapsed < 2500, `closed after ${elapsed} ms`);
  client.close();
});

Deno.test("Keep alive is kept by PINGREQ every half second", async () => {
  await using broker = await startBroker();
  const { client } = await RawClient.connect(broker, "pinger", { connect: { keepAlive: 1 } });
  for (let i = 0; i < 5; i++) {
    await delay(500);
    await client.send({ fixedHeader: { type: PacketType.Pingreq } });
    await client.expect(PacketType.Pingresp);
  }
  assert.equal(client.ended, false);
  client.close();
});

Deno.test("Keep alive granted as Server Keep Alive is enforced", async () => {
  await using broker = await startBroker({ capabilities: { maximumKeepAlive: 1 } });
  const started = Date.now();
  const { client, connack } = await RawClient.connect(broker, "capped", { connect: { keepAlive: 600 } });
  assert.equal(connack.properties?.serverKeepAlive, 1);
  const seen = await client.closed(4000);
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 1400 && elapsed < 2500, `closed after ${elapsed} ms`);
  assert.equal(seen.at(-1)?.reasonCode, KEEP_ALIVE_TIMEOUT);
  client.close();
});
