// Node-host suite: the REAL node host (`openclaw node run`, npm openclaw@2026.9.6) and the real operator
// CLI (`openclaw nodes …`, `openclaw devices …`), with clawgate in front of the real gateway
// (INTEROP_TARGET=frontdoor), or straight to the real gateway (INTEROP_TARGET=openclaw) to check that the
// scenarios describe what the real gateway does.
//
// Layout: a local node host reaches the gateway through a transparent logging tap (no forwarded headers,
// so it is local; its frames land in relay-tap.log), a remote one through a relay that adds
// `X-Forwarded-For: 203.0.113.9` (the gateway trusts 127.0.0.1 as its proxy). Every node host advertises
// only `system.which` (`--commands system.which`: the quiet, offline command surface).
//
// Normally started by run.sh (INTEROP_SUITE=nodes). Prints one PASS/FAIL line per scenario and, last,
// `N passed, M failed`.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { killGroup, runDriver, newDevice, sleep, WsClient } from './lib.mjs';
import {
  TARGET, NODE_BIN, OC_MJS, CLAWGATE_BIN, TOKEN, WORK, log, elapsed, trunc, trackChild, stopAll, stopOnSignalsAs,
  Device, parseJson, Fail, out, expectOk, expectFail, startGateway, startRelay, relayEvents, fmtRelayEvents, note,
  runScenarios, adminApi,
} from './harness.mjs';

stopOnSignalsAs('nodes');
const REMOTE_IP = '203.0.113.9';
const FRONTDOOR = TARGET === 'frontdoor';
let upstream, gw, tap, relay, admin;
const S = {}; // shared between scenarios

// ---------------------------------------------------------------------------------------------
// a node host: `openclaw node run` in its own home, its output kept for the scenarios to wait on
class NodeHost {
  constructor(name, displayName) {
    this.name = name;
    this.displayName = displayName;
    this.dev = new Device(`node-${name}`);
    this.logFile = path.join(WORK, `node-${name}.log`);
    this.text = '';
    this.child = null;
  }
  // Starts the host against 127.0.0.1:`port`; with `token`, the shared token is in its environment
  // (without, it has only the device token it stored).
  start(port, { token = TOKEN } = {}) {
    const env = this.dev.env();
    if (token) env.OPENCLAW_GATEWAY_TOKEN = token;
    const args = [OC_MJS, 'node', 'run', '--host', '127.0.0.1', '--port', String(port), '--display-name', this.displayName, '--commands', 'system.which'];
    fs.appendFileSync(this.logFile, `$ ${args.join(' ')} (token in env: ${token ? 'yes' : 'no'})\n`);
    const child = spawn(NODE_BIN, args, { env, cwd: this.dev.home, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(child, `node ${this.name}`);
    const onData = (d) => { this.text += d; fs.appendFileSync(this.logFile, d); };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    this.child = child;
    return this.text.length;
  }
  mark() { return this.text.length; }
  // Resolves with the first match of `re` in the output after `since`.
  async waitFor(re, { since = 0, ms = 60000, what = String(re) } = {}) {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = re.exec(this.text.slice(since));
      if (m) return m;
      if (Date.now() > deadline) throw new Fail(`node ${this.name}: no ${what} within ${ms} ms; its output:\n${trunc(this.text.slice(since), 2500)}`);
      await sleep(100);
    }
  }
  // The process that owns the WebSocket: the launcher's child named `openclaw-node`.
  socketPid() {
    for (const d of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
        const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
        if (pgrp === this.child.pid && comm === 'openclaw-node') return Number(d);
      } catch {}
    }
    throw new Fail(`node ${this.name}: no openclaw-node process in process group ${this.child.pid}`);
  }
  async stop() {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    killGroup(this.child.pid, 'SIGTERM');
    const done = await Promise.race([this.exited, sleep(5000).then(() => null)]);
    if (!done) { killGroup(this.child.pid, 'SIGKILL'); await this.exited; }
  }
}
const CONNECTED = /node host gateway connected/;

