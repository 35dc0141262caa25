// Proxy suite (issue 13): Debian's nginx (TLS, the seed's server block), Caddy (the seed's
// `reverse_proxy localhost:…`, plain HTTP, never ACME) and HAProxy in front of clawgate, alone
// (INTEROP_TARGET=clawgate) or in front of the real gateway (INTEROP_TARGET=frontdoor), with the real
// `openclaw` CLI on another machine: a second network namespace (172.17.0.2) joined to the gateway's
// (172.17.0.1) by a veth pair on Docker's default bridge range, set up by run.sh. Then Docker's bridge
// itself: the seed's exact-IP trustedProxies mistake and its fixes, and what port forwarding looks like.
//
// Normally started by run.sh (INTEROP_SUITE=proxies). Prints one PASS/FAIL line per scenario and, last,
// `N passed, M failed`.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort, killGroup, runDriver, sleep, tail } from './lib.mjs';
import {
  TARGET, OC_MJS, CLAWGATE_BIN, TOKEN, WORK, log, elapsed, trunc, trackChild, stopAll, stopOnSignalsAs, baseEnv,
  runBounded, Device, parseJson, Fail, out, expectOk, expectFail, startGateway, startRelay, runScenarios, adminApi,
} from './harness.mjs';

stopOnSignalsAs('proxies');
const HOST_IP = process.env.INTEROP_HOST_IP || '';
const CLIENT_IP = process.env.INTEROP_CLIENT_IP || '';
const CLIENT_NETNS = process.env.INTEROP_CLIENT_NETNS || '';
const FRONTDOOR = TARGET === 'frontdoor';
const REQ_ID_RE = /requestId:\s*([A-Za-z0-9][A-Za-z0-9._:-]{0,127})/;
let upstream, gw1, gw2, gw3, admin, tls;
const proxies = {}; // name -> {name, scheme, ports: {good, untrusted, broken}}

// ---------------------------------------------------------------------------------------------
// infrastructure
function waitPort(host, port, ms = 20000) {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = net.connect(port, host);
      s.once('connect', () => { s.destroy(); resolve(); });
      s.once('error', () => { s.destroy(); if (Date.now() > deadline) reject(new Error(`${host}:${port} not listening within ${ms} ms`)); else setTimeout(attempt, 100); });
    };
    attempt();
  });
}

// A proxy process (its own process group), its output in <WORK>/<name>.log.
function spawnProxy(name, cmd, args, env = baseEnv()) {
  const logFile = path.join(WORK, `${name}.log`);
  const fd = fs.openSync(logFile, 'a');
  fs.writeSync(fd, `$ ${cmd} ${args.join(' ')}\n`);
  delete env.NODE_OPTIONS;
  const child = spawn(cmd, args, { env, cwd: WORK, detached: true, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  trackChild(child, name);
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });
  return { child, logFile, exited: () => exited };
}

