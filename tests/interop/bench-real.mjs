// Front-door latency against the REAL gateway: the same client, one RPC at a time, straight to
// `openclaw gateway run` (openclaw@2026.9.6) and through clawgate (`serve --upstream ws://…`) in front
// of it; prints p50/p99 of each path and what the hop adds.
//
//   BENCH_NODE_BIN        Node 24 binary (the gateway runs on it; default: this node)
//   BENCH_OPENCLAW_MJS    node_modules/openclaw/openclaw.mjs
//   CLAWGATE_BIN          the clawgate binary
//   BENCH_WORKDIR         scratch folder (default: a new temp folder)
//   BENCH_N               measured round trips per path (default 1000)
//   BENCH_WARMUP          unmeasured round trips per path first (default 200), alternating between the
//                         paths for at least BENCH_WARMUP_SECS (default 5: the gateway finishes its own
//                         start-up work after it first answers)
//   BENCH_BLOCKS          the N round trips alternate between the paths in this many blocks (default 5)
//   BENCH_METHOD          the RPC (default health; status and commands.list also answer offline), or
//                         node.invoke: a scripted node (role node, `system.which`, its surface approved)
//                         answers every invoke at once, and the operator's `node.invoke` is timed
//
// Normally started by scripts/bench-real-upstream.sh, inside a network namespace that has only `lo`;
// the gateway gets the same offline env and guard preload as in the interop suite (interop.mjs).
// Last line of output: one JSON object with the figures. Every process it starts is killed on exit.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { freePort, httpGetStatus, killGroup, makeBaseEnv, newDevice, sleep, tail, WsClient } from './lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const NODE_BIN = process.env.BENCH_NODE_BIN || process.execPath;
const OC_MJS = process.env.BENCH_OPENCLAW_MJS || '';
const CLAWGATE_BIN = process.env.CLAWGATE_BIN || '';
const GUARD = path.join(HERE, 'guard.cjs');
const TOKEN = 'bench-token-0123456789abcdef';
const N = Number(process.env.BENCH_N || 1000);
const WARMUP = Number(process.env.BENCH_WARMUP || 200);
const WARMUP_SECS = Number(process.env.BENCH_WARMUP_SECS ?? 5);
const BLOCKS = Math.max(1, Number(process.env.BENCH_BLOCKS || 5));
const METHOD = (process.env.BENCH_METHOD || 'health').trim();
const WORK = process.env.BENCH_WORKDIR || fs.mkdtempSync(path.join(os.tmpdir(), 'clawgate-bench-real-'));
fs.mkdirSync(WORK, { recursive: true });
const CLI_BASE_CONFIG = { update: { checkOnStart: false }, telemetry: { enabled: false } };
const log = (...a) => console.log(...a);

if (!OC_MJS || !fs.existsSync(OC_MJS)) fatal(`openclaw CLI not found (BENCH_OPENCLAW_MJS=${OC_MJS || 'unset'})`);
if (!CLAWGATE_BIN || !fs.existsSync(CLAWGATE_BIN)) fatal(`clawgate binary not found (CLAWGATE_BIN=${CLAWGATE_BIN || 'unset'})`);
// The `ws` package of the openclaw install (the client the real CLI uses).
const wsLib = createRequire(OC_MJS)('ws');
const WebSocket = wsLib.WebSocket || wsLib;

// ---------------------------------------------------------------------------------------------
// processes (each in its own process group; all killed on exit)
const children = new Set();
async function stopAll() {
  for (const c of children) killGroup(c.pid, 'SIGTERM');
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && children.size) await sleep(100);
  for (const c of children) killGroup(c.pid, 'SIGKILL');
}
process.on('exit', () => { for (const c of children) killGroup(c.pid, 'SIGKILL'); });
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, async () => { await stopAll(); process.exit(1); });
function fatal(msg) { console.error(`bench-real: ERROR: ${msg}`); process.exit(1); }

