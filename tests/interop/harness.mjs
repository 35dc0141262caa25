// The harness the interop drivers share (interop.mjs: the CLI scenarios, nodes.mjs: node hosts): the
// suite's settings from the environment, process tracking and bounded runs, simulated CLI devices, the
// gateways under test (clawgate standalone, clawgate in front of the real gateway, the real gateway) and
// the XFF relays, and the scenario runner that prints one PASS/FAIL line per scenario and, last,
// `N passed, M failed`.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, httpGetStatus, killGroup, guardSummary, makeBaseEnv, spawnRelay, stopOnSignals, sleep, tail } from './lib.mjs';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const TARGET = (process.env.INTEROP_TARGET || 'clawgate').trim();
export const NODE_BIN = process.env.INTEROP_NODE_BIN || process.execPath;
export const OC_MJS = process.env.INTEROP_OPENCLAW_MJS || '';
const GUARD = path.join(HERE, 'guard.cjs');
const RELAY = path.join(HERE, 'relay.mjs');
export const CLAWGATE_BIN = process.env.CLAWGATE_BIN || '';
export const TOKEN = 'interop-token-0123456789';
export const XFF = '203.0.113.7';
const CLI_TIMEOUT_MS = Number(process.env.INTEROP_CLI_TIMEOUT_MS || 60000);
const SCENARIO_TIMEOUT_MS = Number(process.env.INTEROP_SCENARIO_TIMEOUT_MS || 180000);
// Overall budget for the driver (run.sh passes its own timeout minus a margin); scenarios that would start
// after it are reported as failed ("not run") instead of being cut off by the outer timeout.
const SUITE_BUDGET_MS = Number(process.env.INTEROP_BUDGET_MS || 540000);
const ONLY = (process.env.INTEROP_ONLY || '').split(',').map((s) => s.trim()).filter(Boolean);
export const WORK = process.env.INTEROP_WORKDIR || fs.mkdtempSync(path.join(os.tmpdir(), 'clawgate-interop-'));
fs.mkdirSync(WORK, { recursive: true });
const PIDFILE = path.join(WORK, 'pgids');

export const t0 = Date.now();
export function log(...a) { console.log(...a); }
export function elapsed(ms) { return `${(ms / 1000).toFixed(1)}s`; }
export function trunc(s, n = 3000) { s = String(s ?? ''); return s.length > n ? s.slice(0, n) + `… [${s.length - n} more chars]` : s; }
export function indent(s, pre = '      ') { return String(s).split('\n').map((l) => pre + l).join('\n'); }

// ---------------------------------------------------------------------------------------------
// process management
const children = new Set(); // {pid, name}
export function trackChild(child, name) {
  const rec = { pid: child.pid, name };
  children.add(rec);
  fs.appendFileSync(PIDFILE, `${child.pid}\n`);
  child.on('exit', () => children.delete(rec));
  return rec;
}
export async function stopAll() {
  const list = [...children];
  for (const c of list) killGroup(c.pid, 'SIGTERM');
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && [...children].length) await sleep(100);
  for (const c of [...children]) killGroup(c.pid, 'SIGKILL');
}

// On SIGINT/SIGTERM/SIGHUP every child is stopped and the failure summary printed.
export function stopOnSignalsAs(name) { stopOnSignals(name, children, stopAll); }

export const baseEnv = makeBaseEnv({ nodeBin: NODE_BIN, ocMjs: OC_MJS, guard: GUARD, guardLog: path.join(WORK, 'guard.log') });