async function makeCert() {
  const dir = path.join(WORK, 'tls');
  fs.mkdirSync(dir, { recursive: true });
  const r = await runBounded('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=clawgate-test',
    '-addext', `subjectAltName=IP:${HOST_IP}`, '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { cwd: dir, name: 'openssl' });
  if (r.code !== 0) throw new Error(`openssl could not make a test certificate: ${r.stderr}`);
  return { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') };
}

// What the seed's nginx server block has in its location: the upgrade, X-Real-IP, X-Forwarded-For.
const NGINX_LOCATION = (port) => `
      proxy_pass http://127.0.0.1:${port};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_set_header Host $host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_read_timeout 86400s;`;

async function startNginx() {
  const dir = path.join(WORK, 'nginx');
  fs.mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  const ports = { good: await freePort(), untrusted: await freePort(), broken: await freePort() };
  const server = (port, location) => `
    server {
      listen ${HOST_IP}:${port} ssl;
      server_name gateway.test;
      ssl_certificate ${tls.cert};
      ssl_certificate_key ${tls.key};
      location / {${location}
      }
    }`;
  const conf = `daemon off;
user root;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 256; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/tmp/body; proxy_temp_path ${dir}/tmp/proxy; fastcgi_temp_path ${dir}/tmp/fcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi; scgi_temp_path ${dir}/tmp/scgi;
  ${server(ports.good, NGINX_LOCATION(gw1.port))}
  ${server(ports.untrusted, NGINX_LOCATION(gw2.port))}
  # the common mistake: no proxy_http_version 1.1 / Upgrade / Connection, so the upgrade is dropped
  ${server(ports.broken, `
      proxy_pass http://127.0.0.1:${gw1.port};
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;`)}
}
`;
  const confPath = path.join(dir, 'nginx.conf');
  fs.writeFileSync(confPath, conf);
  const p = spawnProxy('nginx', 'nginx', ['-c', confPath, '-p', dir]);
  return { name: 'nginx', scheme: 'wss', ports, ...p };
}

async function startCaddy() {
  const dir = path.join(WORK, 'caddy');
  fs.mkdirSync(dir, { recursive: true });
  const ports = { good: await freePort(), untrusted: await freePort(), broken: await freePort() };
  // The seed's Caddyfile is `reverse_proxy localhost:18789`; here on plain HTTP (no ACME, no local CA).
  const site = (port, body) => `http://${HOST_IP}:${port} {\n  bind ${HOST_IP}\n  ${body}\n}\n`;
  const caddyfile = `{
  admin off
  auto_https off
  storage file_system ${dir}/data
}
${site(ports.good, `reverse_proxy localhost:${gw1.port}`)}
${site(ports.untrusted, `reverse_proxy localhost:${gw2.port}`)}
# a config that strips the upgrade headers on the way to clawgate
${site(ports.broken, `reverse_proxy localhost:${gw1.port} {\n    header_up -Upgrade\n    header_up -Connection\n  }`)}
`;
  const file = path.join(dir, 'Caddyfile');
  fs.writeFileSync(file, caddyfile);
  const env = baseEnv({ HOME: dir, XDG_DATA_HOME: path.join(dir, 'data'), XDG_CONFIG_HOME: path.join(dir, 'config') });
  const p = spawnProxy('caddy', 'caddy', ['run', '--config', file, '--adapter', 'caddyfile'], env);
  return { name: 'caddy', scheme: 'ws', ports, ...p };
}

async function startHaproxy() {
  const dir = path.join(WORK, 'haproxy');
  fs.mkdirSync(dir, { recursive: true });
  const ports = { good: await freePort(), untrusted: await freePort(), broken: await freePort() };
  const cfg = `global
  maxconn 256
defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout tunnel 1h
frontend good
  bind ${HOST_IP}:${ports.good}
  option forwardfor
  default_backend clawgate
frontend untrusted
  bind ${HOST_IP}:${ports.untrusted}
  option forwardfor
  default_backend clawgate_untrusted
# a config that deletes the upgrade headers
frontend broken
  bind ${HOST_IP}:${ports.broken}
  option forwardfor
  http-request del-header Upgrade
  http-request del-header Connection
  default_backend clawgate
backend clawgate
  server cg 127.0.0.1:${gw1.port}
backend clawgate_untrusted
  server cg 127.0.0.1:${gw2.port}
`;
  const file = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(file, cfg);
  const p = spawnProxy('haproxy', 'haproxy', ['-f', file, '-db']);
  return { name: 'haproxy', scheme: 'ws', ports, ...p };
}

// ---------------------------------------------------------------------------------------------
// helpers
const proxyUrl = (p, which) => `${p.scheme}://${HOST_IP}:${p.ports[which]}`;
// a CLI on the client machine (172.17.0.2), trusting the test certificate
const remoteDevice = (name) => new Device(name, { netns: CLIENT_NETNS, env: { NODE_EXTRA_CA_CERTS: tls.cert } });

// pending pairing requests, from clawgate's admin API
async function pendingRequests(gw) {
  const r = await adminApi(gw, 'GET', '/admin/v1/pairing/requests');
  if (r.status !== 200) throw new Fail(`GET /admin/v1/pairing/requests: ${r.status}`);
  return r.body.requests || [];
}
// the request a pairing-required CLI output names
async function namedRequest(gw, r, what) {
  const m = REQ_ID_RE.exec(out(r));
  if (!m) throw new Fail(`${what}: no "requestId: <id>" in the pairing-required output`, r);
  const req = (await pendingRequests(gw)).find((x) => x.requestId === m[1]);
  if (!req) throw new Fail(`${what}: request ${m[1]} is not pending`, r, dump('pending', await pendingRequests(gw)));
  return req;
}
async function rejections(gw) {
  const r = await adminApi(gw, 'GET', '/admin/v1/diagnostics/rejections');
  if (r.status !== 200) throw new Fail(`rejection log: ${r.status}`);
  return r.body.rejections || [];
}
const dump = (what, v) => ({ display: what, argv: [], code: '-', ms: 0, stdout: trunc(typeof v === 'string' ? v : JSON.stringify(v, null, 2), 3000), stderr: '' });

async function doctor(gw) {
  const env = baseEnv();
  delete env.NODE_OPTIONS;
  for (const k of Object.keys(env)) if (k.startsWith('CLAWGATE_')) delete env[k];
  const args = FRONTDOOR
    ? ['doctor', '--json', '--config', upstream.configPath, '--clawgate-config', gw.configPath, '--state-dir', gw.stateDir, '--upstream', 'auto']
    : ['doctor', '--json', '--config', gw.configPath, '--state-dir', gw.stateDir];
  const r = await runBounded(CLAWGATE_BIN, args, { env, cwd: WORK, name: 'clawgate doctor' });
  r.display = `clawgate ${args.join(' ')}`;
  return r;
}
async function clawgateCli(gw, ...args) {
  const env = baseEnv();
  delete env.NODE_OPTIONS;
  for (const k of Object.keys(env)) if (k.startsWith('CLAWGATE_')) delete env[k];
  const loc = FRONTDOOR
    ? ['--config', upstream.configPath, '--clawgate-config', gw.configPath, '--state-dir', gw.stateDir]
    : ['--config', gw.configPath, '--state-dir', gw.stateDir];
  const [cmd, ...rest] = args;
  const r = await runBounded(CLAWGATE_BIN, [cmd, ...loc, ...rest], { env, cwd: WORK, name: `clawgate ${cmd}` });
  r.display = `clawgate ${[cmd, ...rest].join(' ')}`;
  return r;
}

// ---------------------------------------------------------------------------------------------
// scenarios, three per proxy
function proxyScenarios(name, letter) {
  return [
    {
      id: `${letter}1`, title: `${name}: the client's own address reaches clawgate; pairing required, approved, then it connects through ${name}`, needs: ['gw1', name],
      async run() {
        const p = proxies[name];
        const d = remoteDevice(`${name}-remote`);
        d.writeConfig({ url: proxyUrl(p, 'good'), token: TOKEN });
        const r1 = await d.oc('system', 'presence');
        expectFail(r1, `a new device through ${name}`, 'pairing required');
        const req = await namedRequest(gw1, r1, name);
        if (req.clientAddress !== CLIENT_IP) throw new Fail(`clawgate saw the client as ${req.clientAddress}, expected the forwarded ${CLIENT_IP}`, r1, dump('request', req));
        const ap = await adminApi(gw1, 'POST', `/admin/v1/pairing/requests/${req.requestId}/approve`, {});
        if (ap.status !== 200) throw new Fail(`approve: ${ap.status} ${JSON.stringify(ap.body)}`);
        const r2 = await d.oc('system', 'presence');
        expectOk(r2, `system presence through ${name} (${p.scheme}://) after the approval`);
      },
    },
    {
      id: `${letter}2`, title: `${name}: a proxy clawgate does not trust gets the 403 that names its address; trusting its range (a CIDR) lets clients through`, needs: ['gw2', name],
      async run() {
        const p = proxies[name];
        const d = remoteDevice(`${name}-untrusted`);
        d.writeConfig({ url: proxyUrl(p, 'untrusted'), token: TOKEN });
        const since = Date.now();
        const r1 = await d.oc('system', 'presence');
        expectFail(r1, `through ${name} to a clawgate that does not trust it`, 'HTTP 403', 'proxy_attribution_required');
        const rec = (await rejections(gw2)).find((x) => x.ts >= since - 1000 && x.reason === 'proxy_attribution_required');
        if (!rec || rec.peerAddress !== '127.0.0.1' || !String(rec.hint).includes('127.0.0.1')) throw new Fail(`the refusal does not name the proxy's address 127.0.0.1: ${JSON.stringify(rec)}`, r1);
        const add = await adminApi(gw2, 'POST', '/admin/v1/trusted-proxies', { entry: '127.0.0.0/8' });
        if (add.status !== 200) throw new Fail(`trusting 127.0.0.0/8: ${add.status} ${JSON.stringify(add.body)}`);
        try {
          const r2 = await d.oc('system', 'presence');
          expectFail(r2, `through ${name} once its range is trusted`, 'pairing required');
          const req = await namedRequest(gw2, r2, name);
          if (req.clientAddress !== CLIENT_IP) throw new Fail(`clawgate saw the client as ${req.clientAddress}, expected ${CLIENT_IP}`, r2, dump('request', req));
        } finally {
          const del = await adminApi(gw2, 'DELETE', `/admin/v1/trusted-proxies/${encodeURIComponent('127.0.0.0/8')}`);
          if (del.status !== 200) throw new Fail(`untrusting 127.0.0.0/8 again: ${del.status}`);
        }
      },
    },
    {
      id: `${letter}3`, title: `${name}: a config that drops the Upgrade headers: the client is refused, the rejection log and clawgate doctor say why`, needs: ['gw1', name],
      async run() {
        const p = proxies[name];
        const d = remoteDevice(`${name}-broken`);
        const since = Date.now();
        const r = await d.oc('gateway', 'call', 'health', '--url', proxyUrl(p, 'broken'), '--token', TOKEN, '--json');
        if (r.code === 0) throw new Fail(`a ${name} that drops the upgrade still connected`, r);
        const rec = (await rejections(gw1)).find((x) => x.ts >= since - 1000 && x.reason === 'websocket_upgrade_missing');
        if (!rec) throw new Fail('no websocket_upgrade_missing in the rejection log', r, dump('rejections', await rejections(gw1)));
        if (rec.clientAddress !== CLIENT_IP) throw new Fail(`the rejection names client ${rec.clientAddress}, expected ${CLIENT_IP}`, dump('record', rec));
        const doc = await doctor(gw1);
        const check = (parseJson(doc.stdout)?.checks || []).find((c) => c.id === 'rejections');
        if (!check || check.status !== 'fail' || !/proxy drops the WebSocket upgrade/.test(check.summary)) throw new Fail(`clawgate doctor's rejections check: ${JSON.stringify(check)}`, doc);
        if (!(check.fix || []).some((f) => f.includes('proxy_set_header Upgrade $http_upgrade'))) throw new Fail('the doctor gives no nginx fix', doc);
      },
    },
  ];
}

const scenarios = [
  ...proxyScenarios('nginx', 'a'),
  ...proxyScenarios('caddy', 'b'),
  ...proxyScenarios('haproxy', 'c'),
  {
    id: 'd1', title: 'Docker bridge: an exact-IP trustedProxies that misses the real peer gets a 403 naming it; the CIDR and `clawgate proxies add <peer>` fix it', needs: ['gw3'],
    async run() {
      // The "proxy container" at 172.17.0.2 (a relay adding X-Forwarded-For for the client behind it),
      // clawgate at 172.17.0.1 trusting only the address someone guessed (172.17.0.3).
      const relay = await startRelay('docker-proxy', gw3.url, '198.51.100.20', { netns: CLIENT_NETNS });
      const d = remoteDevice('docker-behind-proxy');
      d.writeConfig({ url: `ws://127.0.0.1:${relay.port}`, token: TOKEN });
      const r1 = await d.oc('system', 'presence');
      expectFail(r1, 'through the proxy container with the exact-IP list', 'HTTP 403', 'proxy_attribution_required');
      const rec = (await rejections(gw3)).find((x) => x.reason === 'proxy_attribution_required');
      if (!rec || rec.peerAddress !== CLIENT_IP || !String(rec.hint).includes(`"${CLIENT_IP}"`)) throw new Fail(`the 403 does not name the real peer ${CLIENT_IP}: ${JSON.stringify(rec)}`, r1);
      const doc = await doctor(gw3);
      const check = (parseJson(doc.stdout)?.checks || []).find((c) => c.id === 'rejections');
      if (!check || !(check.fix || []).some((f) => f.includes(`clawgate proxies add ${CLIENT_IP}`) && f.includes('172.17.0.0/16'))) throw new Fail(`clawgate doctor does not give the fix: ${JSON.stringify(check)}`, doc);
      // fix 1: the range
      let c = await clawgateCli(gw3, 'proxies', 'add', '172.17.0.0/16');
      expectOk(c, 'clawgate proxies add 172.17.0.0/16');
      const r2 = await d.oc('system', 'presence');
      expectFail(r2, 'through the proxy container once the bridge range is trusted', 'pairing required');
      const req = await namedRequest(gw3, r2, 'd1');
      if (req.clientAddress !== '198.51.100.20') throw new Fail(`clawgate saw ${req.clientAddress}, expected the client behind the proxy, 198.51.100.20`, r2);
      c = await clawgateCli(gw3, 'proxies', 'remove', '172.17.0.0/16');
      expectOk(c, 'clawgate proxies remove 172.17.0.0/16');
      const r3 = await d.oc('system', 'presence');
      expectFail(r3, 'after the range is removed again', 'HTTP 403');
      // fix 2: the exact peer the 403 named
      c = await clawgateCli(gw3, 'proxies', 'add', CLIENT_IP);
      expectOk(c, `clawgate proxies add ${CLIENT_IP}`);
      try {
        const r4 = await d.oc('system', 'presence');
        expectFail(r4, 'through the proxy container once its address is trusted', 'pairing required');
      } finally {
        // (a trusted proxy's own requests without forwarded headers are refused: d2 needs it untrusted)
        expectOk(await clawgateCli(gw3, 'proxies', 'remove', CLIENT_IP), `clawgate proxies remove ${CLIENT_IP}`);
      }
    },
  },
  {
    id: 'd2', title: 'Docker port forwarding: a client arriving from its own address (DNAT) or from the bridge address (userland proxy) is remote: pairing required', needs: ['gw3'],
    async run() {
      // DNAT keeps the client's address: 172.17.0.2 straight to clawgate.
      const d = remoteDevice('docker-dnat');
      d.writeConfig({ url: gw3.url, token: TOKEN });
      const r1 = await d.oc('system', 'presence');
      expectFail(r1, 'a client from the bridge network without a proxy', 'pairing required');
      // Docker's userland proxy connects from the bridge address (172.17.0.1, clawgate's own side, not loopback).
      const h = new Device('docker-userland-proxy');
      h.writeConfig({ url: gw3.url, token: TOKEN });
      const r2 = await h.oc('system', 'presence');
      expectFail(r2, 'a client arriving from the bridge address', 'pairing required');
      const a = await namedRequest(gw3, r1, 'DNAT');
      const b = await namedRequest(gw3, r2, 'userland proxy');
      if (a.clientAddress !== CLIENT_IP || b.clientAddress !== HOST_IP) throw new Fail(`clawgate saw ${a.clientAddress} and ${b.clientAddress}, expected ${CLIENT_IP} and ${HOST_IP}`, r1, r2);
    },
  },
];
scenarios.sort((x, y) => x.id.localeCompare(y.id));

// ---------------------------------------------------------------------------------------------
async function main() {
  log(`proxies: target=${TARGET} workdir=${WORK}`);
  const infraErr = {};
  if (!HOST_IP || !CLIENT_IP || !CLIENT_NETNS) infraErr.all = 'no client namespace (INTEROP_CLIENT_NETNS, INTEROP_HOST_IP, INTEROP_CLIENT_IP): run it with run.sh';
  if (!CLAWGATE_BIN || !fs.existsSync(CLAWGATE_BIN)) infraErr.all = `clawgate binary not found (CLAWGATE_BIN=${CLAWGATE_BIN || 'unset'})`;
  admin = new Device('admin');
  if (!infraErr.all && FRONTDOOR) {
    try {
      upstream = await startGateway('upstream', { trustedProxies: ['127.0.0.1'], kind: 'openclaw' });
      log(`proxies: the real gateway (upstream) up at ${upstream.url} after ${elapsed(upstream.startMs)}`);
    } catch (e) { infraErr.all = `the real gateway (upstream) failed to start: ${e.message}`; }
  }
  if (!infraErr.all) {
    const [a, b, c] = await Promise.allSettled([
      startGateway('behind-proxies', { trustedProxies: ['127.0.0.1'], upstream }),
      startGateway('untrusting', { trustedProxies: null, upstream }),
      // the Docker bridge case: clawgate on the bridge side, trusting an exact address that is not the proxy's
      startGateway('docker-bridge', { trustedProxies: ['172.17.0.3'], upstream, bind: HOST_IP }),
    ]);
    if (a.status === 'fulfilled') gw1 = a.value; else infraErr.gw1 = `clawgate (trusting 127.0.0.1) failed to start: ${a.reason?.message}`;
    if (b.status === 'fulfilled') gw2 = b.value; else infraErr.gw2 = `clawgate (trusting nothing) failed to start: ${b.reason?.message}`;
    if (c.status === 'fulfilled') gw3 = c.value; else infraErr.gw3 = `clawgate (bound to ${HOST_IP}) failed to start: ${c.reason?.message}`;
    if (gw1 && gw2) {
      try { tls = await makeCert(); } catch (e) { infraErr.nginx = e.message; }
      for (const [name, start] of [['nginx', startNginx], ['caddy', startCaddy], ['haproxy', startHaproxy]]) {
        if (infraErr[name]) continue;
        try {
          const p = await start();
          for (const port of Object.values(p.ports)) await waitPort(HOST_IP, port);
          proxies[name] = p;
          log(`proxies: ${name} listening on ${HOST_IP}:${Object.values(p.ports).join(',')} (${p.scheme}://)`);
        } catch (e) { infraErr[name] = `${name} did not start: ${e.message}\n${tail(path.join(WORK, `${name}.log`), 20)}`; }
      }
    }
  }
  for (const [k, v] of Object.entries(infraErr)) log(`proxies: ERROR (${k}): ${v}`);
  const code = await runScenarios({ suite: 'proxies', scenarios, infraErr, gateways: () => [gw1, gw2, gw3, upstream] });
  for (const p of Object.values(proxies)) killGroup(p.child.pid, 'SIGKILL');
  return code;
}

runDriver('proxies', main, async () => { await stopAll(); await sleep(0); });
