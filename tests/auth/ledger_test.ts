/**
 * The auth ledger checked end to end: one broker with an AuthHook loaded from YAML (with plain,
 * bcrypt, scrypt and PBKDF2 passwords), and a table of clients that connect over real TCP and
 * subscribe or publish; we check CONNACK, SUBACK and PUBACK codes and which publishes are delivered.
 */

import assert from "node:assert/strict";
import { AuthHook, hashPassword } from "../../hooks/auth/mod.ts";
import { type Packet, PacketType, type ProtocolVersion, type QoS } from "../../mod.ts";
import { collect, delay, mqttConnect, RawClient, startBroker, type TestBroker, waitFor } from "../helpers.ts";

const encoder = new TextEncoder();

/** The ledger under test; `{{name}}` are replaced by password hashes made at test time. */
const LEDGER = `
users:
  alice:                         # scrypt
    password: "{{alice}}"
    acl:
      "alice/#": ReadWrite
      "shared/#": ReadOnly
      "shared/alice/#": WriteOnly
  bob:                           # bcrypt, no own ACL: the acl rules apply
    password: "{{bob}}"
  bob2y:                         # bcrypt written by PHP ($2y$)
    password: "{{bob2y}}"
  carol:                         # PBKDF2-SHA256
    password: "{{carol}}"
  dave:
    password: dave-pw
    disallow: true
  erin:
    password: ""                 # only an empty (or absent) password
  frank:
    password: "*"                # any password
auth:
  - username: bob                # never reached: users decide for bob
    password: master
    allow: true
  - username: peach
    password: password1
    allow: true
  - username: blocked-*
    allow: false
  - client: sensor-*
    password: ""
    allow: true
  - username: any-pass
    password: "*"
    allow: true
  - username: nopass
    password: ""
    allow: true
  - username: order
    allow: false
  - username: order
    password: pw
    allow: true
  - remote: "10.*"
    allow: true
  - remote: "127.0.0.1:*"
    username: local
    allow: true
  - username: hashed
    password: "{{hashed}}"       # PBKDF2-SHA512 in an auth rule
    allow: true
  - client: evil-*
    password: "*"
    allow: true
acl:
  - username: peach
    filters:
      "#": ReadOnly
      "updates/#": Deny
      "peach/#": ReadWrite
      "a/#": ReadWrite
  - client: sensor-*
    filters:
      "sensors/%c/#": WriteOnly
      "commands/%c": ReadOnly
  - username: local
  - filters:
      "#": Deny
      "users/%u/#": ReadWrite
      "public/#": ReadOnly
`;

interface Who {
  clientId: string;
  username?: string;
  password?: string;
  version?: ProtocolVersion;
}

interface Case {
  name: string;
  who: Who;
  /** Expected CONNACK reason code (v3: return code). */
  connack: number;
  /** Subscribe to a filter and expect this SUBACK code. */
  sub?: [filter: string, code: number];
  /** Publish at QoS 1 and expect this PUBACK code; delivered to the spy iff 0 (and v5 code 0). */
  pub?: [topic: string, code: number, delivered?: boolean];
}

const OK = 0x00;
const GRANTED_QOS1 = 0x01;
const BAD_LOGIN = 0x86;
const NOT_AUTHORIZED = 0x87;
const UNSPECIFIED = 0x80;

