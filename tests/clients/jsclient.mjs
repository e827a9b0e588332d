// Runs AWS SDK for JavaScript v3 calls for the clients tier (fixture.py).
//
// Reads one JSON request a line on stdin:
//   {id, service: "ec2"|"sts", op: "DescribeKeyPairs", input: {...},
//    endpoint, region, accessKeyId, secretAccessKey, pageSize}
// and writes one JSON line per request on stdout:
//   {id, ok: output}                  (pageSize: ok is the list of pages)
//   {id, error: {name, Code, message, fault, status, attempts}}
// A value {"$bytes": BASE64} in the input becomes a Uint8Array (blobs).
// With "shapes": true the reply also has {shape}: the output with every
// leaf replaced by what the SDK parsed it as ("string", "number",
// "boolean", "date", "invalid-date", "blob", "null"), for type checks.
// With "waiter": "InstanceStopped" the request runs the SDK's
// waitUntilInstanceStopped (maxWait seconds, default 60; delays 1-2 s)
// and ok is {state, reason} of its result.
// Clients are made once per (service, endpoint, key) with maxAttempts 1.
// Exits when stdin closes.
import * as ec2 from "@aws-sdk/client-ec2";
import * as sts from "@aws-sdk/client-sts";
import readline from "node:readline";

const modules = {
  ec2: { mod: ec2, Client: ec2.EC2Client },
  sts: { mod: sts, Client: sts.STSClient },
};
const clients = new Map();

function clientFor(req) {
  const key = [req.service, req.endpoint, req.region, req.accessKeyId,
    req.secretAccessKey].join("\u0000");
  let c = clients.get(key);
  if (!c) {
    c = new modules[req.service].Client({
      region: req.region,
      endpoint: req.endpoint,
      credentials: {
        accessKeyId: req.accessKeyId,
        secretAccessKey: req.secretAccessKey,
      },
      maxAttempts: 1,
    });
    clients.set(key, c);
  }
  return c;
}

function revive(v) {
  if (Array.isArray(v)) return v.map(revive);
  if (v && typeof v === "object") {
    if (typeof v.$bytes === "string" && Object.keys(v).length === 1)
      return new Uint8Array(Buffer.from(v.$bytes, "base64"));
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = revive(x);
    return out;
  }
  return v;
}

function strip(output) {
  const { $metadata, ...rest } = output;
  return rest;
}

function shapeOf(v) {
  if (v === null || v === undefined) return "null";
  if (v instanceof Date) return isNaN(v.getTime()) ? "invalid-date" : "date";
  if (v instanceof Uint8Array) return "blob";
  if (Array.isArray(v)) return v.map(shapeOf);
  if (typeof v === "object") {
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = shapeOf(x);
    return out;
  }
  return typeof v;
}

async function wait(req, m, client, input) {
  const waitUntil = m.mod[`waitUntil${req.waiter}`];
  if (!waitUntil) throw new Error(`no waiter ${req.waiter}`);
  const r = await waitUntil({ client, maxWaitTime: req.maxWait || 60,
    minDelay: 1, maxDelay: 2 }, input);
  return { state: r.state, reason: r.reason === undefined ? null
    : JSON.parse(JSON.stringify(r.reason, (k, x) =>
      k === "$metadata" ? undefined : x)) };
}

async function run(req) {
  const m = modules[req.service];
  if (!m) throw new Error(`no service ${req.service}`);
  const client = clientFor(req);
  const input = revive(req.input || {});
  if (req.waiter) return wait(req, m, client, input);
  if (req.pageSize) {
    const paginate = m.mod[`paginate${req.op}`];
    if (!paginate) throw new Error(`no paginator for ${req.op}`);
    const pages = [];
    for await (const page of paginate(
      { client, pageSize: req.pageSize }, input)) {
      pages.push(strip(page));
      if (pages.length > 1000) throw new Error("more than 1000 pages");
    }
    return pages;
  }
  const Command = m.mod[`${req.op}Command`];
  if (!Command) throw new Error(`no command ${req.op}`);
  return strip(await client.send(new Command(input)));
}

const rl = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
rl.on("line", (line) => {
  if (!line.trim()) return;
  queue = queue.then(async () => {
    let req;
    try {
      req = JSON.parse(line);
      const ok = await run(req);
      const reply = { id: req.id, ok };
      if (req.shapes) reply.shape = shapeOf(ok);
      process.stdout.write(JSON.stringify(reply) + "\n");
    } catch (err) {
      process.stdout.write(JSON.stringify({
        id: req && req.id,
        error: {
          name: err.name,
          Code: err.Code,
          message: err.message,
          fault: err.$fault,
          status: err.$metadata && err.$metadata.httpStatusCode,
          attempts: err.$metadata && err.$metadata.attempts,
          stack: err.$fault ? undefined : String(err.stack).slice(0, 1500),
        },
      }) + "\n");
    }
  });
});
rl.on("close", () => {
  queue.then(() => process.exit(0));
});
