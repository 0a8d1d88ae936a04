// A minimal Aedes broker on a TCP port, for `deno task bench --compare`. Run with Node:
//   AEDES_DIR=~/.cache/x-broker-bench/aedes node bench/aedes_server.mjs 127.0.0.1 1883
// Aedes is imported from AEDES_DIR (installed there by bench/brokers.ts), not from the repository.
// With AEDES_REDIS=host:port (`deno task bench --cluster`), it is clustered the way Aedes documents:
// messages between processes through mqemitter-redis, sessions, subscriptions and retained messages in
// aedes-persistence-redis (both installed into AEDES_DIR too).
import net from "node:net";
import process from "node:process";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const [host = "127.0.0.1", port = "1883"] = process.argv.slice(2);
const dir = process.env.AEDES_DIR;
if (!dir) throw new Error("AEDES_DIR is not set");
const { Aedes } = await import(pathToFileURL(`${dir}/node_modules/aedes/aedes.js`).href);
const options = {};
const redis = process.env.AEDES_REDIS;
if (redis) {
  const require = createRequire(`${dir}/package.json`);
  const [redisHost, redisPort] = redis.split(":");
  const connection = { host: redisHost, port: Number(redisPort) };
  options.mq = require("mqemitter-redis")(connection);
  options.persistence = require("aedes-persistence-redis")(connection);
}
const broker = await Aedes.createBroker(options);
const server = net.createServer({ noDelay: true }, broker.handle);
server.listen(Number(port), host, () => console.log(`aedes listening on ${host}:${port}`));
const stop = () => server.close(() => broker.close(() => process.exit(0)));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
