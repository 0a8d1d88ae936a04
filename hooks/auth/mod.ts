/**
 * Authentication and authorization hooks: {@linkcode AllowHook} (everyone, for development) and
 * {@linkcode AuthHook} (an auth ledger of users, auth rules and ACL rules), with password hashing.
 *
 * @example Rules from a YAML file
 * ```ts ignore
 * import { AuthHook } from "./mod.ts";
 * await server.addHook(new AuthHook(), { path: "auth.yaml" });
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