// The interop suite's environment for OpenClaw processes (lib.mjs).
const baseEnv = makeBaseEnv({ nodeBin: NODE_BIN, ocMjs: OC_MJS, guard: GUARD, guardLog: path.join(WORK, 'guard.log') });

// Spawn `cmd args` with its output in <dir>/<name>.log; resolves once `ready()` gives a port whose
// /healthz answers 200 (bounded by `timeoutMs`).
async function startServer(name, cmd, args, { env, cwd, timeoutMs, port: knownPort, readPort }) {
  const logFile = path.join(WORK, `${name}.log`);
  const fd = fs.openSync(logFile, 'a');
  fs.writeSync(fd, `$ ${cmd} ${args.join(' ')}\n`);
  const child = spawn(cmd, args, { env, cwd, detached: true, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  const rec = { pid: child.pid };
  children.add(rec);
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; children.delete(rec); });
  child.on('error', (e) => { exited = { error: e.message }; });
  const started = Date.now();
  let port = knownPort;
  while (Date.now() - started < timeoutMs) {
    if (exited) throw new Error(`${name} exited during startup (${JSON.stringify(exited)})\nlog tail:\n${tail(logFile)}`);
    if (!port && readPort) port = readPort();
    if (port && (await httpGetStatus(port)) === 200) return { name, port, url: `ws://127.0.0.1:${port}`, logFile, startMs: Date.now() - started };
    await sleep(250);
  }
  throw new Error(`${name} not ready within ${timeoutMs} ms\nlog tail:\n${tail(logFile)}`);
}

// The real gateway, as interop.mjs starts it (startGateway, kind 'openclaw').
async function startUpstream() {
  const home = path.join(WORK, 'upstream', 'home');
  const stateDir = path.join(home, '.openclaw');
  fs.mkdirSync(stateDir, { recursive: true });
  const port = await freePort();
  const configPath = path.join(stateDir, 'openclaw.json');
  const cfg = { gateway: { mode: 'local', bind: 'loopback', port, auth: { mode: 'token', token: TOKEN } }, ...CLI_BASE_CONFIG };
  fs.writeFileSync(configPath, JSON.stringify(cfg, null, 2) + '\n');
  const args = [OC_MJS, 'gateway', 'run', '--port', String(port), '--bind', 'loopback', '--allow-unconfigured'];
  const env = baseEnv({ HOME: home, OPENCLAW_STATE_DIR: stateDir, OPENCLAW_CONFIG_PATH: configPath });
  const gw = await startServer('upstream', NODE_BIN, args, { env, cwd: home, timeoutMs: 120000, port });
  return { ...gw, configPath };
}

// clawgate in front of it, as interop.mjs starts it (startGateway, kind 'frontdoor'): it reads the
// real gateway's openclaw.json (its token) and keeps its own settings in its own clawgate.json.
async function startFrontDoor(upstream) {
  const dir = path.join(WORK, 'clawgate');
  const stateDir = path.join(dir, 'state');
  fs.mkdirSync(stateDir, { recursive: true });
  const ownPath = path.join(dir, 'clawgate.json');
  fs.writeFileSync(ownPath, JSON.stringify({ gateway: {} }, null, 2) + '\n');
  const args = ['serve', '--config', upstream.configPath, '--clawgate-config', ownPath, '--state-dir', stateDir,
    '--port', '0', '--bind', '127.0.0.1', '--admin-port', '0', '--upstream', upstream.url];
  const env = baseEnv();
  delete env.NODE_OPTIONS;
  for (const k of Object.keys(env)) if (k.startsWith('CLAWGATE_')) delete env[k];
  const runtimeFile = path.join(stateDir, 'runtime.json');
  const readPort = () => {
    try {
      const m = /^127\.0\.0\.1:(\d+)$/.exec(String(JSON.parse(fs.readFileSync(runtimeFile, 'utf8')).gatewayAddr || ''));
      return m ? Number(m[1]) : undefined;
    } catch { return undefined; }
  };
  return startServer('clawgate', CLAWGATE_BIN, args, { env, cwd: dir, timeoutMs: 30000, readPort });
}

