// Debug helper: compare the frames two interop runs logged in their relays.
//
//   node tests/interop/compare-frames.mjs <runDirA> <runDirB>
//
// <runDir> is the `run/` folder of a kept interop run (INTEROP_KEEP=1; best with INTEROP_TAP=1 so the
// direct loopback CLI traffic is logged too), e.g. one with INTEROP_TARGET=openclaw and one against clawgate.
// Connections are paired up by order per relay log (the scenarios run in a fixed order), each frame is
// reduced to a shape (ids, keys, nonces, timestamps, tokens replaced) and differing shapes are printed.
import fs from 'node:fs';
import path from 'node:path';

const [A, B] = process.argv.slice(2);
if (!A || !B) { console.error('usage: compare-frames.mjs <runDirA> <runDirB>'); process.exit(2); }

function load(dir, relay) {
  const f = path.join(dir, `relay-${relay}.log`);
  if (!fs.existsSync(f)) return null;
  const conns = new Map();
  for (const l of fs.readFileSync(f, 'utf8').split('\n')) {
    if (!l) continue;
    let e; try { e = JSON.parse(l); } catch { continue; }
    if (e.conn == null) continue;
    if (!conns.has(e.conn)) conns.set(e.conn, []);
    conns.get(e.conn).push(e);
  }
  // drop connections refused with "gateway starting" (the real gateway answers /healthz before its sidecars are up; the
  // CLI retries), so that the remaining connections line up
  return [...conns.values()].filter((evs) => !evs.some((e) => e.dir === 's2c' && e.frame?.error?.details?.reason === 'startup-sidecars'));
}

const ID = /^[0-9a-f]{64}$|^[0-9a-f-]{36}$|^\d+:[0-9a-f-]{36}$/;
function normStr(s) {
  return s
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<uuid>')
    .replace(/[0-9a-f]{64}/g, '<hex64>');
}
// Structural shape of a JSON value: objects keep keys (sorted), strings that look like ids are replaced.
function shape(v, keyName = '', depth = 0) {
  if (v === null) return null;
  if (Array.isArray(v)) {
    if (depth > 2 || v.length > 8) return `[array(${v.length === 0 ? 0 : 'n'})]`;
    return v.map((x) => shape(x, keyName, depth + 1));
  }
  if (typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v).sort()) o[k] = depth > 3 ? typeof v[k] : shape(v[k], k, depth + 1);
    return o;
  }
  if (typeof v === 'string') {
    if (/token|signature|publicKey|nonce|recoveryScope|instanceId|connId|bootId|buildId|key$/i.test(keyName)) return `<${keyName}>`;
    if (ID.test(v)) return '<id>';
    return normStr(v);
  }
  if (typeof v === 'number') return /ts|At|Ms$|uptime|seq|stateVersion|presence|health|port/i.test(keyName) ? '<num>' : v;
  return v;
}
function summarize(e) {
  switch (e.dir) {
    case 'upgrade': return null;
    case 'open': return 'open';
    case 'upgrade-rejected': return `upgrade-rejected ${e.status} ${normStr(e.body)}`;
    case 'close': return `close by ${e.by} ${e.code} ${JSON.stringify(normStr(e.reason))}`;
    case 'c2s': {
      const f = e.frame;
      if (f?.method === 'connect') {
        const p = f.params || {};
        return `c2s connect role=${p.role} scopes=${JSON.stringify(p.scopes)} auth=${Object.keys(p.auth || {}).sort()} device=${!!p.device}`;
      }
      return `c2s ${f?.type} ${f?.method ?? ''} params=${JSON.stringify(shape(f?.params))}`;
    }
    case 's2c': {
      const f = e.frame;
      if (f?.type === 'event') return `s2c event ${f.event}${f.event === 'connect.challenge' ? ' ' + JSON.stringify(shape(f.payload)) : ''}`;
      if (f?.type === 'res') {
        if (!f.ok) return `s2c res error ${JSON.stringify(shape(f.error))}`;
        if (f.payload?.type === 'hello-ok') {
          const p = f.payload;
          return `s2c hello-ok keys=${Object.keys(p).sort()} auth=${JSON.stringify(shape(p.auth))} policy=${JSON.stringify(shape(p.policy))}`;
        }
        return `s2c res ok payload=${JSON.stringify(shape(f.payload)).slice(0, 600)}`;
      }
      return `s2c ${JSON.stringify(shape(f)).slice(0, 300)}`;
    }
    default: return `${e.dir} ${JSON.stringify(e.error ?? '')}`;
  }
}

let diffs = 0;
const seen = new Map();
const seenPairs = new Map(); // a differing (A, B) line pair is printed once
for (const relay of ['tap', 'trusted', 'untrusted']) {
  const a = load(A, relay), b = load(B, relay);
  if (!a || !b) { console.log(`# relay-${relay}: missing in ${!a ? A : B}`); continue; }
  console.log(`# relay-${relay}: ${a.length} vs ${b.length} connections`);
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const sa = (a[i] || []).map(summarize).filter(Boolean).filter((s) => !/^s2c event (tick|health|presence)$/.test(s));
    const sb = (b[i] || []).map(summarize).filter(Boolean).filter((s) => !/^s2c event (tick|health|presence)$/.test(s));
    const m = Math.max(sa.length, sb.length);
    const lines = [];
    for (let j = 0; j < m; j++) {
      if (sa[j] === sb[j]) continue;
      const pair = `  A: ${sa[j] ?? '(none)'}\n  B: ${sb[j] ?? '(none)'}`;
      if (seenPairs.has(pair)) { seenPairs.set(pair, seenPairs.get(pair) + 1); continue; }
      seenPairs.set(pair, 1);
      lines.push(pair);
    }
    if (lines.length) {
      diffs++;
      const key = lines.join('\n');
      if (seen.has(key)) { console.log(`## relay-${relay} conn #${i + 1}: same differences as ${seen.get(key)}`); continue; }
      seen.set(key, `relay-${relay} conn #${i + 1}`);
      const first = (a[i] || b[i] || []).find((e) => e.dir === 'c2s' && e.frame?.method && e.frame.method !== 'connect');
      console.log(`## relay-${relay} conn #${i + 1}${first ? ` (${first.frame.method})` : ''}`);
      console.log(lines.join('\n'));
    }
  }
}
const repeats = [...seenPairs.values()].reduce((a, n) => a + n - 1, 0);
console.log(diffs ? `${diffs} connections differ (${repeats} repeated line differences not shown again)` : 'no differences');
