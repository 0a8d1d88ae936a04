/**
 * A broker on TLS, with a second listener that requires client certificates (mutual TLS) and
 * uses the certificate's Common Name as the username.
 *
 * Make a throwaway CA and certificates first, then run:
 *
 * ```sh
 * examples/tls/make_cert.sh                 # writes examples/tls/certs/
 * deno run -A examples/tls/main.ts
 * mosquitto_sub -p 8883 --cafile examples/tls/certs/ca.crt -t '#' -v
 * mosquitto_pub -p 8884 --cafile examples/tls/certs/ca.crt \
 *   --cert examples/tls/certs/client.crt --key examples/tls/certs/client.key -t hi -m there
 * ```
 *
 * `cert`, `key` and `ca` take a file path or PEM text.
 */

import { AllowHook, Server, TCP } from "../../mod.ts";

const certs = new URL("./certs/", import.meta.url).pathname;
const server = new Server();
await server.addHook(new AllowHook());
await server.addListener(
  new TCP({ id: "tls", address: ":8883", tls: { cert: `${certs}server.crt`, key: `${certs}server.key` } }),
);
await server.addListener(
  new TCP({
    id: "mtls",
    address: ":8884",
    tls: {
      cert: `${certs}server.crt`,
      key: `${certs}server.key`,
      ca: `${certs}ca.crt`,
      requireClientCert: true,
      clientCertAsUsername: true,
    },
    allowAnonymous: false,
  }),
);
// Adds the hooks that apply allowAnonymous and clientCertAsUsername.
await server.serve();
console.error("MQTT over TLS on :8883, mutual TLS on :8884; Ctrl-C to stop");

const stop = () => server.close().then(() => Deno.exit(0));
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
