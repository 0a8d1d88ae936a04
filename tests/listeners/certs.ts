/**
 * Test certificates: a CA, a server certificate for localhost/127.0.0.1 and a client certificate
 * (CN=client1), made by `examples/tls/make_cert.sh` with openssl into a temporary directory.
 *
 * @module
 */

/** PEM texts of the test certificates and keys. */
export interface TestCerts {
  /** The directory holding the files. */
  dir: string;
  /** CA certificate. */
  ca: string;
  /** Server certificate. */
  cert: string;
  /** Server key. */
  key: string;
  /** Client certificate (CN=client1). */
  clientCert: string;
  /** Client key. */
  clientKey: string;
  /** Removes the directory. */
  remove(): void;
}

let cached: Promise<TestCerts> | undefined;

/**
 * Makes the certificates once per test process.
 *
 * @returns The certificates.
 */
export function testCerts(): Promise<TestCerts> {
  cached ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "broker-certs-" });
    const script = new URL("../../examples/tls/make_cert.sh", import.meta.url).pathname;
    const result = await new Deno.Command("bash", { args: [script, dir], stdout: "null", stderr: "piped" })
      .output();
    if (!result.success) throw new Error(`make_cert.sh failed: ${new TextDecoder().decode(result.stderr)}`);
    const read = (name: string) => Deno.readTextFileSync(`${dir}/${name}`);
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    return {
      dir,
      ca: read("ca.crt"),
      cert: read("server.crt"),
      key: read("server.key"),
      clientCert: read("client.crt"),
      clientKey: read("client.key"),
      remove: () => Deno.removeSync(dir, { recursive: true }),
    };
  })();
  return cached;
}
