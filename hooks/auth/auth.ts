/**
 * The rules-based auth hook: authentication and ACL from an auth ledger (see `ledger.ts` for the
 * rules and their semantics).
 *
 * @module
 */

import type { Hook } from "../../src/hooks.ts";
import type { Client } from "../../src/client.ts";
import type { Packet } from "../../src/packets/types.ts";
import { logger } from "../../src/logger.ts";
import { CompiledLedger, type Identity, type Ledger, loadLedger, parseLedger } from "./ledger.ts";

/** How to give an {@linkcode AuthHook} its rules: exactly one of the fields (none: empty rules). */
export interface AuthHookConfig {
  /** The rules as a value. */
  ledger?: Ledger;
  /** The rules as YAML or JSON text (or its UTF-8 bytes); errors name it `"data"`. */
  data?: string | Uint8Array;
  /** A YAML or JSON file with the rules; errors name the file. */
  path?: string;
}

const log = logger("auth");
const CONFIG_KEYS = ["ledger", "data", "path"];

function identityOf(client: Client): Identity {
  return { clientId: client.id, username: client.properties.username, remote: client.net.remote };
}

/**
 * Authenticates clients and checks their access with an auth ledger (users, `auth` rules and
 * `acl` rules, compatible with Mochi's). Without rules every connection is refused and every
 * topic allowed.
 *
 * @example Users from YAML
 * ```ts
 * import assert from "node:assert/strict";
 * import { AuthHook } from "./auth.ts";
 * import { PacketType, Server } from "../../mod.ts";
 * import { ByteWriter, encodePacket } from "../../src/packets/mod.ts";
 * import { MockListener } from "../../listeners/mock.ts";
 *
 * const server = new Server();
 * await server.addHook(new AuthHook(), {
 *   data: `
 * users:
 *   peach: { password: password1, acl: { "peach/#": ReadWrite, "#": ReadOnly } }
 * auth:
 *   - remote: "127.0.0.1:*"
 *     username: local
 *     allow: true
 * `,
 * });
 * const mock = new MockListener({ id: "mock" });
 * await server.addListener(mock);
 * await server.serve();
 *
 * // Connects from `remote` and returns the CONNACK reason code.
 * async function connect(remote: string, username: string, password: string): Promise<number> {
 *   const out = new ByteWriter();
 *   encodePacket({
 *     fixedHeader: { type: PacketType.Connect },
 *     connect: {
 *       protocolName: "MQTT",
 *       protocolVersion: 5,
 *       clean: true,
 *       keepAlive: 60,
 *       clientId: "c1",
 *       username,
 *       password: new TextEncoder().encode(password),
 *       willFlag: false,
 *     },
 *   }, 5, out);
 *   const conn = mock.connect(remote);
 *   await conn.write(out.toBytes());
 *   const reply = new Uint8Array(64);
 *   await conn.read(reply);
 *   conn.close();
 *   return reply[3];
 * }
 * assert.equal(await connect("203.0.113.9:5000", "peach", "password1"), 0x00); // Success
 * assert.equal(await connect("203.0.113.9:5000", "peach", "wrong"), 0x86); // Bad User Name or Password
 * assert.equal(await connect("127.0.0.1:5000", "local", ""), 0x00); // the auth rule allows it
 * assert.equal(await connect("203.0.113.9:5000", "local", ""), 0x86); // not from 127.0.0.1
 * await server.close();
 * ```
 */
export class AuthHook implements Hook {
  /** The hook id. */
  readonly id: string = "auth-ledger";
  #rules: CompiledLedger = new CompiledLedger({});

  /**
   * Loads the rules from `{ ledger }`, `{ data }` or `{ path }`.
   *
   * @param config Where the rules come from.
   * @throws {LedgerError} When the rules are invalid (names the file or `data`, line and field).
   * @throws {TypeError} When the config is not one of the shapes above.
   */
  async init(config?: unknown): Promise<void> {
    if (config === undefined || config === null) return;
    if (typeof config !== "object") {
      throw new TypeError(`The AuthHook config must be an object, got ${config}`);
    }
    const keys = Object.keys(config).filter((k) => (config as Record<string, unknown>)[k] !== undefined);
    const unknown = keys.find((k) => !CONFIG_KEYS.includes(k));
    if (unknown) {
      throw new TypeError(`Unknown AuthHook config key "${unknown}" (expected ledger, data or path)`);
    }
    if (keys.length > 1) {
      throw new TypeError(`Give the AuthHook one of ledger, data or path, got ${keys.join(", ")}`);
    }
    const { ledger, data, path } = config as AuthHookConfig;
    if (path !== undefined) {
      this.#rules = new CompiledLedger(await loadLedger(path), path);
    } else if (data !== undefined) {
      const text = typeof data === "string" ? data : new TextDecoder().decode(data);
      this.#rules = new CompiledLedger(parseLedger(text, "data"), "data");
    } else if (ledger !== undefined) {
      this.#rules = new CompiledLedger(ledger, "ledger");
    }
    const l = this.#rules.ledger;
    log.info("Loaded auth rules: {users} users, {auth} auth rules, {acl} ACL rules", {
      users: Object.keys(l.users ?? {}).length,
      auth: l.auth?.length ?? 0,
      acl: l.acl?.length ?? 0,
    });
  }

  /** The rules in force (validated; access levels as numbers). */
  get ledger(): Ledger {
    return this.#rules.ledger;
  }

  /**
   * Replaces the rules at run time. The new rules are validated first; on error the old ones stay.
   * Checks that already started finish with the rules they started with; every later check uses
   * the new ones (existing connections are not re-authenticated).
   *
   * @param ledger The new rules (a value, or the result of `parseLedger`/`loadLedger`).
   * @throws {LedgerError} When the new rules are invalid.
   */
  update(ledger: Ledger): void {
    this.#rules = new CompiledLedger(ledger, "ledger");
  }

  /**
   * Authenticates a CONNECT with the rules.
   *
   * @param client The connecting client.
   * @param packet Its CONNECT.
   * @returns Whether it may connect (a Promise when a password hash is verified).
   */
  onConnectAuthenticate(client: Client, packet: Packet): boolean | Promise<boolean> {
    const identity = identityOf(client);
    const result = this.#rules.authenticate(identity, packet.connect?.password);
    if (result instanceof Promise) return result.then((ok) => this.#logAuth(identity, ok));
    return this.#logAuth(identity, result);
  }

  #logAuth(identity: Identity, ok: boolean): boolean {
    if (!ok) {
      log.info("Client {client} failed authentication (user {username}, from {remote})", {
        client: identity.clientId,
        username: identity.username,
        remote: identity.remote,
      });
    }
    return ok;
  }

  /**
   * Checks read (subscribe) or write (publish) access with the rules.
   *
   * @param client The client.
   * @param topic The topic, or a filter for subscriptions.
   * @param write True for publish.
   * @returns Whether the access is allowed.
   */
  onACLCheck(client: Client, topic: string, write: boolean): boolean {
    const ok = this.#rules.checkACL(identityOf(client), topic, write);
    if (!ok) {
      log.debug("Client {client} may not {access} {topic}", {
        client: client.id,
        access: write ? "write" : "read",
        topic,
      });
    }
    return ok;
  }
}