// the operator CLI against the gateway under test (device-less, loopback, shared token)
async function cli(...args) {
  const r = await admin.oc(...args, '--url', gw.url, '--token', TOKEN, '--json');
  r.json = parseJson(r.stdout);
  return r;
}
async function pendingSurface(id, nodeId) {
  const r = await cli('nodes', 'pending');
  expectOk(r, `${id}: nodes pending`);
  if (!Array.isArray(r.json)) throw new Fail(`${id}: nodes pending --json did not print an array`, r);
  return { row: r.json.find((x) => x.nodeId === nodeId), res: r };
}
async function nodeStatus(id, nodeId) {
  const r = await cli('nodes', 'status');
  expectOk(r, `${id}: nodes status`);
  const nodes = r.json?.nodes;
  if (!Array.isArray(nodes)) throw new Fail(`${id}: nodes status --json printed no {nodes: []}`, r);
  return { node: nodes.find((x) => x.nodeId === nodeId), res: r };
}
async function devicesList(id) {
  const r = await cli('devices', 'list');
  expectOk(r, `${id}: devices list`);
  if (!Array.isArray(r.json?.pending) || !Array.isArray(r.json?.paired)) throw new Fail(`${id}: devices list --json did not print {pending, paired}`, r);
  return { list: r.json, res: r };
}
// Waits until `nodes pending` lists a surface request for `nodeId` (other than `not`).
async function awaitSurfaceRequest(id, nodeId, not) {
  const deadline = Date.now() + 30000;
  for (;;) {
    const { row, res } = await pendingSurface(id, nodeId);
    if (row && row.requestId !== not) return row;
    if (Date.now() > deadline) throw new Fail(`${id}: no node surface request for ${nodeId}${not ? ` other than ${not}` : ''}`, res);
    await sleep(500);
  }
}
function invoke(nodeQuery, command, params, ...more) {
  return cli('nodes', 'invoke', '--node', nodeQuery, '--command', command, '--params', JSON.stringify(params), ...more);
}
const tapFrames = (since) => ({ display: 'relay frames', argv: [], code: '-', ms: 0, stdout: fmtRelayEvents(relayEvents(tap, since), 20), stderr: '' });

// ---------------------------------------------------------------------------------------------
const local = new NodeHost('local', 'nt-local');
const remote = new NodeHost('remote', 'nt-remote');

