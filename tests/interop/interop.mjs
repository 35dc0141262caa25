// Interop driver: runs the REAL `openclaw` CLI (npm openclaw@2026.9.6) against a gateway.
//
//   INTEROP_TARGET=clawgate|openclaw   which gateway to test (default clawgate)
//   CLAWGATE_BIN                       clawgate binary (target=clawgate)
//   INTEROP_NODE_BIN                   Node 24 binary used for the CLI, relays and (target=openclaw) the gateway
//   INTEROP_OPENCLAW_MJS               path to node_modules/openclaw/openclaw.mjs
//   INTEROP_WORKDIR                    scratch folder (default: a new temp folder)
//   INTEROP_ONLY=a,b,e                 run only these scenarios (others are not counted)
//   INTEROP_CLI_TIMEOUT_MS             bound for one CLI invocation (default 60000)
//   INTEROP_TAP=1                      debugging: send the "direct" loopback CLI traffic through a transparent
//                                      logging relay (no X-Forwarded-For) so its frames land in relay-tap.log
//
// Normally started by run.sh. Prints one PASS/FAIL line per scenario and, last, `N passed, M failed`.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { httpGetStatus, killGroup, runDriver, newDevice, sleep, WsClient } from './lib.mjs';
import {
  TARGET, NODE_BIN, OC_MJS, CLAWGATE_BIN, TOKEN, XFF, WORK, log, elapsed, trunc, stopAll, stopOnSignalsAs, baseEnv,
  runBounded, Device, parseJson, Fail, out, expectOk, expectFail, startGateway, startRelay, relayEvents, fmtRelayEvents,
  note, runScenarios,
} from './harness.mjs';

stopOnSignalsAs('interop');
// Front-door mode: one real gateway (the upstream) that every clawgate of the suite fronts.
let upstream = null;

// ---------------------------------------------------------------------------------------------
// scenarios
const S = {}; // shared state between scenarios
// The first path where two JSON values differ (null when equal).
function firstDiff(a, b, at) {
  if (a === b) return null;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return `${at}: ${trunc(JSON.stringify(a), 120)} vs ${trunc(JSON.stringify(b), 120)}`;
  if (Array.isArray(a) !== Array.isArray(b)) return `${at}: array vs object`;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) { const d = firstDiff(a[k], b[k], `${at}.${k}`); if (d) return d; }
  return null;
}
// gw1's shared token (scenario q changes it in the file)
const gw1Token = () => S.gw1Token || TOKEN;
let gw1, gw2, relay1, relay2, tap, admin;
// URL of the main gateway as the "direct" loopback clients use it (the tap relay when INTEROP_TAP=1)
const direct = () => (tap ? tap.url : gw1.url);

async function listDevices(id) {
  const r = await admin.oc('devices', 'list', '--url', direct(), '--token', TOKEN, '--json');
  expectOk(r, `${id}: devices list`);
  const j = parseJson(r.stdout);
  if (!j || !Array.isArray(j.pending) || !Array.isArray(j.paired)) throw new Fail(`${id}: devices list --json did not print {pending:[], paired:[]}`, r);
  return { list: j, res: r };
}
const REQ_ID_RE = /requestId:\s*([A-Za-z0-9][A-Za-z0-9._:-]{0,127})/;