const CASES: Case[] = [
  // Authentication: users map, each hash kind.
  {
    name: "scrypt user, right password",
    who: { clientId: "c1", username: "alice", password: "alice-pw" },
    connack: OK,
  },
  {
    name: "scrypt user, wrong password",
    who: { clientId: "c2", username: "alice", password: "x" },
    connack: BAD_LOGIN,
  },
  {
    name: "bcrypt user, right password",
    who: { clientId: "c3", username: "bob", password: "bob-pw" },
    connack: OK,
  },
  {
    name: "bcrypt user, wrong password",
    who: { clientId: "c4", username: "bob", password: "bob-px" },
    connack: BAD_LOGIN,
  },
  { name: "bcrypt $2y$ user", who: { clientId: "c4y", username: "bob2y", password: "bob-pw" }, connack: OK },
  {
    name: "pbkdf2 user, right password",
    who: { clientId: "c5", username: "carol", password: "carol-pw" },
    connack: OK,
  },
  {
    name: "pbkdf2 user, wrong password",
    who: { clientId: "c6", username: "carol", password: "" },
    connack: BAD_LOGIN,
  },
  {
    name: "users decide: no fallback to a matching auth rule",
    who: { clientId: "c7", username: "bob", password: "master" },
    connack: BAD_LOGIN,
  },
  {
    name: "disallowed user with the right password",
    who: { clientId: "c8", username: "dave", password: "dave-pw" },
    connack: BAD_LOGIN,
  },
  { name: "empty user password, none sent", who: { clientId: "c9", username: "erin" }, connack: OK },
  {
    name: "empty user password, one sent",
    who: { clientId: "c10", username: "erin", password: "x" },
    connack: BAD_LOGIN,
  },
  {
    name: '"*" user password, any sent',
    who: { clientId: "c11", username: "frank", password: "zzz" },
    connack: OK,
  },
  // Authentication: auth rules.
  {
    name: "plain rule password",
    who: { clientId: "c12", username: "peach", password: "password1" },
    connack: OK,
  },
  {
    name: "plain rule, wrong password",
    who: { clientId: "c13", username: "peach", password: "password2" },
    connack: BAD_LOGIN,
  },
  {
    name: "username pattern denies",
    who: { clientId: "c14", username: "blocked-joe", password: "x" },
    connack: BAD_LOGIN,
  },
  { name: "client pattern, empty password rule", who: { clientId: "sensor-1" }, connack: OK },
  {
    name: 'empty rule password is not "any"',
    who: { clientId: "sensor-2", password: "x" },
    connack: BAD_LOGIN,
  },
  {
    name: '"*" rule password',
    who: { clientId: "c15", username: "any-pass", password: "whatever" },
    connack: OK,
  },
  {
    name: "empty rule password, one sent",
    who: { clientId: "c16", username: "nopass", password: "x" },
    connack: BAD_LOGIN,
  },
  { name: "empty rule password, none sent", who: { clientId: "c17", username: "nopass" }, connack: OK },
  {
    name: "first matching rule decides (deny before allow)",
    who: { clientId: "c18", username: "order", password: "pw" },
    connack: BAD_LOGIN,
  },
  {
    name: "remote pattern that does not match",
    who: { clientId: "c19", username: "nobody", password: "x" },
    connack: BAD_LOGIN,
  },
  { name: "remote pattern 127.0.0.1:*", who: { clientId: "c20", username: "local" }, connack: OK },
  {
    name: "pbkdf2-sha512 rule password",
    who: { clientId: "c21", username: "hashed", password: "hashed-pw" },
    connack: OK,
  },
  {
    name: "pbkdf2-sha512 rule, wrong password",
    who: { clientId: "c22", username: "hashed", password: "nope" },
    connack: BAD_LOGIN,
  },
  {
    name: "v3.1.1 refused: return code 4",
    who: { clientId: "c23", username: "peach", password: "bad", version: 4 },
    connack: 4,
  },
  {
    name: "v3.1 refused: return code 4",
    who: { clientId: "c24", username: "peach", password: "bad", version: 3 },
    connack: 4,
  },
  // ACL: most specific filter, rule order, read and write.
  { name: "ReadOnly # allows reading news", who: peach("c30"), connack: OK, sub: ["news", GRANTED_QOS1] },
  {
    name: "updates/# Deny beats # ReadOnly",
    who: peach("c31"),
    connack: OK,
    sub: ["updates/x", NOT_AUTHORIZED],
  },
  { name: "ReadOnly forbids publishing", who: peach("c32"), connack: OK, pub: ["news", NOT_AUTHORIZED] },
  { name: "peach/# ReadWrite allows publishing", who: peach("c33"), connack: OK, pub: ["peach/x", OK] },
  { name: "a/# matches a [MQTT-4.7.1-2]", who: peach("c34"), connack: OK, pub: ["a", OK] },
  {
    name: "subscribing # is denied: it overlaps updates/#",
    who: peach("c35"),
    connack: OK,
    sub: ["#", NOT_AUTHORIZED],
  },
  { name: "subscribing news/# is allowed", who: peach("c36"), connack: OK, sub: ["news/#", GRANTED_QOS1] },
  {
    name: "subscribing +/x is denied (updates/x)",
    who: peach("c37"),
    connack: OK,
    sub: ["+/x", NOT_AUTHORIZED],
  },
  {
    name: "$share prefix is ignored by the ACL",
    who: peach("c38"),
    connack: OK,
    sub: ["$share/g/updates/x", NOT_AUTHORIZED],
  },
  { name: "user ACL allows own topic", who: alice("c40"), connack: OK, pub: ["alice/x", OK] },
  {
    name: "user ACL: most specific WriteOnly allows write",
    who: alice("c41"),
    connack: OK,
    pub: ["shared/alice/x", OK],
  },
  {
    name: "user ACL: most specific WriteOnly denies read",
    who: alice("c42"),
    connack: OK,
    sub: ["shared/alice/x", NOT_AUTHORIZED],
  },
  {
    name: "user ACL: ReadOnly allows read",
    who: alice("c43"),
    connack: OK,
    sub: ["shared/bob", GRANTED_QOS1],
  },
  {
    name: "user ACL: ReadOnly denies write",
    who: alice("c44"),
    connack: OK,
    pub: ["shared/bob", NOT_AUTHORIZED],
  },
  {
    name: "no user ACL match: acl rules next (%u)",
    who: alice("c45"),
    connack: OK,
    pub: ["users/alice/x", OK],
  },
  {
    name: "no user ACL match: catch-all Deny",
    who: alice("c46"),
    connack: OK,
    pub: ["other", NOT_AUTHORIZED],
  },
  { name: "%u grants the user's own tree", who: bob("c50"), connack: OK, sub: ["users/bob/#", GRANTED_QOS1] },
  {
    name: "%u does not grant another user's tree",
    who: bob("c51"),
    connack: OK,
    sub: ["users/alice/#", NOT_AUTHORIZED],
  },
  {
    name: "users/+/x is not covered by users/%u/#",
    who: bob("c52"),
    connack: OK,
    sub: ["users/+/x", NOT_AUTHORIZED],
  },
  { name: "public/# ReadOnly allows reading", who: bob("c53"), connack: OK, sub: ["public/#", GRANTED_QOS1] },
  {
    name: "public/# ReadOnly denies writing",
    who: bob("c54"),
    connack: OK,
    pub: ["public/x", NOT_AUTHORIZED],
  },
  {
    name: "# does not match $SYS: default allow",
    who: bob("c55"),
    connack: OK,
    sub: ["$SYS/#", GRANTED_QOS1],
  },
  {
    name: "%c grants the sensor's own topic",
    who: { clientId: "sensor-7" },
    connack: OK,
    pub: ["sensors/sensor-7/temp", OK],
  },
  {
    name: "%c does not grant another sensor's topic",
    who: { clientId: "sensor-8" },
    connack: OK,
    pub: ["sensors/sensor-7/temp", NOT_AUTHORIZED],
  },
  {
    name: "%c ReadOnly command topic",
    who: { clientId: "sensor-9" },
    connack: OK,
    sub: ["commands/sensor-9", GRANTED_QOS1],
  },
  {
    name: "a client id with / does not widen %c",
    who: { clientId: "sensor-a/b" },
    connack: OK,
    pub: ["sensors/sensor-a/b/temp", NOT_AUTHORIZED],
  },
  {
    name: "a user name + does not widen %u",
    who: { clientId: "evil-1", username: "+", password: "x" },
    connack: OK,
    sub: ["users/x/y", NOT_AUTHORIZED],
  },
  {
    name: "a user name # does not widen %u",
    who: { clientId: "evil-2", username: "#", password: "x" },
    connack: OK,
    pub: ["users/x", NOT_AUTHORIZED],
  },
  {
    name: "a rule without filters allows all (read)",
    who: local("c60"),
    connack: OK,
    sub: ["#", GRANTED_QOS1],
  },
  {
    name: "a rule without filters allows all (write)",
    who: local("c61"),
    connack: OK,
    pub: ["updates/x", OK],
  },
  {
    name: "v3.1.1 denied subscribe gets 0x80",
    who: { ...peach("c70"), version: 4 },
    connack: OK,
    sub: ["updates/x", UNSPECIFIED],
  },
  // v3 has no reason code on PUBACK: the publish is acknowledged but not delivered [MQTT-3.3.5-2].
  {
    name: "v3.1.1 denied publish is acked, not delivered",
    who: { ...peach("c71"), version: 4 },
    connack: OK,
    pub: ["news", OK, false],
  },
];

