// Shared by the interop drivers (interop.mjs, bench-real.mjs): the offline environment every real
// OpenClaw process gets, small process/HTTP helpers, and a minimal gateway WebSocket client that does
// the real handshake (an Ed25519 device identity, a v3 signature over the challenge nonce).
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

// The environment for OpenClaw processes: none of the caller's OPENCLAW_*/CLAWDBOT_* (nor CI=true, so
// the CLI behaves the same on a developer machine and in CI), the loopback-only guard preloaded,
// updates/telemetry/bonjour off. `extra` overrides.
export function makeBaseEnv({ nodeBin, ocMjs, guard, guardLog }) {
  return function baseEnv(extra = {}) {
    const env = { ...process.env };
    for (const k of Object.keys(env)) {
      if (k.startsWith('OPENCLAW_') || k.startsWith('CLAWDBOT_') || k === 'NODE_OPTIONS' || k === 'CI') delete env[k];
    }
    Object.assign(env, {
      PATH: `${path.dirname(nodeBin)}:${process.env.PATH || '/usr/bin:/bin'}`,
      NODE_OPTIONS: `--require ${guard}`,
      NODE_PATH: ocMjs ? path.join(path.dirname(ocMjs), '..') : '',
      OPENCLAW_NO_AUTO_UPDATE: '1',
      DO_NOT_TRACK: '1',
      OPENCLAW_DISABLE_BONJOUR: '1',
      NO_COLOR: '1',
      FORCE_COLOR: '0',
      INTEROP_GUARD_LOG: guardLog,
    }, extra);
    return env;
  };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function killGroup(pid, sig = 'SIGTERM') { try { process.kill(-pid, sig); } catch { try { process.kill(pid, sig); } catch {} } }

// On SIGINT/SIGTERM/SIGHUP: `stopAll()`, then the failure summary line, exit 1; on exit, SIGKILL to every
// child left (`children`: a Set of {pid}).
export function stopOnSignals(name, children, stopAll) {
  let stopping = false;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, async () => {
      if (stopping) return;
      stopping = true;
      console.log(`\n${name}: got ${sig}, stopping children`);
      await stopAll();
      console.log('0 passed, 1 failed');
      process.exit(1);
    });
  }
  process.on('exit', () => { for (const c of children) killGroup(c.pid, 'SIGKILL'); });
}

// Starts relay.mjs (`args` after the script) and resolves with the port it prints (≤ 15 s); `track(child)`
// registers it for cleanup; `netns`: run it in that network namespace.
export async function spawnRelay({ name, nodeBin, relay, args, env, cwd, track, netns = null }) {
  const [cmd, argv] = netns ? ['ip', ['netns', 'exec', netns, nodeBin, relay, ...args]] : [nodeBin, [relay, ...args]];
  const child = spawn(cmd, argv, { env, cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  let buf = '', errBuf = '';
  child.stderr.on('data', (d) => { errBuf += d; });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`relay ${name} did not start: ${errBuf}`)), 15000);
    child.stdout.on('data', (d) => {
      buf += d;
      const m = /RELAY_LISTENING (\d+)/.exec(buf);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`relay ${name} exited (${code}): ${errBuf}`)); });
  });
}

// The guard's refusals in `work`/guard.log, as one summary line (null when there were none).
export function guardSummary(work) {
  const f = path.join(work, 'guard.log');
  try {
    const n = fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).length;
    return n ? `guard refused ${n} non-loopback attempts (see ${f})` : null;
  } catch { return null; }
}

// Runs a driver's `main` (which resolves with the exit code); a crash is reported as a failed suite.
export function runDriver(name, main, stopAll) {
  main().then((code) => process.exit(code), async (e) => {
    console.log(`${name}: driver crashed: ${e?.stack || e}`);
    await stopAll();
    console.log('0 passed, 1 failed');
    process.exit(1);
  });
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

export function httpGetStatus(port, p = '/healthz', host = '127.0.0.1') {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: p, timeout: 2000 }, (res) => { res.resume(); resolve(res.statusCode); });
    req.on('timeout', () => { req.destroy(); resolve(0); });
    req.on('error', () => resolve(0));
  });
}

