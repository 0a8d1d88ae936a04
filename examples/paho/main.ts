/**
 * A broker set up the way the Eclipse Paho interoperability suite expects
 * (`interoperability/client_test5.py` and `client_test.py`).
 *
 * Run: `deno run -A examples/paho/main.ts [ADDRESS]` (default `:1883`).
 *
 * What the suite needs beyond the defaults, and why:
 * - `maximumKeepAlive: 60`: `test_server_keep_alive` connects asking for 120 s and expects the
 *   broker to answer with Server Keep Alive 60.
 * - `obscureNotAuthorized`: `test_subscribe_failure` expects SUBACK 0x80 (not 0x87) for a
 *   filter the client may not subscribe to.
 * - `noInheritedPropertiesOnAck`: `test_user_properties` expects acks without the publish's
 *   user properties.
 * - A hook that denies subscriptions to `test/nosubscribe` (the suite's "nosubscribe" topic).
 */

import { AllowHook, type Client, type Hook, Server, TCP } from "../../mod.ts";

/** Denies subscribing to `test/nosubscribe`; everything else is allowed. */
class NoSubscribeHook extends AllowHook implements Hook {
  override readonly id = "paho-nosubscribe";

  override onACLCheck(_client?: Client, topic?: string, write?: boolean): boolean {
    return write || topic !== "test/nosubscribe";
  }
}

const address = Deno.args[0] ?? ":1883";
const server = new Server({
  capabilities: {
    maximumKeepAlive: 60,
    compatibilities: { obscureNotAuthorized: true, noInheritedPropertiesOnAck: true },
  },
});
await server.addHook(new NoSubscribeHook());
await server.addListener(new TCP({ id: "paho", address }));
await server.serve();
console.log(`Paho interoperability broker listening on ${server.listeners.get("paho")!.address}`);

const stop = () => server.close().then(() => Deno.exit(0));
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
