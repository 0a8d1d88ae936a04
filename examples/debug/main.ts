/**
 * A broker that logs every packet in and out (and connections, subscriptions, publishes) with
 * the DebugHook, through LogTape to the console.
 *
 * Run: `deno run -A examples/debug/main.ts [ADDRESS]` (default `:1883`). Set `SHOW_PINGS=1` to
 * log PINGREQ/PINGRESP too, `SHOW_PASSWORDS=1` to show CONNECT passwords.
 *
 * @module
 */

import { configure, getConsoleSink, getTextFormatter, type LogRecord } from "@logtape/logtape";
import { AllowHook, DebugHook, Server, TCP } from "../../mod.ts";

// The text formatter prints the message; add the decoded packet (showPacketData) after it.
const text = getTextFormatter();
const formatter = (record: LogRecord): string => {
  const packet = record.properties.packet;
  return packet === undefined ? text(record) : `${text(record).trimEnd()} ${JSON.stringify(packet)}\n`;
};

await configure({
  sinks: { console: getConsoleSink({ formatter }) },
  loggers: [
    { category: ["x-broker"], lowestLevel: "debug", sinks: ["console"] },
    { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
  ],
});

const address = Deno.args[0] ?? ":1883";
const server = new Server();
await server.addHook(new AllowHook());
await server.addHook(new DebugHook(), {
  showPacketData: true,
  showPings: Deno.env.get("SHOW_PINGS") === "1",
  showPasswords: Deno.env.get("SHOW_PASSWORDS") === "1",
});
await server.addListener(new TCP({ id: "t1", address }));
await server.serve();
console.log(`Debug broker listening on ${server.listeners.get("t1")!.address}`);

const stop = () => server.close().then(() => Deno.exit(0));
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
