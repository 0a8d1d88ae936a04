/**
 * Password hashes for the auth ledger: verification of stored passwords (plain text, bcrypt,
 * scrypt, PBKDF2) in constant time, and {@linkcode hashPassword} to make the stored form.
 *
 * Stored formats:
 *
 * | format | example |
 * | --- | --- |
 * | plain text | `password1` (anything not in a format below; prefix `plain$` to store a plain password that looks like a hash) |
 * | bcrypt | `$2b$10$` + 22 salt + 31 hash characters (`$2a$`, `$2b$` and `$2y$` are accepted) |
 * | scrypt | `scrypt$N$r$p$saltB64$hashB64`, e.g. `scrypt$16384$8$1$...$...` (N a power of two) |
 * | PBKDF2 | `pbkdf2-sha256$iterations$saltB64$hashB64` (or `pbkdf2-sha512$...`) |
 *
 * Base64 is the standard alphabet, padding optional. Every comparison uses `timingSafeEqual`; plain
 * passwords are compared as SHA-256 digests, so that their length does not leak either.
 *
 * @module
 */

import { createHash, pbkdf2, randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { Buffer } from "node:buffer";
import bcrypt from "bcryptjs";

/** The hash algorithms {@linkcode hashPassword} can produce. */
export type PasswordAlgorithm = "bcrypt" | "scrypt" | "pbkdf2-sha256" | "pbkdf2-sha512";

/** Options for {@linkcode hashPassword}. */
export interface HashPasswordOptions {
  /** The algorithm; default `"scrypt"`. */
  algorithm?: PasswordAlgorithm;
  /**
   * The work factor: bcrypt rounds (4..31, default 10), scrypt N (a power of two, default 16384)
   * or PBKDF2 iterations (default 600000 for SHA-256, 210000 for SHA-512).
   */
  cost?: number;
}

/** A stored password, parsed once when the rules are loaded. */
export type StoredPassword =
  | { kind: "plain"; digest: Buffer }
  | { kind: "bcrypt"; hash: string }
  | { kind: "scrypt"; n: number; r: number; p: number; salt: Buffer; hash: Buffer }
  | { kind: "pbkdf2"; digest: "sha256" | "sha512"; iterations: number; salt: Buffer; hash: Buffer };

const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const MAX_SCRYPT_N = 1 << 20;
const MAX_PBKDF2_ITERATIONS = 10_000_000;
const utf8 = new TextDecoder("utf-8", { fatal: true });

function decodeBase64(text: string, what: string): Buffer {
  if (!BASE64.test(text) || text.length === 0) throw new TypeError(`The ${what} is not base64: "${text}"`);
  return Buffer.from(text, "base64");
}

function positiveInteger(text: string, what: string, max: number): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max) {
    throw new TypeError(`The ${what} must be an integer from 1 to ${max}, got "${text}"`);
  }
  return n;
}

function sha256(bytes: Uint8Array): Buffer {
  return createHash("sha256").update(bytes).digest();
}

/**
 * Parses a stored password. Strings starting with `$2a$`/`$2b$`/`$2y$`, `scrypt$` or `pbkdf2-`
 * must be well-formed hashes; `plain$` marks the rest as plain text; anything else is plain text.
 *
 * @param stored The stored password.
 * @returns The parsed form, ready for {@linkcode verifyPassword}.
 * @throws {TypeError} When a hash is malformed (the message says what is wrong).
 *
 * @example Parsing a PBKDF2 hash
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseStoredPassword } from "./password.ts";
 *
 * const parsed = parseStoredPassword("pbkdf2-sha256$1000$c2FsdA$AAAAAAAAAAAAAAAAAAAAAA");
 * assert.equal(parsed.kind, "pbkdf2");
 * assert.equal(parseStoredPassword("secret").kind, "plain");
 * assert.throws(() => parseStoredPassword("$2b$99$x"), TypeError); // looks like bcrypt, is not
 * ```
 */