function peach(clientId: string): Who {
  return { clientId, username: "peach", password: "password1" };
}
function alice(clientId: string): Who {
  return { clientId, username: "alice", password: "alice-pw" };
}
function bob(clientId: string): Who {
  return { clientId, username: "bob", password: "bob-pw" };
}
function local(clientId: string): Who {
  return { clientId, username: "local" };
}

async function ledgerYaml(): Promise<string> {
  const bobHash = await hashPassword("bob-pw", { algorithm: "bcrypt", cost: 4 });
  const hashes: Record<string, string> = {
    alice: await hashPassword("alice-pw", { algorithm: "scrypt", cost: 1024 }),
    bob: bobHash,
    bob2y: "$2y$" + bobHash.slice(4),
    carol: await hashPassword("carol-pw", { algorithm: "pbkdf2-sha256", cost: 1000 }),
    hashed: await hashPassword("hashed-pw", { algorithm: "pbkdf2-sha512", cost: 1000 }),
  };
  return LEDGER.replace(/\{\{(\w+)\}\}/g, (_, name) => hashes[name]);
}

/** Runs one case; returns the payload it published if it expects it delivered. */
async function runCase(broker: TestBroker, c: Case, index: number): Promise<string | undefined> {
  const version = c.who.version ?? 5;
  const { client, connack } = await RawClient.connect(broker, c.who.clientId, {
    version,
    connect: {
      username: c.who.username,
      password: c.who.password === undefined ? undefined : encoder.encode(c.who.password),
    },
  });
  try {
    assert.equal(connack.reasonCode, c.connack, `${c.name}: CONNACK`);
    if (c.connack !== OK) {
      await client.closed();
      return undefined;
    }
    if (c.sub) {
      await client.send({
        fixedHeader: { type: PacketType.Subscribe },
        packetId: 1,
        filters: [{ filter: c.sub[0], qos: 1 as QoS }],
      });
      const suback = await client.expect(PacketType.Suback);
      assert.deepEqual(suback.reasonCodes, [c.sub[1]], `${c.name}: SUBACK`);
    }
    let delivered: string | undefined;
    if (c.pub) {
      const payload = `case-${index}`;
      const publish: Packet = {
        fixedHeader: { type: PacketType.Publish, qos: 1 },
        packetId: 2,
        topicName: c.pub[0],
        payload: encoder.encode(payload),
      };
      await client.send(publish);
      const puback = await client.expect(PacketType.Puback);
      assert.equal(puback.reasonCode ?? 0, c.pub[1], `${c.name}: PUBACK`);
      if (c.pub[1] === OK && c.pub[2] !== false) delivered = payload;
    }
    await client.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode: 0 });
    return delivered;
  } finally {
    client.close();
  }
}

