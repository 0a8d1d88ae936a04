// A minimal Aedes broker on a TCP port, for `deno task bench --compare`. Run with Node:
//   AEDES_DIR=~/.cache/x-broker-bench/aedes node bench/aedes_server.mjs 127.0.0.1 1883
// Aedes is imported from AEDES_DIR (installed there by bench/brokers.ts), not from the repository.
import net from "node:net";
import process from "node:process";
import { pathToFileURL } from "node:url";

const [host = "127.0.0.1", port = "1883"] = process.argv.slice(2);
const dir = process.env.AEDES_DIR;
if (!dir) throw new Error("AEDES_DIR is not set");
const { Aedes } = await import(pathToFileURL(`${dir}/node_modules/aedes/aedes.js`).href);
const broker = await Aedes.createBroker();
const server = net.createServer({ noDelay: true }, broker.handle);
server.listen(Number(port), host, () => console.log(`aedes listening on ${host}:${port}`));
const stop = () => server.close(() => broker.close(() => process.exit(0)));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
