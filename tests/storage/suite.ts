/**
 * The storage conformance suite, run against every backend (memory, Deno KV, Redis). Each case
 * drives a real broker over TCP, restarts it (a new `Server` and a new hook on the same store) and
 * checks what the clients see and what the backend holds.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  AllowHook,
  type Hook,
  type Options,
  type Packet,
  PacketType,
  type Properties,
  type QoS,
  type Subscription,
} from "../../mod.ts";
import type { StorageBackend, StorageHook, WriteOp } from "../../hooks/storage/storage.ts";
import type { ClientRecord, InflightRecord, StoredMessage, StoredState } from "../../src/storage.ts";
import { delay, RawClient, startBroker, type TestBroker, waitFor } from "../helpers.ts";

/** One backend under test: makes hooks and backends on one shared store. */
export interface StorageFixture {
  /** A new hook on the store (as a restarted broker would make). */
  hook(): StorageHook;
  /** A new, unopened backend on the store (to look at what is stored). */
  backend(): StorageBackend;
  /** Releases the store. */
  close(): Promise<void>;
  /**
   * How many copies of messages the store holds for queued and in-flight records (a backend that
   * keeps a copy in each record does not say).
   */
  messageCopies?(): Promise<number>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
type ConnectOptions = Parameters<typeof RawClient.connect>[2];
const PERSISTENT: ConnectOptions = { connect: { clean: false }, properties: { sessionExpiryInterval: 3600 } };

/** A broker on a fixture's store that can be restarted (or "crashed") onto the same store. */
class Harness {
  broker!: TestBroker;
  hook!: StorageHook;
  readonly #fixture: StorageFixture;
  readonly #options: Options;
  readonly #hooks: () => Hook[];

  constructor(fixture: StorageFixture, options: Options, hooks: () => Hook[]) {
    this.#fixture = fixture;
    this.#options = options;
    this.#hooks = hooks;
  }

  static async start(
    fixture: StorageFixture,
    options: Options = {},
    hooks: () => Hook[] = () => [new AllowHook()],
  ): Promise<Harness> {
    const harness = new Harness(fixture, options, hooks);
    await harness.#start();
    return harness;
  }

