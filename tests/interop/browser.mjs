// Browser end-to-end driver (issue 11): the REAL OpenClaw Control UI (npm openclaw@2026.9.6) in headless
// Debian Chromium, driven by playwright-core, against clawgate.
//
//   INTEROP_TARGET=clawgate    standalone: clawgate serves the real UI from gateway.controlUi.root
//                              (<openclaw package>/dist/control-ui) and answers the WebSocket itself
//   INTEROP_TARGET=frontdoor   clawgate (`serve --upstream auto`, its own clawgate.json) in front of the real
//                              `openclaw gateway run`: the UI comes from the upstream through clawgate's HTTP
//                              proxy, its WebSocket goes through clawgate's bridge
//   CLAWGATE_BIN, INTEROP_NODE_BIN, INTEROP_OPENCLAW_MJS    as for interop.mjs
//   INTEROP_PLAYWRIGHT_DIR     folder of the installed playwright-core package (install.sh)
//   INTEROP_CHROMIUM           the browser (default /usr/bin/chromium, Debian's `chromium`)
//   INTEROP_ARTIFACTS          where the screenshots go (printed at the end)
//   INTEROP_WORKDIR            scratch folder (gateways, relays, profiles, frame logs)
//   INTEROP_ONLY=a,b,c         run only these flows (plus the ones they need)
//   INTEROP_FLOW_TIMEOUT_MS    bound for one flow (default 120000); INTEROP_BUDGET_MS for the whole driver
//
// Normally started by run.sh (INTEROP_SUITE=browser) inside the loopback-only network namespace.
// Two kinds of browser profile: LOCAL opens clawgate straight on 127.0.0.1; REMOTE (and REMOTE2, REMOTE3, more
// remote devices) open it through relay.mjs --http, which adds `X-Forwarded-For: 203.0.113.7` to every HTTP
// request and WebSocket upgrade (clawgate trusts 127.0.0.1 as a proxy), so they are remote browsers whose
// page origin is http://127.0.0.1:<relay port>.
// Every assertion is on what the page shows (texts, roles; Playwright pierces the UI's open shadow DOM);
// frames and the admin API are checked besides. Each flow prints PASS/FAIL; the last line is `N passed, M failed`.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, httpGetStatus, killGroup, guardSummary, makeBaseEnv, runDriver, spawnRelay, stopOnSignals, sleep, tail } from './lib.mjs';
import {
  Fail, T_PAGE, T_CONNECT, configureUi, loadChromium, closeBrowsers, waitUntil, Profile, fmtConnects, shot, pageText, statusText,
  expectDisconnected, expectConnected, expectText, login, expectPairingScreen,
} from './ui.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const TARGET = (process.env.INTEROP_TARGET || 'clawgate').trim();
const FRONTDOOR = TARGET === 'frontdoor';
const NODE_BIN = process.env.INTEROP_NODE_BIN || process.execPath;
const OC_MJS = process.env.INTEROP_OPENCLAW_MJS || '';
const OC_PKG = OC_MJS ? path.dirname(OC_MJS) : '';
const UI_ROOT = OC_PKG ? path.join(OC_PKG, 'dist', 'control-ui') : '';
const PLAYWRIGHT_DIR = process.env.INTEROP_PLAYWRIGHT_DIR || '';
const CHROMIUM = process.env.INTEROP_CHROMIUM || '/usr/bin/chromium';
const GUARD = path.join(HERE, 'guard.cjs');
const RELAY = path.join(HERE, 'relay.mjs');
const CLAWGATE_BIN = process.env.CLAWGATE_BIN || '';
const TOKEN = 'interop-token-0123456789';
const XFF = '203.0.113.7';
// The upstream's configured model (front door): shown by the Agents page only if the data came from the upstream.
const UPSTREAM_MODEL = 'anthropic/claude-sonnet-4-5'; // a bundled provider: no plugin install at start
const FLOW_TIMEOUT_MS = Number(process.env.INTEROP_FLOW_TIMEOUT_MS || 120000);
const SUITE_BUDGET_MS = Number(process.env.INTEROP_BUDGET_MS || 420000);
const ONLY = (process.env.INTEROP_ONLY || '').split(',').map((s) => s.trim()).filter(Boolean);
const WORK = process.env.INTEROP_WORKDIR || fs.mkdtempSync(path.join(os.tmpdir(), 'clawgate-browser-'));
fs.mkdirSync(WORK, { recursive: true });
const ART = process.env.INTEROP_ARTIFACTS || path.join(WORK, 'screenshots');
fs.mkdirSync(ART, { recursive: true });
// screenshots of an earlier run of this target go (only ours: <target>-NN-*.png)
for (const f of fs.readdirSync(ART)) if (new RegExp(`^${TARGET}-\\d+-.*\\.png$`).test(f)) fs.rmSync(path.join(ART, f), { force: true });
const PIDFILE = path.join(WORK, 'pgids');
configureUi({ work: WORK, art: ART, prefix: TARGET, chromiumPath: CHROMIUM, token: TOKEN, log: (...a) => log(...a) });
// Bounds of the waits (never fixed sleeps as synchronisation: every wait is for a condition, bounded).
const T_RELOAD = 10000; // a config file edit to be applied (200 ms settle + polling)

