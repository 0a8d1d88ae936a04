/**
 * Unit tests of the auth ledger: parsing YAML and JSON, validation errors that name the source,
 * line and field, filter covering/overlap, rule semantics without a broker, and password hashes.
 */

import assert from "node:assert/strict";
import {
  AuthHook,
  CompiledLedger,
  filterCovers,
  filtersOverlap,
  hashPassword,
  type Identity,
  LedgerError,
  parseLedger,
  parseStoredPassword,
  validateLedger,
  verifyPassword,
} from "../../hooks/auth/mod.ts";
import { Server } from "../../mod.ts";

const who: Identity = { clientId: "c1", username: "u", remote: "127.0.0.1:40000" };
const bytes = (text: string) => new TextEncoder().encode(text);

function ledgerError(fn: () => unknown): LedgerError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof LedgerError, `expected a LedgerError, got ${error}`);
    return error;
  }
  throw new Error("expected a LedgerError");
}

Deno.test("parseLedger reads Mochi's YAML and JSON ledgers alike", async () => {
  const yaml = await Deno.readTextFile(new URL("../../examples/auth/encoded/auth.yaml", import.meta.url));
  const json = await Deno.readTextFile(new URL("../../examples/auth/encoded/auth.json", import.meta.url));
  const fromYaml = parseLedger(yaml, "auth.yaml");
  const fromJson = parseLedger(json, "auth.json");
  assert.deepEqual(fromYaml, fromJson);
  assert.ok((fromYaml.auth?.length ?? 0) > 0);
  // Mochi's own example (numbers for access, an ACL rule without filters).
  const mochi = parseLedger(`
auth:
    - username: peach
      password: password1
      allow: true
acl:
# 0 = deny, 1 = read only, 2 = write only, 3 = read and write
    - remote: 127.0.0.1:*
    - username: melon
      filters:
        melon/#: 3
        updates/#: 2
    - filters:
        '#': 1
        updates/#: 0
`);
  assert.deepEqual(mochi.acl?.[1], { username: "melon", filters: { "melon/#": 3, "updates/#": 2 } });
  assert.deepEqual(mochi.acl?.[0], { remote: "127.0.0.1:*" });
});

Deno.test("parseLedger accepts access names in any case and numbers", () => {
  const ledger = parseLedger(`acl:\n  - filters: { a: deny, b: READONLY, c: WriteOnly, d: 3 }\n`);
  assert.deepEqual(ledger.acl?.[0].filters, { a: 0, b: 1, c: 2, d: 3 });
  assert.deepEqual(parseLedger(""), {});
  assert.deepEqual(parseLedger("users:\nauth:\nacl:\n"), { users: {}, auth: [], acl: [] });
});

Deno.test("parseLedger names the source, line and field of a bad access value", () => {
  const error = ledgerError(() =>
    parseLedger(
      `acl:
  - username: melon
    filters:
      melon/#: ReadWrite
      updates/#: Sometimes
`,
      "rules.yaml",
    )
  );
  assert.equal(error.source, "rules.yaml");
  assert.equal(error.line, 5);
  assert.equal(error.field, 'acl[0].filters["updates/#"]');
  assert.match(
    error.message,
    /^Bad auth rules in rules\.yaml at line 5, field acl\[0\]\.filters\["updates\/#"\]: /,
  );
  assert.match(error.message, /"Sometimes"/);
});

Deno.test("parseLedger rejects an unknown key and names it", () => {
  const error = ledgerError(() => parseLedger(`auth:\n  - username: a\n    alow: true\n`));
  assert.equal(error.line, 3);
  assert.equal(error.field, "auth[0]");
  assert.match(error.message, /unknown key "alow"/);
  assert.match(
    ledgerError(() => parseLedger(`users: {}\nrules: []\n`)).message,
    /line 2.*unknown key "rules"/,
  );
  assert.match(
    ledgerError(() => parseLedger(`users:\n  bob:\n    password: x\n    admin: true\n`)).message,
    /line 4, field users\["bob"\]: unknown key "admin"/,
  );
});

Deno.test("parseLedger reports YAML syntax errors and duplicate keys with their line", () => {
  const syntax = ledgerError(() => parseLedger(`auth:\n  - username: a\n   allow: [true\n`, "bad.yaml"));
  assert.equal(syntax.source, "bad.yaml");
  assert.ok(syntax.line !== undefined && syntax.line >= 2, syntax.message);
  const duplicate = ledgerError(() => parseLedger(`users:\n  a: { password: x }\n  a: { password: y }\n`));
  assert.equal(duplicate.line, 3);
  assert.match(duplicate.message, /unique/i);
});

