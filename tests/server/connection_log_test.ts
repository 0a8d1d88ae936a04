/**
 * The connection lines handed straight to the CLI's sink (`setConnectionLogSink`) are the records
 * LogTape makes of them: the same text and JSON lines once formatted.
 *
 * @module
 */

import assert from "node:assert/strict";
import { configure, getJsonLinesFormatter, getTextFormatter, type LogRecord, reset } from "@logtape/logtape";
import type { Client } from "../../src/client.ts";
import { logConnection, setConnectionLogSink } from "../../src/connection_log.ts";

const clients = [
  { id: "c1", net: { listener: "t1", remote: "127.0.0.1:5555" }, properties: { protocolVersion: 5 } },
  { id: "", net: { listener: "ws", remote: "[::1]:80" }, properties: { protocolVersion: 4 } },
  { id: 'a "quoted" id', net: { listener: "t1", remote: "unix" }, properties: { protocolVersion: 3 } },
] as unknown as Client[];

Deno.test("connection lines given to the sink directly format as LogTape's records do", async () => {
  const viaLogTape: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { memory: (record) => void viaLogTape.push(record) },
    loggers: [
      { category: ["x-broker"], lowestLevel: "info", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["memory"] },
    ],
  });
  const direct: LogRecord[] = [];
  try {
    for (const client of clients) logConnection("connected", client, "new session");
    setConnectionLogSink((record) => void direct.push(record));
    for (const client of clients) logConnection("connected", client, "new session");
  } finally {
    setConnectionLogSink(undefined);
    await reset();
  }
  assert.equal(viaLogTape.length, clients.length);
  assert.equal(direct.length, clients.length);
  const formats = [getTextFormatter({ value: "bare" }), getTextFormatter(), getJsonLinesFormatter()];
  for (let i = 0; i < clients.length; i++) {
    const timestamp = viaLogTape[i].timestamp;
    for (const format of formats) {
      assert.equal(format({ ...direct[i], timestamp }), format({ ...viaLogTape[i], timestamp }));
    }
    assert.deepEqual(direct[i].properties, viaLogTape[i].properties);
    assert.deepEqual([...direct[i].category], [...viaLogTape[i].category]);
  }
});