const t0 = Date.now();
function log(...a) { console.log(...a); }
function elapsed(ms) { return `${(ms / 1000).toFixed(1)}s`; }
function trunc(s, n = 3000) { s = String(s ?? ''); return s.length > n ? s.slice(0, n) + `… [${s.length - n} more chars]` : s; }
function indent(s, pre = '      ') { return String(s).split('\n').map((l) => pre + l).join('\n'); }


// ---------------------------------------------------------------------------------------------
// process management (as interop.mjs: every child in its own process group, recorded for run.sh)
const children = new Set();
function trackChild(child, name) {
  const rec = { pid: child.pid, name };
  children.add(rec);
  fs.appendFileSync(PIDFILE, `${child.pid}\n`);
  child.on('exit', () => children.delete(rec));
  return rec;
}
async function stopAll() {
  await closeBrowsers();
  for (const c of [...children]) killGroup(c.pid, 'SIGTERM');
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && children.size) await sleep(100);
  for (const c of [...children]) killGroup(c.pid, 'SIGKILL');
}
stopOnSignals('browser', children, stopAll);

// The offline environment of every real OpenClaw process (and the relays): lib.mjs, as interop.mjs.
const baseEnv = makeBaseEnv({ nodeBin: NODE_BIN, ocMjs: OC_MJS, guard: GUARD, guardLog: path.join(WORK, 'guard.log') });
// clawgate gets neither the guard (it is not Node) nor the suite's own CLAWGATE_* variables (it reads them as settings).
function clawgateEnv() {
  const env = baseEnv();
  delete env.NODE_OPTIONS;
  for (const k of Object.keys(env)) if (k.startsWith('CLAWGATE_')) delete env[k];
  return env;
}

function fileSize(f) { try { return fs.statSync(f).size; } catch { return 0; } }
function readFrom(f, offset) {
  try { const b = fs.readFileSync(f); return b.subarray(Math.max(offset, b.length - 200000)).toString('utf8'); } catch { return ''; }
}
// ---------------------------------------------------------------------------------------------
// gateways
let upstream = null; // front-door mode: the real gateway, shared by every clawgate of the suite

async function waitReady(gw, child, startTimeoutMs) {
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });
  child.on('error', (e) => { exited = { error: e.message }; });
  const started = Date.now();
  while (Date.now() - started < startTimeoutMs) {
    if (exited) throw new Error(`${gw.name} exited during startup (${JSON.stringify(exited)})\nlog tail:\n${tail(gw.logFile)}`);
    if (gw.runtimeFile && !gw.port) {
      try {
        const rt = JSON.parse(fs.readFileSync(gw.runtimeFile, 'utf8'));
        const m = /^127\.0\.0\.1:(\d+)$/.exec(String(rt.gatewayAddr || ''));
        if (m) { gw.port = Number(m[1]); gw.adminAddr = rt.adminAddr; }
      } catch {}
    }
    if (gw.port && (await httpGetStatus(gw.port)) === 200) {
      gw.url = `ws://127.0.0.1:${gw.port}`;
      gw.http = `http://127.0.0.1:${gw.port}`;
      gw.startMs = Date.now() - started;
      return gw;
    }
    await sleep(250);
  }
  throw new Error(`${gw.name} not ready within ${startTimeoutMs} ms (port=${gw.port ?? 'unknown'})\nlog tail:\n${tail(gw.logFile)}`);
}

