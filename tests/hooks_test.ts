/**
 * The hook dispatcher (`Hooks`) on its own, then hooks driving a live broker over TCP.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  AllowHook,
  type Client,
  type Hook,
  type Info,
  MqttError,
  type Packet,
  PacketType,
  type Subscribers,
} from "../mod.ts";
import { Hooks } from "../src/hooks.ts";
import { collect, delay, mqttConnect, RawClient, startBroker, waitFor } from "./helpers.ts";

// The dispatcher passes clients through without looking at them.
const client = { id: "c1" } as Client;

function publish(topic: string, payload = ""): Packet {
  return {
    fixedHeader: { type: PacketType.Publish, qos: 0 },
    topicName: topic,
    payload: new TextEncoder().encode(payload),
  };
}

// ---------------------------------------------------------------------------------------------
// Registration

Deno.test("`Hooks.add` indexes a hook's events when it is added", async () => {
  const hooks = new Hooks();
  assert.equal(hooks.has("onPublish"), false);
  const hook: Hook & { onStarted?: () => void } = { id: "a", onPublish: (_c, p) => p };
  await hooks.add(hook);
  assert.equal(hooks.has("onPublish"), true);
  assert.equal(hooks.has("onStarted"), false);
  // A method added afterwards is not seen: the index is built once, at add time.
  let started = 0;
  hook.onStarted = () => started++;
  assert.equal(hooks.has("onStarted"), false);
  hooks.onStarted();
  assert.equal(started, 0);
  assert.deepEqual(hooks.list, [hook]);
});

Deno.test("`Hooks.has` is true only for events some hook implements", async () => {
  const hooks = new Hooks();
  await hooks.add({ id: "a", onACLCheck: () => true });
  await hooks.add({ id: "b", onStarted: () => {}, onStopped: () => {} });
  assert.equal(hooks.has("onACLCheck"), true);
  assert.equal(hooks.has("onStarted"), true);
  assert.equal(hooks.has("onStopped"), true);
  assert.equal(hooks.has("onConnectAuthenticate"), false);
  assert.equal(hooks.has("onPacketRead"), false);
});

Deno.test("`Hooks.add` rejects a second hook with the same id", async () => {
  const hooks = new Hooks();
  await hooks.add({ id: "same", onStarted: () => {} });
  let initCalled = false;
  await assert.rejects(
    hooks.add({ id: "same", init: () => void (initCalled = true), onStopped: () => {} }),
    (error: unknown) => error instanceof TypeError && error.message.includes('"same"'),
  );
  assert.equal(initCalled, false);
  assert.equal(hooks.list.length, 1);
  assert.equal(hooks.has("onStopped"), false);
});

Deno.test("`Hooks.add` passes the config to init and rejects with init's error", async () => {
  const hooks = new Hooks();
  let seen: unknown;
  await hooks.add({ id: "ok", init: (config) => void (seen = config) }, { path: "x" });
  assert.deepEqual(seen, { path: "x" });
  await assert.rejects(
    hooks.add({
      id: "sync-fail",
      init: () => {
        throw new Error('Config field "path" is missing');
      },
      onPublish: (_c, p) => p,
    }),
    { message: 'Config field "path" is missing' },
  );
  await assert.rejects(
    hooks.add({ id: "async-fail", init: () => Promise.reject(new RangeError("Port 70000 is out of range")) }),
    { name: "RangeError", message: "Port 70000 is out of range" },
  );
  assert.deepEqual(hooks.list.map((h) => h.id), ["ok"]);
  assert.equal(hooks.has("onPublish"), false, "a hook whose init failed is not indexed");
});

Deno.test("`Hooks.stop` stops every hook in order, waiting for each, despite failures", async () => {
  const hooks = new Hooks();
  const order: string[] = [];
  await hooks.add({
    id: "first",
    stop: async () => {
      await delay(10);
      order.push("first");
    },
  });
  await hooks.add({
    id: "broken",
    stop: () => {
      order.push("broken");
      throw new Error("boom");
    },
  });
  await hooks.add({ id: "no-stop" });
  await hooks.add({
    id: "last",
    stop: () => {
      order.push("last");
      return Promise.reject(new Error("late boom"));
    },
  });
  await hooks.stop();
  assert.deepEqual(order, ["first", "broken", "last"]);
  assert.equal(hooks.errors, 2);
});

// ---------------------------------------------------------------------------------------------
// OR semantics

Deno.test("`Hooks.onConnectAuthenticate` allows when any hook allows, sync or async", async () => {
  const packet = { fixedHeader: { type: PacketType.Connect } } as Packet;
  const none = new Hooks();
  assert.equal(none.onConnectAuthenticate(client, packet), false, "no hook: denied");

  const calls: string[] = [];
  const syncTrue = new Hooks();
  await syncTrue.add({ id: "no", onConnectAuthenticate: () => (calls.push("no"), false) });
  await syncTrue.add({ id: "yes", onConnectAuthenticate: () => (calls.push("yes"), true) });
  await syncTrue.add({ id: "never", onConnectAuthenticate: () => (calls.push("never"), true) });
  assert.equal(syncTrue.onConnectAuthenticate(client, packet), true, "answers synchronously");
  assert.deepEqual(calls, ["no", "yes"], "stops at the first yes");

  const mixed = new Hooks();
  await mixed.add({ id: "sync-no", onConnectAuthenticate: () => false });
  await mixed.add({ id: "async-no", onConnectAuthenticate: () => Promise.resolve(false) });
  await mixed.add({ id: "sync-yes", onConnectAuthenticate: () => true });
  const answer = mixed.onConnectAuthenticate(client, packet);
  assert.ok(answer instanceof Promise);
  assert.equal(await answer, true);

  const allNo = new Hooks();
  await allNo.add({ id: "async-no", onConnectAuthenticate: async () => (await delay(1), false) });
  await allNo.add({ id: "sync-no", onConnectAuthenticate: () => false });
  assert.equal(await allNo.onConnectAuthenticate(client, packet), false);
  assert.equal(allNo.errors, 0);
});

Deno.test("`Hooks.onConnectAuthenticate` counts a throwing hook as an error and a no", async () => {
  const packet = { fixedHeader: { type: PacketType.Connect } } as Packet;
  const hooks = new Hooks();
  await hooks.add({
    id: "throws",
    onConnectAuthenticate: () => {
      throw new Error("database down");
    },
  });
  await hooks.add({ id: "rejects", onConnectAuthenticate: () => Promise.reject(new Error("timeout")) });
  await hooks.add({ id: "async-throws-later", onConnectAuthenticate: async () => await Promise.reject(1) });
  assert.equal(await hooks.onConnectAuthenticate(client, packet), false);
  assert.equal(hooks.errors, 3);

  await hooks.add({ id: "yes", onConnectAuthenticate: () => true });
  assert.equal(await hooks.onConnectAuthenticate(client, packet), true, "a later yes still wins");
  assert.equal(hooks.errors, 6);
});

Deno.test("`Hooks.onACLCheck` allows when any hook allows and passes the topic and direction", async () => {
  const hooks = new Hooks();
  const seen: [string, boolean][] = [];
  await hooks.add({
    id: "read-only",
    onACLCheck: (_c, topic, write) => (seen.push([topic, write]), !write),
  });
  await hooks.add({
    id: "async-writer",
    onACLCheck: async (_c, topic, write) => (await delay(1), write && topic.startsWith("w/")),
  });
  await hooks.add({
    id: "throws",
    onACLCheck: () => {
      throw new TypeError("bug");
    },
  });
  assert.equal(hooks.onACLCheck(client, "a", false), true, "the first hook answers synchronously");
  assert.equal(await hooks.onACLCheck(client, "w/x", true), true);
  assert.equal(hooks.errors, 0);
  assert.equal(await hooks.onACLCheck(client, "a", true), false);
  assert.equal(hooks.errors, 1, "the throwing hook was asked and counted");
  assert.deepEqual(seen, [["a", false], ["w/x", true], ["a", true]]);
});

// ---------------------------------------------------------------------------------------------
// Chains

Deno.test("`Hooks.onPublish` chains hooks: each gets the packet the previous one returned", async () => {
  const hooks = new Hooks();
  const seenBy: Record<string, string> = {};
  await hooks.add({
    id: "one",
    onPublish: (_c, p) => (seenBy.one = p.topicName!, { ...p, topicName: `${p.topicName}/1` }),
  });
  await hooks.add({
    id: "two",
    onPublish: async (_c, p) => {
      await delay(5);
      seenBy.two = p.topicName!;
      return { ...p, topicName: `${p.topicName}/2` };
    },
  });
  await hooks.add({
    id: "three",
    onPublish: (_c, p) => (seenBy.three = p.topicName!, { ...p, topicName: `${p.topicName}/3` }),
  });
  await hooks.add({
    id: "four",
    onPublish: (_c, p) => Promise.resolve({ ...p, topicName: `${p.topicName}/4` }),
  });
  const result = await hooks.onPublish(client, publish("t"));
  assert.equal(typeof result, "object");
  assert.equal((result as Packet).topicName, "t/1/2/3/4");
  assert.deepEqual(seenBy, { one: "t", two: "t/1", three: "t/1/2" });
});

Deno.test("`Hooks.onPublish` stays synchronous when every hook is", async () => {
  const hooks = new Hooks();
  await hooks.add({ id: "a", onPublish: (_c, p) => ({ ...p, payload: new TextEncoder().encode("A") }) });
  await hooks.add({ id: "b", onPublish: (_c, p) => ({ ...p, topicName: "b" }) });
  const result = hooks.onPublish(client, publish("t"));
  assert.ok(!(result instanceof Promise));
  assert.equal((result as Packet).topicName, "b");
  assert.equal(new TextDecoder().decode((result as Packet).payload), "A");
});

Deno.test("`Hooks.onPublish` returns an MqttError's reason code and stops the chain", async () => {
  const calls: string[] = [];
  const sync = new Hooks();
  await sync.add({
    id: "reject",
    onPublish: () => {
      calls.push("reject");
      throw new MqttError(0x99);
    },
  });
  await sync.add({ id: "after", onPublish: (_c, p) => (calls.push("after"), p) });
  assert.equal(sync.onPublish(client, publish("t")), 0x99);
  assert.deepEqual(calls, ["reject"]);
  assert.equal(sync.errors, 0, "an MqttError is an answer, not a failure");

  const async = new Hooks();
  await async.add({ id: "pass", onPublish: async (_c, p) => (await delay(1), p) });
  await async.add({ id: "ignore", onPublish: () => Promise.reject(new MqttError(0x10)) });
  assert.equal(await async.onPublish(client, publish("t")), 0x10);

  const broken = new Hooks();
  await broken.add({
    id: "bug",
    onPublish: () => {
      throw new Error("not an MqttError");
    },
  });
  assert.equal(broken.onPublish(client, publish("t")), 0x83, "other errors are 0x83");
  assert.equal(broken.errors, 1);
});

Deno.test("`Hooks.onPacketRead` chains sync and async hooks and returns rejection codes", async () => {
  const hooks = new Hooks();
  const order: string[] = [];
  await hooks.add({
    id: "async-first",
    onPacketRead: async (_c, p) => (await delay(2), order.push(`1:${p.packetId}`), { ...p, packetId: 2 }),
  });
  await hooks.add({
    id: "sync-second",
    onPacketRead: (_c, p) => (order.push(`2:${p.packetId}`), { ...p, packetId: 3 }),
  });
  const ping: Packet = { fixedHeader: { type: PacketType.Puback }, packetId: 1 };
  const result = await hooks.onPacketRead(client, ping);
  assert.equal((result as Packet).packetId, 3);
  assert.deepEqual(order, ["1:1", "2:2"]);
  assert.equal(ping.packetId, 1, "the original packet is untouched");

  const refusing = new Hooks();
  await refusing.add({ id: "ok", onPacketRead: (_c, p) => p });
  await refusing.add({ id: "no", onPacketRead: () => Promise.reject(new MqttError(0x87)) });
  assert.equal(await refusing.onPacketRead(client, ping), 0x87);
});

Deno.test("`Hooks.onSubscribe` chains hooks that edit the filters", async () => {
  const hooks = new Hooks();
  await hooks.add({
    id: "prefix",
    onSubscribe: (_c, p) => ({
      ...p,
      filters: p.filters!.map((f) => ({ ...f, filter: `tenant/${f.filter}` })),
    }),
  });
  await hooks.add({
    id: "cap-qos",
    onSubscribe: (_c, p) =>
      Promise.resolve({ ...p, filters: p.filters!.map((f) => ({ ...f, qos: 0 as const })) }),
  });
  const packet: Packet = {
    fixedHeader: { type: PacketType.Subscribe },
    packetId: 1,
    filters: [{ filter: "a/#", qos: 2 }, { filter: "b", qos: 1 }],
  };
  const result = await hooks.onSubscribe(client, packet);
  assert.deepEqual((result as Packet).filters, [{ filter: "tenant/a/#", qos: 0 }, {
    filter: "tenant/b",
    qos: 0,
  }]);

  await hooks.add({ id: "deny", onSubscribe: () => Promise.reject(new MqttError(0x8f)) });
  assert.equal(await hooks.onSubscribe(client, packet), 0x8f);
});

Deno.test("`Hooks` notification events swallow and count errors, sync and async", async () => {
  const hooks = new Hooks();
  const calls: string[] = [];
  await hooks.add({
    id: "throws",
    onPublished: () => {
      calls.push("throws");
      throw new Error("sync failure");
    },
    onDisconnect: () => {
      throw new Error("sync failure");
    },
  });
  await hooks.add({
    id: "rejects",
    onPublished: (() => {
      calls.push("rejects");
      return Promise.reject(new Error("async failure"));
    }) as unknown as Hook["onPublished"],
    onSysInfoTick: (async () => {
      await delay(1);
      throw new Error("late failure");
    }) as unknown as Hook["onSysInfoTick"],
  });
  await hooks.add({ id: "fine", onPublished: () => void calls.push("fine") });
  hooks.onPublished(client, publish("t"));
  hooks.onDisconnect(client, undefined, true);
  hooks.onSysInfoTick({} as Info);
  assert.deepEqual(calls, ["throws", "rejects", "fine"], "later hooks still run");
  assert.equal(hooks.errors, 2, "sync throws are counted at once");
  await waitFor(() => hooks.errors === 4, 1000, "async rejections to be counted");
  await delay(5);
  assert.equal(hooks.errors, 4);
});

Deno.test("`Hooks.onSelectSubscribers` and `Hooks.onPacketEncode` chain and survive a throwing hook", async () => {
  const hooks = new Hooks();
  await hooks.add({
    id: "drop-b",
    onSelectSubscribers: (s) => {
      s.subscriptions.delete("b");
      return s;
    },
    onPacketEncode: (_c, p) => ({ ...p, packetId: 7 }),
  });
  await hooks.add({
    id: "bug",
    onSelectSubscribers: () => {
      throw new Error("bug");
    },
    onPacketEncode: () => {
      throw new Error("bug");
    },
  });
  const delivery = {
    qos: 0,
    noLocal: false,
    retainAsPublished: false,
    identifiers: [],
    shared: false,
  } as const;
  const subscribers: Subscribers = {
    subscriptions: new Map([["a", { ...delivery, clientId: "a", identifiers: [] }], ["b", {
      ...delivery,
      clientId: "b",
      identifiers: [],
    }]]),
    shared: new Map(),
  };
  const selected = hooks.onSelectSubscribers(subscribers, publish("t"));
  assert.deepEqual([...selected.subscriptions.keys()], ["a"]);
  assert.equal(hooks.onPacketEncode(client, publish("t")).packetId, 7);
  assert.equal(hooks.errors, 2);
});

// ---------------------------------------------------------------------------------------------
// Through a live broker

Deno.test("`onPublish` throwing MqttError(0x99) gives a v5 publisher PUBACK 0x99 and delivers nothing", async () => {
  const reject: Hook = {
    id: "reject-bad",
    onPublish: (_c, p) => {
      if (p.topicName === "t/bad") throw new MqttError(0x99);
      return p;
    },
  };
  await using broker = await startBroker({}, [new AllowHook(), reject]);
  const sub = await mqttConnect(broker, { clientId: "sub" });
  const messages = collect(sub);
  await sub.subscribeAsync("t/#", { qos: 1 });
  const { client: pub } = await RawClient.connect(broker, "pub");
  try {
    await pub.send({
      fixedHeader: { type: PacketType.Publish, qos: 1 },
      packetId: 1,
      topicName: "t/bad",
      payload: new TextEncoder().encode("x"),
    });
    const ack = await pub.expect(PacketType.Puback);
    assert.equal(ack.packetId, 1);
    assert.equal(ack.reasonCode, 0x99);
    await pub.send({
      fixedHeader: { type: PacketType.Publish, qos: 1 },
      packetId: 2,
      topicName: "t/good",
      payload: new TextEncoder().encode("y"),
    });
    const ok = await pub.expect(PacketType.Puback);
    assert.equal(ok.reasonCode, 0);
    await waitFor(() => messages.length === 1);
    await delay(20);
    assert.deepEqual(messages.map((m) => [m.topic, m.payload]), [["t/good", "y"]]);
  } finally {
    pub.close();
    await sub.endAsync();
  }
});

Deno.test("`onPublish` throwing an MqttError below 0x80 acknowledges but neither delivers nor retains", async () => {
  const ignore: Hook = {
    id: "ignore",
    onPublish: async (_c, p) => {
      await delay(1);
      if (p.topicName === "t/quiet") throw new MqttError(0x10);
      return p;
    },
  };
  await using broker = await startBroker({}, [new AllowHook(), ignore]);
  const sub = await mqttConnect(broker, { clientId: "sub" });
  const messages = collect(sub);
  await sub.subscribeAsync("t/#", { qos: 1 });
  const v5 = await RawClient.connect(broker, "pub5");
  const v4 = await RawClient.connect(broker, "pub4", { version: 4 });
  try {
    await v5.client.send({
      fixedHeader: { type: PacketType.Publish, qos: 1, retain: true },
      packetId: 9,
      topicName: "t/quiet",
      payload: new TextEncoder().encode("x"),
    });
    const ack = await v5.client.expect(PacketType.Puback);
    assert.deepEqual([ack.packetId, ack.reasonCode], [9, 0x10]);
    await v4.client.send({
      fixedHeader: { type: PacketType.Publish, qos: 2 },
      packetId: 3,
      topicName: "t/quiet",
      payload: new TextEncoder().encode("x"),
    });
    const pubrec = await v4.client.expect(PacketType.Pubrec);
    assert.equal(pubrec.packetId, 3);
    await v4.client.send({ fixedHeader: { type: PacketType.Pubrel }, packetId: 3 });
    assert.equal((await v4.client.expect(PacketType.Pubcomp)).packetId, 3);
    await delay(30);
    assert.deepEqual(messages, []);
    assert.equal(broker.server.topics.retainedMessages("t/quiet").length, 0, "not retained");
  } finally {
    v5.client.close();
    v4.client.close();
    await sub.endAsync();
  }
});

Deno.test("`onPacketRead` rejecting a packet closes the connection (v5: DISCONNECT 0x83)", async () => {
  const guard: Hook = {
    id: "guard",
    onPacketRead: async (_c, p) => {
      await delay(1);
      if (p.fixedHeader.type === PacketType.Publish && p.topicName === "forbidden") {
        throw new Error("refused by guard");
      }
      return p;
    },
  };
  await using broker = await startBroker({}, [new AllowHook(), guard]);
  const watcher = await mqttConnect(broker, { clientId: "watcher" });
  const messages = collect(watcher);
  await watcher.subscribeAsync("#");
  const { client, connack } = await RawClient.connect(broker, "bad");
  try {
    assert.equal(connack.reasonCode, 0, "CONNECT passes through the hook");
    await client.send({ fixedHeader: { type: PacketType.Pingreq } });
    await client.expect(PacketType.Pingresp);
    await client.send({
      fixedHeader: { type: PacketType.Publish, qos: 0 },
      topicName: "forbidden",
      payload: new TextEncoder().encode("x"),
    });
    const seen = await client.closed();
    assert.deepEqual(seen.map((p) => [p.fixedHeader.type, p.reasonCode]), [[PacketType.Disconnect, 0x83]]);
    assert.equal(broker.server.hooks.errors, 1);
    await watcher.publishAsync("allowed", "still served");
    await waitFor(() => messages.some((m) => m.topic === "allowed"));
    assert.ok(!messages.some((m) => m.topic === "forbidden"));
  } finally {
    client.close();
    await watcher.endAsync();
  }
});

Deno.test("an async `onPublish` does not reorder one client's messages", async () => {
  const slow: Hook = {
    id: "slow",
    onPublish: async (_c, p) => {
      // Message n waits 20 - n ms: the first waits longest, so any overlap would reorder them.
      const n = Number(new TextDecoder().decode(p.payload));
      await delay(20 - n);
      return p;
    },
  };
  await using broker = await startBroker({}, [new AllowHook(), slow]);
  const sub = await mqttConnect(broker, { clientId: "sub" });
  const pub = await mqttConnect(broker, { clientId: "pub" });
  const messages = collect(sub);
  await sub.subscribeAsync("order");
  for (let i = 0; i < 20; i++) pub.publish("order", String(i), { qos: 0 });
  await waitFor(() => messages.length === 20, 5000, "20 messages");
  assert.deepEqual(messages.map((m) => m.payload), Array.from({ length: 20 }, (_, i) => String(i)));
  await pub.endAsync();
  await sub.endAsync();
});

Deno.test("`onSelectSubscribers` can remove a recipient", async () => {
  const select: Hook = {
    id: "no-b",
    onSelectSubscribers: (subscribers) => {
      subscribers.subscriptions.delete("b");
      return subscribers;
    },
  };
  await using broker = await startBroker({}, [new AllowHook(), select]);
  const a = await mqttConnect(broker, { clientId: "a" });
  const b = await mqttConnect(broker, { clientId: "b" });
  const toA = collect(a);
  const toB = collect(b);
  await a.subscribeAsync("x");
  await b.subscribeAsync("x");
  await a.publishAsync("x", "hello", { qos: 1 });
  await waitFor(() => toA.length === 1);
  await delay(30);
  assert.equal(toA[0].payload, "hello");
  assert.deepEqual(toB, []);
  await a.endAsync();
  await b.endAsync();
});

Deno.test("notification hooks fire once each with the right arguments in a simple session", async () => {
  const events: Record<string, unknown[][]> = {};
  const record = (name: string) => (...args: unknown[]) => {
    (events[name] ??= []).push(args);
  };
  const recorder: Hook = {
    id: "recorder",
    onSessionEstablished: record("onSessionEstablished"),
    onDisconnect: record("onDisconnect"),
    onSubscribed: record("onSubscribed"),
    onUnsubscribed: record("onUnsubscribed"),
    onPublished: record("onPublished"),
    onRetainMessage: record("onRetainMessage"),
    onQosPublish: record("onQosPublish"),
    onQosComplete: record("onQosComplete"),
    onWill: (c, will) => (record("onWill")(c, will), will),
    onWillSent: record("onWillSent"),
    onClientExpired: record("onClientExpired"),
    onSysInfoTick: record("onSysInfoTick"),
  };
  await using broker = await startBroker({ sysTopicResendInterval: 3600 }, [new AllowHook(), recorder]);
  const idOf = (args: unknown[]) => (args[0] as Client).id;
  const of = (name: string, id?: string) =>
    (events[name] ?? []).filter((a) => id === undefined || idOf(a) === id);

  let deliveredId = 0;
  const { client: sub } = await RawClient.connect(broker, "sub");
  const { client: pub } = await RawClient.connect(broker, "pub", {
    connect: {
      willFlag: true,
      willTopic: "s/will",
      willPayload: new TextEncoder().encode("gone"),
      willQos: 0,
      willRetain: false,
    },
    properties: { sessionExpiryInterval: 1 },
  });
  try {
    await sub.send({
      fixedHeader: { type: PacketType.Subscribe },
      packetId: 1,
      filters: [{ filter: "s/#", qos: 1 }],
    });
    assert.deepEqual((await sub.expect(PacketType.Suback)).reasonCodes, [1]);

    await pub.send({
      fixedHeader: { type: PacketType.Publish, qos: 1, retain: true },
      packetId: 5,
      topicName: "s/kept",
      payload: new TextEncoder().encode("v"),
    });
    assert.equal((await pub.expect(PacketType.Puback)).reasonCode, 0);
    const message = await sub.expect(PacketType.Publish);
    assert.equal(message.topicName, "s/kept");
    deliveredId = message.packetId!;
    await sub.send({ fixedHeader: { type: PacketType.Puback }, packetId: message.packetId, reasonCode: 0 });
    await waitFor(() => of("onQosComplete").length === 1);

    pub.close(); // no DISCONNECT: the will goes out
    const will = await sub.expect(PacketType.Publish);
    assert.equal(will.topicName, "s/will");
    assert.equal(new TextDecoder().decode(will.payload), "gone");

    await sub.send({
      fixedHeader: { type: PacketType.Unsubscribe },
      packetId: 2,
      filters: [{ filter: "s/#", qos: 0 }],
    });
    assert.deepEqual((await sub.expect(PacketType.Unsuback)).reasonCodes, [0]);

    await waitFor(() => of("onClientExpired").length === 1, 3000, "pub's session to expire");
    await sub.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode: 0 });
    assert.deepEqual(await sub.closed(), []);
    await waitFor(() => of("onDisconnect", "sub").length === 1);
  } finally {
    sub.close();
    pub.close();
  }

  assert.equal(of("onSessionEstablished", "sub").length, 1);
  assert.equal(of("onSessionEstablished", "pub").length, 1);
  assert.equal(of("onSessionEstablished").length, 2);
  assert.equal((of("onSessionEstablished", "pub")[0][1] as Packet).connect?.clientId, "pub");

  const [subscribed] = of("onSubscribed");
  assert.equal(of("onSubscribed").length, 1);
  assert.equal(idOf(subscribed), "sub");
  assert.equal((subscribed[1] as Packet).filters?.[0].filter, "s/#");
  assert.deepEqual(subscribed[2], [1]);

  const [unsubscribed] = of("onUnsubscribed");
  assert.equal(of("onUnsubscribed").length, 1);
  assert.equal(idOf(unsubscribed), "sub");
  assert.equal((unsubscribed[1] as Packet).filters?.[0].filter, "s/#");

  const [published] = of("onPublished");
  assert.equal(of("onPublished").length, 1, "the will is not an onPublished event");
  assert.equal(idOf(published), "pub");
  assert.equal((published[1] as Packet).topicName, "s/kept");

  const retained = of("onRetainMessage").filter((a) => !(a[1] as Packet).topicName!.startsWith("$SYS"));
  assert.equal(retained.length, 1);
  assert.equal(idOf(retained[0]), "pub");
  assert.equal((retained[0][1] as Packet).topicName, "s/kept");
  assert.equal(retained[0][2], 1);

  const [qosPublish] = of("onQosPublish");
  assert.equal(of("onQosPublish").length, 1);
  assert.equal(idOf(qosPublish), "sub");
  assert.equal((qosPublish[1] as Packet).topicName, "s/kept");
  assert.equal(typeof qosPublish[2], "number");
  assert.equal(qosPublish[3], 0, "first send, no resends");

  const [qosComplete] = of("onQosComplete");
  assert.equal(idOf(qosComplete), "sub");
  assert.equal((qosComplete[1] as Packet).packetId, deliveredId);

  assert.equal(of("onWill").length, 1);
  assert.equal(idOf(of("onWill")[0]), "pub");
  assert.equal((of("onWill")[0][1] as Packet).topicName, "s/will");
  assert.equal(of("onWillSent").length, 1);
  assert.equal(idOf(of("onWillSent")[0]), "pub");
  assert.equal((of("onWillSent")[0][1] as Packet).topicName, "s/will");

  assert.equal(of("onClientExpired").length, 1);
  assert.equal(idOf(of("onClientExpired")[0]), "pub");

  const pubDisconnects = of("onDisconnect", "pub");
  assert.equal(pubDisconnects.length, 1);
  assert.ok(pubDisconnects[0][1] instanceof Error);
  assert.equal(pubDisconnects[0][2], false, "pub's session outlives the connection");
  const subDisconnects = of("onDisconnect", "sub");
  assert.equal(subDisconnects[0][2], true, "sub's session ends with the connection");

  assert.equal(of("onSysInfoTick").length, 1);
  assert.equal(of("onSysInfoTick")[0][0], broker.server.info);
});