Deno.test("parseLedger checks types: strings, booleans, filters and hashes", () => {
  const cases: [string, RegExp][] = [
    [
      `users:\n  bob:\n    password: 12345\n`,
      /line 3, field users\["bob"\]\.password: expected a string \(quote it\), got number 12345/,
    ],
    [`users:\n  bob: {}\n`, /field users\["bob"\]: the user has no password/],
    [`auth:\n  - allow: yes\n`, /field auth\[0\]\.allow: expected true or false, got "yes"/],
    [`auth:\n  - username: [a]\n`, /field auth\[0\]\.username: expected a string/],
    [`auth: {}\n`, /field auth: expected a list, got a map/],
    [
      `acl:\n  - filters:\n      "a/#/b": 1\n`,
      /line 3, field acl\[0\]\.filters\["a\/#\/b"\]: "a\/#\/b" is not a valid topic filter/,
    ],
    [`acl:\n  - filters:\n      "$share/g/a": 1\n`, /not a valid topic filter/],
    [`acl:\n  - filters:\n      "a": 4\n`, /the access must be 0, 1, 2, 3/],
    [
      `users:\n  bob:\n    password: "$2b$10$short"\n`,
      /line 3, field users\["bob"\]\.password: The bcrypt hash is malformed/,
    ],
    [`auth:\n  - password: "scrypt$3$8$1$c2FsdA$AAAA"\n`, /scrypt N must be a power of two/],
    [`auth:\n  - password: "pbkdf2-md5$1$c2FsdA$AAAA"\n`, /PBKDF2 hash must be/],
    [`users:\n  bob:\n    password: x\n    username: robert\n`, /the user name must match the key "bob"/],
  ];
  for (const [yaml, pattern] of cases) {
    assert.match(ledgerError(() => parseLedger(yaml)).message, pattern, yaml);
  }
});

Deno.test("validateLedger checks values built in code, without lines", () => {
  const error = ledgerError(() => validateLedger({ acl: [{ filters: { "#": "Everything" } }] }));
  assert.equal(error.line, undefined);
  assert.equal(
    error.message,
    'Bad auth rules in ledger, field acl[0].filters["#"]: the access must be 0, 1, 2, 3, Deny, ReadOnly, WriteOnly or ReadWrite, got "Everything"',
  );
  assert.deepEqual(validateLedger({ auth: [{ username: "a", allow: true }] }), {
    auth: [{ username: "a", allow: true }],
  });
});