async function startUpstream() {
  const dir = path.join(WORK, 'gateways', 'upstream');
  const home = path.join(dir, 'home');
  const stateDir = path.join(home, '.openclaw');
  fs.mkdirSync(stateDir, { recursive: true });
  const port = await freePort();
  const configPath = path.join(stateDir, 'openclaw.json');
  const cfg = {
    // trustedProxies: the real gateway trusts clawgate (on loopback) as its proxy, as the README's front-door
    // setup says: clawgate relays a remote browser's HTTP with its address (X-Forwarded-For: 203.0.113.7); the real
    // gateway refuses forwarded headers from a peer it does not trust.
    gateway: { mode: 'local', bind: 'loopback', port, auth: { mode: 'token', token: TOKEN }, trustedProxies: ['127.0.0.1'] },
    // a configured model: the UI does not send the browser to its first-run model setup, and the Agents page shows it
    agents: { defaults: { model: { primary: UPSTREAM_MODEL } } },
    update: { checkOnStart: false }, telemetry: { enabled: false },
  };
  fs.writeFileSync(configPath, JSON.stringify(cfg, null, 2) + '\n');
  const logFile = path.join(dir, 'gateway.log');
  const logFd = fs.openSync(logFile, 'a');
  const args = [OC_MJS, 'gateway', 'run', '--port', String(port), '--bind', 'loopback', '--allow-unconfigured'];
  fs.writeSync(logFd, `$ ${NODE_BIN} ${args.join(' ')}\n`);
  const env = baseEnv({ HOME: home, OPENCLAW_STATE_DIR: stateDir, OPENCLAW_CONFIG_PATH: configPath });
  const child = spawn(NODE_BIN, args, { env, cwd: home, detached: true, stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);
  trackChild(child, 'upstream');
  const gw = { name: 'upstream (the real gateway)', dir, logFile, configPath, port, child };
  return waitReady(gw, child, 120000);
}

// One clawgate. `ui` = gateway.controlUi settings besides root (allowedOrigins, allowInsecureAuth).
async function startClawgate(name, { ui }) {
  const dir = path.join(WORK, 'gateways', name);
  const stateDir = path.join(dir, 'state');
  fs.mkdirSync(stateDir, { recursive: true });
  let args, configPath;
  if (FRONTDOOR) {
    // the upstream's openclaw.json is read for its port and token; clawgate's own settings are in clawgate.json
    configPath = path.join(dir, 'clawgate.json');
    const own = { gateway: { trustedProxies: ['127.0.0.1'], controlUi: { ...ui } } };
    fs.writeFileSync(configPath, JSON.stringify(own, null, 2) + '\n');
    args = ['serve', '--config', upstream.configPath, '--clawgate-config', configPath, '--state-dir', stateDir,
      '--port', '0', '--bind', '127.0.0.1', '--admin-port', '0', '--upstream', 'auto'];
  } else {
    configPath = path.join(dir, 'clawgate.json5');
    const cfg = { gateway: { auth: { mode: 'token', token: TOKEN }, trustedProxies: ['127.0.0.1'], controlUi: { root: UI_ROOT, ...ui } } };
    fs.writeFileSync(configPath, JSON.stringify(cfg, null, 2) + '\n');
    args = ['serve', '--config', configPath, '--state-dir', stateDir, '--port', '0', '--bind', '127.0.0.1', '--admin-port', '0'];
  }
  const logFile = path.join(dir, 'gateway.log');
  const logFd = fs.openSync(logFile, 'a');
  fs.writeSync(logFd, `$ ${CLAWGATE_BIN} ${args.join(' ')}\n`);
  const child = spawn(CLAWGATE_BIN, args, { env: clawgateEnv(), cwd: dir, detached: true, stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);
  trackChild(child, `clawgate ${name}`);
  const gw = { name: `clawgate ${name}`, dir, logFile, configPath, stateDir, runtimeFile: path.join(stateDir, 'runtime.json'), child };
  await waitReady(gw, child, 30000);
  gw.adminToken = fs.readFileSync(path.join(stateDir, 'admin-token'), 'utf8').trim();
  return gw;
}

// The admin API of one clawgate (curl-equivalent HTTP: bearer, JSON).
async function adminApi(gw, method, p, body) {
  const headers = { Authorization: `Bearer ${gw.adminToken}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`http://${gw.adminAddr}${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch {}
  const r = { status: res.status, json, text, what: `${method} ${p}${body !== undefined ? ` ${JSON.stringify(body)}` : ''}` };
  return r;
}
function fmtApi(r) { return `$ curl -X ${r.what}\n  -> ${r.status} ${trunc(r.text, 1500)}`; }

async function startRelay(name, target, port, { xff = XFF } = {}) {
  const logFile = path.join(WORK, `relay-${name}.log`);
  const got = await spawnRelay({
    name, nodeBin: NODE_BIN, relay: RELAY, env: baseEnv(), cwd: WORK, track: (c) => trackChild(c, `relay ${name}`),
    args: ['--target', target.url, '--port', String(port), '--xff', xff, '--http', '--log', logFile],
  });
  return { name, port: got, origin: `http://127.0.0.1:${got}`, logFile, target };
}

// ---------------------------------------------------------------------------------------------
// the suite's fixtures and flows
const G = {}; // gateways: insecure (a), pairing (b, c, d, f), allowlist (e)
const R = {}; // relays in front of them (the remote profiles' way in)
const P = {}; // browser profiles: local, remote, remote2 (and remote3, opened by b3)
const S = {}; // state shared between flows
const notes = [];
const openUrl = (relayOrGw, p = '/') => `${relayOrGw.origin || relayOrGw.http}${p}`;

// A remote browser (`requester`, through the pairing relay) asks to be paired; a connected browser (`approver`,
// on `approverBase`) opens Settings → Devices, sees the request and clicks its "Approve"; the requester then
// connects by itself. Returns the requester's page and device.
async function approveFromDevicesPage({ approver, approverPage: lp, approverBase, requester, tag }) {
  const rp = await requester.page();
  await rp.goto(openUrl(R.pairing));
  await login(rp, `${requester.name} browser`);
  const requestId = await expectPairingScreen(rp, `${requester.name} browser`);
  await shot(rp, `${tag}-${requester.name}-approve-this-browser`);
  const list = await adminApi(G.pairing, 'GET', '/admin/v1/pairing/requests');
  const req = (list.json?.requests || []).find((x) => x.requestId === requestId);
  if (!req) throw new Fail(`request ${requestId} is not in the admin API's pending list`, fmtApi(list));
  // the approver's Settings → Devices shows it pending, with an Approve button
  await lp.goto(openUrl(approverBase, '/settings/devices'));
  await expectText(lp, /PENDING APPROVAL/i, `${approver.name} browser, Settings → Devices`);
  await expectText(lp, req.deviceId, `${approver.name} browser, Settings → Devices: the pending device`);
  await shot(lp, `${tag}-${approver.name}-devices-pending`);
  const approve = lp.getByRole('button', { name: 'Approve', exact: true });
  if ((await approve.count()) !== 1) throw new Fail(`Settings → Devices shows ${await approve.count()} "Approve" buttons, expected 1 (one pending request)\n  page text: ${trunc(await pageText(lp), 800)}`);
  const since = Date.now();
  await approve.click();
  await expectConnected(rp, `${requester.name} browser after the approval from the Devices page`);
  await shot(rp, `${tag}-${requester.name}-connected-after-ui-approval`);
  const sent = approver.frames.find((e) => e.t >= since && e.dir === 'c2s' && e.frame?.method === 'device.pair.approve');
  if (!sent || sent.frame.params?.requestId !== requestId) throw new Fail(`the Devices page did not send device.pair.approve {requestId: ${requestId}} (sent: ${JSON.stringify(sent?.frame)})`);
  // the approver's page drops the pending row
  await waitUntil('the Devices page to show no pending approval', async () => !(await lp.getByText(/PENDING APPROVAL/i).count()), T_PAGE)
    .catch(async (e) => { throw new Fail(`${e.message}\n  page text: ${trunc(await pageText(lp), 800)}`); });
  await shot(lp, `${tag}-${approver.name}-devices-approved`);
  const dev = await adminApi(G.pairing, 'GET', `/admin/v1/devices/${req.deviceId}`);
  if (dev.status !== 200) throw new Fail('the device approved in the browser is not paired in clawgate', fmtApi(dev));
  return { page: rp, profile: requester, deviceId: req.deviceId, requestId };
}

const flows = [
  {
    id: 'a', title: 'remote browser, allowInsecureAuth: the token typed into the login form connects it without pairing',
    needs: ['gw:insecure', 'relay:insecure', 'profile:remote'],
    async run() {
      const since = Date.now();
      const page = await P.remote.page();
      await page.goto(openUrl(R.insecure));
      await expectText(page, 'This Gateway expects its token', 'remote browser, first visit');
      await shot(page, 'a-remote-login-gate');
      await login(page, 'remote browser');
      await expectConnected(page, 'remote browser after typing the token (allowInsecureAuth)');
      await shot(page, 'a-remote-connected-without-pairing');
      const cs = P.remote.connects(page, since);
      const ok = cs.find((c) => c.res?.ok);
      if (!ok) throw new Fail('no hello-ok among the connects', fmtConnects(cs));
      if (cs.some((c) => c.res?.error?.details?.code === 'PAIRING_REQUIRED')) throw new Fail('a connect got PAIRING_REQUIRED although allowInsecureAuth is set', fmtConnects(cs));
      const pend = await adminApi(G.insecure, 'GET', '/admin/v1/pairing/requests');
      if (pend.status !== 200 || (pend.json?.requests || []).length) throw new Fail('clawgate holds a pairing request for the insecure-auth browser', fmtApi(pend));
    },
  },
  {
    id: 'b', title: 'remote browser without it is shown "Approve this browser"; approved with the admin API (curl), it connects by itself',
    needs: ['gw:pairing', 'relay:pairing', 'profile:remote'],
    async run() {
      const since = Date.now();
      const page = await P.remote.page();
      await page.goto(openUrl(R.pairing));
      await login(page, 'remote browser');
      const requestId = await expectPairingScreen(page, 'remote browser after typing the token');
      await shot(page, 'b-remote-approve-this-browser');
      const cs = P.remote.connects(page, since);
      const pr = cs.find((c) => c.res?.error?.details?.code === 'PAIRING_REQUIRED');
      if (!pr) throw new Fail('no PAIRING_REQUIRED answer among the connects', fmtConnects(cs));
      if (pr.res.error.details.requestId !== requestId) throw new Fail(`the page names request ${requestId}, the frame ${pr.res.error.details.requestId}`);
      const list = await adminApi(G.pairing, 'GET', '/admin/v1/pairing/requests');
      const req = (list.json?.requests || []).find((x) => x.requestId === requestId);
      if (list.status !== 200 || !req) throw new Fail(`request ${requestId} is not in the admin API's pending list`, fmtApi(list));
      if (req.clientAddress !== XFF) throw new Fail(`the pending request's clientAddress is ${JSON.stringify(req.clientAddress)}, expected ${XFF} (the relay's X-Forwarded-For)`, fmtApi(list));
      S.remoteDeviceId = req.deviceId;
      const ap = await adminApi(G.pairing, 'POST', `/admin/v1/pairing/requests/${requestId}/approve`, {});
      if (ap.status !== 200) throw new Fail('the admin API did not approve', fmtApi(ap));
      const approvedAt = Date.now();
      // no click: the page retries by itself (wait_then_retry)
      await expectConnected(page, 'remote browser after the admin API approval');
      S.remoteApproveToConnectMs = Date.now() - approvedAt;
      log(`      connected ${elapsed(S.remoteApproveToConnectMs)} after the approval, by itself`);
      await shot(page, 'b-remote-connected-after-curl-approval');
      S.remotePage = page;
    },
  },
  {
    id: 'l', title: 'local browser (straight to 127.0.0.1): loads the UI, the token typed into the login form connects it (paired silently as local)',
    needs: ['gw:pairing', 'profile:local'],
    async run() {
      const since = Date.now();
      const lp = await P.local.page();
      await lp.goto(openUrl(G.pairing));
      await login(lp, 'local browser');
      await expectConnected(lp, 'local browser after typing the token');
      await shot(lp, 'l-local-connected');
      const ok = P.local.connects(lp, since).find((c) => c.res?.ok);
      if (!ok?.res.payload?.auth?.deviceToken) throw new Fail('the local browser got no device token in hello-ok (silent local pairing)', fmtConnects(P.local.connects(lp, since)));
      S.localPage = lp;
    },
  },
  {
    id: 'c', title: 'a new tab of the approved browser reconnects with its stored device token, no token typed',
    needs: ['b'],
    async run() {
      const since = Date.now();
      const tab = await P.remote.newPage();
      await tab.goto(openUrl(R.pairing));
      await expectConnected(tab, 'new tab of the approved remote browser');
      await shot(tab, 'c-remote-new-tab-connected');
      const cs = P.remote.connects(tab, since);
      const ok = cs.find((c) => c.res?.ok);
      if (!ok) throw new Fail('no hello-ok in the new tab', fmtConnects(cs));
      const keys = Object.keys(ok.req.params?.auth || {});
      if (keys.join(',') !== 'deviceToken') throw new Fail(`the new tab's connect sent auth [${keys}], expected only the stored deviceToken`, fmtConnects(cs));
      if (ok.res.payload?.auth?.method !== 'device-token') notes.push(`[c] hello-ok auth.method=${JSON.stringify(ok.res.payload?.auth?.method)} (expected device-token)`);
      S.remoteTab = tab;
    },
  },
  {
    id: 'b2', title: 'a second remote browser is approved from the local browser\'s Settings → Devices page ("Approve"), and connects by itself',
    needs: ['l', 'gw:pairing', 'relay:pairing', 'profile:remote2'],
    async run() {
      S.uiApproved2 = await approveFromDevicesPage({ approver: P.local, approverPage: S.localPage, approverBase: G.pairing, requester: P.remote2, tag: 'b2' });
    },
  },
  {
    id: 'b3', title: 'a third remote browser is approved from the Settings → Devices page of the remote browser approved in b, and connects by itself',
    needs: ['b', 'c', 'gw:pairing', 'relay:pairing'],
    async run() {
      P.remote3 = await new Profile('remote3').open();
      const tab = await P.remote.newPage();
      await tab.goto(openUrl(R.pairing));
      await expectConnected(tab, 'approved remote browser, a tab for Settings → Devices');
      S.uiApproved3 = await approveFromDevicesPage({ approver: P.remote, approverPage: tab, approverBase: R.pairing, requester: P.remote3, tag: 'b3' });
      await tab.close();
    },
  },
  {
    id: 'f', title: 'front door: after approval, pages served by the upstream load their data through clawgate (agents, chat, sessions)',
    needs: ['b'], frontdoorOnly: true,
    async run() {
      const tab = await P.remote.newPage();
      const answered = (method, since) => {
        const req = P.remote.frames.find((e) => e.t >= since && e.page === tab.__id && e.dir === 'c2s' && e.frame?.method === method);
        return req && P.remote.frames.find((e) => e.page === tab.__id && e.dir === 's2c' && e.frame?.type === 'res' && e.frame.id === req.frame.id);
      };
      // Agents: the upstream's agent list, with the model its openclaw.json configures
      let since = Date.now();
      await tab.goto(openUrl(R.pairing, '/agents'));
      await expectConnected(tab, 'approved remote browser, Agents page');
      await expectText(tab, UPSTREAM_MODEL, 'Agents page: the agent\'s model from the upstream\'s openclaw.json');
      await expectText(tab, 'Open chat', 'Agents page: the agent card');
      await shot(tab, 'f-agents-from-the-upstream');
      const agents = await waitUntil('the answer to agents.list', () => answered('agents.list', since), T_PAGE);
      if (!agents.frame.ok) throw new Fail(`agents.list through clawgate failed: ${trunc(JSON.stringify(agents.frame), 600)}`);
      // Chat: the main session's chat, started by the upstream (chat.startup), no "unknown method" anywhere
      since = Date.now();
      await tab.goto(openUrl(R.pairing, '/chat/main'));
      await expectConnected(tab, 'approved remote browser, chat');
      await expectText(tab, 'Main Session', 'chat page');
      const startup = await waitUntil('the answer to chat.startup', () => answered('chat.startup', since), T_PAGE);
      if (!startup.frame.ok) throw new Fail(`chat.startup through clawgate failed: ${trunc(JSON.stringify(startup.frame), 600)}`);
      await expectText(tab, 'Type a message below', 'chat page: the chat of the main session, loaded');
      if (await tab.getByText(/unknown method/).count()) throw new Fail(`the chat page shows an "unknown method" error\n  page text: ${trunc(await pageText(tab), 800)}`);
      await shot(tab, 'f-chat-from-the-upstream');
      // Sessions: the upstream's session list
      since = Date.now();
      await tab.goto(openUrl(R.pairing, '/sessions'));
      await expectConnected(tab, 'approved remote browser, Sessions page');
      const sessions = await waitUntil('the answer to sessions.list', () => answered('sessions.list', since), T_PAGE);
      if (!sessions.frame.ok) throw new Fail(`sessions.list through clawgate failed: ${trunc(JSON.stringify(sessions.frame), 600)}`);
      await expectText(tab, /Active sessions and defaults/, 'Sessions page');
      await shot(tab, 'f-sessions-from-the-upstream');
      await tab.close();
    },
  },
  {
    id: 'd2', title: 'a revoked browser (DELETE /admin/v1/devices/{id}/tokens/operator) is disconnected and shown that it must pair again',
    needs: ['b3'],
    async run() {
      const { page, profile, deviceId } = S.uiApproved3;
      const rv = await adminApi(G.pairing, 'DELETE', `/admin/v1/devices/${deviceId}/tokens/operator`);
      if (rv.status !== 200) throw new Fail('the admin API did not revoke the token', fmtApi(rv));
      await expectDisconnected(page, 'the tab of the revoked browser');
      await shot(page, 'd2-revoked-tab-disconnected');
      const since = Date.now();
      await page.reload();
      // a revoked role is taken away (as in OpenClaw): the next connect is a role-upgrade request
      const requestId = await expectPairingScreen(page, 'revoked browser, reloaded', 'Approve the new role');
      await shot(page, 'd2-revoked-browser-must-pair-again');
      const list = await adminApi(G.pairing, 'GET', '/admin/v1/pairing/requests');
      const req = (list.json?.requests || []).find((x) => x.requestId === requestId);
      if (!req || req.deviceId !== deviceId) throw new Fail(`the revoked browser's new request ${requestId} is not pending for device ${deviceId}`, fmtApi(list));
      const cs = profile.connects(page, since);
      if (cs.some((c) => c.res?.ok)) throw new Fail('the revoked browser was let in again without an approval', fmtConnects(cs));
      await profile.close();
    },
  },
  {
    id: 'd', title: 'a removed browser (DELETE /admin/v1/devices/{id}) is disconnected and shown that it must pair again',
    needs: ['b', 'c'],
    async run() {
      const page = S.remotePage;
      const tab = S.remoteTab;
      const del = await adminApi(G.pairing, 'DELETE', `/admin/v1/devices/${S.remoteDeviceId}`);
      if (del.status !== 200) throw new Fail('the admin API did not remove the device', fmtApi(del));
      // both tabs lose the connection at once
      await expectDisconnected(page, 'the first tab of the removed browser');
      await expectDisconnected(tab, 'the second tab of the removed browser');
      await shot(page, 'd-removed-tab-disconnected');
      // the tab that holds only the (now dropped) device token is sent back to the login gate
      await expectText(tab, 'This Gateway expects its token', 'tab with only the device token, after the removal');
      await shot(tab, 'd-removed-device-token-tab-login-gate');
      // reopened, the browser is a new request: it must be approved again
      const since = Date.now();
      await page.reload();
      const requestId = await expectPairingScreen(page, 'removed browser, reloaded');
      await shot(page, 'd-removed-browser-must-pair-again');
      const list = await adminApi(G.pairing, 'GET', '/admin/v1/pairing/requests');
      const req = (list.json?.requests || []).find((x) => x.requestId === requestId);
      if (!req || req.deviceId !== S.remoteDeviceId) throw new Fail(`the removed browser's new request ${requestId} is not pending for device ${S.remoteDeviceId}`, fmtApi(list));
      const cs = P.remote.connects(page, since);
      if (cs.some((c) => c.res?.ok)) throw new Fail('the removed browser was let in again without an approval', fmtConnects(cs));
    },
  },
  {
    id: 'e', title: 'a refused origin is shown "Browser origin not allowed"; added to allowedOrigins in the file (live reload), the next attempt gets in',
    needs: ['gw:allowlist', 'relay:allowlist', 'profile:remote'],
    async run() {
      const page = await P.remote.newPage();
      await page.goto(openUrl(R.allowlist));
      await expectText(page, 'Browser origin not allowed', 'remote browser from an origin not in allowedOrigins');
      await expectText(page, 'gateway.controlUi.allowedOrigins', 'the origin refusal names the setting', 5000);
      await shot(page, 'e-origin-not-allowed');
      const cs = P.remote.connects(page);
      if (!cs.some((c) => c.res?.error?.details?.code === 'CONTROL_UI_ORIGIN_NOT_ALLOWED')) throw new Fail('no CONTROL_UI_ORIGIN_NOT_ALLOWED answer', fmtConnects(cs));
      // the rejection log keeps the origin (what clawgate doctor names as the entry to add)
      const rej = await adminApi(G.allowlist, 'GET', '/admin/v1/diagnostics/rejections');
      const refused = (rej.json?.rejections || []).find((x) => x.reason === 'CONTROL_UI_ORIGIN_NOT_ALLOWED');
      if (!refused || refused.origin !== R.allowlist.origin) throw new Fail(`the rejection log does not keep the refused origin ${R.allowlist.origin}`, fmtApi(rej));
      // the person adds the origin to the file clawgate was started with (an editor's rename-replace write)
      const before = await adminApi(G.allowlist, 'GET', '/admin/v1/config');
      const cfg = JSON.parse(fs.readFileSync(G.allowlist.configPath, 'utf8'));
      cfg.gateway.controlUi.allowedOrigins = [...(cfg.gateway.controlUi.allowedOrigins || []), R.allowlist.origin];
      fs.writeFileSync(`${G.allowlist.configPath}.tmp`, JSON.stringify(cfg, null, 2) + '\n');
      fs.renameSync(`${G.allowlist.configPath}.tmp`, G.allowlist.configPath);
      await waitUntil('clawgate to apply the edited allowedOrigins', async () => {
        const c = await adminApi(G.allowlist, 'GET', '/admin/v1/config');
        return c.status === 200 && (c.json?.config?.gateway?.controlUi?.allowedOrigins || []).includes(R.allowlist.origin) && c;
      }, T_RELOAD).catch((e) => { throw new Fail(`${e.message} (config file ${G.allowlist.configPath})`, fmtApi(before)); });
      // the next attempt: the page's "Connect" (or its own retry) now reaches the login gate, and the token gets it in
      const connectBtn = page.getByRole('button', { name: 'Connect', exact: true });
      if (await page.getByText('Browser origin not allowed').first().isVisible().catch(() => false)) await connectBtn.first().click().catch(() => {});
      await login(page, 'remote browser, origin now allowed');
      await expectConnected(page, 'remote browser after its origin was added to allowedOrigins');
      await shot(page, 'e-origin-allowed-connected');
    },
  },
];
for (let i = flows.length - 1; i >= 0; i--) if (flows[i].frontdoorOnly && !FRONTDOOR) flows.splice(i, 1);

// ---------------------------------------------------------------------------------------------
async function main() {
  log(`browser: target=${TARGET} workdir=${WORK}`);
  log(`browser: node=${NODE_BIN} openclaw=${OC_MJS} clawgate=${CLAWGATE_BIN} chromium=${CHROMIUM} playwright-core=${PLAYWRIGHT_DIR}`);
  const infra = {}; // need -> error
  const fatal = (msg) => { infra.all = msg; };
  if (!['clawgate', 'frontdoor'].includes(TARGET)) fatal(`INTEROP_TARGET must be clawgate or frontdoor for the browser suite (got ${TARGET})`);
  if (!OC_MJS || !fs.existsSync(OC_MJS)) fatal(`openclaw not found (INTEROP_OPENCLAW_MJS=${OC_MJS || 'unset'})`);
  else if (!fs.existsSync(path.join(UI_ROOT, 'index.html'))) fatal(`the Control UI is missing from the openclaw package: ${UI_ROOT}/index.html`);
  if (!CLAWGATE_BIN || !fs.existsSync(CLAWGATE_BIN)) fatal(`clawgate binary not found (CLAWGATE_BIN=${CLAWGATE_BIN || 'unset'})`);
  if (!fs.existsSync(CHROMIUM)) fatal(`the browser is missing: ${CHROMIUM} (apt-get install chromium)`);
  if (!infra.all) {
    try {
      await loadChromium(PLAYWRIGHT_DIR);
    } catch (e) { fatal(`playwright-core cannot be loaded from INTEROP_PLAYWRIGHT_DIR=${PLAYWRIGHT_DIR || 'unset'}: ${e.message}`); }
  }

  // fixtures: the real gateway once (front door), the clawgates, their relays, the browser profiles
  if (!infra.all && FRONTDOOR) {
    try {
      upstream = await startUpstream();
      log(`browser: upstream (the real gateway) up at ${upstream.url} after ${elapsed(upstream.startMs)}`);
    } catch (e) { fatal(`the real gateway (upstream) failed to start: ${e.message}`); }
  }
  if (!infra.all) {
    const ports = { insecure: await freePort(), pairing: await freePort(), allowlist: await freePort() };
    const origin = (k) => `http://127.0.0.1:${ports[k]}`;
    const specs = {
      insecure: { allowInsecureAuth: true, allowedOrigins: [origin('insecure')] },
      pairing: { allowedOrigins: [origin('pairing')] },
      allowlist: { allowInsecureAuth: true, allowedOrigins: [] },
    };
    const started = await Promise.allSettled(Object.entries(specs).map(([k, ui]) => startClawgate(k, { ui })));
    for (const [i, k] of Object.keys(specs).entries()) {
      const s = started[i];
      if (s.status === 'rejected') { infra[`gw:${k}`] = `clawgate ${k} failed to start: ${s.reason?.message || s.reason}`; continue; }
      G[k] = s.value;
      log(`browser: clawgate ${k} up at ${G[k].http} (admin ${G[k].adminAddr}) after ${elapsed(G[k].startMs)}; controlUi ${JSON.stringify(specs[k])}`);
      try {
        R[k] = await startRelay(k, G[k], ports[k]);
        log(`browser: relay ${R[k].origin} -> ${G[k].http} (HTTP and WebSocket, X-Forwarded-For: ${XFF})`);
      } catch (e) { infra[`relay:${k}`] = e.message; }
    }
    for (const name of ['local', 'remote', 'remote2']) {
      try { P[name] = await new Profile(name).open(); } catch (e) { infra[`profile:${name}`] = `chromium profile ${name} failed to launch: ${e.message}`; }
    }
    if (Object.keys(P).length) log(`browser: chromium profiles ${Object.keys(P).join(', ')} (${CHROMIUM}, fresh user-data-dir each)`);
  }
  for (const [k, v] of Object.entries(infra)) log(`browser: ERROR (${k}): ${v}`);

  const results = [];
  const status = {};
  const selected = new Set(ONLY);
  for (let grew = true; grew;) {
    grew = false;
    for (const f of flows) if (selected.has(f.id)) for (const n of f.needs) if (!n.includes(':') && !selected.has(n)) { selected.add(n); grew = true; }
  }
  for (const f of flows) {
    if (ONLY.length && !selected.has(f.id)) continue;
    const started = Date.now();
    let err = null;
    const infraKey = infra.all ? 'all' : f.needs.find((n) => infra[n] || (n.includes(':') && !{ gw: G, relay: R, profile: P }[n.split(':')[0]]?.[n.split(':')[1]]));
    const blockedBy = f.needs.find((n) => !n.includes(':') && status[n] !== 'pass');
    const remaining = SUITE_BUDGET_MS - (Date.now() - t0);
    const logs = [...Object.values(G), upstream].filter(Boolean).map((g) => ({ g, size: fileSize(g.logFile) }));
    if (infraKey) err = new Fail(`not run: ${String(infra[infraKey] || `${infraKey} is not available`).split('\n')[0]}`);
    else if (remaining < 20000) err = new Fail(`not run: suite time budget (${SUITE_BUDGET_MS} ms) exhausted`);
    else if (blockedBy) err = new Fail(`not run: prerequisite flow ${blockedBy} did not pass`);
    else {
      log(`--- [${f.id}] ${f.title}`);
      const bound = Math.min(FLOW_TIMEOUT_MS, remaining);
      try {
        await Promise.race([f.run(), sleep(bound).then(() => { throw new Fail(`flow timed out after ${bound} ms`); })]);
      } catch (e) {
        err = e instanceof Fail ? e : new Fail(`${e?.stack || e}`);
        // evidence: every open page (screenshot, text, its last connects) and what the gateways logged meanwhile
        for (const prof of Object.values(P)) {
          if (!prof.ctx) continue;
          for (const pg of prof.ctx.pages()) {
            const file = await shot(pg, `${f.id}-FAILED-${pg.__id.replace('#', '-tab')}`);
            err.details.push(`${pg.__id} ${pg.url()} (screenshot ${file ? path.basename(file) : 'failed'})\n  page text: ${trunc(await pageText(pg), 600)}\n${indent(fmtConnects(prof.connects(pg, started), 4), '  ')}`);
          }
        }
        for (const { g, size } of logs) {
          const added = readFrom(g.logFile, size).trim();
          if (added) err.details.push(`${g.name} log:\n${indent(trunc(added, 2500), '  ')}`);
        }
      }
    }
    status[f.id] = err ? 'fail' : 'pass';
    log(`${err ? 'FAIL' : 'PASS'} [${f.id}] ${f.title} (${elapsed(Date.now() - started)})`);
    if (err) {
      log(indent(err.message, '    '));
      for (const d of err.details || []) log(indent(d, '      '));
    }
    results.push({ id: f.id, title: f.title, pass: !err, error: err?.message });
  }

  const passed = results.filter((r) => r.pass).length;
  const failed = results.length - passed;
  log('');
  log(`=== browser summary (target=${TARGET}, ${elapsed(Date.now() - t0)}) ===`);
  for (const r of results) log(`${r.pass ? 'PASS' : 'FAIL'} [${r.id}] ${r.title}${r.pass ? '' : ` — ${r.error.split('\n')[0]}`}`);
  for (const n of notes) log(`note: ${n}`);
  const guarded = guardSummary(WORK);
  if (guarded) log(guarded);
  log(`logs: ${WORK}`);
  log(`screenshots: ${ART}`);
  await stopAll();
  fs.writeFileSync(path.join(WORK, 'results.json'), JSON.stringify({ target: TARGET, suite: 'browser', results, notes, screenshots: ART }, null, 2));
  log(`${passed} passed, ${failed} failed`);
  return failed === 0 && results.length > 0 ? 0 : 1;
}

runDriver('browser', main, stopAll);