Deno.test("AuthHook decides connections, subscriptions and publishes from a YAML ledger (table)", async () => {
  assert.ok(CASES.length >= 40);
  const hook = new AuthHook();
  await using broker = await startBroker({}, []);
  await broker.server.addHook(hook, { data: await ledgerYaml() });
  // The spy may read everything (the "local" rule without filters) and sees what is delivered.
  const spy = await mqttConnect(broker, { clientId: "spy", username: "local" });
  const seen = collect(spy);
  await spy.subscribeAsync("#", { qos: 1 });
  const expected: string[] = [];
  for (const [i, c] of CASES.entries()) {
    const delivered = await runCase(broker, c, i);
    if (delivered) expected.push(delivered);
  }
  await waitFor(() => expected.every((p) => seen.some((m) => m.payload === p)), 3000, "allowed publishes");
  await delay(50); // let anything wrongly delivered arrive too
  assert.deepEqual(seen.map((m) => m.payload).sort(), expected.sort());
  await spy.endAsync();
});

Deno.test("AuthHook denials follow obscureNotAuthorized: v5 SUBACK and PUBACK carry 0x80", async () => {
  await using broker = await startBroker({
    capabilities: { compatibilities: { obscureNotAuthorized: true } },
  }, []);
  await broker.server.addHook(new AuthHook(), {
    ledger: {
      auth: [{ username: "u", allow: true }],
      acl: [{ filters: { "#": "ReadOnly", "secret/#": "Deny" } }],
    },
  });
  const { client } = await RawClient.connect(broker, "o1", { connect: { username: "u" } });
  await client.send({
    fixedHeader: { type: PacketType.Subscribe },
    packetId: 1,
    filters: [{ filter: "news", qos: 1 }, { filter: "secret/x", qos: 1 }],
  });
  assert.deepEqual((await client.expect(PacketType.Suback)).reasonCodes, [GRANTED_QOS1, UNSPECIFIED]);
  await client.send({
    fixedHeader: { type: PacketType.Publish, qos: 1 },
    packetId: 2,
    topicName: "news",
    payload: encoder.encode("x"),
  });
  assert.equal((await client.expect(PacketType.Puback)).reasonCode, UNSPECIFIED);
  client.close();
});

