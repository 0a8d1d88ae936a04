/**
 * playwright-core, which drives Chromium in the browser tests. Imported here by specifier (and
 * locked in tests/deno.lock) instead of in deno.json's import map, so that it never reaches a
 * user's install of the broker.
 *
 * @module
 */

export { type BrowserContext, chromium, type Page } from "npm:playwright-core@^1.65.1";
