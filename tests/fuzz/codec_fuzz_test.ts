import assert, { strictEqual } from "node:assert/strict";
import {
  decodePacket,
  FRAME_NEED_MORE,
  PacketFramer,
  PROTOCOL_MAXIMUM_PACKET_SIZE,
  ReasonCode,
} from "../../src/packets/mod.ts";
import { frame, P, props, u16, utf8 } from "../packets/golden.ts";
import { describeResult, runCodecFuzz, summarize } from "./codec_fuzz.ts";
import { Rng } from "./rng.ts";

/** The fixed seed of the run inside `deno task test`; `deno task fuzz` takes any seed. */
const SEED = 20_240_601;
const CASES = 120_000;

Deno.test("codec fuzz: 120,000 fixed-seed cases hold every codec property", () => {
  const started = performance.now();
  const stats = runCodecFuzz({ seed: SEED, cases: CASES });
  const seconds = (performance.now() - started) / 1000;
  console.log(`codec fuzz, seed ${SEED}: ${summarize(stats)} in ${seconds.toFixed(1)} s`);
  for (const failure of stats.failures.slice(0, 5)) {
    console.error(
      `${failure.property}: ${failure.detail}\n  ${failure.origin}, v${failure.version}, ` +
        `maximum ${failure.maximumPacketSize}\n  bytes [${failure.bytes.join(", ")}]`,
    );
  }
  strictEqual(stats.failureCount, 0, `${stats.failureCount} property violations`);
  assert(stats.cases >= 100_000);
  // The run reaches every code the framer and decoder can give, and decodes a fair share.
  for (const code of [0x81, 0x82, 0x84, 0x90, 0x94, 0x95]) {
    assert(stats.codes.has(code), `reason code 0x${code.toString(16)} never hit`);
  }
  assert(stats.decoded > stats.cases / 4, `only ${stats.decoded} packets decoded`);
});

Deno.test("codec fuzz: the same seed gives the same run", () => {
  const a = runCodecFuzz({ seed: 7, cases: 3000 });
  const b = runCodecFuzz({ seed: 7, cases: 3000 });
  strictEqual(summarize(a), summarize(b));
});

/** Bytes held by array buffers (V8's external memory). */
function external(): number {
  return Deno.memoryUsage().external;
}

Deno.test("PacketFramer buffers only what arrived for a huge Remaining Length, and 0x95 comes before the body", () => {
  const rng = new Rng(1);
  const before = external();
  // The protocol maximum: a 256 MiB packet is announced, 64 KiB of it arrive.
  const framer = new PacketFramer();
  framer.push(new Uint8Array([0x30, 0xff, 0xff, 0xff, 0x7f]));
  let pushed = 5;
  for (let i = 0; i < 64; i++) {
    framer.push(rng.bytes(1024));
    pushed += 1024;
    strictEqual(framer.next(), FRAME_NEED_MORE);
    strictEqual(framer.bufferedBytes, pushed);
  }
  assert(external() - before < 1_000_000, `${external() - before} bytes allocated`);
  strictEqual(PROTOCOL_MAXIMUM_PACKET_SIZE, 1 + 4 + 268_435_455);

  // A small maximum: the error comes with the last header byte, whatever follows.
  const limited = new PacketFramer(1000);
  limited.push(new Uint8Array([0x30, 0xe9]));
  strictEqual(limited.next(), FRAME_NEED_MORE);
  limited.push(new Uint8Array([0x07]));
  strictEqual(limited.next(), ReasonCode.PacketTooLarge);
  limited.push(rng.bytes(4096));
  strictEqual(limited.next(), ReasonCode.PacketTooLarge);
  assert(external() - before < 1_000_000, `${external() - before} bytes allocated`);
});

Deno.test("decodePacket answers 0x81 to huge declared lengths in a small body, without allocating them", () => {
  const bodies: [number, number[], 3 | 4 | 5][] = [
    // Property Length of 268435455 in a PUBLISH, a CONNECT and a SUBSCRIBE.
    [0x30, [...utf8("t"), 0xff, 0xff, 0xff, 0x7f, 1, 2, 3], 5],
    [0x10, [...utf8("MQTT"), 5, 0x02, ...u16(0), 0xff, 0xff, 0xff, 0x7f, ...utf8("c")], 5],
    [0x82, [...u16(1), 0xff, 0xff, 0xff, 0x7f, ...utf8("a"), 0], 5],
    // Two-byte lengths of 65535: topic, client id, will payload, password, binary property, user property.
    [0x30, [0xff, 0xff, 0x61], 4],
    [0x10, [...utf8("MQTT"), 4, 0x02, ...u16(0), 0xff, 0xff, 0x63], 4],
    [0x10, [...utf8("MQTT"), 4, 0x06, ...u16(0), ...utf8("c"), ...utf8("w"), 0xff, 0xff, 1], 4],
    [0x10, [...utf8("MQTT"), 4, 0xc2, ...u16(0), ...utf8("c"), ...utf8("u"), 0xff, 0xff, 1], 4],
    [0x30, [...utf8("t"), 4, 0x09, 0xff, 0xff, 1], 5],
    [0x30, [...utf8("t"), 6, 0x26, ...utf8("k"), 0xff, 0xff], 5],
  ];
  const before = external();
  for (let round = 0; round < 200; round++) {
    for (const [header, body, version] of bodies) {
      const result = decodePacket(header, new Uint8Array(body), version);
      strictEqual(
        result,
        ReasonCode.MalformedPacket,
        `${header.toString(16)} ${body}: ${describeResult(result)}`,
      );
    }
  }
  assert(external() - before < 1_000_000, `${external() - before} bytes allocated`);
  // A well-formed example of the same shapes decodes, so the cases above fail on the length alone.
  const good = frame(0x30, utf8("t"), props(P.correlationData("x")));
  assert(typeof decodePacket(good[0], new Uint8Array(good.slice(2)), 5) === "object");
});
