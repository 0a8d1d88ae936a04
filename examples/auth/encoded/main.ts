/**
 * A broker with rules-based auth read from a YAML or JSON file, with hashed passwords (Mochi's
 * `examples/auth/encoded`). Users: peach / password1 (bcrypt), melon / password2 (scrypt),
 * kiwi / password3 (PBKDF2), and `local` from 127.0.0.1 with any password.
 *
 * Run: `deno run -A examples/auth/encoded/main.ts [ADDRESS] [RULES]` (default `:1883` and the
 * `auth.yaml` beside this file; `auth.json` holds the same rules).
 *
 * @module
 */

import { AuthHook, Server, TCP } from "../../../mod.ts";

const address = Deno.args[0] ?? ":1883";
const path = Deno.args[1] ?? `${import.meta.dirname}/auth.yaml`;
const server = new Server();
// A bad rules file fails here with its name, the line and the field.
await server.addHook(new AuthHook(), { path });
await server.addListener(new TCP({ id: "t1", address }));
await server.serve();
console.log(
  `Auth (encoded) broker with rules from ${path} listening on ${server.listeners.get("t1")!.address}`,
);

const stop = () => server.close().then(() => Deno.exit(0));
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