export function parseStoredPassword(stored: string): StoredPassword {
  if (stored.startsWith("plain$")) return { kind: "plain", digest: sha256(Buffer.from(stored.slice(6))) };
  if (/^\$2[aby]\$/.test(stored)) {
    const match = BCRYPT.exec(stored);
    if (!match) throw new TypeError(`The bcrypt hash is malformed: "${stored}"`);
    const rounds = Number(match[1]);
    if (rounds < 4 || rounds > 31) throw new TypeError(`The bcrypt cost must be 4 to 31, got ${rounds}`);
    // $2y$ (PHP) and $2a$ are the same algorithm as $2b$ for the passwords we can receive.
    return { kind: "bcrypt", hash: "$2b$" + stored.slice(4) };
  }
  if (stored.startsWith("scrypt$")) {
    const parts = stored.split("$");
    if (parts.length !== 6) {
      throw new TypeError(`The scrypt hash must be "scrypt$N$r$p$saltB64$hashB64", got "${stored}"`);
    }
    const n = positiveInteger(parts[1], "scrypt N", MAX_SCRYPT_N);
    if ((n & (n - 1)) !== 0 || n < 2) throw new TypeError(`The scrypt N must be a power of two, got ${n}`);
    const r = positiveInteger(parts[2], "scrypt r", 64);
    const p = positiveInteger(parts[3], "scrypt p", 64);
    const salt = decodeBase64(parts[4], "scrypt salt");
    const hash = decodeBase64(parts[5], "scrypt hash");
    if (hash.length < 16) {
      throw new TypeError(`The scrypt hash must be at least 16 bytes, got ${hash.length}`);
    }
    return { kind: "scrypt", n, r, p, salt, hash };
  }
  if (stored.startsWith("pbkdf2-")) {
    const parts = stored.split("$");
    if (parts.length !== 4 || (parts[0] !== "pbkdf2-sha256" && parts[0] !== "pbkdf2-sha512")) {
      throw new TypeError(
        `The PBKDF2 hash must be "pbkdf2-sha256$iterations$saltB64$hashB64" (or pbkdf2-sha512), got "${stored}"`,
      );
    }
    const iterations = positiveInteger(parts[1], "PBKDF2 iteration count", MAX_PBKDF2_ITERATIONS);
    const salt = decodeBase64(parts[2], "PBKDF2 salt");
    const hash = decodeBase64(parts[3], "PBKDF2 hash");
    if (hash.length < 16) {
      throw new TypeError(`The PBKDF2 hash must be at least 16 bytes, got ${hash.length}`);
    }
    return {
      kind: "pbkdf2",
      digest: parts[0] === "pbkdf2-sha256" ? "sha256" : "sha512",
      iterations,
      salt,
      hash,
    };
  }
  return { kind: "plain", digest: sha256(Buffer.from(stored)) };
}

function scryptAsync(password: Uint8Array, salt: Buffer, n: number, r: number, p: number, length: number) {
  return new Promise<Buffer>((resolve, reject) =>
    scrypt(password, salt, length, { N: n, r, p, maxmem: 256 * n * r + (1 << 20) }, (error, key) => {
      if (error) reject(error);
      else resolve(key);
    })
  );
}

function pbkdf2Async(password: Uint8Array, salt: Buffer, iterations: number, length: number, digest: string) {
  return new Promise<Buffer>((resolve, reject) =>
    pbkdf2(password, salt, iterations, length, digest, (error, key) => {
      if (error) reject(error);
      else resolve(key);
    })
  );
}

/** Constant-time comparison of two byte strings of possibly different lengths. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false; // the length of a hash is not secret
  return timingSafeEqual(a, b);
}

/**
 * Checks a password against a stored one. Plain passwords are checked synchronously; hashes
 * resolve a Promise (the work runs off the event loop for scrypt and PBKDF2).
 *
 * @param stored The parsed stored password (from {@linkcode parseStoredPassword}).
 * @param password The password a client sent (raw bytes, or a string as UTF-8).
 * @returns Whether it matches.
 *
 * @example Verifying a plain and a hashed password
 * ```ts
 * import assert from "node:assert/strict";
 * import { hashPassword, parseStoredPassword, verifyPassword } from "./password.ts";
 *
 * assert.equal(verifyPassword(parseStoredPassword("secret"), "secret"), true); // plain: answered at once
 * const hash = await hashPassword("secret", { algorithm: "pbkdf2-sha256", cost: 1000 });
 * assert.equal(await verifyPassword(parseStoredPassword(hash), "secret"), true); // hashed: a Promise
 * assert.equal(await verifyPassword(parseStoredPassword(hash), "guess"), false);
 * ```
 */
