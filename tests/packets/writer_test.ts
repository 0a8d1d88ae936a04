import assert, { deepStrictEqual, strictEqual } from "node:assert/strict";
import { ByteWriter, varintSize } from "../../src/packets/mod.ts";

Deno.test("ByteWriter writes integers big-endian", () => {
  const out = new ByteWriter(16);
  out.u8(0xab);
  out.u16(0x1234);
  out.u32(0xdeadbeef);
  deepStrictEqual(Array.from(out.toBytes()), [0xab, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef]);
});

Deno.test("ByteWriter writes Variable Byte Integers at every size boundary", () => {
  const cases: [number, number[]][] = [
    [0, [0x00]],
    [127, [0x7f]],
    [128, [0x80, 0x01]],
    [16383, [0xff, 0x7f]],
    [16384, [0x80, 0x80, 0x01]],
    [2097151, [0xff, 0xff, 0x7f]],
    [2097152, [0x80, 0x80, 0x80, 0x01]],
    [268435455, [0xff, 0xff, 0xff, 0x7f]],
  ];
  for (const [value, bytes] of cases) {
    const out = new ByteWriter(1);
    out.varint(value);
    deepStrictEqual(Array.from(out.toBytes()), bytes, String(value));
    strictEqual(varintSize(value), bytes.length);
  }
  assert.throws(() => new ByteWriter().varint(268435456), RangeError);
  assert.throws(() => new ByteWriter().varint(-1), RangeError);
});

Deno.test("ByteWriter writes length-prefixed UTF-8 and binary data", () => {
  const out = new ByteWriter(4);
  out.utf8("a/b");
  out.utf8("");
  out.utf8("€");
  out.binary(new Uint8Array([9, 8]));
  out.bytes(new Uint8Array([7]));
  deepStrictEqual(Array.from(out.toBytes()), [
    0,
    3,
    0x61,
    0x2f,
    0x62,
    0,
    0,
    0,
    3,
    0xe2,
    0x82,
    0xac,
    0,
    2,
    9,
    8,
    7,
  ]);
});

Deno.test("ByteWriter encodes long and non-ASCII strings with encodeInto", () => {
  const text = "x".repeat(100) + "😀" + "ü".repeat(100);
  const out = new ByteWriter(8);
  out.utf8(text);
  const bytes = out.toBytes();
  const encoded = new TextEncoder().encode(text);
  strictEqual((bytes[0] << 8) | bytes[1], encoded.length);
  deepStrictEqual(bytes.subarray(2), encoded);
});

Deno.test("ByteWriter rejects strings and binary data over 65535 bytes", () => {
  const out = new ByteWriter();
  out.utf8("€".repeat(21845)); // 65535 bytes: fits
  strictEqual(out.length, 65537);
  assert.throws(() => out.utf8("€".repeat(21846)), RangeError);
  assert.throws(() => out.binary(new Uint8Array(65536)), RangeError);
});

Deno.test("ByteWriter grows by doubling and keeps what was written", () => {
  const out = new ByteWriter(16);
  for (let i = 0; i < 1000; i++) out.u16(i);
  strictEqual(out.length, 2000);
  strictEqual(out.buffer.length, 2048);
  const bytes = out.toBytes();
  for (let i = 0; i < 1000; i++) strictEqual((bytes[2 * i] << 8) | bytes[2 * i + 1], i);
  out.u32(0x01020304); // the DataView follows the new buffer
  deepStrictEqual(Array.from(out.toBytes().subarray(2000)), [1, 2, 3, 4]);
});

Deno.test("ByteWriter length rewinds and reset empties", () => {
  const out = new ByteWriter();
  out.bytes(new Uint8Array([1, 2, 3, 4]));
  out.length = 2;
  out.u8(9);
  deepStrictEqual(Array.from(out.toBytes()), [1, 2, 9]);
  out.reset();
  strictEqual(out.toBytes().length, 0);
});