Deno.test("AuthHook init errors make addHook fail with the message (path, data, config)", async () => {
  const path = await Deno.makeTempFile({ suffix: ".yaml" });
  try {
    await Deno.writeTextFile(
      path,
      `auth:\n  - username: a\n    allow: true\nacl:\n  - filters:\n      x: Nope\n`,
    );
    const server = new Server();
    await assert.rejects(server.addHook(new AuthHook(), { path }), (error: Error) => {
      assert.ok(
        error.message.startsWith(`Bad auth rules in ${path} at line 6, field acl[0].filters["x"]:`),
        error.message,
      );
      return true;
    });
    await assert.rejects(
      server.addHook(new AuthHook(), { data: "acl: [{ filters: 3 }]" }),
      /in data at line 1, field acl\[0\]\.filters: expected a map/,
    );
    await assert.rejects(server.addHook(new AuthHook(), { data: "x", path }), /one of ledger, data or path/);
    await assert.rejects(
      server.addHook(new AuthHook(), { file: path }),
      /Unknown AuthHook config key "file"/,
    );
    await assert.rejects(
      server.addHook(new AuthHook(), { path: path + ".missing" }),
      /No such file|not found/i,
    );
    await Deno.writeTextFile(path, `auth:\n  - username: a\n    allow: true\n`);
    const hook = new AuthHook();
    await server.addHook(hook, { path });
    assert.equal(hook.ledger.auth?.length, 1);
    await server.close();
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("filterCovers and filtersOverlap follow the topic matching rules", () => {
  const covers: [string, string, boolean][] = [
    ["#", "a/b", true],
    ["#", "#", true],
    ["a/#", "a", true],
    ["a/#", "a/#", true],
    ["a/#", "a/+/b", true],
    ["a/+", "a/b", true],
    ["a/+", "a/+", true],
    ["a/+", "a/#", false],
    ["a/+", "a/b/c", false],
    ["a/+/#", "a/+", true],
    ["a/+/#", "a/#", false],
    ["+/#", "a", true],
    ["a/b", "a/+", false],
    ["a", "a/#", false],
    ["#", "$SYS/x", false],
    ["+/x", "$SYS/x", false],
    ["$SYS/#", "$SYS/x/+", true],
    ["$SYS/#", "#", false],
  ];
  for (const [outer, inner, want] of covers) {
    assert.equal(filterCovers(outer, inner), want, `${outer} covers ${inner}`);
  }
  const overlaps: [string, string, boolean][] = [
    ["#", "a", true],
    ["+/x", "updates/#", true],
    ["a/+", "b/#", false],
    ["a/b", "a", false],
    ["a/#", "a", true],
    ["a/+/c", "a/b/+", true],
    ["a/+/c", "a/b/d", false],
    ["+", "a/b", false],
    ["#", "$SYS/#", false],
    ["+/#", "$SYS/x", false],
    ["$SYS/+", "$SYS/#", true],
  ];
  for (const [a, b, want] of overlaps) {
    assert.equal(filtersOverlap(a, b), want, `${a} overlaps ${b}`);
    assert.equal(filtersOverlap(b, a), want, `${b} overlaps ${a}`);
  }
});

Deno.test("CompiledLedger: the most specific filter decides, whatever the written order", () => {
  for (
    const filters of [
      { "#": 1, "updates/#": 0, "updates/public/#": 3, "updates/+/x": 2 },
      { "updates/+/x": 2, "updates/public/#": 3, "updates/#": 0, "#": 1 },
    ] as const
  ) {
    const rules = new CompiledLedger({ acl: [{ filters }] });
    assert.equal(rules.checkACL(who, "news", false), true);
    assert.equal(rules.checkACL(who, "news", true), false);
    assert.equal(rules.checkACL(who, "updates/x", false), false);
    assert.equal(rules.checkACL(who, "updates/public/y", true), true);
    // updates/public/# and updates/+/x both have two literal levels: the one without # wins.
    assert.equal(rules.checkACL(who, "updates/public/x", false), false);
    assert.equal(rules.checkACL(who, "updates/public/x", true), true);
    assert.equal(rules.checkACL(who, "updates/other/x", true), true);
    assert.equal(rules.checkACL(who, "updates/other/x", false), false);
  }
  // Same literal levels: without # beats with #; then fewer +; then longer.
  const tie = new CompiledLedger({
    acl: [{ filters: { "a/#": 3, "a/+": 0, "a/+/+": 1, "a/b/+": 2, "a/+/c": 0 } }],
  });
  assert.equal(tie.checkACL(who, "a/x", true), false); // a/+ over a/#
  assert.equal(tie.checkACL(who, "a/x/y", false), true); // a/+/+ over a/#
  assert.equal(tie.checkACL(who, "a/b/c", true), true); // a/b/+ and a/+/c tie on every count: first written
  assert.equal(tie.checkACL(who, "a/x/y/z", true), true); // only a/# matches
});

Deno.test("CompiledLedger: rule order, fall-through and the default allow", () => {
  const rules = new CompiledLedger({
    acl: [
      { username: "u", filters: { "a/#": "ReadWrite" } },
      { client: "c*", filters: { "a/b": "Deny", "b/#": "Deny" } },
      { remote: "10.*" },
    ],
  });
  assert.equal(rules.checkACL(who, "a/b", true), true); // first rule decides
  assert.equal(rules.checkACL(who, "b/x", true), false); // first rule has no filter for it: second decides
  assert.equal(rules.checkACL(who, "c", true), true); // nothing decides: allowed
  assert.equal(rules.checkACL({ ...who, username: "v" }, "a/b", true), false);
  assert.equal(
    rules.checkACL({ ...who, username: "v", clientId: "x", remote: "10.0.0.1:1" }, "a/b", true),
    true,
  );
});

Deno.test("CompiledLedger: partial overlaps of a subscription", () => {
  const rules = new CompiledLedger({
    acl: [{ filters: { "a/b": "ReadOnly", "a/secret": "Deny" } }, { filters: { "#": "Deny" } }],
  });
  // a/+ is not covered by a/b: the first rule does not decide, the second denies.
  assert.equal(rules.checkACL(who, "a/+", false), false);
  const open = new CompiledLedger({ acl: [{ filters: { "a/b": "ReadOnly" } }] });
  assert.equal(open.checkACL(who, "a/+", false), true); // default allow for the rest
  const secret = new CompiledLedger({ acl: [{ filters: { "a/secret": "Deny" } }] });
  assert.equal(secret.checkACL(who, "a/+", false), false); // would receive a/secret
  assert.equal(secret.checkACL(who, "$share/g/a/+", false), false);
  assert.equal(secret.checkACL(who, "a/public", false), true);
});

Deno.test("CompiledLedger: patterns with *, exact, empty and absent", async () => {
  const rules = new CompiledLedger({
    auth: [
      { client: "", allow: false },
      { username: "", password: "", allow: true },
      { client: "a*b*c", allow: true },
      { remote: "*:1883", password: "*", allow: true },
      { username: "exact.name", password: "pw", allow: true },
    ],
  });
  const auth = (id: Partial<Identity>, password?: string) =>
    rules.authenticate({ ...who, ...id }, password === undefined ? undefined : bytes(password));
  assert.equal(await auth({ username: "" }), true); // empty matches only empty
  assert.equal(await auth({ username: "" }, "x"), false);
  assert.equal(await auth({ clientId: "aXbYc" }), true);
  assert.equal(await auth({ clientId: "abc" }), true);
  assert.equal(await auth({ clientId: "aXbYcZ" }), false);
  assert.equal(await auth({ remote: "1.2.3.4:1883" }, "anything"), true);
  assert.equal(await auth({ username: "exact.name" }, "pw"), true);
  assert.equal(await auth({ username: "exactXname" }, "pw"), false); // "." is not a wildcard
});

Deno.test("CompiledLedger: a hashed auth rule that does not match falls through in order", async () => {
  const rules = new CompiledLedger({
    auth: [
      {
        username: "u",
        password: await hashPassword("one", { algorithm: "pbkdf2-sha256", cost: 10 }),
        allow: true,
      },
      { username: "u", password: "two", allow: false },
      { username: "u", password: "*", allow: true },
    ],
  });
  const result = rules.authenticate(who, bytes("one"));
  assert.ok(result instanceof Promise);
  assert.equal(await result, true);
  assert.equal(await rules.authenticate(who, bytes("two")), false);
  assert.equal(await rules.authenticate(who, bytes("three")), true);
});

Deno.test("hashPassword and verifyPassword round-trip every algorithm", async () => {
  for (
    const [algorithm, cost, prefix] of [
      ["bcrypt", 4, "$2b$04$"],
      ["scrypt", 1024, "scrypt$1024$8$1$"],
      ["pbkdf2-sha256", 100, "pbkdf2-sha256$100$"],
      ["pbkdf2-sha512", 100, "pbkdf2-sha512$100$"],
    ] as const
  ) {
    const hash = await hashPassword("pässwörd", { algorithm, cost });
    assert.ok(hash.startsWith(prefix), hash);
    const stored = parseStoredPassword(hash);
    assert.equal(await verifyPassword(stored, "pässwörd"), true, algorithm);
    assert.equal(await verifyPassword(stored, "passwörd"), false, algorithm);
    assert.equal(await verifyPassword(stored, new Uint8Array([0xff, 0xfe])), false, algorithm);
  }
  await assert.rejects(hashPassword("x", { algorithm: "scrypt", cost: 1000 }), RangeError);
  await assert.rejects(hashPassword("x", { algorithm: "bcrypt", cost: 3 }), RangeError);
});

Deno.test("verifyPassword: plain text, the plain$ prefix, and known vectors", async () => {
  assert.equal(verifyPassword(parseStoredPassword("secret"), "secret"), true);
  assert.equal(verifyPassword(parseStoredPassword("secret"), "secret2"), false);
  assert.equal(verifyPassword(parseStoredPassword("plain$$2b$not-a-hash"), "$2b$not-a-hash"), true);
  // PBKDF2-HMAC-SHA256, password "password", salt "salt", 1 iteration (RFC 7914 section 11).
  const pbkdf2 = "pbkdf2-sha256$1$c2FsdA$Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs=";
  assert.equal(await verifyPassword(parseStoredPassword(pbkdf2), "password"), true);
  // scrypt test vector from RFC 7914: P="password", S="NaCl", N=1024, r=8, p=16, dkLen=64.
  const scrypt =
    "scrypt$1024$8$16$TmFDbA$/bq+HJ00cgB4VucZDQHp/nxq18vII3gw53N2Y0s3MWIurzDZLiKjiG/xCSedmDDaxyevuUqD7m2DYMvfoswGQA==";
  assert.equal(await verifyPassword(parseStoredPassword(scrypt), "password"), true);
  // bcrypt vector (OpenBSD): "U*U" with salt "CCCCCCCCCCCCCCCCCCCCC.", cost 5.
  const bcrypt = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
  assert.equal(await verifyPassword(parseStoredPassword(bcrypt), "U*U"), true);
  assert.equal(await verifyPassword(parseStoredPassword(bcrypt.replace("$2a$", "$2y$")), "U*U"), true);
});