export function verifyPassword(
  stored: StoredPassword,
  password: Uint8Array | string,
): boolean | Promise<boolean> {
  const bytes = typeof password === "string" ? Buffer.from(password) : password;
  switch (stored.kind) {
    case "plain":
      return timingSafeEqual(sha256(bytes), stored.digest);
    case "bcrypt": {
      let text: string;
      try {
        text = utf8.decode(bytes); // bcrypt hashes the UTF-8 text; other bytes cannot match
      } catch {
        return false;
      }
      return bcrypt.hash(text, stored.hash.slice(0, 29)).then((hash) =>
        sameBytes(Buffer.from(hash), Buffer.from(stored.hash))
      );
    }
    case "scrypt":
      return scryptAsync(bytes, stored.salt, stored.n, stored.r, stored.p, stored.hash.length).then((key) =>
        sameBytes(key, stored.hash)
      );
    case "pbkdf2":
      return pbkdf2Async(bytes, stored.salt, stored.iterations, stored.hash.length, stored.digest).then((
        key,
      ) => sameBytes(key, stored.hash));
  }
}

/**
 * Hashes a password for the auth ledger (`users.<name>.password` or an auth rule's `password`).
 *
 * @param password The password.
 * @param options The algorithm (default scrypt) and its cost.
 * @returns The stored form, e.g. `scrypt$16384$8$1$<salt>$<hash>`.
 * @throws {RangeError} When the cost is out of range for the algorithm.
 *
 * @example Hashing with each algorithm
 * ```ts
 * import assert from "node:assert/strict";
 * import { hashPassword } from "./password.ts";
 *
 * assert.match(await hashPassword("pw"), /^scrypt\$16384\$8\$1\$/); // the default
 * assert.match(await hashPassword("pw", { algorithm: "bcrypt", cost: 4 }), /^\$2b\$04\$/);
 * assert.match(await hashPassword("pw", { algorithm: "pbkdf2-sha256", cost: 1000 }), /^pbkdf2-sha256\$1000\$/);
 * ```
 */
export async function hashPassword(password: string, options: HashPasswordOptions = {}): Promise<string> {
  const algorithm = options.algorithm ?? "scrypt";
  const bytes = Buffer.from(password);
  const salt = randomBytes(16);
  switch (algorithm) {
    case "bcrypt": {
      const rounds = options.cost ?? 10;
      if (!Number.isInteger(rounds) || rounds < 4 || rounds > 31) {
        throw new RangeError(`The bcrypt cost must be an integer from 4 to 31, got ${rounds}`);
      }
      return await bcrypt.hash(password, await bcrypt.genSalt(rounds));
    }
    case "scrypt": {
      const n = options.cost ?? 16384;
      if (!Number.isInteger(n) || n < 2 || n > MAX_SCRYPT_N || (n & (n - 1)) !== 0) {
        throw new RangeError(
          `The scrypt cost (N) must be a power of two from 2 to ${MAX_SCRYPT_N}, got ${n}`,
        );
      }
      const key = await scryptAsync(bytes, salt, n, 8, 1, 32);
      return `scrypt$${n}$8$1$${salt.toString("base64")}$${key.toString("base64")}`;
    }
    case "pbkdf2-sha256":
    case "pbkdf2-sha512": {
      const digest = algorithm === "pbkdf2-sha256" ? "sha256" : "sha512";
      const iterations = options.cost ?? (digest === "sha256" ? 600_000 : 210_000);
      if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_PBKDF2_ITERATIONS) {
        throw new RangeError(
          `The PBKDF2 iteration count must be an integer from 1 to ${MAX_PBKDF2_ITERATIONS}, got ${iterations}`,
        );
      }
      const key = await pbkdf2Async(bytes, salt, iterations, digest === "sha256" ? 32 : 64, digest);
      return `${algorithm}$${iterations}$${salt.toString("base64")}$${key.toString("base64")}`;
    }
    default:
      throw new RangeError(`Unknown password algorithm "${algorithm}"`);
  }
}
