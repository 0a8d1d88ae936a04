/**
 * Deno's floor for idle connections: a program that only accepts TCP connections, answers each
 * CONNECT with a fixed CONNACK (so the `connections` scenario can count it), and keeps one pending
 * read per connection with a 256-byte buffer. What our broker uses per connection beyond this is ours.
 *
 * Run: `deno run -A bench/floor_server.ts HOST PORT`
 *
 * @module
 */

const [hostname = "127.0.0.1", port = "1883"] = Deno.args;
// CONNACK for v5: session present 0, reason 0, no properties; for v3/v4 the same first two bytes.
const CONNACK_V5 = new Uint8Array([0x20, 0x03, 0x00, 0x00, 0x00]);
const CONNACK_V4 = new Uint8Array([0x20, 0x02, 0x00, 0x00]);

async function serve(conn: Deno.TcpConn): Promise<void> {
  conn.setNoDelay(true);
  const buffer = new Uint8Array(256);
  try {
    let n = await conn.read(buffer);
    if (n === null) return;
    // The protocol level sits after the fixed header and the "MQTT" name (assumes a 1-byte length).
    const level = buffer[8];
    await conn.write(level === 5 ? CONNACK_V5 : CONNACK_V4);
    while (n !== null) n = await conn.read(buffer);
  } catch {
    // the peer went away
  } finally {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

const listener = Deno.listen({ hostname, port: Number(port) });
for await (const conn of listener) serve(conn);
