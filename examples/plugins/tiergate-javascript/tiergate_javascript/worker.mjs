// tiergate's JavaScript worker. Two modes:
//   node worker.mjs check CODE                 -> prints {"ok": true} or {"ok": false, "error", "line"}
//   node worker.mjs run FUNCTION_ID CODE R W    -> answers call frames on fds R/W until EOF
// A frame is: u32 length | u32 id | u32 meta length | meta (JSON) | data (raw bytes);
// `length` counts everything after itself. The first frame sent (id 0) says "ready".
import fs from "node:fs";
import net from "node:net";
import util from "node:util";
import { pathToFileURL } from "node:url";

const [mode, ...args] = process.argv.slice(2);

async function loadHandler(path) {
  const module = await import(pathToFileURL(path).href);
  if (typeof module.default !== "function") {
    throw new TypeError("the module has no `export default function handler(event, context)`");
  }
  return module.default;
}

function lineOf(error, path) {
  const match = String(error && error.stack).match(new RegExp(`${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:(\\d+)`));
  return match ? Number(match[1]) : null;
}

if (mode === "check") {
  const path = args[0];
  try {
    await loadHandler(path);
    console.log(JSON.stringify({ ok: true }));
  } catch (error) {
    const line = lineOf(error, path);
    console.log(JSON.stringify({ ok: false, error: `${error.name}: ${error.message}`, line }));
  }
  process.exit(0);
}

const [functionId, path, readFd, writeFd] = args;
const write = (buffer) => {
  let offset = 0;
  while (offset < buffer.length) offset += fs.writeSync(Number(writeFd), buffer, offset);
};
const frame = (id, meta, data = Buffer.alloc(0)) => {
  const raw = Buffer.from(JSON.stringify(meta));
  const head = Buffer.alloc(12);
  head.writeUInt32BE(8 + raw.length + data.length, 0);
  head.writeUInt32BE(id, 4);
  head.writeUInt32BE(raw.length, 8);
  return Buffer.concat([head, raw, data]);
};

let handler = null;
let importError = null;
try {
  handler = await loadHandler(path);
} catch (error) {
  importError = `importing the module failed: ${error.name}: ${error.message}`;
}

async function call(meta, data) {
  const [executionId, traceId, deadline, secrets] = meta;
  const logs = [];
  if (importError) return [["failed", importError, logs], null];
  const capture = (stream, level) => (...parts) =>
    logs.push([Date.now() / 1000, stream, util.format(...parts), level]);
  const saved = { ...console };
  Object.assign(console, {
    log: capture("stdout", null), info: capture("stdout", "INFO"), debug: capture("stdout", "DEBUG"),
    warn: capture("stderr", "WARNING"), error: capture("stderr", "ERROR"),
  });
  const context = {
    functionId, executionId, traceId, secrets,
    function_id: functionId, execution_id: executionId, trace_id: traceId,
    remainingTimeMs: () => Math.max(0, Math.round(deadline * 1000 - Date.now())),
  };
  context.remaining_time_ms = context.remainingTimeMs;
  try {
    const result = await handler(JSON.parse(data.toString("utf8")), context);
    const text = JSON.stringify(result === undefined ? null : result);
    if (text === undefined) return [["failed", "output is not JSON-serialisable", logs], null];
    return [["ok", logs], Buffer.from(text)];
  } catch (error) {
    logs.push([Date.now() / 1000, "stderr", String(error && error.stack || error), "ERROR"]);
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    return [["failed", message, logs], null];
  } finally {
    Object.assign(console, saved);
  }
}

write(frame(0, ["ready", false]));
let buffer = Buffer.alloc(0);
let busy = Promise.resolve();
// A libuv pipe stream, not fs.createReadStream: that one blocks a threadpool thread in read(),
// and process.exit() then waits for it forever.
const input = new net.Socket({ fd: Number(readFd), readable: true, writable: false });
input.on("data", (chunk) => {
  buffer = Buffer.concat([buffer, chunk]);
  while (buffer.length >= 12) {
    const length = buffer.readUInt32BE(0);
    if (buffer.length < 4 + length) break;
    const id = buffer.readUInt32BE(4);
    const metaLength = buffer.readUInt32BE(8);
    const meta = JSON.parse(buffer.subarray(12, 12 + metaLength).toString("utf8"));
    const data = Buffer.from(buffer.subarray(12 + metaLength, 4 + length));
    buffer = buffer.subarray(4 + length);
    busy = busy.then(async () => {
      const [answer, output] = await call(meta, data);
      write(frame(id, answer, output || Buffer.alloc(0)));
    });
  }
});
input.on("end", () => busy.then(() => process.exit(0)));
