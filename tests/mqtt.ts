/**
 * MQTT.js, the real client the tests use. Test-only packages are imported here by specifier (and
 * locked in tests/deno.lock) instead of in deno.json's import map, so that they never reach a
 * user's install of the broker.
 *
 * @module
 */

export { default } from "npm:mqtt@^5.16.0";
