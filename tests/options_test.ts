import assert from "node:assert/strict";
import { Server } from "../mod.ts";
import { defaultCapabilities, resolveOptions } from "../src/options.ts";

Deno.test("`resolveOptions` applies Mochi's defaults, and a 1 MiB maximum packet size", () => {
  const options = resolveOptions();
  const caps = options.capabilities;
  assert.equal(caps.maximumMessageExpiryInterval, 86400);
  assert.equal(caps.receiveMaximum, 1024);
  assert.equal(caps.maximumInflight, 8192);
  assert.equal(caps.topicAliasMaximum, 65535);
  assert.equal(caps.minimumProtocolVersion, 3);
  assert.equal(caps.maximumSessionExpiryInterval, 0xffffffff);
  assert.equal(caps.maximumClientWritesPending, 8192);
  assert.equal(caps.maximumQos, 2);
  assert.equal(caps.maximumPacketSize, 1024 * 1024); // Mochi: 0 (none); ours is bounded by default
  assert.equal(caps.retainAvailable, 1);
  assert.equal(caps.wildcardSubAvailable, 1);
  assert.equal(caps.subIdAvailable, 1);
  assert.equal(caps.sharedSubAvailable, 1);
  assert.equal(options.sysTopicResendInterval, 1);
  assert.equal(options.inlineClient, false);
  assert.deepEqual(caps.compatibilities, {
    obscureNotAuthorized: false,
    passiveClientDisconnect: false,
    alwaysReturnResponseInfo: false,
    restoreSysInfoOnRestart: false,
    noInheritedPropertiesOnAck: false,
    ackNoMatchingSubscribers: true,
  });
  assert.deepEqual(resolveOptions({}), options);
  // maximumMemory 0 means "90% of this machine's memory", resolved when the options are.
  assert.equal(defaultCapabilities().maximumMemory, 0);
  assert.equal(caps.maximumMemory, Math.floor(Deno.systemMemoryInfo().total * 0.9));
  assert.deepEqual({ ...caps, maximumMemory: 0 }, defaultCapabilities());
});

Deno.test("`resolveOptions` keeps given values and fills in the rest", () => {
  const options = resolveOptions({
    capabilities: {
      receiveMaximum: 10,
      maximumQos: 1,
      maximumPacketSize: 0,
      topicAliasMaximum: undefined,
      compatibilities: { obscureNotAuthorized: true, passiveClientDisconnect: undefined },
    },
    sysTopicResendInterval: 0,
    inlineClient: true,
  });
  assert.equal(options.capabilities.receiveMaximum, 10);
  assert.equal(options.capabilities.maximumQos, 1);
  assert.equal(options.capabilities.topicAliasMaximum, 65535, "undefined means the default");
  assert.equal(options.capabilities.maximumInflight, 8192);
  assert.equal(options.capabilities.compatibilities.obscureNotAuthorized, true);
  assert.equal(options.capabilities.compatibilities.passiveClientDisconnect, false);
  assert.equal(options.sysTopicResendInterval, 0);
  assert.equal(options.inlineClient, true);
});

Deno.test("`resolveOptions` returns fresh objects that do not share the defaults", () => {
  const a = resolveOptions();
  a.capabilities.receiveMaximum = 5;
  a.capabilities.compatibilities.obscureNotAuthorized = true;
  const b = resolveOptions();
  assert.equal(b.capabilities.receiveMaximum, 1024);
  assert.equal(b.capabilities.compatibilities.obscureNotAuthorized, false);
});

Deno.test("`resolveOptions` accepts the bounds of every checked range", () => {
  for (
    const capabilities of [
      { receiveMaximum: 1 },
      { receiveMaximum: 65535 },
      { maximumInflight: 1 },
      { maximumInflight: 65535 },
      { topicAliasMaximum: 0 },
      { maximumQos: 0 },
      { minimumProtocolVersion: 5 },
      { maximumPacketSize: 268435460 },
      { maximumSessionExpiryInterval: 0 },
      { maximumKeepAlive: 65535 },
    ]
  ) {
    assert.doesNotThrow(() => resolveOptions({ capabilities }), JSON.stringify(capabilities));
  }
  assert.doesNotThrow(() => resolveOptions({ sysTopicResendInterval: 86400 }));
});

Deno.test("`resolveOptions` throws a RangeError quoting an out-of-range value", () => {
  const bad: [string, Record<string, number>][] = [
    ["receiveMaximum", { receiveMaximum: 0 }],
    ["receiveMaximum", { receiveMaximum: 65536 }],
    ["receiveMaximum", { receiveMaximum: 1.5 }],
    ["maximumInflight", { maximumInflight: 0 }],
    ["maximumInflight", { maximumInflight: 70000 }],
    ["topicAliasMaximum", { topicAliasMaximum: -1 }],
    ["topicAliasMaximum", { topicAliasMaximum: 65536 }],
    ["maximumQos", { maximumQos: 3 }],
    ["maximumQos", { maximumQos: -1 }],
    ["minimumProtocolVersion", { minimumProtocolVersion: 2 }],
    ["minimumProtocolVersion", { minimumProtocolVersion: 6 }],
    ["maximumPacketSize", { maximumPacketSize: -1 }],
    ["maximumPacketSize", { maximumPacketSize: 268435461 }],
    ["maximumSessionExpiryInterval", { maximumSessionExpiryInterval: 0x100000000 }],
    ["maximumKeepAlive", { maximumKeepAlive: 65536 }],
  ];
  for (const [name, capabilities] of bad) {
    const value = Object.values(capabilities)[0];
    assert.throws(
      () => resolveOptions({ capabilities }),
      (error: unknown) =>
        error instanceof RangeError && error.message.includes(`"${name}"`) &&
        error.message.includes(`got ${value}`),
      `${name} = ${value}`,
    );
  }
  assert.throws(
    () => resolveOptions({ sysTopicResendInterval: -1 }),
    (error: unknown) =>
      error instanceof RangeError && error.message.includes('"sysTopicResendInterval"') &&
      error.message.includes("got -1"),
  );
  assert.throws(
    () => resolveOptions({ capabilities: { receiveMaximum: NaN } }),
    (error: unknown) => error instanceof RangeError && error.message.includes("got NaN"),
  );
});

Deno.test("`Server` rejects out-of-range options at construction", () => {
  assert.throws(
    () => new Server({ capabilities: { maximumQos: 7 } }),
    { name: "RangeError", message: 'Option "maximumQos" must be an integer from 0 to 2, got 7' },
  );
});