export function tail(file, n = 40) {
  try { return fs.readFileSync(file, 'utf8').split('\n').slice(-n).join('\n'); } catch { return '(no log)'; }
}

// ---------------------------------------------------------------------------------------------
// A CLI-like operator client (as the openclaw CLI connects): `ws` is the `ws` package's WebSocket.
const b64url = (buf) => Buffer.from(buf).toString('base64url');

export function newDevice() {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x, 'base64url');
  return { privateKey, publicKey: b64url(raw), id: crypto.createHash('sha256').update(raw).digest('hex') };
}

export class WsClient {
  // Opens `url` and waits (≤ 10 s) for the challenge.
  static open(WebSocket, url) {
    return new Promise((resolve, reject) => {
      const c = new WsClient(new WebSocket(url, { perMessageDeflate: false }));
      const timer = setTimeout(() => { c.ws.terminate(); reject(new Error(`${url}: no connect.challenge within 10 s`)); }, 10000);
      c.onChallenge = (nonce) => { clearTimeout(timer); c.nonce = nonce; resolve(c); };
      c.ws.on('error', (e) => { clearTimeout(timer); reject(new Error(`${url}: ${e.message}`)); });
      c.ws.on('close', (code, reason) => { clearTimeout(timer); reject(new Error(`${url}: closed ${code} ${reason}`)); });
    });
  }
  constructor(ws) {
    this.ws = ws;
    this.pending = new Map();
    this.nextId = 0;
    this.events = [];
    // Resolves with {code, reason} when the socket closes.
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
    ws.on('message', (data) => {
      let f;
      try { f = JSON.parse(String(data)); } catch { return; }
      if (f.type === 'res') this.lastBytes = data.length;
      if (f.type === 'event' && f.event === 'connect.challenge') this.onChallenge?.(f.payload?.nonce);
      else if (f.type === 'event') { this.onEvent?.(f); if (this.events.length < 1000) this.events.push(f); }
      else if (f.type === 'res') { const p = this.pending.get(f.id); if (p) { this.pending.delete(f.id); p(f); } }
    });
    ws.on('close', () => { for (const p of this.pending.values()) p({ ok: false, error: { code: 'CLIENT_CLOSED' } }); this.pending.clear(); });
  }
  request(method, params, timeoutMs = 10000) {
    const id = `${++this.nextId}`;
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.pending.delete(id); resolve({ ok: false, error: { code: 'CLIENT_TIMEOUT', message: `${method}: no answer in ${timeoutMs} ms` } }); }, timeoutMs);
      this.pending.set(id, (f) => { clearTimeout(timer); resolve(f); });
      this.ws.send(JSON.stringify({ type: 'req', id, method, params }));
    });
  }
  async connect(token, device, scopes = ['operator.read']) {
    return this.connectAs({ token, device, scopes });
  }
  // `connect` as any client: `role` (operator|node), `client` ({id, mode, …}), `extra` params
  // (e.g. a node's caps and commands); signed with payload v3 over the challenge nonce.
  async connectAs({ token, device, scopes = [], role = 'operator', client = { id: 'cli', mode: 'cli' }, extra = {} }) {
    client = { version: '2026.9.6', platform: 'linux', ...client };
    const signedAt = Date.now();
    const payload = ['v3', device.id, client.id, client.mode, role, scopes.join(','), String(signedAt), token, this.nonce, 'linux', (client.deviceFamily || '').trim().toLowerCase()].join('|');
    const signature = b64url(crypto.sign(null, Buffer.from(payload, 'utf8'), device.privateKey));
    return this.request('connect', {
      minProtocol: 4, maxProtocol: 4, client, role, scopes, auth: { token }, ...extra,
      device: { id: device.id, publicKey: device.publicKey, signature, signedAt, nonce: this.nonce },
    });
  }
  close() { try { this.ws.close(1000); } catch {} }
}