  async #start(options = this.#options): Promise<void> {
    this.hook = this.#fixture.hook();
    this.broker = await startBroker(options, [...this.#hooks(), this.hook]);
  }

  /** A clean shutdown and a new broker on the same store. */
  async restart(options?: Options): Promise<TestBroker> {
    await this.broker.close();
    await this.#start(options);
    return this.broker;
  }

  /** Like a crash: the store keeps what was written so far, nothing the shutdown would write. */
  async crash(beforeClose?: () => void): Promise<TestBroker> {
    await this.hook.stop();
    beforeClose?.();
    await this.broker.close();
    await this.#start();
    return this.broker;
  }

  /** Waits for the current hook's writes. */
  sync(): Promise<void> {
    return this.hook.sync();
  }

  /** What the store holds now (after the current hook's writes). */
  async stored(): Promise<StoredState> {
    await this.hook.sync();
    return await loadFrom(this.#fixture);
  }

  async close(): Promise<void> {
    await this.broker.close();
  }
}

async function loadFrom(fixture: StorageFixture): Promise<StoredState> {
  const backend = fixture.backend();
  await backend.open();
  try {
    return await backend.load();
  } finally {
    await backend.close();
  }
}

/** Records of one client. */
function recordsOf(state: StoredState, clientId: string) {
  return {
    client: state.clients.find((c) => c.id === clientId),
    subscriptions: state.subscriptions.filter((s) => s.clientId === clientId).map((s) => s.subscription),
    inflight: state.inflight.filter((i) => i.clientId === clientId),
  };
}

async function connect(broker: TestBroker, id: string, options: ConnectOptions = PERSISTENT) {
  return await RawClient.connect(broker, id, options);
}

async function disconnect(broker: TestBroker, client: RawClient, id: string): Promise<void> {
  client.close();
  await waitFor(() => broker.server.clients.get(id)?.closed !== false, 3000, `${id} to be disconnected`);
}

async function subscribe(client: RawClient, filters: Subscription[], packetId = 1): Promise<number[]> {
  await client.send({ fixedHeader: { type: PacketType.Subscribe, qos: 1 }, packetId, filters });
  const suback = await client.expect(PacketType.Suback);
  return suback.reasonCodes ?? [];
}

function ack(type: PacketType, packetId: number): Packet {
  return { fixedHeader: { type, qos: type === PacketType.Pubrel ? 1 : 0 }, packetId, reasonCode: 0 };
}

/** Publishes and completes the flow (PUBACK, or PUBREC/PUBREL/PUBCOMP). */
async function publish(
  client: RawClient,
  topic: string,
  payload: string | Uint8Array,
  qos: QoS,
  packetId = 1,
  options: { retain?: boolean; properties?: Properties } = {},
): Promise<void> {
  await client.send({
    fixedHeader: { type: PacketType.Publish, qos, retain: options.retain ?? false },
    topicName: topic,
    packetId: qos > 0 ? packetId : undefined,
    payload: typeof payload === "string" ? encoder.encode(payload) : payload,
    properties: options.properties,
  });
  if (qos === 1) await client.expect(PacketType.Puback);
  if (qos === 2) {
    await client.expect(PacketType.Pubrec);
    await client.send(ack(PacketType.Pubrel, packetId));
    await client.expect(PacketType.Pubcomp);
  }
}

async function readPublishes(client: RawClient, count: number): Promise<Packet[]> {
  const out: Packet[] = [];
  for (let i = 0; i < count; i++) out.push(await client.expect(PacketType.Publish));
  return out;
}

async function expectNothing(client: RawClient, ms = 300): Promise<void> {
  await assert.rejects(client.read(ms), /Timed out/, "expected no packet");
}

function text(packet: Packet): string {
  return decoder.decode(packet.payload);
}

type Case = [name: string, run: (fixture: StorageFixture) => Promise<void>];

const CASES: Case[] = [
  ["a session and its subscriptions survive a restart (Session Present)", async (fixture) => {
    const h = await Harness.start(fixture);
    try {
      const { client: a } = await connect(h.broker, "a");
      const withOptions: Subscription = {
        filter: "n/#",
        qos: 2,
        noLocal: true,
        retainAsPublished: true,
        retainHandling: 2,
        identifier: 7,
      };
      assert.deepEqual(await subscribe(a, [{ filter: "s/+/x", qos: 1 }]), [1]);
      assert.deepEqual(await subscribe(a, [withOptions], 2), [2]);
      await disconnect(h.broker, a, "a");
      await h.restart();
      const restored = h.broker.server.clients.get("a");
      assert.ok(restored, "the session is restored");
      assert.equal(restored.closed, true);
      assert.deepEqual(restored.state.subscriptions.get("n/#"), withOptions);
      const { client: a2, connack } = await connect(h.broker, "a");
      const { client: p } = await connect(h.broker, "p", { connect: { clean: true }, properties: {} });
      try {
        assert.equal(connack.sessionPresent, true);
        await publish(p, "s/1/x", "one", 1);
        await publish(p, "n/1", "two", 2);
        const [one, two] = await readPublishes(a2, 2);
        assert.equal(text(one), "one");
        assert.equal(text(two), "two");
        assert.deepEqual(two.properties?.subscriptionIdentifier, [7]);
      } finally {
        a2.close();
        p.close();
      }
    } finally {
      await h.close();
    }
  }],

  ["queued offline messages (QoS 1 and 2) are delivered in order after a restart", async (fixture) => {
    const h = await Harness.start(fixture);
    try {
      const { client: a } = await connect(h.broker, "a");
      await subscribe(a, [{ filter: "q/#", qos: 2 }]);
      await disconnect(h.broker, a, "a");
      const { client: p } = await connect(h.broker, "p", { connect: { clean: true }, properties: {} });
      for (let i = 0; i < 10; i++) await publish(p, `q/${i}`, `m${i}`, (1 + (i % 2)) as QoS, i + 1);
      p.close();
      await h.restart();
      const { client: a2, connack } = await connect(h.broker, "a");
      try {
        assert.equal(connack.sessionPresent, true);
        const got = await readPublishes(a2, 10);
        assert.deepEqual(got.map(text), Array.from({ length: 10 }, (_, i) => `m${i}`));
        assert.deepEqual(
          got.map((m) => m.fixedHeader.qos),
          Array.from({ length: 10 }, (_, i) => 1 + (i % 2)),
        );
        for (const m of got) {
          await a2.send(ack(m.fixedHeader.qos === 1 ? PacketType.Puback : PacketType.Pubrec, m.packetId!));
        }
        for (let i = 0; i < 5; i++) {
          const pubrel = await a2.expect(PacketType.Pubrel);
          await a2.send(ack(PacketType.Pubcomp, pubrel.packetId!));
        }
        await waitFor(() => h.broker.server.clients.get("a")!.state.inflight.size === 0);
        assert.deepEqual(recordsOf(await h.stored(), "a").inflight, []);
      } finally {
        a2.close();
      }
    } finally {
      await h.close();
    }
  }],

  ["in-flight messages are resent with DUP, in their original order, before queued ones", async (fixture) => {
    const h = await Harness.start(fixture);
    try {
      const { client: a } = await connect(h.broker, "a");
      await subscribe(a, [{ filter: "f/#", qos: 1 }]);
      const { client: p } = await connect(h.broker, "p", { connect: { clean: true }, properties: {} });
      for (let i = 0; i < 3; i++) await publish(p, "f/x", `sent${i}`, 1, i + 1);
      const first = await readPublishes(a, 3); // never acknowledged
      await disconnect(h.broker, a, "a");
      for (let i = 0; i < 2; i++) await publish(p, "f/x", `queued${i}`, 1, i + 10);
      p.close();
      await h.restart();
      const { client: a2 } = await connect(h.broker, "a");
      try {
        const again = await readPublishes(a2, 5);
        assert.deepEqual(again.map(text), ["sent0", "sent1", "sent2", "queued0", "queued1"]);
        assert.deepEqual(again.slice(0, 3).map((m) => m.packetId), first.map((m) => m.packetId));
        assert.deepEqual(again.map((m) => m.fixedHeader.dup ?? false), [true, true, true, false, false]);
        for (const m of again) await a2.send(ack(PacketType.Puback, m.packetId!));
        await waitFor(() => h.broker.server.clients.get("a")!.state.inflight.size === 0);
        assert.deepEqual(recordsOf(await h.stored(), "a").inflight, []);
      } finally {
        a2.close();
      }
    } finally {
      await h.close();
    }
  }],

  [
    "a shared member's messages keep their group across a restart: its session's end passes them on",
    async (fixture) => {
      const h = await Harness.start(fixture);
      try {
        const { client: a } = await connect(h.broker, "a");
        await subscribe(a, [{ filter: "$share/g/s", qos: 1 }]);
        const { client: p } = await connect(h.broker, "p", { connect: { clean: true }, properties: {} });
        await publish(p, "s", "sent", 1, 1);
        await readPublishes(a, 1); // never acknowledged
        await disconnect(h.broker, a, "a");
        await publish(p, "s", "queued", 1, 2);
        p.close();
        await h.restart();
        const restored = h.broker.server.clients.get("a")!.state.inflight;
        assert.deepEqual([...restored.outbound.values(), ...restored.pending].map((m) => m.sharedGroups), [[
          "g/s",
        ], [
          "g/s",
        ]]);
        const { client: b } = await connect(h.broker, "b", { connect: { clean: true }, properties: {} });
        try {
          await subscribe(b, [{ filter: "$share/g/s", qos: 1 }]);
          const { client: a2 } = await connect(h.broker, "a", { connect: { clean: true }, properties: {} });
          a2.close(); // its clean start ended the restored session
          const passed = await readPublishes(b, 2);
          assert.deepEqual(passed.map(text), ["sent", "queued"]);
          assert.deepEqual(passed.map((m) => m.fixedHeader.dup ?? false), [false, false]);
        } finally {
          b.close();
        }
      } finally {
        await h.close();
      }
    },
  ],

  ["a QoS 2 flow at the PUBREL stage resumes after a restart", async (fixture) => {
    const h = await Harness.start(fixture);
    try {
      const { client: a } = await connect(h.broker, "a");
      await subscribe(a, [{ filter: "two/#", qos: 2 }]);
      const { client: p } = await connect(h.broker, "p", { connect: { clean: true }, properties: {} });
      await publish(p, "two/x", "exactly once", 2, 3);
      p.close();
      const [message] = await readPublishes(a, 1);
      await a.send(ack(PacketType.Pubrec, message.packetId!));
      assert.equal((await a.expect(PacketType.Pubrel)).packetId, message.packetId);
      await disconnect(h.broker, a, "a");
      const before = recordsOf(await h.stored(), "a").inflight;
      assert.deepEqual(before.map((r) => [r.stage, r.packetId]), [["pubrel", message.packetId]]);
      await h.restart();
      const { client: a2 } = await connect(h.broker, "a");
      try {
        const pubrel = await a2.expect(PacketType.Pubrel);
        assert.equal(pubrel.packetId, message.packetId);
        await a2.send(ack(PacketType.Pubcomp, pubrel.packetId!));
        await expectNothing(a2);
        assert.deepEqual(recordsOf(await h.stored(), "a").inflight, []);
      } finally {
        a2.close();
      }
    } finally {
      await h.close();
    }
  }],

  ["an inbound QoS 2 message awaiting PUBREL is not delivered twice after a restart", async (fixture) => {
    const h = await Harness.start(fixture);
    try {
      const { client: s } = await connect(h.broker, "s");
      await subscribe(s, [{ filter: "d/#", qos: 1 }]);
      const { client: p } = await connect(h.broker, "p");
      const message: Packet = {
        fixedHeader: { type: PacketType.Publish, qos: 2 },
        topicName: "d/1",
        packetId: 9,
        payload: encoder.encode("once"),
      };
      await p.send(message);
      await p.expect(PacketType.Pubrec);
      const [delivered] = await readPublishes(s, 1);
      assert.equal(text(delivered), "once");
      await s.send(ack(PacketType.Puback, delivered.packetId!));
      await disconnect(h.broker, p, "p");
      await disconnect(h.broker, s, "s");
      assert.deepEqual(
        recordsOf(await h.stored(), "p").inflight.map((r) => [r.direction, r.stage, r.packetId]),
        [["in", "pubrec", 9]],
      );
      await h.restart();
      const { client: s2 } = await connect(h.broker, "s");
      const { client: p2 } = await connect(h.broker, "p");
      try {
        await p2.send({ ...message, fixedHeader: { ...message.fixedHeader, dup: true } });
        await p2.expect(PacketType.Pubrec);
        await p2.send(ack(PacketType.Pubrel, 9));
        assert.equal((await p2.expect(PacketType.Pubcomp)).reasonCode, 0, "the broker remembered the id");
        await expectNothing(s2);
        assert.deepEqual(recordsOf(await h.stored(), "p").inflight, []);
      } finally {
        s2.close();
        p2.close();
      }
    } finally {
      await h.close();
    }
  }],

  ["retained messages and their expiry survive a restart", async (fixture) => {
    const h = await Harness.start(fixture);
    try {
      const { client: p } = await connect(h.broker, "p", { connect: { clean: true }, properties: {} });
      const binary = new Uint8Array([0, 1, 2, 255, 254]);
      await publish(p, "r/a", binary, 1, 1, { retain: true, properties: { contentType: "bin" } });
      await publish(p, "r/b", "expires later", 1, 2, {
        retain: true,
        properties: { messageExpiryInterval: 60 },
      });
      await publish(p, "r/c", "expires soon", 1, 3, {
        retain: true,
        properties: { messageExpiryInterval: 1 },
      });
      await publish(p, "r/d", "cleared", 1, 4, { retain: true });
      await publish(p, "r/d", "", 1, 5, { retain: true });
      p.close();
      assert.deepEqual((await h.stored()).retained.map((m) => m.topic).sort(), ["r/a", "r/b", "r/c"]);
      await delay(1100);
      await h.restart();
      const { client: s } = await connect(h.broker, "s", { connect: { clean: true }, properties: {} });
      try {
        await subscribe(s, [{ filter: "r/#", qos: 1 }]);
        const got = (await readPublishes(s, 2)).sort((x, y) => x.topicName!.localeCompare(y.topicName!));
        await expectNothing(s);
        assert.deepEqual(got.map((m) => m.topicName), ["r/a", "r/b"]);
        assert.deepEqual(got[0].payload, binary);
        assert.equal(got[0].properties?.contentType, "bin");
        assert.equal(got[0].properties?.messageExpiryInterval, undefined);
        assert.equal(got[0].fixedHeader.retain, true);
        const remaining = got[1].properties?.messageExpiryInterval ?? 0;
        assert.ok(remaining <= 59 && remaining >= 55, `remaining expiry ${remaining}`);
        assert.deepEqual((await h.stored()).retained.map((m) => m.topic).sort(), ["r/a", "r/b"]);
      } finally {
        s.close();
      }
    } finally {
      await h.close();
    }
  }],

  ["a session that expired while the broker was down leaves no records", async (fixture) => {
    const h = await Harness.start(fixture);
    try {
      const { client: a } = await connect(h.broker, "a", {
        connect: { clean: false },
        properties: { sessionExpiryInterval: 1 },
      });
      await subscribe(a, [{ filter: "e/#", qos: 1 }]);
      const { client: b } = await connect(h.broker, "b");
      await subscribe(b, [{ filter: "e/#", qos: 1 }]);
      await disconnect(h.broker, a, "a");
      await disconnect(h.broker, b, "b");
      const { client: p } = await connect(h.broker, "p", { connect: { clean: true }, properties: {} });
      await publish(p, "e/1", "queued", 1);
      p.close();
      const before = await h.stored();
      assert.equal(recordsOf(before, "a").inflight.length, 1);
      await h.broker.close();
      await delay(1100);
      await h.restart();
      assert.equal(h.broker.server.clients.get("a"), undefined);
      assert.ok(h.broker.server.clients.get("b"));
      const after = await h.stored();
      assert.deepEqual(recordsOf(after, "a"), { client: undefined, subscriptions: [], inflight: [] });
      assert.equal(recordsOf(after, "b").subscriptions.length, 1);
      assert.equal(recordsOf(after, "b").inflight.length, 1);
    } finally {
      await h.close();
    }
  }],

  ["a session that expires while the broker runs leaves no records, in memory or stored", async (fixture) => {
    const h = await Harness.start(fixture);
    try {
      const { client: a } = await connect(h.broker, "a", {
        connect: { clean: false },
        properties: { sessionExpiryInterval: 1 },
      });
      await subscribe(a, [{ filter: "e/#", qos: 1 }]);
      await disconnect(h.broker, a, "a");
      const { client: p } = await connect(h.broker, "p", { connect: { clean: true }, properties: {} });
      await publish(p, "e/1", "queued", 1);
      p.close();
      assert.equal(recordsOf(await h.stored(), "a").inflight.length, 1);
      await waitFor(() => h.broker.server.clients.get("a") === undefined, 4000, "the session to expire");
      assert.deepEqual(recordsOf(await h.stored(), "a"), {
        client: undefined,
        subscriptions: [],
        inflight: [],
      });
      await h.restart();
      assert.equal(h.broker.server.clients.get("a"), undefined);
    } finally {
      await h.close();
    }
  }],

  ["Clean Start removes the old session's records", async (fixture) => {
    const h = await Harness.start(fixture);
    try {
      const { client: a } = await connect(h.broker, "a");
      await subscribe(a, [{ filter: "c/#", qos: 1 }]);
      await disconnect(h.broker, a, "a");
      const { client: p } = await connect(h.broker, "p", { connect: { clean: true }, properties: {} });
      await publish(p, "c/1", "old", 1);
      p.close();
      const { client: a2, connack } = await connect(h.broker, "a", {
        connect: { clean: true },
        properties: { sessionExpiryInterval: 3600 },
      });
      try {
        assert.equal(connack.sessionPresent, false);
        await expectNothing(a2);
        const records = recordsOf(await h.stored(), "a");
        assert.ok(records.client);
        assert.deepEqual(records.subscriptions, []);
        assert.deepEqual(records.inflight, []);
      } finally {
        a2.close();
      }
    } finally {
      await h.close();
    }
  }],

  ["failed subscriptions are never stored", async (fixture) => {
    const acl: Hook = {
      id: "acl",
      onConnectAuthenticate: () => true,
      onACLCheck: (_client, topic, write) => write || !topic.startsWith("secret"),
    };
    const h = await Harness.start(fixture, {}, () => [acl]);
    try {
      const { client: a } = await connect(h.broker, "a");
      const codes = await subscribe(a, [
        { filter: "ok/#", qos: 1 },
        { filter: "secret/#", qos: 1 },
        { filter: "bad/#/x", qos: 1 },
      ]);
      assert.deepEqual(codes.map((c) => c >= 0x80), [false, true, true]);
      await disconnect(h.broker, a, "a");
      assert.deepEqual(recordsOf(await h.stored(), "a").subscriptions.map((s) => s.filter), ["ok/#"]);
      await h.restart();
      assert.deepEqual([...h.broker.server.clients.get("a")!.state.subscriptions.keys()], ["ok/#"]);
    } finally {
      await h.close();
    }
  }],

  ["the will of a client connected at a crash is sent after the restart", async (fixture) => {
    const h = await Harness.start(fixture);
    try {
      const { client: b } = await connect(h.broker, "b");
      await subscribe(b, [{ filter: "will/#", qos: 1 }]);
      await disconnect(h.broker, b, "b");
      const { client: a } = await connect(h.broker, "a", {
        connect: {
          clean: false,
          willFlag: true,
          willTopic: "will/a",
          willPayload: encoder.encode("gone"),
          willQos: 1,
        },
        properties: { sessionExpiryInterval: 3600 },
      });
      try {
        assert.equal(recordsOf(await h.stored(), "a").client?.will?.topic, "will/a");
        await h.crash(() => a.close());
      } finally {
        a.close();
      }
      const { client: b2 } = await connect(h.broker, "b");
      try {
        const [will] = await readPublishes(b2, 1);
        assert.equal(will.topicName, "will/a");
        assert.equal(text(will), "gone");
        await b2.send(ack(PacketType.Puback, will.packetId!));
        assert.equal(recordsOf(await h.stored(), "a").client?.will, undefined);
      } finally {
        b2.close();
      }
    } finally {
      await h.close();
    }
  }],

  [
    "a delayed will of a session that expired while the broker was down is sent on restart",
    async (fixture) => {
      const h = await Harness.start(fixture);
      try {
        const { client: b } = await connect(h.broker, "b");
        await subscribe(b, [{ filter: "will/#", qos: 1 }]);
        await disconnect(h.broker, b, "b");
        const { client: a } = await connect(h.broker, "a", {
          connect: {
            clean: false,
            willFlag: true,
            willTopic: "will/late",
            willPayload: encoder.encode("late"),
            willQos: 1,
            willProperties: { willDelayInterval: 3600 },
          },
          properties: { sessionExpiryInterval: 1 },
        });
        await disconnect(h.broker, a, "a"); // no DISCONNECT: the will is due after its delay
        assert.equal(recordsOf(await h.stored(), "a").client?.will?.topic, "will/late");
        await h.broker.close();
        await delay(1100);
        await h.restart();
        assert.equal(h.broker.server.clients.get("a"), undefined);
        const { client: b2 } = await connect(h.broker, "b");
        try {
          const [will] = await readPublishes(b2, 1);
          assert.equal(text(will), "late");
          await b2.send(ack(PacketType.Puback, will.packetId!));
          assert.deepEqual(recordsOf(await h.stored(), "a"), {
            client: undefined,
            subscriptions: [],
            inflight: [],
          });
        } finally {
          b2.close();
        }
      } finally {
        await h.close();
      }
    },
  ],

  ["$SYS counters are restored with restoreSysInfoOnRestart", async (fixture) => {
    const options: Options = { capabilities: { compatibilities: { restoreSysInfoOnRestart: true } } };
    const h = await Harness.start(fixture, options);
    try {
      const { client: p } = await connect(h.broker, "p", { connect: { clean: true }, properties: {} });
      for (let i = 0; i < 5; i++) await publish(p, "sys/x", "m", 1, i + 1);
      p.close();
      const received = h.broker.server.info.messagesReceived;
      assert.ok(received >= 5);
      await h.restart();
      assert.ok(h.broker.server.info.messagesReceived >= received, "restored");
      await h.restart({});
      assert.equal(h.broker.server.info.messagesReceived, 0, "not restored without the option");
    } finally {
      await h.close();
    }
  }],

  [
    "a message queued for and in flight to many sessions is stored once, and restored to each",
    async (fixture) => {
      const h = await Harness.start(fixture);
      const ids = ["o0", "o1", "o2", "o3", "l0", "l1"];
      const clients: RawClient[] = [];
      try {
        for (const id of ids) {
          const { client } = await connect(h.broker, id);
          await subscribe(client, [{ filter: "once/#", qos: id === "o3" || id === "l1" ? 2 : 1 }]);
          if (id.startsWith("o")) await disconnect(h.broker, client, id);
          else clients.push(client);
        }
        const { client: p } = await connect(h.broker, "p", { connect: { clean: true }, properties: {} });
        for (let i = 0; i < 20; i++) await publish(p, `once/${i}`, `m${i}`, (1 + (i % 2)) as QoS, i + 1);
        p.close();
        // The online ones read everything and acknowledge the first half: the rest stays in flight.
        for (const client of clients) {
          for (const m of await readPublishes(client, 20)) {
            if (Number(text(m).slice(1)) >= 10) continue;
            await client.send(
              ack(m.fixedHeader.qos === 1 ? PacketType.Puback : PacketType.Pubrec, m.packetId!),
            );
          }
        }
        // l1 (QoS 2) holds 10 messages unacknowledged and 5 at the PUBREL stage.
        await waitFor(() => h.broker.server.clients.get("l1")!.state.inflight.outbound.size === 15);
        const stored = await h.stored();
        for (const id of ids) {
          assert.equal(
            recordsOf(stored, id).inflight.length,
            id.startsWith("o") ? 20 : id === "l1" ? 15 : 10,
            id,
          );
        }
        if (fixture.messageCopies) {
          assert.equal(
            await fixture.messageCopies(),
            20,
            "each message stored once",
          );
        }
        for (const client of clients) client.close();
        clients.length = 0;
        await h.crash();
        for (const id of ids) {
          const { client } = await connect(h.broker, id);
          clients.push(client);
          const expected = id.startsWith("o") ? 20 : 10;
          if (id === "l1") {
            // PUBREL first for the QoS 2 ones it received (PUBREC sent), then what was not acknowledged.
            for (let i = 1; i < 10; i += 2) {
              await client.send(ack(PacketType.Pubcomp, (await client.expect(PacketType.Pubrel)).packetId!));
            }
          }
          const got = await readPublishes(client, expected);
          const first = id.startsWith("o") ? 0 : 10;
          assert.deepEqual(got.map(text), Array.from({ length: expected }, (_, i) => `m${first + i}`), id);
          assert.deepEqual(
            got.map((m) => m.fixedHeader.dup ?? false),
            got.map(() => !id.startsWith("o")),
            id,
          );
          for (const m of got) {
            if (m.fixedHeader.qos === 1) await client.send(ack(PacketType.Puback, m.packetId!));
            else {
              await client.send(ack(PacketType.Pubrec, m.packetId!));
              await client.send(ack(PacketType.Pubcomp, (await client.expect(PacketType.Pubrel)).packetId!));
            }
          }
        }
        await waitFor(() =>
          ids.every((id) => h.broker.server.clients.get(id)!.state.inflight.outbound.size === 0)
        );
        const after = await h.stored();
        for (const id of ids) assert.deepEqual(recordsOf(after, id).inflight, [], id);
        if (fixture.messageCopies) {
          assert.equal(
            await fixture.messageCopies(),
            0,
            "messages nobody awaits are deleted",
          );
        }
        const { client: q } = await connect(h.broker, "q", { connect: { clean: true }, properties: {} });
        await publish(q, "once/after", "after", 1, 1);
        q.close();
        for (const client of clients) assert.equal(text(await client.expect(PacketType.Publish)), "after");
      } finally {
        for (const client of clients) client.close();
        await h.close();
      }
    },
  ],

  ["the backend round-trips every record kind, large values, long keys and big batches", async (fixture) => {
    const backend = fixture.backend();
    await backend.open();
    try {
      const big = (n: number, seed: number) =>
        Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
      const message = (
        topic: string,
        payload: Uint8Array,
        extra: Partial<StoredMessage> = {},
      ): StoredMessage => ({
        topic,
        payload,
        qos: 1,
        retain: false,
        created: 1_700_000_000_000,
        expiry: 0,
        origin: "p",
        ...extra,
      });
      const longTopic = "l/" + "x".repeat(5000);
      const client: ClientRecord = {
        id: "c/" + "é".repeat(1500),
        listener: "t1",
        remote: "127.0.0.1:1",
        username: "u",
        protocolVersion: 5,
        clean: false,
        keepAlive: 30,
        sessionExpiryInterval: 3600,
        receiveMaximum: 10,
        maximumPacketSize: 0,
        topicAliasMaximum: 0,
        properties: { userProperties: [["k", "v"]], correlationData: new Uint8Array([1, 2]) } as Properties,
        will: message("will/x", big(200 * 1024, 1)),
        willDelayInterval: 5,
        connectedAt: 1,
        disconnectedAt: 2,
      };
      const inflight: InflightRecord[] = [
        {
          clientId: client.id,
          direction: "out",
          sequence: 1,
          packetId: 1,
          stage: "publish",
          message: message("i/1", big(1024 * 1024, 2)),
        },
        { clientId: client.id, direction: "out", sequence: 2, packetId: 2, stage: "pubrel" },
        {
          clientId: client.id,
          direction: "out",
          sequence: 3,
          packetId: 0,
          stage: "publish",
          message: message("i/3", big(10, 3), { properties: { messageExpiryInterval: 9 } }),
        },
        { clientId: client.id, direction: "in", sequence: 0, packetId: 7, stage: "pubrec" },
      ];
      const retained = Array.from(
        { length: 1500 },
        (_, i) => message(`r/${i}`, big(100, i), { retain: true }),
      );
      retained.push(message(longTopic, big(100 * 1024, 4), { retain: true, expiry: 1_800_000_000_000 }));
      const sysInfo = { version: "0.1.0", messages_received: 42 };
      const ops: WriteOp[] = [
        { op: "putClient", record: client },
        {
          op: "putSubscription",
          record: { clientId: client.id, subscription: { filter: "a/" + "y".repeat(3000), qos: 1 } },
        },
        {
          op: "putSubscription",
          record: {
            clientId: client.id,
            subscription: { filter: "b/#", qos: 2, noLocal: true, identifier: 3 },
          },
        },
        ...inflight.map((record): WriteOp => ({ op: "putInflight", record })),
        ...retained.map((m): WriteOp => ({ op: "putRetained", message: m })),
        { op: "putSysInfo", info: sysInfo },
      ];
      await backend.commit(ops);
      await backend.commit(ops); // idempotent: a retried batch changes nothing
      const state = await backend.load();
      assert.deepEqual(state.clients, [client]);
      assert.deepEqual(
        state.subscriptions.map((s) => s.subscription.filter).sort(),
        ["a/" + "y".repeat(3000), "b/#"],
      );
      assert.deepEqual(state.subscriptions.find((s) => s.subscription.filter === "b/#")?.subscription, {
        filter: "b/#",
        qos: 2,
        noLocal: true,
        identifier: 3,
      });
      const byKey = (r: InflightRecord) => `${r.direction}${r.sequence}${r.packetId}`;
      assert.deepEqual([...state.inflight].sort((x, y) => byKey(x).localeCompare(byKey(y))), [
        inflight[3],
        ...inflight.slice(0, 3),
      ]);
      assert.equal(state.retained.length, 1501);
      assert.deepEqual(state.retained.find((m) => m.topic === longTopic), retained[1500]);
      assert.deepEqual(state.retained.find((m) => m.topic === "r/77"), retained[77]);
      assert.deepEqual(state.sysInfo, sysInfo);

      // Order inside a batch: deleteClient removes what came before it, not what comes after.
      await backend.commit([
        { op: "putClient", record: { ...client, will: message("will/y", big(10, 5)) } },
        { op: "putInflight", record: { ...inflight[1], sequence: 9, packetId: 9 } },
        { op: "deleteClient", clientId: client.id },
        { op: "putSubscription", record: { clientId: client.id, subscription: { filter: "after", qos: 0 } } },
        { op: "putInflight", record: inflight[2] },
        { op: "deleteInflight", clientId: client.id, direction: "out", id: 3 },
        { op: "putInflight", record: inflight[3] },
        ...retained.map((m): WriteOp => ({ op: "deleteRetained", topic: m.topic })),
        { op: "putRetained", message: retained[5] },
      ]);
      const after = await backend.load();
      assert.deepEqual(after.clients, []);
      assert.deepEqual(after.subscriptions, [{
        clientId: client.id,
        subscription: { filter: "after", qos: 0 },
      }]);
      assert.deepEqual(after.inflight, [inflight[3]]);
      assert.deepEqual(after.retained, [retained[5]]);
      await backend.commit([
        { op: "deleteClient", clientId: client.id },
        { op: "deleteRetained", topic: "r/5" },
        { op: "deleteRetained", topic: "never/stored" },
      ]);
      const empty = await backend.load();
      assert.deepEqual([empty.clients, empty.subscriptions, empty.inflight, empty.retained], [
        [],
        [],
        [],
        [],
      ]);
    } finally {
      await backend.close();
    }
  }],
];

/**
 * Runs every case of the suite as a step of a test.
 *
 * @param t The test context.
 * @param setup Makes a fixture on a new, empty store (called once per case).
 */
export async function runStorageSuite(
  t: Deno.TestContext,
  setup: () => Promise<StorageFixture>,
): Promise<void> {
  for (const [name, run] of CASES) {
    await t.step(name, async () => {
      const fixture = await setup();
      try {
        await run(fixture);
      } finally {
        await fixture.close();
      }
    });
  }
}
