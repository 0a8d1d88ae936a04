/**
 * Authentication and authorization hooks: {@linkcode AllowHook} (everyone, for development) and
 * {@linkcode AuthHook} (an auth ledger of users, auth rules and ACL rules), with password hashing.
 *
 * @example Rules from a YAML file
 * ```ts
 * import assert from "node:assert/strict";
 * import { Server } from "../../mod.ts";
 * import { AuthHook, loadLedger } from "./mod.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/auth.yaml`;
 * await Deno.writeTextFile(path, "auth:\n  - username: peach\n    password: password1\n    allow: true\n");
 * assert.equal((await loadLedger(path)).auth?.[0].username, "peach");
 *
 * const server = new Server();
 * await server.addHook(new AuthHook(), { path });
 * await server.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

export { AllowHook } from "./allow_all.ts";
export { AuthHook, type AuthHookConfig } from "./auth.ts";
export {
  Access,
  type AccessValue,
  type ACLRule,
  type AuthRule,
  CompiledLedger,
  filterCovers,
  type Filters,
  filtersOverlap,
  type Identity,
  type Ledger,
  LedgerError,
  loadLedger,
  parseLedger,
  type UserRule,
  validateLedger,
} from "./ledger.ts";
export {
  hashPassword,
  type HashPasswordOptions,
  parseStoredPassword,
  type PasswordAlgorithm,
  type StoredPassword,
  verifyPassword,
} from "./password.ts";