// ---------------------------------------------------------------------------------------------
// Connect (retrying while the gateway answers "starting"), then call METHOD until it answers ok.
async function ready(name, url) {
  const deadline = Date.now() + 90000;
  let last;
  for (;;) {
    try {
      const c = await WsClient.open(WebSocket, url);
      const hello = await c.connect(TOKEN, newDevice());
      if (hello.ok) {
        for (;;) {
          last = await c.request(METHOD, {});
          if (last.ok) return c;
          if (Date.now() > deadline) break;
          await sleep(250);
        }
        c.close();
        throw new Error(`${METHOD} answered ${JSON.stringify(last.error)}`);
      }
      last = hello.error;
      c.close();
    } catch (e) { last = e.message; }
    if (Date.now() > deadline) throw new Error(`${name}: not answering ${METHOD} within 90 s: ${typeof last === 'string' ? last : JSON.stringify(last)}`);
    await sleep(500);
  }
}

// node.invoke: a scripted node on `url` (its device paired, its surface approved there) that answers
// each node.invoke.request at once, and an operator session; resolves with {op, nodeId, close}.
async function nodeReady(name, url) {
  const deadline = Date.now() + 90000;
  const opDev = newDevice(), nodeDev = newDevice();
  for (;;) {
    const op = await WsClient.open(WebSocket, url);
    const hello = await op.connect(TOKEN, opDev, ['operator.admin', 'operator.write', 'operator.pairing', 'operator.read']);
    if (hello.ok) {
      const node = await WsClient.open(WebSocket, url);
      const nh = await node.connectAs({
        token: TOKEN, device: nodeDev, role: 'node', scopes: [],
        client: { id: 'node-host', mode: 'node', displayName: 'bench-node', deviceFamily: 'Linux' },
        extra: { caps: ['system'], commands: ['system.which'] },
      });
      if (!nh.ok) throw new Error(`${name}: the scripted node was refused: ${JSON.stringify(nh.error)}`);
      node.onEvent = (f) => {
        if (f.event !== 'node.invoke.request') return;
        const { id, nodeId } = f.payload;
        node.ws.send(JSON.stringify({ type: 'req', id: `r-${id}`, method: 'node.invoke.result',
          params: { id, nodeId, ok: true, payloadJSON: '{"bins":{"sh":"/usr/bin/sh"}}' } }));
      };
      // its surface request (the node id as this path shows it), approved
      let row;
      while (!row && Date.now() < deadline) {
        const l = await op.request('node.pair.list', {});
        row = (l.payload?.pending || []).find((x) => x.displayName === 'bench-node');
        if (!row) await sleep(200);
      }
      if (!row) throw new Error(`${name}: no surface request for the scripted node`);
      const ap = await op.request('node.pair.approve', { requestId: row.requestId });
      if (!ap.ok) throw new Error(`${name}: node.pair.approve: ${JSON.stringify(ap.error)}`);
      const t = { op, nodeId: row.nodeId, close: () => { op.close(); node.close(); } };
      for (;;) {
        const r = await invoke(t);
        if (r.ok) return t;
        if (Date.now() > deadline) throw new Error(`${name}: node.invoke answered ${JSON.stringify(r.error)}`);
        await sleep(250);
      }
    }
    op.close();
    if (Date.now() > deadline) throw new Error(`${name}: operator refused: ${JSON.stringify(hello.error)}`);
    await sleep(500);
  }
}
let invokeSeq = 0;
function invoke(t) {
  return t.op.request('node.invoke', { nodeId: t.nodeId, command: 'system.which', params: { bins: ['sh'] }, idempotencyKey: `bench-${++invokeSeq}`, timeoutMs: 10000 });
}
const NODE_MODE = METHOD === 'node.invoke';
const call = (t) => (NODE_MODE ? invoke(t) : t.request(METHOD, {}));