const scenarios = [
  {
    id: 'a', title: 'a local node host is paired silently (role node, device token issued), no device request left pending', needs: ['gw'],
    async run() {
      const since = Date.now();
      local.start(tap.port);
      await local.waitFor(CONNECTED, { what: 'connection' });
      S.localId = await local.dev.identity();
      const { list, res } = await devicesList('a');
      const p = list.paired.find((x) => x.deviceId === S.localId);
      if (!p) throw new Fail(`node device ${S.localId} not paired`, res);
      const roles = p.roles || [p.role];
      if (!roles.includes('node')) throw new Fail(`paired node device has roles ${JSON.stringify(roles)}`, res);
      if (list.pending.some((x) => x.deviceId === S.localId)) throw new Fail('the local node left a pending device request', res);
      if (p.approvedVia !== 'silent') note('a', `approvedVia=${JSON.stringify(p.approvedVia)} (real: "silent")`);
      const hello = relayEvents(tap, since).find((e) => e.dir === 's2c' && e.frame?.payload?.type === 'hello-ok');
      const auth = hello?.frame?.payload?.auth;
      if (!auth || auth.role !== 'node' || typeof auth.deviceToken !== 'string') throw new Fail(`hello-ok auth ${JSON.stringify(auth)}: expected role node and a device token`, tapFrames(since));
    },
  },
  {
    id: 'b', title: 'surface approval: nodes pending shows the node by its own id, nodes approve, nodes status lists it connected with system.which', needs: ['a'],
    async run() {
      const row = await awaitSurfaceRequest('b', S.localId);
      if (!(row.commands || []).includes('system.which')) throw new Fail(`the surface request does not declare system.which: ${JSON.stringify(row)}`);
      if (row.displayName !== 'nt-local') note('b', `pending displayName=${JSON.stringify(row.displayName)}`);
      if (FRONTDOOR) {
        const d = await adminApi(gw, 'GET', `/admin/v1/devices/${S.localId}`);
        if (d.status !== 200 || d.body.upstream?.approvalState !== 'pending-approval') throw new Fail(`admin API before approval: ${d.status} ${JSON.stringify(d.body)}`);
      }
      const ap = await cli('nodes', 'approve', row.requestId);
      expectOk(ap, 'nodes approve');
      if (ap.json?.node?.nodeId !== S.localId) throw new Fail(`nodes approve printed node ${JSON.stringify(ap.json?.node?.nodeId)}, expected ${S.localId}`, ap);
      const { node, res } = await nodeStatus('b', S.localId);
      if (!node || node.connected !== true) throw new Fail('the approved node is not listed connected', res);
      if (JSON.stringify(node.commands) !== '["system.which"]') throw new Fail(`node commands ${JSON.stringify(node.commands)}`, res);
      if (FRONTDOOR) {
        const d = await adminApi(gw, 'GET', `/admin/v1/devices/${S.localId}`);
        if (d.body.upstream?.approvalState !== 'approved' || d.body.upstream?.connected !== true) throw new Fail(`admin API after approval: ${JSON.stringify(d.body)}`);
        S.localUpId = d.body.upstream.nodeId;
      }
    },
  },
  {
    id: 'c', title: 'invoke: nodes invoke system.which reaches the node and its answer comes back', needs: ['b'],
    async run() {
      const since = Date.now();
      const r = await invoke('nt-local', 'system.which', { bins: ['sh', 'definitely-not-a-bin'] });
      expectOk(r, 'nodes invoke system.which');
      const bins = r.json?.payload?.bins;
      if (!bins || typeof bins.sh !== 'string' || !bins.sh.startsWith('/') || 'definitely-not-a-bin' in bins) throw new Fail(`payload ${JSON.stringify(r.json)}`, r);
      if (r.json.nodeId !== S.localId) throw new Fail(`invoke result nodeId ${r.json.nodeId}, expected ${S.localId}`, r);
      const evs = relayEvents(tap, since);
      const req = evs.find((e) => e.dir === 's2c' && e.frame?.event === 'node.invoke.request');
      const res = evs.find((e) => e.dir === 'c2s' && e.frame?.method === 'node.invoke.result');
      if (!req || req.frame.payload.nodeId !== S.localId) throw new Fail('the node did not get node.invoke.request under its own id', tapFrames(since));
      if (!res || res.frame.params.id !== req.frame.payload.id) throw new Fail('the node did not answer with node.invoke.result', tapFrames(since));
    },
  },
  {
    id: 'd', title: 'invoke errors: an undeclared command is refused by the gateway, a node error comes back as the node said', needs: ['b'],
    async run() {
      const r1 = await invoke('nt-local', 'system.notify', { title: 'x' });
      expectFail(r1, 'invoke of an undeclared command', 'node command not allowed', 'does not support "system.notify"');
      const r2 = await invoke('nt-local', 'system.which', { bins: 'sh' });
      expectFail(r2, 'invoke the node fails', 'INVALID_REQUEST', 'bins required');
    },
  },
  {
    id: 'e', title: 'timeout: a stopped node does not answer; the invoke ends with TIMEOUT and the node gets node.invoke.cancel', needs: ['b'],
    async run() {
      const pid = local.socketPid();
      const since = Date.now();
      process.kill(pid, 'SIGSTOP');
      let r;
      try { r = await invoke('nt-local', 'system.which', { bins: ['sh'] }, '--invoke-timeout', '2000'); } finally { process.kill(pid, 'SIGCONT'); }
      expectFail(r, 'invoke of a stopped node', 'TIMEOUT: node invoke timed out');
      const deadline = Date.now() + 10000;
      while (Date.now() < deadline && !relayEvents(tap, since).some((e) => e.dir === 's2c' && e.frame?.event === 'node.invoke.cancel')) await sleep(100);
      if (!relayEvents(tap, since).some((e) => e.dir === 's2c' && e.frame?.event === 'node.invoke.cancel')) throw new Fail('no node.invoke.cancel reached the node', r, tapFrames(since));
    },
  },
  {
    id: 'f', title: 'disconnect mid-invoke: the node dies while an invoke is in flight; the operator gets DISCONNECTED', needs: ['b'],
    async run() {
      const pid = local.socketPid();
      const since = Date.now();
      process.kill(pid, 'SIGSTOP');
      const pending = invoke('nt-local', 'system.which', { bins: ['sh'] }, '--invoke-timeout', '30000');
      const deadline = Date.now() + 30000;
      while (Date.now() < deadline && !relayEvents(tap, since).some((e) => e.dir === 's2c' && e.frame?.event === 'node.invoke.request')) await sleep(100);
      process.kill(pid, 'SIGKILL');
      const r = await pending;
      await local.exited;
      expectFail(r, 'invoke of a node that died', 'DISCONNECTED: node disconnected (system.which)');
      const { node, res } = await nodeStatus('f', S.localId);
      if (node?.connected) throw new Fail('the dead node is still listed connected', res);
    },
  },
  {
    id: 'g', title: 'device-token reconnect: the node host restarted without the shared token connects with its device token alone', needs: ['f'],
    async run() {
      const since = Date.now();
      const at = local.start(tap.port, { token: null });
      await local.waitFor(CONNECTED, { since: at, what: 'connection' });
      const evs = relayEvents(tap, since);
      const connect = evs.find((e) => e.dir === 'c2s' && e.frame?.method === 'connect');
      const hello = evs.find((e) => e.dir === 's2c' && e.frame?.payload?.type === 'hello-ok');
      const auth = connect?.frame?.params?.auth || {};
      if (auth.token || typeof auth.deviceToken !== 'string') throw new Fail(`connect auth ${JSON.stringify(auth)}: expected the device token alone`, tapFrames(since));
      if (hello?.frame?.payload?.auth?.method !== 'device-token') throw new Fail(`hello-ok auth.method ${JSON.stringify(hello?.frame?.payload?.auth?.method)}`, tapFrames(since));
      const r = await invoke('nt-local', 'system.which', { bins: ['sh'] });
      expectOk(r, 'invoke after the device-token reconnect (the approved surface is kept)');
    },
  },
  {
    id: 'h', title: 'rename: nodes rename, and nodes status shows the new name', needs: ['g'],
    async run() {
      const r = await cli('nodes', 'rename', '--node', 'nt-local', '--name', 'nt-renamed');
      expectOk(r, 'nodes rename');
      if (r.json?.nodeId !== S.localId || r.json?.displayName !== 'nt-renamed') throw new Fail(`nodes rename printed ${trunc(r.stdout, 300)}`, r);
      const { node, res } = await nodeStatus('h', S.localId);
      if (node?.displayName !== 'nt-renamed') throw new Fail(`nodes status shows displayName ${JSON.stringify(node?.displayName)}`, res);
      const inv = await invoke('nt-renamed', 'system.which', { bins: ['sh'] });
      expectOk(inv, 'invoke by the new name');
    },
  },
  {
    id: 'i', title: 'remote node (X-Forwarded-For): pairing required; approval needs operator.admin; devices approve, then its surface approved and invoked', needs: ['gw', 'relay'],
    async run() {
      const at = remote.start(relay.port);
      await remote.waitFor(/pairing required/, { since: at, what: '"pairing required"' });
      S.remoteId = await remote.dev.identity();
      const { list, res } = await devicesList('i');
      const pend = list.pending.find((x) => x.deviceId === S.remoteId);
      if (!pend) throw new Fail(`no pending device request for the remote node ${S.remoteId}`, res);
      if (pend.role !== 'node' || pend.remoteIp !== REMOTE_IP) throw new Fail(`pending request role=${pend.role} remoteIp=${pend.remoteIp}`, res);
      // an operator holding only operator.pairing may not approve a node
      const wsLib = createRequire(OC_MJS)('ws');
      const op = await WsClient.open(wsLib.WebSocket || wsLib, gw.url);
      const hello = await op.connect(TOKEN, newDevice(), ['operator.pairing']);
      if (!hello.ok) { op.close(); throw new Fail(`a pairing-scoped operator could not connect: ${JSON.stringify(hello.error)}`); }
      const denied = await op.request('device.pair.approve', { requestId: pend.requestId });
      op.close();
      if (denied.ok || !/device pairing approval denied/.test(denied.error?.message || '')) throw new Fail(`device.pair.approve with operator.pairing only: ${JSON.stringify(denied)}`);
      const ap = await admin.oc('devices', 'approve', pend.requestId, '--url', gw.url, '--token', TOKEN);
      expectOk(ap, 'devices approve of the remote node (the CLI retries with operator.admin)');
      // a node paused on pairing required is restarted to connect (as OpenClaw documents)
      await remote.stop();
      const at2 = remote.start(relay.port);
      await remote.waitFor(CONNECTED, { since: at2, what: 'connection after approval' });
      const row = await awaitSurfaceRequest('i', S.remoteId);
      if (row.remoteIp !== undefined && FRONTDOOR) note('i', `surface request remoteIp=${row.remoteIp}`);
      const sa = await cli('nodes', 'approve', row.requestId);
      expectOk(sa, 'nodes approve of the remote node');
      const r = await invoke('nt-remote', 'system.which', { bins: ['sh'] });
      expectOk(r, 'invoke of the remote node');
      if (r.json?.nodeId !== S.remoteId) throw new Fail(`remote invoke nodeId ${r.json?.nodeId}`, r);
    },
  },
  {
    id: 'j', title: 'remove: devices remove closes the node with 4001 "device removed"; its device token is gone; with the shared token it pairs again (silently, local) with a new surface request', needs: ['h'],
    async run() {
      const old = (await pendingSurface('j', S.localId)).row;
      const at = local.mark();
      const r = await cli('devices', 'remove', S.localId);
      expectOk(r, 'devices remove of the node');
      await local.waitFor(/closed \(4001\): device removed/, { since: at, what: 'close 4001 "device removed"' });
      if (FRONTDOOR) {
        // the upstream forgot clawgate's identity for the removed device
        const up = await admin.oc('devices', 'list', '--url', upstream.url, '--token', TOKEN, '--json');
        expectOk(up, 'devices list on the upstream');
        const j = parseJson(up.stdout);
        if ((j?.paired || []).some((x) => x.deviceId === S.localUpId)) throw new Fail(`the upstream still has the removed node's identity ${S.localUpId}`, up);
      }
      // Its device token went with the device: the host (started without the shared token in g) is refused
      // and waits for the operator; restarted with the shared token it is paired again, silently (local), and
      // its surface must be approved again.
      await local.waitFor(/device token mismatch/, { since: at, what: 'device token mismatch on reconnect' });
      await local.stop();
      const at2 = local.start(tap.port);
      await local.waitFor(CONNECTED, { since: at2, what: 'reconnection after removal' });
      const row = await awaitSurfaceRequest('j', S.localId, old?.requestId);
      const { list, res } = await devicesList('j');
      if (!list.paired.some((x) => x.deviceId === S.localId)) throw new Fail('the reconnected local node is not paired again', res);
      const inv = await invoke(S.localId, 'system.which', { bins: ['sh'] });
      expectFail(inv, 'invoke of the re-paired node before its surface is approved', /pairing changed|pending approval/);
      S.localRow = row;
    },
  },
  {
    id: 'k', title: 'nodes remove (node.pair.remove) of the remote node: closed 4001, and it must pair again (pairing required)', needs: ['i'],
    async run() {
      const at = remote.mark();
      const r = await cli('nodes', 'remove', '--node', 'nt-remote');
      expectOk(r, 'nodes remove');
      if (r.json?.nodeId !== S.remoteId) throw new Fail(`nodes remove printed ${trunc(r.stdout, 300)}`, r);
      await remote.waitFor(/closed \(4001\): device removed/, { since: at, what: 'close 4001 "device removed"' });
      await remote.waitFor(/pairing required/, { since: at, what: 'pairing required on reconnect' });
      const { list, res } = await devicesList('k');
      if (list.paired.some((x) => x.deviceId === S.remoteId)) throw new Fail('the removed remote node is still paired', res);
      if (!list.pending.some((x) => x.deviceId === S.remoteId)) throw new Fail('the removed remote node has no new pairing request', res);
    },
  },
];
scenarios.sort((x, y) => x.id.localeCompare(y.id));