// Run a command, bounded by a timeout (kills the whole process group).
export function runBounded(cmd, args, { env, cwd, timeoutMs = CLI_TIMEOUT_MS, name = path.basename(cmd) } = {}) {
  return new Promise((resolve) => {
    const started = Date.now();
    let stdout = '', stderr = '', timedOut = false;
    const child = spawn(cmd, args, { env, cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const rec = trackChild(child, name);
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { timedOut = true; killGroup(rec.pid, 'SIGKILL'); }, timeoutMs);
    child.on('error', (e) => { stderr += `\n[spawn error] ${e.message}`; });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      killGroup(rec.pid, 'SIGKILL'); // leftovers of the group, if any
      resolve({ code, signal, stdout, stderr, timedOut, ms: Date.now() - started, argv: [cmd, ...args] });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// simulated CLI devices
export const CLI_BASE_CONFIG = { update: { checkOnStart: false }, telemetry: { enabled: false } };
export class Device {
  // `netns`: run its CLI in that network namespace (the proxy suite's client machine); `env`: extra
  // environment (e.g. NODE_EXTRA_CA_CERTS for a test certificate).
  constructor(name, { netns = null, env = {} } = {}) {
    this.name = name;
    this.netns = netns;
    this.extraEnv = env;
    this.home = path.join(WORK, 'devices', name);
    this.stateDir = path.join(this.home, '.openclaw');
    this.configPath = path.join(this.stateDir, 'openclaw.json');
    fs.mkdirSync(this.stateDir, { recursive: true });
    this.writeConfig(null);
  }
  // remote: null (plain CLI) or {url, token?}
  writeConfig(remote) {
    const cfg = { ...CLI_BASE_CONFIG };
    if (remote) {
      const r = { url: remote.url };
      if (remote.token) r.token = remote.token;
      cfg.gateway = { mode: 'remote', remote: r, auth: { mode: 'none' } };
    }
    fs.writeFileSync(this.configPath, JSON.stringify(cfg, null, 2) + '\n');
  }
  env() {
    return baseEnv({ HOME: this.home, OPENCLAW_STATE_DIR: this.stateDir, OPENCLAW_CONFIG_PATH: this.configPath, ...this.extraEnv });
  }
  async oc(...args) {
    const [cmd, argv] = this.netns ? ['ip', ['netns', 'exec', this.netns, NODE_BIN, OC_MJS, ...args]] : [NODE_BIN, [OC_MJS, ...args]];
    const res = await runBounded(cmd, argv, { env: this.env(), cwd: this.home, name: `openclaw ${args[0]}` });
    res.display = `[${this.name}${this.netns ? ` in ${this.netns}` : ''}] openclaw ${args.join(' ')}`;
    return res;
  }
  async identity() {
    const r = await this.oc('node', 'identity', '--json');
    const j = parseJson(r.stdout);
    if (r.code !== 0 || !j || typeof j.deviceId !== 'string') throw new Fail(`cannot read device identity of ${this.name}`, r);
    return j.deviceId;
  }
}

export function parseJson(s) {
  s = String(s || '').trim();
  if (!s) return undefined;
  try { return JSON.parse(s); } catch {}
  const i = s.search(/[[{]/);
  if (i >= 0) { try { return JSON.parse(s.slice(i)); } catch {} }
  return undefined;
}

export class Fail extends Error {
  constructor(msg, ...results) { super(msg); this.results = results.filter(Boolean); }
}
export function fmtResult(r) {
  if (!r) return '';
  return [
    `$ ${r.display || r.argv.join(' ')}`,
    `  exit=${r.code}${r.signal ? ` signal=${r.signal}` : ''}${r.timedOut ? ' TIMED OUT' : ''} (${elapsed(r.ms)})`,
    `  stdout: ${trunc(r.stdout.trim(), 2500).replace(/\n/g, '\n          ')}`,
    `  stderr: ${trunc(r.stderr.trim(), 2500).replace(/\n/g, '\n          ')}`,
  ].join('\n');
}
export const out = (r) => `${r.stdout}\n${r.stderr}`;
export function expectOk(r, what) { if (r.code !== 0) throw new Fail(`${what}: expected exit 0, got ${r.code}${r.timedOut ? ' (timed out)' : ''}`, r); }
export function expectFail(r, what, ...needles) {
  if (r.timedOut) throw new Fail(`${what}: CLI timed out`, r);
  if (r.code === 0) throw new Fail(`${what}: expected failure (non-zero exit), got exit 0`, r);
  for (const n of needles) {
    const ok = n instanceof RegExp ? n.test(out(r)) : out(r).includes(n);
    if (!ok) throw new Fail(`${what}: output does not mention ${n instanceof RegExp ? n : JSON.stringify(n)}`, r);
  }
}

// ---------------------------------------------------------------------------------------------
// gateways and relays
export function fileSize(f) { try { return fs.statSync(f).size; } catch { return 0; } }
export function readFrom(f, offset) {
  try {
    const fd = fs.openSync(f, 'r');
    const len = Math.max(0, fs.fstatSync(fd).size - offset);
    const buf = Buffer.alloc(Math.min(len, 200000));
    fs.readSync(fd, buf, 0, buf.length, Math.max(offset, fs.fstatSync(fd).size - buf.length));
    fs.closeSync(fd);
    return buf.toString('utf8');
  } catch { return ''; }
}

let clawgateHelpText = null;
export async function clawgateSupports(flag) {
  if (clawgateHelpText === null) {
    const env = baseEnv();
    delete env.NODE_OPTIONS;
    const r = await runBounded(CLAWGATE_BIN, ['serve', '--help'], { env, cwd: WORK, timeoutMs: 20000, name: 'clawgate --help' });
    clawgateHelpText = `${r.stdout}\n${r.stderr}`;
  }
  return clawgateHelpText.includes(flag);
}

// Front-door mode: one real gateway (the upstream) that every clawgate of the suite fronts.

// `upstream`: the real gateway a front-door clawgate fronts (its openclaw.json is read).
// `bind` (clawgate): the address it listens on (default 127.0.0.1; /healthz and the URL use it).
// `gateway`: more gateway.* settings (clawgate's own: clawgate.json in front-door mode); `top`: more top-level
// settings of a real gateway's openclaw.json.
export async function startGateway(name, { trustedProxies, kind = TARGET === 'frontdoor' ? 'frontdoor' : TARGET, port: fixedPort, home: fixedHome, upstream, bind = '127.0.0.1', gateway = {}, top = {} }) {
  const dir = path.join(WORK, 'gateways', name);
  fs.mkdirSync(dir, { recursive: true });
  const logFile = path.join(dir, 'gateway.log');
  const logFd = fs.openSync(logFile, 'a');
  const gw = { name, dir, logFile };
  let child;
  let startTimeoutMs;
  if (kind === 'frontdoor' || kind === 'clawgate') {
    const stateDir = path.join(dir, 'state');
    fs.mkdirSync(stateDir, { recursive: true });
    let args;
    if (kind === 'frontdoor') {
      // clawgate reads the real gateway's openclaw.json (the upstream's port and token, `--upstream auto`)
      // and keeps its own settings in its own clawgate.json, so that openclaw.json stays valid for OpenClaw.
      const own = { gateway: {} };
      if (trustedProxies) own.gateway.trustedProxies = trustedProxies;
      Object.assign(own.gateway, gateway);
      const ownPath = path.join(dir, 'clawgate.json');
      fs.writeFileSync(ownPath, JSON.stringify(own, null, 2) + '\n');
      args = ['serve', '--config', upstream.configPath, '--clawgate-config', ownPath, '--state-dir', stateDir,
        '--port', '0', '--bind', bind, '--admin-port', '0', '--upstream', 'auto'];
      // the file a hot-reload edit of clawgate's own settings goes to
      gw.configPath = ownPath;
    } else {
      const cfg = { gateway: { auth: { mode: 'token', token: TOKEN } } };
      if (trustedProxies) cfg.gateway.trustedProxies = trustedProxies;
      Object.assign(cfg.gateway, gateway);
      const configPath = path.join(dir, 'clawgate.json5');
      fs.writeFileSync(configPath, JSON.stringify(cfg, null, 2) + '\n');
      args = ['serve', '--config', configPath, '--state-dir', stateDir, '--port', '0', '--bind', bind];
      // clawgate also opens an admin API listener (default 127.0.0.1:18788); two instances side by side need a free one each
      if (await clawgateSupports('--admin-port')) args.push('--admin-port', '0');
      gw.configPath = configPath;
    }
    fs.writeSync(logFd, `$ ${CLAWGATE_BIN} ${args.join(' ')}\n`);
    const env = baseEnv();
    delete env.NODE_OPTIONS;
    // clawgate reads CLAWGATE_* variables as settings: pass none of the suite's own (CLAWGATE_BIN, CLAWGATE_INTEROP_CACHE)
    for (const k of Object.keys(env)) if (k.startsWith('CLAWGATE_')) delete env[k];
    child = spawn(CLAWGATE_BIN, args, { env, cwd: dir, detached: true, stdio: ['ignore', logFd, logFd] });
    gw.runtimeFile = path.join(stateDir, 'runtime.json');
    gw.stateDir = stateDir;
    startTimeoutMs = 30000;
  } else if (kind === 'openclaw') {
    // a restart reuses the home (state, openclaw.json) and the port of the gateway it replaces
    const home = fixedHome || path.join(dir, 'home');
    const stateDir = path.join(home, '.openclaw');
    fs.mkdirSync(stateDir, { recursive: true });
    const port = fixedPort || await freePort();
    const configPath = path.join(stateDir, 'openclaw.json');
    if (!fixedHome) {
      const cfg = {
        gateway: { mode: 'local', bind: 'loopback', port, auth: { mode: 'token', token: TOKEN } },
        ...CLI_BASE_CONFIG,
        ...top,
      };
      if (trustedProxies) cfg.gateway.trustedProxies = trustedProxies;
      fs.writeFileSync(configPath, JSON.stringify(cfg, null, 2) + '\n');
    }
    const args = [OC_MJS, 'gateway', 'run', '--port', String(port), '--bind', 'loopback', '--allow-unconfigured'];
    fs.writeSync(logFd, `$ ${NODE_BIN} ${args.join(' ')}\n`);
    const env = baseEnv({ HOME: home, OPENCLAW_STATE_DIR: stateDir, OPENCLAW_CONFIG_PATH: configPath });
    child = spawn(NODE_BIN, args, { env, cwd: home, detached: true, stdio: ['ignore', logFd, logFd] });
    gw.port = port;
    gw.configPath = configPath;
    gw.env = env;
    gw.home = home;
    gw.args = args;
    startTimeoutMs = 120000;
  } else {
    throw new Error(`unknown INTEROP_TARGET=${TARGET} (use clawgate, openclaw or frontdoor)`);
  }
  fs.closeSync(logFd);
  gw.child = child;
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });
  child.on('error', (e) => { exited = { error: e.message }; });
  trackChild(child, `gateway ${name}`);
  const started = Date.now();
  while (Date.now() - started < startTimeoutMs) {
    if (exited) throw new Error(`gateway ${name} exited during startup (${JSON.stringify(exited)})\nlog tail:\n${tail(logFile)}`);
    if (gw.runtimeFile && !gw.port) {
      try {
        const rt = JSON.parse(fs.readFileSync(gw.runtimeFile, 'utf8'));
        const m = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(String(rt.gatewayAddr || ''));
        if (m) { gw.port = Number(m[2]); gw.host = m[1]; }
      } catch {}
    }
    if (gw.port && (await httpGetStatus(gw.port, '/healthz', gw.host)) === 200) {
      gw.url = `ws://${gw.host || '127.0.0.1'}:${gw.port}`;
      gw.startMs = Date.now() - started;
      return gw;
    }
    await sleep(250);
  }
  throw new Error(`gateway ${name} not ready within ${startTimeoutMs} ms (port=${gw.port ?? 'unknown'}${gw.runtimeFile ? `, runtime file ${gw.runtimeFile}` : ''})\nlog tail:\n${tail(logFile)}`);
}

// `netns`: the relay runs in that namespace (on its loopback).
export async function startRelay(name, targetUrl, xff = XFF, { netns = null } = {}) {
  const logFile = path.join(WORK, `relay-${name}.log`);
  const port = await spawnRelay({
    name, nodeBin: NODE_BIN, relay: RELAY, env: baseEnv(), cwd: WORK, track: (c) => trackChild(c, `relay ${name}`),
    args: ['--target', targetUrl, '--port', '0', '--xff', xff, '--log', logFile], netns,
  });
  return { name, port, url: `ws://127.0.0.1:${port}`, logFile };
}
export function relayEvents(relay, since) {
  if (!relay) return [];
  try {
    return fs.readFileSync(relay.logFile, 'utf8').split('\n').filter(Boolean).map((l) => { try { return JSON.parse(l); } catch { return null; } })
      .filter((e) => e && e.t >= since);
  } catch { return []; }
}
export function fmtRelayEvents(evs, max = 14) {
  const lines = evs.filter((e) => e.dir !== 'listening').map((e) => {
    let f = e.frame;
    if (f && f.type === 'res' && f.ok && f.payload && f.payload.type === 'hello-ok') {
      f = { ...f, payload: { type: 'hello-ok', protocol: f.payload.protocol, auth: f.payload.auth, '…': 'elided' } };
    }
    const body = f !== undefined ? JSON.stringify(f) : JSON.stringify({ ...e, t: undefined, conn: undefined, dir: undefined });
    return `conn${e.conn ?? '-'} ${e.dir}: ${trunc(body, 700)}`;
  });
  return (lines.length > max ? [`… ${lines.length - max} earlier events`, ...lines.slice(-max)] : lines).join('\n');
}

// ---------------------------------------------------------------------------------------------
// scenarios: {id, title, needs: [infra keys or scenario ids], run()}; a scenario whose needs did not
// come up or pass is reported as failed ("not run"), never skipped.
export const notes = []; // observed differences that are not counted (informational)
export function note(id, msg) { notes.push(`[${id}] ${msg}`); }

// Runs `scenarios` (INTEROP_ONLY and their prerequisites), prints the summary and resolves with the exit
// code. `infraErr`: infra key -> why it is missing; `gateways()`: the gateways whose logs a failure shows;
// `tap`: a logging relay whose frames a failure shows.
export async function runScenarios({ suite, scenarios, infraErr, gateways, tap }) {
  const results = [];
  const status = {}; // id -> 'pass' | 'fail'
  // INTEROP_ONLY plus everything those scenarios need (transitively)
  const selected = new Set(ONLY);
  for (let grew = true; grew;) {
    grew = false;
    for (const sc of scenarios) {
      if (!selected.has(sc.id)) continue;
      for (const n of sc.needs) if (/^[a-z]$/.test(n) && !selected.has(n)) { selected.add(n); grew = true; }
    }
  }
  for (const sc of scenarios) {
    if (ONLY.length && !selected.has(sc.id)) continue;
    const started = Date.now();
    let err = null;
    const infraKey = infraErr.all ? 'all' : sc.needs.find((n) => infraErr[n]);
    const blockedInfra = infraKey && `${String(infraErr[infraKey]).split('\n')[0]}${infraKey === 'all' ? '' : ' (details above)'}`;
    const blockedBy = sc.needs.find((n) => /^[a-z]$/.test(n) && status[n] !== 'pass');
    const remaining = SUITE_BUDGET_MS - (Date.now() - t0);
    const gwLogs = gateways().filter(Boolean).map((g) => ({ g, size: fileSize(g.logFile) }));
    if (blockedInfra) err = new Fail(`not run: ${blockedInfra}`);
    else if (remaining < 20000) err = new Fail(`not run: suite time budget (${SUITE_BUDGET_MS} ms) exhausted`);
    else if (blockedBy) err = new Fail(`not run: prerequisite scenario ${blockedBy} did not pass`);
    else {
      log(`--- [${sc.id}] ${sc.title}`);
      try {
        await Promise.race([
          sc.run(),
          sleep(Math.min(SCENARIO_TIMEOUT_MS, remaining)).then(() => { throw new Fail(`scenario timed out after ${Math.min(SCENARIO_TIMEOUT_MS, remaining)} ms`); }),
        ]);
      } catch (e) {
        err = e instanceof Fail ? e : new Fail(`${e?.stack || e}`);
        if (tap) {
          const evs = relayEvents(tap, started);
          if (evs.length) err.results.push({ display: 'relay frames', argv: [], stdout: `(tap) ${fmtRelayEvents(evs, 20)}` });
        }
        // what the gateway(s) logged while this scenario ran
        for (const { g, size } of gwLogs) {
          const added = readFrom(g.logFile, size).trim();
          if (added) err.results.push({ display: 'gateway log', argv: [], stdout: `${g.name}: ${trunc(added, 3000)}` });
        }
      }
    }
    status[sc.id] = err ? 'fail' : 'pass';
    const line = `${err ? 'FAIL' : 'PASS'} [${sc.id}] ${sc.title} (${elapsed(Date.now() - started)})`;
    log(line);
    if (err) {
      log(indent(err.message, '    '));
      for (const r of err.results || []) log(indent(['relay frames', 'gateway log'].includes(r.display) ? `${r.display}:\n${indent(r.stdout, '  ')}` : fmtResult(r)));
    }
    results.push({ id: sc.id, title: sc.title, pass: !err, error: err?.message });
  }

  const passed = results.filter((r) => r.pass).length;
  const failed = results.length - passed;
  log('');
  log(`=== ${suite} summary (target=${TARGET}, ${elapsed(Date.now() - t0)}) ===`);
  for (const r of results) log(`${r.pass ? 'PASS' : 'FAIL'} [${r.id}] ${r.title}${r.pass ? '' : ` — ${r.error.split('\n')[0]}`}`);
  if (notes.length) {
    log('observed differences from the real gateway (informational, not counted):');
    for (const n of notes) log(`  ${n}`);
  }
  const guarded = guardSummary(WORK);
  if (guarded) log(guarded);
  log(`logs: ${WORK}`);
  await stopAll();
  fs.writeFileSync(path.join(WORK, 'results.json'), JSON.stringify({ target: TARGET, results, notes }, null, 2));
  log(`${passed} passed, ${failed} failed`);
  return failed === 0 && results.length > 0 ? 0 : 1;
}

// A call to a clawgate's admin API (its address from runtime.json, its token from the state dir).
export async function adminApi(gw, method, p, body) {
  const rt = JSON.parse(fs.readFileSync(gw.runtimeFile, 'utf8'));
  const token = fs.readFileSync(path.join(gw.stateDir, 'admin-token'), 'utf8').trim();
  const res = await fetch(`http://${rt.adminAddr}${p}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let json = null;
  try { json = await res.json(); } catch {}
  return { status: res.status, body: json };
}
