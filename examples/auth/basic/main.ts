/**
 * A broker with rules-based auth, the rules written in code (Mochi's `examples/auth/basic`).
 *
 * Run: `deno run -A examples/auth/basic/main.ts [ADDRESS]` (default `:1883`), then for example:
 *
 * ```sh
 * mosquitto_sub -u peach -P password1 -t 'news/#' -v     # peach may read anything outside updates/#
 * mosquitto_sub -u peach -P password1 -t '#'             # refused (SUBACK 0x87): '#' also matches updates/#
 * mosquitto_pub -u local -t news/today -m hi             # local (from 127.0.0.1) may write anything
 * mosquitto_pub -u melon -P password2 -t updates/1 -m hi  # melon may write updates
 * mosquitto_pub -u peach -P password1 -t news/x -m x      # refused: peach may only read
 * mosquitto_pub -u peach -P wrong -t a -m x               # refused: bad user name or password
 * ```
 *
 * A subscription is granted only when every topic its filter can match is readable, so peach's
 * `#` and `+/1` are refused (they could match `updates/1`), while `news/#` or `a/b` are granted.
 * tests/examples_test.ts checks each of these claims.
 *
 * @module
 */

import { AuthHook, type Ledger, Server, TCP } from "../../../mod.ts";

const ledger: Ledger = {
  // Authentication: the first matching rule decides; no match refuses.
  auth: [
    { username: "peach", password: "password1", allow: true },
    { username: "melon", password: "password2", allow: true },
    // A local superuser with any password. (Mochi's example allows every local client here; we
    // also ask for the user name, so that wrong passwords are refused from localhost too.)
    { remote: "127.0.0.1:*", username: "local", allow: true },
  ],
  // ACL: the first rule that matches the client and has a matching filter decides; inside a rule
  // the most specific filter wins; nothing matching allows.
  acl: [
    { username: "local" }, // no filters: may read and write everything
    { username: "melon", filters: { "melon/#": "ReadWrite", "updates/#": "WriteOnly" } },
    { filters: { "#": "ReadOnly", "updates/#": "Deny" } }, // everyone else: read anything outside updates/#
  ],
};

const address = Deno.args[0] ?? ":1883";
const server = new Server();
await server.addHook(new AuthHook(), { ledger });
await server.addListener(new TCP({ id: "t1", address }));
await server.serve();
console.log(`Auth (basic) broker listening on ${server.listeners.get("t1")!.address}`);

const stop = () => server.close().then(() => Deno.exit(0));
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