Deno.test("AuthHook denies an MQTT.js client with a bad password and accepts the right one", async () => {
  await using broker = await startBroker({}, [new AuthHook()]);
  const hook = broker.server.hooks.list[0] as AuthHook;
  hook.update({
    users: { peach: { password: await hashPassword("pw", { algorithm: "scrypt", cost: 1024 }) } },
  });
  await assert.rejects(
    mqttConnect(broker, { clientId: "m1", username: "peach", password: "bad" }),
    /Bad User Name or Password|134/i,
  );
  const client = await mqttConnect(broker, { clientId: "m2", username: "peach", password: "pw" });
  assert.ok(client.connected);
  await client.endAsync();
});

Deno.test("AuthHook.update swaps the rules for new connections and for checks on live ones", async () => {
  const hook = new AuthHook();
  await using broker = await startBroker({}, []);
  await broker.server.addHook(hook, { ledger: { auth: [{ username: "a", allow: true }] } });
  const { client: refusedBefore, connack: before } = await RawClient.connect(broker, "u1", {
    connect: { username: "b" },
  });
  assert.equal(before.reasonCode, BAD_LOGIN);
  refusedBefore.close();

  const live = await mqttConnect(broker, { clientId: "live", username: "a" });
  await live.publishAsync("x/y", "1", { qos: 1 }); // no ACL rules: allowed

  hook.update({ auth: [{ username: "b", allow: true }], acl: [{ filters: { "#": "ReadOnly" } }] });
  const { client: nowOk, connack: after } = await RawClient.connect(broker, "u2", {
    connect: { username: "b" },
  });
  assert.equal(after.reasonCode, OK);
  nowOk.close();
  await assert.rejects(live.publishAsync("x/y", "2", { qos: 1 }), /Not authorized|135/i);

  assert.throws(() => hook.update({ acl: [{ filters: { "#": "Bogus" } }] } as never), /Bogus/);
  // The old rules are still in force after a failed update.
  const { client: stillOk, connack: still } = await RawClient.connect(broker, "u3", {
    connect: { username: "b" },
  });
  assert.equal(still.reasonCode, OK);
  stillOk.close();
  await live.endAsync();
});