async function roundTrips(c, n, out) {
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    const r = await call(c);
    const dt = Number(process.hrtime.bigint() - t) / 1e6;
    if (!r.ok) throw new Error(`${METHOD} failed: ${JSON.stringify(r.error)}`);
    if (out) out.push(dt);
  }
}

function stats(v) {
  const s = [...v].sort((a, b) => a - b);
  const pct = (p) => s[Math.min(Math.max(Math.ceil((p / 100) * s.length), 1), s.length) - 1];
  const r3 = (x) => Math.round(x * 1000) / 1000;
  return { n: s.length, p50_ms: r3(pct(50)), p99_ms: r3(pct(99)), max_ms: r3(s[s.length - 1]) };
}

async function main() {
  log(`bench-real: workdir ${WORK}`);
  const upstream = await startUpstream();
  const ocVersion = JSON.parse(fs.readFileSync(path.join(path.dirname(OC_MJS), 'package.json'), 'utf8')).version;
  log(`bench-real: the real gateway (openclaw ${ocVersion}) up at ${upstream.url} after ${(upstream.startMs / 1000).toFixed(1)} s`);
  const front = await startFrontDoor(upstream);
  log(`bench-real: clawgate up at ${front.url} in front of it after ${(front.startMs / 1000).toFixed(1)} s`);
  const direct = NODE_MODE ? await nodeReady('upstream', upstream.url) : await ready('upstream', upstream.url);
  const via = NODE_MODE ? await nodeReady('clawgate', front.url) : await ready('clawgate', front.url);
  const warm = Date.now() + WARMUP_SECS * 1000;
  for (let i = 0; i < WARMUP || Date.now() < warm; i++) {
    await roundTrips(direct, 1);
    await roundTrips(via, 1);
  }
  const d = [], v = [];
  const per = Math.ceil(N / BLOCKS);
  for (let b = 0; b < BLOCKS; b++) {
    const n = Math.min(per, N - b * per);
    await roundTrips(direct, n, d);
    await roundTrips(via, n, v);
  }
  const bytes = NODE_MODE ? { direct: direct.op.lastBytes, via: via.op.lastBytes } : { direct: direct.lastBytes, via: via.lastBytes };
  direct.close();
  via.close();
  const ds = stats(d), vs = stats(v);
  const us = (x) => Math.round(x * 1000 * 10) / 10;
  const addedP50 = us(vs.p50_ms - ds.p50_ms), addedP99 = us(vs.p99_ms - ds.p99_ms);
  log(`\nRPC ${METHOD}: ${N} round trips per path (${BLOCKS} alternating blocks, after ≥ ${WARMUP} warm-up each and ≥ ${WARMUP_SECS} s), one connection per path; the answer is ${bytes.direct} bytes direct, ${bytes.via} via clawgate`);
  log('RPC round trip   count     p50 ms   p99 ms   max ms');
  const row = (name, s) => log(`  ${name.padEnd(12)} ${String(s.n).padStart(7)}   ${s.p50_ms.toFixed(3).padStart(8)} ${s.p99_ms.toFixed(3).padStart(8)} ${s.max_ms.toFixed(3).padStart(8)}`);
  row('direct', ds);
  row('via clawgate', vs);
  log(`  added by clawgate: p50 ${addedP50.toFixed(1)} µs, p99 ${addedP99.toFixed(1)} µs`);
  log(JSON.stringify({ bench: 'relay-real-upstream', method: METHOD, response_bytes: bytes, direct: ds, via: vs, added_p50_us: addedP50, added_p99_us: addedP99 }));
}

main().then(async () => { await stopAll(); process.exit(0); }, async (e) => {
  console.error(`bench-real: ERROR: ${e.message}`);
  await stopAll();
  process.exit(1);
});