// ---------------------------------------------------------------------------------------------
async function main() {
  log(`nodes: target=${TARGET} workdir=${WORK}`);
  const infraErr = {};
  if (!OC_MJS || !fs.existsSync(OC_MJS)) infraErr.all = `openclaw CLI not found (INTEROP_OPENCLAW_MJS=${OC_MJS || 'unset'})`;
  if (FRONTDOOR && (!CLAWGATE_BIN || !fs.existsSync(CLAWGATE_BIN))) infraErr.all = `clawgate binary not found (CLAWGATE_BIN=${CLAWGATE_BIN || 'unset'})`;
  if (!FRONTDOOR && TARGET !== 'openclaw') infraErr.all = `the node suite runs with INTEROP_TARGET=frontdoor or openclaw (got ${TARGET})`;
  admin = new Device('admin');
  if (!infraErr.all) {
    try {
      // the real gateway trusts 127.0.0.1 as its proxy: clawgate in front of it, or (target openclaw) the relay
      upstream = await startGateway('upstream', { trustedProxies: ['127.0.0.1'], kind: 'openclaw' });
      log(`nodes: the real gateway up at ${upstream.url} after ${elapsed(upstream.startMs)}`);
      gw = upstream;
      if (FRONTDOOR) {
        gw = await startGateway('clawgate', { trustedProxies: ['127.0.0.1'], upstream });
        log(`nodes: clawgate (front door) up at ${gw.url} after ${elapsed(gw.startMs)}`);
      }
      tap = await startRelay('tap', gw.url, 'none');
      relay = await startRelay('remote', gw.url, REMOTE_IP);
      log(`nodes: local nodes via ${tap.url}, remote nodes via ${relay.url} (X-Forwarded-For: ${REMOTE_IP})`);
    } catch (e) {
      infraErr.all = e.message;
    }
  }
  if (infraErr.all) log(`nodes: ERROR: ${infraErr.all}`);
  return runScenarios({ suite: 'nodes', scenarios, infraErr, gateways: () => [gw, upstream === gw ? null : upstream] });
}

runDriver('nodes', main, stopAll);