const scenarios = [
  {
    id: 'a', title: 'token right: gateway call health succeeds', needs: ['gw1'],
    async run() {
      const r = await admin.oc('gateway', 'call', 'health', '--url', direct(), '--token', TOKEN, '--json');
      expectOk(r, 'gateway call health');
      const j = parseJson(r.stdout);
      if (!j || typeof j !== 'object') throw new Fail('gateway call health --json printed no JSON', r);
      if (j.ok !== true) note('a', `health payload has ok=${JSON.stringify(j.ok)} (real gateway: ok:true)`);
    },
  },
  {
    id: 'b', title: 'token wrong: fails with "gateway token mismatch"', needs: ['gw1'],
    async run() {
      const r = await admin.oc('gateway', 'call', 'health', '--url', direct(), '--token', 'wrong-token-0000000000', '--json');
      expectFail(r, 'wrong token', 'gateway token mismatch');
      const j = parseJson(r.stdout);
      const code = j?.error?.details?.code;
      if (code !== 'AUTH_TOKEN_MISMATCH') note('b', `error.details.code=${JSON.stringify(code)} (real gateway: AUTH_TOKEN_MISMATCH)`);
    },
  },
  {
    id: 'c', title: 'token missing: device config without token fails with "gateway token missing"', needs: ['gw1'],
    async run() {
      const d = new Device('c-notoken');
      d.writeConfig({ url: direct() });
      const r = await d.oc('system', 'presence');
      expectFail(r, 'no token', 'unauthorized: gateway token missing');
    },
  },
  {
    id: 'd', title: 'local device paired silently (system presence, then paired in devices list)', needs: ['gw1'],
    async run() {
      const d = new Device('d-local');
      d.writeConfig({ url: direct(), token: TOKEN });
      const r = await d.oc('system', 'presence');
      expectOk(r, 'system presence (local device)');
      if (!Array.isArray(parseJson(r.stdout))) note('d', `system presence printed no JSON array: ${trunc(r.stdout, 200)}`);
      const id = await d.identity();
      const { list, res } = await listDevices('d');
      const p = list.paired.find((x) => x.deviceId === id);
      if (!p) throw new Fail(`device ${id} not in paired list`, r, res);
      if (list.pending.some((x) => x.deviceId === id)) throw new Fail(`device ${id} still has a pending request`, res);
      if (p.approvedVia !== 'silent') note('d', `paired.approvedVia=${JSON.stringify(p.approvedVia)} (real gateway: "silent")`);
      if ('remoteIp' in p) note('d', `paired record of a direct-local device has remoteIp=${JSON.stringify(p.remoteIp)} (real gateway: omitted)`);
    },
  },
  {
    id: 'e', title: 'remote device via trusted proxy: pairing required -> pending (remoteIp) -> approve -> presence ok', needs: ['gw1', 'relay1'],
    async run() {
      const d = new Device('e-remote');
      S.eDevice = d;
      d.writeConfig({ url: relay1.url, token: TOKEN });
      const since = Date.now();
      const r1 = await d.oc('system', 'presence');
      expectFail(r1, 'unpaired remote device', 'pairing required');
      const m = REQ_ID_RE.exec(out(r1));
      if (!m) throw new Fail('no "requestId: <id>" in the pairing-required output', r1);
      const requestId = m[1];
      const devId = await d.identity();
      const { list, res } = await listDevices('e');
      const pend = list.pending.find((x) => x.requestId === requestId);
      if (!pend) throw new Fail(`requestId ${requestId} not in the pending list`, r1, res);
      if (pend.deviceId !== devId) throw new Fail(`pending.deviceId ${pend.deviceId} != device identity ${devId}`, res);
      if (pend.remoteIp !== XFF) throw new Fail(`pending.remoteIp=${JSON.stringify(pend.remoteIp)}, expected ${XFF}`, res);
      for (const [k, v] of Object.entries({ clientId: 'cli', clientMode: 'cli', role: 'operator', silent: false, isRepair: false })) {
        if (pend[k] !== v) note('e', `pending.${k}=${JSON.stringify(pend[k])} (real gateway: ${JSON.stringify(v)})`);
      }
      const ap = await admin.oc('devices', 'approve', requestId, '--url', direct(), '--token', TOKEN);
      expectOk(ap, 'devices approve');
      if (!ap.stdout.includes(`Approved ${devId}`)) note('e', `devices approve printed ${JSON.stringify(trunc(ap.stdout.trim(), 200))} (real: "Approved <deviceId> (<requestId>)")`);
      const r2 = await d.oc('system', 'presence');
      if (r2.code !== 0) throw new Fail('system presence after approval failed', r2, { ...r2, display: 'relay frames', argv: [], stdout: fmtRelayEvents(relayEvents(relay1, since)), stderr: '' });
      const after = await listDevices('e');
      const p = after.list.paired.find((x) => x.deviceId === devId);
      if (!p) throw new Fail(`device ${devId} not paired after approval`, after.res);
      if (after.list.pending.some((x) => x.deviceId === devId)) throw new Fail('pending request still listed after approval', after.res);
      S.eDeviceId = devId;
    },
  },
  {
    id: 'f', title: 'device-token reuse: presence without remote.token uses the stored device token', needs: ['e'],
    async run() {
      const d = S.eDevice;
      d.writeConfig({ url: relay1.url });
      const since = Date.now();
      const r = await d.oc('system', 'presence');
      const evs = relayEvents(relay1, since);
      const dump = { display: 'relay frames', argv: [], code: '-', ms: 0, stdout: fmtRelayEvents(evs), stderr: '' };
      expectOk(r, 'system presence with stored device token only');
      const connect = evs.find((e) => e.dir === 'c2s' && e.frame?.method === 'connect');
      if (connect && (connect.frame.params?.auth?.token || !connect.frame.params?.auth?.deviceToken)) {
        throw new Fail(`connect did not use the device token alone: auth=${JSON.stringify(connect.frame.params?.auth)}`, r, dump);
      }
      const hello = evs.find((e) => e.dir === 's2c' && e.frame?.payload?.type === 'hello-ok');
      if (hello && hello.frame.payload.auth?.method !== 'device-token') note('f', `hello-ok auth.method=${JSON.stringify(hello.frame.payload.auth?.method)} (real gateway: "device-token")`);
    },
  },
  {
    id: 'g', title: 'reject: second remote device -> pending -> reject -> gone, still not connecting', needs: ['gw1', 'relay1'],
    async run() {
      const d = new Device('g-rejected');
      d.writeConfig({ url: relay1.url, token: TOKEN });
      const r1 = await d.oc('system', 'presence');
      expectFail(r1, 'unpaired second device', 'pairing required');
      const m = REQ_ID_RE.exec(out(r1));
      if (!m) throw new Fail('no "requestId: <id>" in the pairing-required output', r1);
      const requestId = m[1];
      const devId = await d.identity();
      const before = await listDevices('g');
      if (!before.list.pending.some((x) => x.requestId === requestId && x.deviceId === devId)) throw new Fail(`requestId ${requestId} (device ${devId}) not pending`, before.res);
      const rj = await admin.oc('devices', 'reject', requestId, '--url', direct(), '--token', TOKEN, '--json');
      expectOk(rj, 'devices reject');
      const rjj = parseJson(rj.stdout);
      if (!rjj || rjj.requestId !== requestId || rjj.deviceId !== devId) note('g', `devices reject --json printed ${trunc(rj.stdout.trim(), 300)} (real: {requestId, deviceId})`);
      const after = await listDevices('g');
      if (after.list.pending.some((x) => x.requestId === requestId || x.deviceId === devId)) throw new Fail('rejected request still pending', after.res);
      if (after.list.paired.some((x) => x.deviceId === devId)) throw new Fail('rejected device shows as paired', after.res);
      const r2 = await d.oc('system', 'presence');
      expectFail(r2, 'rejected device reconnect', 'pairing required');
      const m2 = REQ_ID_RE.exec(out(r2));
      if (m2 && m2[1] === requestId) throw new Fail(`reconnect after reject reused the rejected requestId ${requestId}`, r2);
      const fin = await listDevices('g');
      if (fin.list.paired.some((x) => x.deviceId === devId)) throw new Fail('rejected device became paired', fin.res);
    },
  },
  {
    id: 'h', title: 'rotate: devices rotate succeeds; the old stored device token is refused (device token mismatch)', needs: ['e'],
    async run() {
      const devId = S.eDeviceId;
      const r = await admin.oc('devices', 'rotate', '--device', devId, '--role', 'operator', '--url', direct(), '--token', TOKEN, '--json');
      expectOk(r, 'devices rotate');
      const j = parseJson(r.stdout);
      if (!j || j.deviceId !== devId || j.role !== 'operator') throw new Fail(`devices rotate --json did not print {deviceId:${devId}, role:"operator", …}`, r);
      if (j.tokenDelivery !== 'withheld-cross-device' || 'token' in j) note('h', `rotate result tokenDelivery=${JSON.stringify(j.tokenDelivery)} token=${'token' in j ? 'present' : 'absent'} (real: "withheld-cross-device", no token)`);
      if (typeof j.rotatedAtMs !== 'number') note('h', 'rotate result has no numeric rotatedAtMs');
      const d = S.eDevice;
      d.writeConfig({ url: relay1.url }); // device-token-only
      const since = Date.now();
      const r2 = await d.oc('system', 'presence');
      const dump = { display: 'relay frames', argv: [], code: '-', ms: 0, stdout: fmtRelayEvents(relayEvents(relay1, since)), stderr: '' };
      if (r2.code === 0) throw new Fail('old device token still accepted after rotation', r2, dump);
      expectFail(r2, 'device-token-only connect after rotation', 'device token mismatch');
    },
  },
  {
    id: 'i', title: 'revoke: devices revoke --role operator succeeds', needs: ['e'],
    async run() {
      const devId = S.eDeviceId;
      const r = await admin.oc('devices', 'revoke', '--device', devId, '--role', 'operator', '--url', direct(), '--token', TOKEN, '--json');
      expectOk(r, 'devices revoke');
      const j = parseJson(r.stdout);
      if (!j || j.deviceId !== devId || j.role !== 'operator') throw new Fail(`devices revoke --json did not print {deviceId:${devId}, role:"operator", revokedAtMs}`, r);
      if (typeof j.revokedAtMs !== 'number') note('i', 'revoke result has no numeric revokedAtMs');
      const { list } = await listDevices('i');
      const p = list.paired.find((x) => x.deviceId === devId);
      const tok = p?.tokens?.find?.((t) => t.role === 'operator');
      if (!tok || typeof tok.revokedAtMs !== 'number') note('i', `devices list shows no revokedAtMs on the operator token: ${trunc(JSON.stringify(p?.tokens), 300)}`);
    },
  },
  {
    id: 'i2', title: 'revoked role: the next shared-token connect is a role-upgrade pairing request', needs: ['i', 'relay1'],
    async run() {
      const d = S.eDevice;
      d.writeConfig({ url: relay1.url, token: TOKEN });
      const r = await d.oc('system', 'presence');
      expectFail(r, 'connect after revoke', 'role upgrade pending approval');
      const { list, res } = await listDevices('i2');
      const pend = list.pending.find((x) => x.deviceId === S.eDeviceId);
      if (!pend) throw new Fail(`no pending request for ${S.eDeviceId} after the revoked device connected`, r, res);
      const rj = await admin.oc('devices', 'reject', pend.requestId, '--url', direct(), '--token', TOKEN, '--json');
      expectOk(rj, 'cleanup: devices reject');
    },
  },
  {
    id: 'j', title: 'remove: devices remove <deviceId> -> gone from devices list', needs: ['e'],
    async run() {
      const devId = S.eDeviceId;
      const r = await admin.oc('devices', 'remove', devId, '--url', direct(), '--token', TOKEN, '--json');
      expectOk(r, 'devices remove');
      const j = parseJson(r.stdout);
      if (!j || j.deviceId !== devId) note('j', `devices remove --json printed ${trunc(r.stdout.trim(), 200)} (real: {deviceId})`);
      const { list, res } = await listDevices('j');
      if (list.paired.some((x) => x.deviceId === devId)) throw new Fail(`device ${devId} still paired after remove`, res);
      if (list.pending.some((x) => x.deviceId === devId)) throw new Fail(`device ${devId} still pending after remove`, res);
    },
  },
  {
    id: 'l', title: 'pending refresh: an unpaired device connecting twice keeps the same requestId', needs: ['gw1', 'relay1'],
    async run() {
      const d = new Device('l-refresh');
      d.writeConfig({ url: relay1.url, token: TOKEN });
      const r1 = await d.oc('system', 'presence');
      expectFail(r1, 'first connect', 'pairing required');
      const m1 = REQ_ID_RE.exec(out(r1));
      if (!m1) throw new Fail('no "requestId: <id>" in the first pairing-required output', r1);
      const r2 = await d.oc('system', 'presence');
      expectFail(r2, 'second connect', 'pairing required');
      const m2 = REQ_ID_RE.exec(out(r2));
      if (!m2) throw new Fail('no "requestId: <id>" in the second pairing-required output', r2);
      if (m2[1] !== m1[1]) throw new Fail(`second connect got requestId ${m2[1]}, first got ${m1[1]} (real gateway refreshes the same request)`, r1, r2);
      const devId = await d.identity();
      const { list, res } = await listDevices('l');
      const mine = list.pending.filter((x) => x.deviceId === devId);
      if (mine.length !== 1 || mine[0].requestId !== m1[1]) throw new Fail(`expected exactly one pending request ${m1[1]} for ${devId}, got ${JSON.stringify(mine.map((x) => x.requestId))}`, res);
      const rj = await admin.oc('devices', 'reject', m1[1], '--url', direct(), '--token', TOKEN, '--json');
      expectOk(rj, 'cleanup: devices reject');
    },
  },
  {
    id: 'm', title: 'removed device must pair again: its next connect gets pairing required (new pending request)', needs: ['j'],
    async run() {
      const d = S.eDevice;
      d.writeConfig({ url: relay1.url, token: TOKEN });
      const r = await d.oc('system', 'presence');
      expectFail(r, 'connect of a removed device', 'pairing required');
      const m = REQ_ID_RE.exec(out(r));
      if (!m) throw new Fail('no "requestId: <id>" in the pairing-required output', r);
      const { list, res } = await listDevices('m');
      const pend = list.pending.find((x) => x.requestId === m[1]);
      if (!pend || pend.deviceId !== S.eDeviceId) throw new Fail(`request ${m[1]} for ${S.eDeviceId} not pending`, r, res);
      if (pend.isRepair !== false) note('m', `pending.isRepair=${JSON.stringify(pend.isRepair)} after remove (real gateway: false)`);
      if (list.paired.some((x) => x.deviceId === S.eDeviceId)) throw new Fail('removed device shows as paired again', res);
      const rj = await admin.oc('devices', 'reject', m[1], '--url', direct(), '--token', TOKEN, '--json');
      expectOk(rj, 'cleanup: devices reject');
    },
  },
  {
    id: 'n', title: 'unknown ids: devices reject/remove/rotate/revoke of unknown ids fail with the real messages', needs: ['gw1'],
    async run() {
      const badReq = '00000000-0000-4000-8000-000000000000';
      const badDev = '0'.repeat(64);
      const rj = await admin.oc('devices', 'reject', badReq, '--url', direct(), '--token', TOKEN, '--json');
      expectFail(rj, 'reject unknown requestId', /unknown requestId/i);
      const rm = await admin.oc('devices', 'remove', badDev, '--url', direct(), '--token', TOKEN, '--json');
      expectFail(rm, 'remove unknown deviceId', /unknown deviceId/i);
      // the real gateway answers an unknown device/role with the generic denial (reason unknown-device-or-role is only logged)
      const ro = await admin.oc('devices', 'rotate', '--device', badDev, '--role', 'operator', '--url', direct(), '--token', TOKEN, '--json');
      expectFail(ro, 'rotate unknown deviceId', 'device token rotation denied');
      const rv = await admin.oc('devices', 'revoke', '--device', badDev, '--role', 'operator', '--url', direct(), '--token', TOKEN, '--json');
      expectFail(rv, 'revoke unknown deviceId', 'device token revocation denied');
    },
  },
  {
    id: 'o', title: 'scope upgrade: a paired read-only remote device running `devices list` gets "scope upgrade pending approval"', needs: ['gw1', 'relay1'],
    async run() {
      const d = new Device('o-scope-upgrade');
      d.writeConfig({ url: relay1.url, token: TOKEN });
      const r1 = await d.oc('system', 'presence');
      expectFail(r1, 'first connect', 'pairing required');
      const m1 = REQ_ID_RE.exec(out(r1));
      if (!m1) throw new Fail('no "requestId: <id>" in the pairing-required output', r1);
      const ap = await admin.oc('devices', 'approve', m1[1], '--url', direct(), '--token', TOKEN);
      expectOk(ap, 'devices approve (initial pairing)');
      const r2 = await d.oc('system', 'presence');
      expectOk(r2, 'system presence after approval');
      const devId = await d.identity();
      // `devices list` through the device's own remote config asks for operator.pairing, beyond the approved operator.read
      const r3 = await d.oc('devices', 'list', '--json');
      expectFail(r3, 'devices list from a read-only device', 'scope upgrade pending approval');
      const m3 = REQ_ID_RE.exec(out(r3));
      if (!m3) throw new Fail('no "requestId: <id>" in the scope-upgrade output', r3);
      const { list, res } = await listDevices('o');
      const pend = list.pending.find((x) => x.requestId === m3[1]);
      if (!pend || pend.deviceId !== devId) throw new Fail(`scope-upgrade request ${m3[1]} for ${devId} not pending`, r3, res);
      if (!Array.isArray(pend.scopes) || !pend.scopes.includes('operator.pairing')) throw new Fail(`pending.scopes=${JSON.stringify(pend.scopes)} does not include operator.pairing`, res);
      if (pend.remoteIp !== XFF) throw new Fail(`pending.remoteIp=${JSON.stringify(pend.remoteIp)}, expected ${XFF}`, res);
      if (pend.isRepair !== true) note('o', `scope-upgrade pending.isRepair=${JSON.stringify(pend.isRepair)} (real gateway: true)`);
      if (JSON.stringify(pend.scopes) !== '["operator.pairing"]') note('o', `scope-upgrade pending.scopes=${JSON.stringify(pend.scopes)} (real gateway: ["operator.pairing"])`);
      const paired = list.paired.find((x) => x.deviceId === devId);
      if (!paired || JSON.stringify(paired.scopes) !== '["operator.read"]') throw new Fail(`paired record should still have scopes ["operator.read"]: ${trunc(JSON.stringify(paired), 400)}`, res);
      // Real 2026.9.6 quirk (informational): the CLI approves with scopes ["operator.pairing"], the gateway wants the caller
      // to hold pending ∪ next-token scopes and answers "missing scope: operator.read".
      const ap2 = await admin.oc('devices', 'approve', m3[1], '--url', direct(), '--token', TOKEN);
      if (ap2.code === 0 || !out(ap2).includes('missing scope: operator.read')) {
        note('o', `devices approve of the scope upgrade: exit ${ap2.code}, output ${JSON.stringify(trunc(out(ap2).trim(), 200))} (real gateway: exit 1, "missing scope: operator.read")`);
      }
      const after = await listDevices('o');
      if (after.list.pending.some((x) => x.requestId === m3[1])) {
        const rj = await admin.oc('devices', 'reject', m3[1], '--url', direct(), '--token', TOKEN, '--json');
        expectOk(rj, 'cleanup: devices reject of the scope-upgrade request');
      }
    },
  },
  {
    id: 'p', title: 'admin API (clawgate only): a real CLI device behind the proxy is approved with POST /admin/v1/pairing/requests/{id}/approve and connects', needs: ['gw1', 'relay1'],
    async run() {
      if (TARGET === 'openclaw') { note('p', 'clawgate-only scenario: nothing to check on the real gateway'); return; }
      const d = new Device('p-http-approved');
      d.writeConfig({ url: relay1.url, token: TOKEN });
      const r1 = await d.oc('system', 'presence');
      expectFail(r1, 'unpaired remote device', 'pairing required');
      const m = REQ_ID_RE.exec(out(r1));
      if (!m) throw new Fail('no "requestId: <id>" in the pairing-required output', r1);
      const requestId = m[1];
      const devId = await d.identity();
      const rt = JSON.parse(fs.readFileSync(gw1.runtimeFile, 'utf8'));
      const adminToken = fs.readFileSync(path.join(gw1.stateDir, 'admin-token'), 'utf8').trim();
      const base = `http://${rt.adminAddr}`;
      const headers = { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' };
      const listRes = await fetch(`${base}/admin/v1/pairing/requests`, { headers });
      const list = await listRes.json();
      const req = (list.requests || []).find((x) => x.requestId === requestId);
      const dump = (what, v) => ({ display: what, argv: [], code: '-', ms: 0, stdout: JSON.stringify(v, null, 2), stderr: '' });
      if (listRes.status !== 200 || !req) throw new Fail(`request ${requestId} not in GET /admin/v1/pairing/requests (status ${listRes.status})`, r1, dump('admin list', list));
      if (req.deviceId !== devId || req.clientAddress !== XFF) throw new Fail(`admin list shows deviceId=${req.deviceId} clientAddress=${req.clientAddress}`, dump('request', req));
      const apRes = await fetch(`${base}/admin/v1/pairing/requests/${requestId}/approve`, { method: 'POST', headers, body: '{"label":"interop"}' });
      const ap = await apRes.json();
      if (apRes.status !== 200) throw new Fail(`approve answered ${apRes.status}`, dump('approve', ap));
      const r2 = await d.oc('system', 'presence');
      expectOk(r2, 'system presence after the HTTP approval');
      const again = await fetch(`${base}/admin/v1/pairing/requests/${requestId}/approve`, { method: 'POST', headers, body: '{}' });
      if (again.status !== 409) throw new Fail(`a second approve answered ${again.status}, expected 409`);
    },
  },
  {
    id: 'q', title: 'hot reload: a gateway token changed in the config file applies without a restart (new token accepted, old one refused)', needs: ['gw1'],
    async run() {
      const NEW = 'interop-token-edited-in-the-file-0123456789';
      const cfg = JSON.parse(fs.readFileSync(gw1.configPath, 'utf8'));
      cfg.gateway = cfg.gateway || {};
      cfg.gateway.auth = { ...(cfg.gateway.auth || {}), token: NEW };
      // an editor-style rename-replace write
      fs.writeFileSync(`${gw1.configPath}.tmp`, JSON.stringify(cfg, null, 2) + '\n');
      fs.renameSync(`${gw1.configPath}.tmp`, gw1.configPath);
      const deadline = Date.now() + 15000;
      let r;
      for (;;) {
        r = await admin.oc('gateway', 'call', 'health', '--url', gw1.url, '--token', NEW, '--json');
        if (r.code === 0 || Date.now() > deadline) break;
        await sleep(300);
      }
      expectOk(r, 'health with the token from the edited file');
      S.gw1Token = NEW;
      const old = await admin.oc('gateway', 'call', 'health', '--url', gw1.url, '--token', TOKEN, '--json');
      expectFail(old, 'the previous token after the edit', 'gateway token mismatch');
    },
  },
  {
    id: 'k', title: 'relay without trustedProxies: HTTP 403 proxy attribution required', needs: ['gw2', 'relay2'],
    async run() {
      const since = Date.now();
      const r = await admin.oc('gateway', 'call', 'health', '--url', relay2.url, '--token', TOKEN, '--json');
      const evs = relayEvents(relay2, since);
      const dump = { display: 'relay frames', argv: [], code: '-', ms: 0, stdout: fmtRelayEvents(evs), stderr: '' };
      if (r.code === 0) throw new Fail('connect through an untrusted proxy succeeded', r, dump);
      try { expectFail(r, 'untrusted proxy', 'HTTP 403', 'proxy_attribution_required'); } catch (e) { e.results.push(dump); throw e; }
    },
  },
  {
    id: 'r', frontdoorOnly: true, title: 'front door: real gateway RPCs through clawgate answer as the upstream answers directly', needs: ['gw1', 'upstream'],
    async run() {
      const methods = ['status', 'sessions.list', 'agents.list', 'models.list', 'commands.list', 'cron.list'];
      // values that differ between two calls whatever the path (clocks, ids, counters)
      const VOLATILE = /^(ts|now|uptime.*|.*At|.*AtMs|.*Ms|connId|id|.*Id|pid|runId|requestId|seq)$/;
      const strip = (v) => Array.isArray(v) ? v.map(strip)
        : (v && typeof v === 'object') ? Object.fromEntries(Object.entries(v).filter(([k]) => !VOLATILE.test(k)).map(([k, x]) => [k, strip(x)]))
        : v;
      let compared = 0;
      for (const m of methods) {
        const direct = await admin.oc('gateway', 'call', m, '--url', upstream.url, '--token', TOKEN, '--json');
        if (direct.code !== 0) { note('r', `${m}: the upstream itself answered exit ${direct.code}; not compared`); continue; }
        const via = await admin.oc('gateway', 'call', m, '--url', gw1.url, '--token', gw1Token(), '--json');
        expectOk(via, `${m} through clawgate`);
        // `status` reports live runtime figures (event loop, memory, tasks) whose fields come and go:
        // its sections must match; the others must match value for value.
        const norm = m === 'status' ? (v) => Object.keys(strip(v) || {}).sort() : strip;
        const diff = firstDiff(norm(parseJson(direct.stdout)), norm(parseJson(via.stdout)), m);
        if (diff) throw new Fail(`${m}: through clawgate the payload differs from the upstream's at ${diff}`, direct, via);
        compared += 1;
      }
      if (compared < 3) throw new Fail(`only ${compared} of ${methods.length} RPCs could be compared`);
    },
  },
  {
    id: 's', frontdoorOnly: true, title: 'front door: the shared openclaw.json still passes `openclaw config validate`', needs: ['upstream'],
    async run() {
      const env = { ...upstream.env };
      const r = await runBounded(NODE_BIN, [OC_MJS, 'config', 'validate'], { env, cwd: upstream.home, name: 'openclaw config validate' });
      r.display = `openclaw config validate (${upstream.configPath})`;
      expectOk(r, 'openclaw config validate of the shared file');
    },
  },
  {
    id: 'y', frontdoorOnly: true, title: 'front door: `clawgate doctor` checks the upstream (its credential accepted, bound to loopback)', needs: ['gw1', 'upstream'],
    async run() {
      const env = baseEnv();
      delete env.NODE_OPTIONS;
      for (const k of Object.keys(env)) if (k.startsWith('CLAWGATE_')) delete env[k];
      // The real gateway answers "gateway starting" for a while after its /healthz does.
      const deadline = Date.now() + 60000;
      let r, c;
      for (;;) {
        r = await runBounded(CLAWGATE_BIN, ['doctor', '--json', '--config', upstream.configPath, '--clawgate-config', gw1.configPath,
          '--state-dir', gw1.stateDir, '--upstream', 'auto'], { env, cwd: WORK, name: 'clawgate doctor' });
        r.display = 'clawgate doctor --json (front door)';
        c = (parseJson(r.stdout)?.checks || []).find((x) => x.id === 'upstream');
        if (!c || !/not ready/.test(c.summary) || Date.now() > deadline) break;
        await sleep(500);
      }
      if (!c) throw new Fail('no upstream check in the doctor report', r);
      if (c.status !== 'ok' || !/accepted clawgate's credential/.test(c.summary)) throw new Fail(`upstream check: ${c.status}: ${c.summary}`, r);
    },
  },
  {
    id: 'z', frontdoorOnly: true, title: 'front door: the upstream is killed and restarted: UNAVAILABLE / 1013, then recovery', needs: ['gw1', 'upstream'],
    async run() {
      // A bridged session open when the upstream dies is closed (1012), so that its client reconnects.
      const wsLib = createRequire(OC_MJS)('ws');
      // (the upstream may still be starting its sidecars: it says so, retryable)
      const device = newDevice();
      const until = Date.now() + 60000;
      let held;
      for (;;) {
        held = await WsClient.open(wsLib.WebSocket || wsLib, gw1.url);
        const hello = await held.connect(gw1Token(), device);
        if (hello.ok) break;
        held.close();
        if (!hello.error?.retryable || Date.now() > until) throw new Fail(`a bridged session through clawgate: ${JSON.stringify(hello.error)}`);
        await sleep(hello.error.retryAfterMs || 500);
      }
      killGroup(upstream.child.pid, 'SIGKILL');
      const closed = await Promise.race([held.closed, sleep(15000).then(() => null)]);
      if (!closed) { held.ws.terminate(); throw new Fail('the bridged session stayed open after the upstream died'); }
      if (closed.code !== 1012) throw new Fail(`the bridged session closed with ${closed.code} ${closed.reason}, expected 1012`);
      const down = Date.now() + 15000;
      while (Date.now() < down && (await httpGetStatus(upstream.port)) === 200) await sleep(100);
      const r1 = await admin.oc('gateway', 'call', 'health', '--url', gw1.url, '--token', gw1Token(), '--json');
      expectFail(r1, 'health through clawgate while the upstream is down', /unavailable|1013/i);
      // clawgate's own pairing authority keeps answering meanwhile
      const rt = JSON.parse(fs.readFileSync(gw1.runtimeFile, 'utf8'));
      const adminToken = fs.readFileSync(path.join(gw1.stateDir, 'admin-token'), 'utf8').trim();
      const lr = await fetch(`http://${rt.adminAddr}/admin/v1/pairing/requests`, { headers: { Authorization: `Bearer ${adminToken}` } });
      if (lr.status !== 200) throw new Fail(`the admin API answered ${lr.status} while the upstream was down`);
      const fresh = await startGateway('upstream-again', { trustedProxies: null, kind: 'openclaw', port: upstream.port, configPath: upstream.configPath, home: upstream.home });
      upstream.child = fresh.child;
      const deadline = Date.now() + 30000;
      let r2;
      for (;;) {
        r2 = await admin.oc('gateway', 'call', 'health', '--url', gw1.url, '--token', gw1Token(), '--json');
        if (r2.code === 0 || Date.now() > deadline) break;
        await sleep(500);
      }
      expectOk(r2, 'health through clawgate after the upstream came back');
    },
  },
];

// Front-door scenarios exist only in that mode (elsewhere they are not run, not counted).
for (let i = scenarios.length - 1; i >= 0; i--) if (scenarios[i].frontdoorOnly && TARGET !== 'frontdoor') scenarios.splice(i, 1);
scenarios.sort((x, y) => x.id.localeCompare(y.id)); // prerequisites always come first alphabetically

// ---------------------------------------------------------------------------------------------
async function main() {
  log(`interop: target=${TARGET} workdir=${WORK}`);
  log(`interop: node=${NODE_BIN} openclaw=${OC_MJS}${TARGET === 'clawgate' ? ` clawgate=${CLAWGATE_BIN}` : ''}`);
  const infraErr = {};
  if (!OC_MJS || !fs.existsSync(OC_MJS)) infraErr.all = `openclaw CLI not found (INTEROP_OPENCLAW_MJS=${OC_MJS || 'unset'})`;
  if (TARGET !== 'openclaw' && (!CLAWGATE_BIN || !fs.existsSync(CLAWGATE_BIN))) infraErr.all = `clawgate binary not found (CLAWGATE_BIN=${CLAWGATE_BIN || 'unset'})`;
  admin = new Device('admin');

  if (!infraErr.all && TARGET === 'frontdoor') {
    try {
      // the real gateway trusts clawgate (on loopback) as its proxy, as the README's front-door setup says
      upstream = await startGateway('upstream', { trustedProxies: ['127.0.0.1'], kind: 'openclaw' });
      log(`interop: upstream (the real gateway) up at ${upstream.url} after ${elapsed(upstream.startMs)}`);
    } catch (e) {
      infraErr.upstream = `the real gateway (upstream) failed to start: ${e.message}`;
      infraErr.all = infraErr.upstream;
    }
  }
  if (!infraErr.all) {
    // Start both gateways in parallel (the real one takes ~10-20 s each).
    const [g1, g2] = await Promise.allSettled([
      startGateway('gw-trusted', { trustedProxies: ['127.0.0.1'], upstream }),
      startGateway('gw-untrusted', { trustedProxies: null, upstream }),
    ]);
    if (g1.status === 'fulfilled') { gw1 = g1.value; log(`interop: gateway gw-trusted up at ${gw1.url} after ${elapsed(gw1.startMs)}`); }
    else infraErr.gw1 = `gateway (trustedProxies=["127.0.0.1"]) failed to start: ${g1.reason?.message || g1.reason}`;
    if (g2.status === 'fulfilled') { gw2 = g2.value; log(`interop: gateway gw-untrusted up at ${gw2.url} after ${elapsed(gw2.startMs)}`); }
    else infraErr.gw2 = `gateway (no trustedProxies) failed to start: ${g2.reason?.message || g2.reason}`;
    for (const [k, v] of Object.entries(infraErr)) log(`interop: ERROR (${k}): ${v}`);
    if (gw1) { try { relay1 = await startRelay('trusted', gw1.url); log(`interop: relay ${relay1.url} -> ${gw1.url} (X-Forwarded-For: ${XFF})`); } catch (e) { infraErr.relay1 = e.message; log(`interop: ERROR (relay1): ${e.message}`); } }
    if (gw1 && process.env.INTEROP_TAP === '1') { try { tap = await startRelay('tap', gw1.url, 'none'); log(`interop: tap ${tap.url} -> ${gw1.url} (no extra headers; direct CLI traffic logged)`); } catch (e) { log(`interop: tap relay failed, using direct URL: ${e.message}`); } }
    if (gw2) { try { relay2 = await startRelay('untrusted', gw2.url); log(`interop: relay ${relay2.url} -> ${gw2.url} (X-Forwarded-For: ${XFF})`); } catch (e) { infraErr.relay2 = e.message; log(`interop: ERROR (relay2): ${e.message}`); } }
  }

  return runScenarios({ suite: 'interop', scenarios, infraErr, gateways: () => [gw1, gw2, upstream], tap });
}

runDriver('interop', main, stopAll);
