import assert from "node:assert/strict";
import { AllowHook, type Listener, PacketType, Server, TCP } from "../../mod.ts";
import { collect, mqttConnect, publishPacket, RawClient, startBroker, waitFor } from "../helpers.ts";

Deno.test("Fault: a hook that throws in onPublish gets the packet a clean 0x83 ack; the broker keeps serving", async () => {
  await using broker = await startBroker({}, [
    new AllowHook(),
    {
      id: "broken",
      onPublish: (_client, packet) => {
        if (packet.topicName === "boom") throw new Error("bug in a hook");
        return packet;
      },
    },
  ]);
  const { client } = await RawClient.connect(broker, "c1");
  await client.send(publishPacket("boom", "x", 1, { packetId: 1 }));
  assert.equal((await client.expect(PacketType.Puback)).reasonCode, 0x83);
  await client.send(publishPacket("fine", "x", 1, { packetId: 2 }));
  assert.equal((await client.expect(PacketType.Puback)).reasonCode, 0x10); // accepted; no subscriber
  assert.equal(broker.server.hooks.errors, 1);
  client.close();
});

Deno.test("Fault: an auth hook that rejects is logged and counts as a refusal; the next hook still decides", async () => {
  const down = {
    id: "auth-backend-down",
    onConnectAuthenticate: () => Promise.reject(new Error("backend down")),
  };
  // Alone, the failing hook refuses (deny by default): CONNACK 0x86.
  await using alone = await startBroker({}, [down]);
  const refused = await RawClient.connect(alone, "a");
  assert.equal(refused.connack.reasonCode, 0x86);
  refused.client.close();
  // Before another auth hook (OR semantics), the failure is logged and the next hook allows.
  await using broker = await startBroker({}, [down, new AllowHook()]);
  const accepted = await RawClient.connect(broker, "b");
  assert.equal(accepted.connack.reasonCode, 0);
  assert.equal(broker.server.hooks.errors, 1);
  accepted.client.close();
});

Deno.test("Fault: notification hooks that throw or reject do not disturb delivery", async () => {
  await using broker = await startBroker({}, [
    new AllowHook(),
    {
      id: "noisy",
      onPublished: () => {
        throw new Error("sync failure");
      },
      onPacketSent: () => Promise.reject(new Error("async failure")),
    },
  ]);
  const sub = await mqttConnect(broker, { clientId: "sub" });
  const messages = collect(sub);
  await sub.subscribeAsync("t", { qos: 1 });
  const pub = await mqttConnect(broker, { clientId: "pub" });
  await pub.publishAsync("t", "still delivered", { qos: 1 });
  await waitFor(() => messages.length === 1);
  assert.equal(messages[0].payload, "still delivered");
  await waitFor(() => broker.server.hooks.errors >= 2);
  await pub.endAsync();
  await sub.endAsync();
});

Deno.test("Fault: a listener that fails to start is reported and the other listeners serve on", async () => {
  const server = new Server();
  await server.addHook(new AllowHook());
  const good = new TCP({ id: "good", address: "127.0.0.1:0" });
  await server.addListener(good);
  const broken: Listener = {
    id: "broken",
    address: "nowhere",
    protocol: "test",
    init: () => Promise.reject(new Error("address in use")),
    serve: () => {},
    close: () => Promise.resolve(),
  };
  await assert.rejects(server.addListener(broken), /address in use/);
  // The same address twice: the second TCP listener cannot bind.
  await assert.rejects(
    server.addListener(new TCP({ id: "clash", address: good.address })),
    /AddrInUse|address/i,
  );
  await server.serve();
  try {
    assert.deepEqual([...server.listeners.keys()], ["good"]);
    const port = Number(good.address.split(":").pop());
    const client = await RawClient.connect({ host: "127.0.0.1", port }, "survivor");
    assert.equal(client.connack.reasonCode, 0);
    client.client.close();
  } finally {
    await server.close();
  }
});
