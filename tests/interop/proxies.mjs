// Proxy suite (issue 13): Debian's nginx (TLS, the seed's server block), Caddy (the seed's
// `reverse_proxy localhost:…`, plain HTTP, never ACME) and HAProxy in front of clawgate, alone
// (INTEROP_TARGET=clawgate) or in front of the real gateway (INTEROP_TARGET=frontdoor), with the real
// `openclaw` CLI on another machine: a second network namespace (172.17.0.2) joined to the gateway's
// (172.17.0.1) by a veth pair on Docker's default bridge range, set up by run.sh. Then Docker's bridge
// itself: the seed's exact-IP trustedProxies mistake and its fixes, and what port forwarding looks like.
//
// Last, trusted-proxy auth (gateway.auth.mode "trusted-proxy"): nginx with auth_request to idp.mjs (a test
// identity service playing oauth2-proxy) on the client machine, in front of a clawgate on 172.17.0.1 that
// trusts only that machine; the real Control UI in chromium signs in at the proxy; the real CLI shows the
// refusals (no identity header, a connection that bypasses the proxy, a proxy on clawgate's own host).
//
// Normally started by run.sh (INTEROP_SUITE=proxies). Prints one PASS/FAIL line per scenario and, last,
// `N passed, M failed`.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort, killGroup, runDriver, sleep, spawnRelay, tail } from './lib.mjs';
import { configureUi, loadChromium, closeBrowsers, Profile, shot, expectConnected, expectPairingScreen } from './ui.mjs';
import {
  TARGET, OC_MJS, CLAWGATE_BIN, TOKEN, WORK, log, elapsed, trunc, trackChild, stopAll, stopOnSignalsAs, baseEnv,
  runBounded, Device, parseJson, Fail, out, expectOk, expectFail, startGateway, startRelay, runScenarios, adminApi,
  NODE_BIN, HERE,
} from './harness.mjs';

stopOnSignalsAs('proxies');
const HOST_IP = process.env.INTEROP_HOST_IP || '';
const CLIENT_IP = process.env.INTEROP_CLIENT_IP || '';
const CLIENT_NETNS = process.env.INTEROP_CLIENT_NETNS || '';
const FRONTDOOR = TARGET === 'frontdoor';
const REQ_ID_RE = /requestId:\s*([A-Za-z0-9][A-Za-z0-9._:-]{0,127})/;
let upstream, gw1, gw2, gw3, gw4, admin, tls, idp, tpProxy;
const IDP = path.join(HERE, 'idp.mjs');
const UPSTREAM_MODEL = 'anthropic/claude-sonnet-4-5'; // the Control UI skips its first-run model setup
const OC_PKG = OC_MJS ? path.dirname(OC_MJS) : '';
const PLAYWRIGHT_DIR = process.env.INTEROP_PLAYWRIGHT_DIR || '';
const CHROMIUM = process.env.INTEROP_CHROMIUM || '/usr/bin/chromium';
configureUi({ work: WORK, art: process.env.INTEROP_ARTIFACTS || path.join(WORK, 'screenshots'), prefix: `proxies-${TARGET}`, chromiumPath: CHROMIUM, token: TOKEN, log });
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
    '-addext', `subjectAltName=IP:${HOST_IP},IP:${CLIENT_IP}`, '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { cwd: dir, name: 'openssl' });
  if (r.code !== 0) throw new Error(`openssl could not make a test certificate: ${r.stderr}`);
  return { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') };
}

// What the seed's nginx server block has in its location: the upgrade, X-Real-IP, X-Forwarded-For.
const NGINX_LOCATION = (port, host = '127.0.0.1') => `
      proxy_pass http://${host}:${port};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_set_header Host $host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_read_timeout 86400s;`;

/** The top of an nginx.conf that keeps everything (pid, logs, temp files) in `dir`, up to the open `http {`. */
const nginxPreamble = (dir) => `daemon off;
user root;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 256; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/tmp/body; proxy_temp_path ${dir}/tmp/proxy; fastcgi_temp_path ${dir}/tmp/fcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi; scgi_temp_path ${dir}/tmp/scgi;`;

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
  const conf = `${nginxPreamble(dir)}
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

// Trusted-proxy auth, as deployed: the identity-aware proxy on its own machine (the client namespace,
// 172.17.0.2), clawgate on 172.17.0.1 trusting only that address. idp.mjs plays oauth2-proxy for nginx's
// auth_request. Two servers: `signedIn` (auth_request; the user goes to clawgate in X-Forwarded-User) and
// `noIdentity` (the same proxy with auth_request forgotten: no user header).
const TP_USER_HEADER = 'x-forwarded-user';
const tpPorts = {};
const tpUrl = (which, scheme = 'https') => `${scheme}://${CLIENT_IP}:${tpPorts[which]}`;
const signIn = (user) => `${tpUrl('signedIn')}/oauth2/sign_in?user=${encodeURIComponent(user)}&rd=%2F`;
function trustedProxyAuthConfig() {
  const cfg = {
    auth: { mode: 'trusted-proxy', trustedProxy: { userHeader: TP_USER_HEADER, requiredHeaders: ['x-forwarded-proto'] } },
    controlUi: { allowedOrigins: [tpUrl('signedIn')] },
  };
  if (!FRONTDOOR) cfg.controlUi.root = path.join(OC_PKG, 'dist', 'control-ui');
  return cfg;
}
async function startIdentityProxy() {
  const v = await runBounded('nginx', ['-V'], { name: 'nginx -V' });
  if (!`${v.stdout}${v.stderr}`.includes('http_auth_request_module')) throw new Error('this nginx has no auth_request module (Debian\'s nginx / nginx-light have it)');
  const idpLog = path.join(WORK, 'idp.log');
  const idpPort = await spawnRelay({
    name: 'idp', nodeBin: NODE_BIN, relay: IDP, env: baseEnv(), cwd: WORK, track: (c) => trackChild(c, 'idp'),
    args: ['--port', '0', '--log', idpLog], netns: CLIENT_NETNS,
  });
  const dir = path.join(WORK, 'nginx-tp');
  fs.mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  const tlsLines = `ssl_certificate ${tls.cert};\n      ssl_certificate_key ${tls.key};`;
  const conf = `${nginxPreamble(dir)}
  server {
    listen ${CLIENT_IP}:${tpPorts.signedIn} ssl;
    ${tlsLines}
    # oauth2-proxy's nginx recipe: every request is checked, the user goes on in a header nginx overwrites
    location = /oauth2/auth {
      internal;
      proxy_pass http://127.0.0.1:${idpPort}/oauth2/auth;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
    }
    location /oauth2/ { proxy_pass http://127.0.0.1:${idpPort}; }
    location / {
      auth_request /oauth2/auth;
      auth_request_set $auth_user $upstream_http_x_auth_request_user;${NGINX_LOCATION(gw4.port, HOST_IP)}
      proxy_set_header X-Forwarded-User $auth_user;
    }
  }
  server {
    listen ${CLIENT_IP}:${tpPorts.noIdentity} ssl;
    ${tlsLines}
    location / {${NGINX_LOCATION(gw4.port, HOST_IP)}
    }
  }
}
`;
  const confPath = path.join(dir, 'nginx.conf');
  fs.writeFileSync(confPath, conf);
  const p = spawnProxy('nginx-tp', 'ip', ['netns', 'exec', CLIENT_NETNS, 'nginx', '-c', confPath, '-p', dir]);
  for (const port of Object.values(tpPorts)) await waitPort(CLIENT_IP, port);
  return { name: 'nginx-tp', idpLog, ...p };
}
const idpChecks = () => { try { return fs.readFileSync(idp, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)); } catch { return []; } };
// A browser that signs in at the identity-aware proxy (the test certificate is not in chromium's store).
const tpBrowser = (name) => new Profile(name, { flags: ['--ignore-certificate-errors'] }).open();
async function sessionOf(gw, user) {
  const r = await adminApi(gw, 'GET', '/admin/v1/sessions');
  return (r.body?.sessions || []).find((x) => x.user === user);
}
async function auditEvents(gw) {
  const r = await adminApi(gw, 'GET', '/admin/v1/audit?limit=1000');
  return r.body?.events || [];
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
  {
    id: 'e1', title: 'trusted-proxy auth: the Control UI signs in at nginx (auth_request); its new device still needs an approval, as in OpenClaw; approved, it connects as that user', needs: ['gw4', 'tp', 'browser'],
    async run() {
      const prof = await tpBrowser('tp-alice');
      try {
        const page = await prof.page();
        await page.goto(signIn('alice@example.test'));
        const rid = await expectPairingScreen(page, "alice's browser, signed in at the proxy");
        await shot(page, 'e1-signed-in-pairing-required');
        const req = (await pendingRequests(gw4)).find((x) => x.requestId === rid);
        if (!req) throw new Fail(`the pairing screen names ${rid}, which clawgate does not list`, dump('pending', await pendingRequests(gw4)));
        // chromium runs on clawgate's side (172.17.0.1) and reaches the proxy on 172.17.0.2 over the veth: the
        // forwarded address is the browser's, not the proxy's
        if (req.clientAddress !== HOST_IP) throw new Fail(`clawgate saw the browser as ${req.clientAddress}, expected the forwarded ${HOST_IP}`, dump('request', req));
        const ap = await adminApi(gw4, 'POST', `/admin/v1/pairing/requests/${rid}/approve`, {});
        if (ap.status !== 200) throw new Fail(`approve: ${ap.status} ${JSON.stringify(ap.body)}`);
        await expectConnected(page, "alice's browser after the approval");
        await shot(page, 'e1-connected-as-alice');
        const sess = await sessionOf(gw4, 'alice@example.test');
        if (!sess || sess.authMethod !== 'trusted-proxy' || sess.deviceId !== req.deviceId) throw new Fail(`no trusted-proxy session of alice@example.test for device ${req.deviceId}`, dump('sessions', (await adminApi(gw4, 'GET', '/admin/v1/sessions')).body));
        if (!idpChecks().some((c) => c.path === '/oauth2/auth' && c.user === 'alice@example.test')) throw new Fail('nginx never asked the identity service about alice', dump('idp log', idpChecks()));
      } finally { await prof.close(); }
    },
  },
  {
    id: 'e2', title: 'trusted-proxy auth with deviceAutoApprove (turned on live): a new user\'s Control UI connects at once, with no pairing; the device is approvedVia trusted-proxy and the audit log names the user', needs: ['gw4', 'tp', 'browser'],
    async run() {
      const patch = await adminApi(gw4, 'PATCH', '/admin/v1/config', { gateway: { auth: { trustedProxy: { deviceAutoApprove: { enabled: true } } } } });
      if (patch.status !== 200) throw new Fail(`PATCH deviceAutoApprove: ${patch.status} ${JSON.stringify(patch.body)}`);
      const before = (await pendingRequests(gw4)).length;
      const prof = await tpBrowser('tp-bob');
      try {
        const page = await prof.page();
        await page.goto(signIn('bob@example.test'));
        await expectConnected(page, "bob's browser with deviceAutoApprove");
        await shot(page, 'e2-auto-approved-bob');
        const sess = await sessionOf(gw4, 'bob@example.test');
        if (!sess?.deviceId) throw new Fail("no session of bob's device", dump('sessions', (await adminApi(gw4, 'GET', '/admin/v1/sessions')).body));
        const dev = await adminApi(gw4, 'GET', `/admin/v1/devices/${sess.deviceId}`);
        if (dev.body?.approvedVia !== 'trusted-proxy') throw new Fail(`bob's device approvedVia ${dev.body?.approvedVia}, expected trusted-proxy`, dump('device', dev.body));
        const ev = (await auditEvents(gw4)).find((e) => e.action === 'pairing.approve' && e.target === sess.deviceId);
        if (ev?.actor !== 'trusted-proxy:bob@example.test') throw new Fail(`the audit log does not name bob as the approver: ${JSON.stringify(ev)}`);
        if ((await pendingRequests(gw4)).length !== before) throw new Fail('a pairing request was filed for an auto-approved browser');
      } finally { await prof.close(); }
    },
  },
  {
    id: 'e3', title: 'trusted-proxy auth: the real CLI through a proxy that sends no identity, and straight to clawgate around the proxy: refused, each saying which; clawgate doctor gives the proxy fix', needs: ['gw4', 'tp'],
    async run() {
      const since = Date.now();
      // (a CLI on the proxy's own machine would be its own trusted hop: this one runs on 172.17.0.1)
      const d = new Device('tp-no-identity', { env: { NODE_EXTRA_CA_CERTS: tls.cert } });
      d.writeConfig({ url: tpUrl('noIdentity', 'wss'), token: TOKEN });
      const r1 = await d.oc('system', 'presence');
      expectFail(r1, 'through the proxy without auth_request', TP_USER_HEADER);
      const h = new Device('tp-bypass');
      h.writeConfig({ url: `ws://${HOST_IP}:${gw4.port}`, token: TOKEN });
      const r2 = await h.oc('system', 'presence');
      expectFail(r2, 'around the proxy, from clawgate\'s own host', HOST_IP, 'trustedProxies');
      const recs = (await rejections(gw4)).filter((x) => x.ts >= since - 1000);
      const noUser = recs.find((x) => String(x.hint).includes(`user header ${TP_USER_HEADER}`));
      const bypass = recs.find((x) => String(x.hint).includes(`came from ${HOST_IP}`));
      if (!noUser || noUser.clientAddress !== HOST_IP || noUser.peerAddress !== CLIENT_IP || !bypass) throw new Fail('the rejection log does not keep both refusals', r1, r2, dump('rejections', recs));
      if (noUser.reason !== 'trusted_proxy_user_missing' || bypass.reason !== 'trusted_proxy_untrusted_source') throw new Fail('the rejection log does not say which check failed', dump('rejections', recs));
      // clawgate doctor explains the proxy that lets requests through without a user, with the nginx fix
      const doc = await doctor(gw4);
      const check = (parseJson(doc.stdout)?.checks || []).find((c) => c.id === 'rejections');
      if (!check || check.status !== 'fail' || !/identity-aware proxy sent no user/.test(check.summary)
        || !(check.fix || []).some((f) => f.includes(`make the proxy at ${CLIENT_IP}`) && f.includes('proxy_set_header X-Forwarded-User $user;'))) throw new Fail(`clawgate doctor's rejections check: ${JSON.stringify(check)}`, doc);
    },
  },
  {
    id: 'e4', title: 'trusted-proxy auth: a proxy on clawgate\'s own host (172.17.0.1, trusted) is refused as OpenClaw does (a local address anything on the host can use)', needs: ['gw4', 'tp'],
    async run() {
      const add = await adminApi(gw4, 'POST', '/admin/v1/trusted-proxies', { entry: HOST_IP });
      if (add.status !== 200) throw new Fail(`trusting ${HOST_IP}: ${add.status} ${JSON.stringify(add.body)}`);
      try {
        const relay = await startRelay('tp-same-host', `ws://${HOST_IP}:${gw4.port}`, '198.51.100.30');
        const d = new Device('tp-same-host');
        d.writeConfig({ url: relay.url, token: TOKEN });
        const r = await d.oc('system', 'presence');
        expectFail(r, 'through a proxy on clawgate\'s own host', 'own addresses');
      } finally {
        const del = await adminApi(gw4, 'DELETE', `/admin/v1/trusted-proxies/${encodeURIComponent(HOST_IP)}`);
        if (del.status !== 200) throw new Fail(`untrusting ${HOST_IP} again: ${del.status}`);
      }
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
      upstream = await startGateway('upstream', { trustedProxies: ['127.0.0.1'], kind: 'openclaw', top: { agents: { defaults: { model: { primary: UPSTREAM_MODEL } } } } });
      log(`proxies: the real gateway (upstream) up at ${upstream.url} after ${elapsed(upstream.startMs)}`);
    } catch (e) { infraErr.all = `the real gateway (upstream) failed to start: ${e.message}`; }
  }
  if (!infraErr.all) {
    tpPorts.signedIn = await freePort();
    tpPorts.noIdentity = await freePort();
    const [a, b, c, e] = await Promise.allSettled([
      startGateway('behind-proxies', { trustedProxies: ['127.0.0.1'], upstream }),
      startGateway('untrusting', { trustedProxies: null, upstream }),
      // the Docker bridge case: clawgate on the bridge side, trusting an exact address that is not the proxy's
      startGateway('docker-bridge', { trustedProxies: ['172.17.0.3'], upstream, bind: HOST_IP }),
      // trusted-proxy auth: trusts only the identity-aware proxy's machine
      startGateway('trusted-proxy-auth', { trustedProxies: [CLIENT_IP], upstream, bind: HOST_IP, gateway: trustedProxyAuthConfig() }),
    ]);
    if (a.status === 'fulfilled') gw1 = a.value; else infraErr.gw1 = `clawgate (trusting 127.0.0.1) failed to start: ${a.reason?.message}`;
    if (b.status === 'fulfilled') gw2 = b.value; else infraErr.gw2 = `clawgate (trusting nothing) failed to start: ${b.reason?.message}`;
    if (c.status === 'fulfilled') gw3 = c.value; else infraErr.gw3 = `clawgate (bound to ${HOST_IP}) failed to start: ${c.reason?.message}`;
    if (e.status === 'fulfilled') gw4 = e.value; else infraErr.gw4 = `clawgate (trusted-proxy auth) failed to start: ${e.reason?.message}`;
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
    if (gw4 && tls) {
      try {
        tpProxy = await startIdentityProxy();
        idp = tpProxy.idpLog;
        log(`proxies: identity-aware nginx (auth_request to idp.mjs) on ${CLIENT_IP}:${Object.values(tpPorts).join(',')} in front of ${gw4.url}`);
      } catch (e) { infraErr.tp = `the identity-aware nginx did not start: ${e.message}\n${tail(path.join(WORK, 'nginx-tp.log'), 20)}`; }
    } else infraErr.tp = 'needs clawgate (trusted-proxy auth) and the test certificate';
    try {
      if (!fs.existsSync(CHROMIUM)) throw new Error(`the browser is missing: ${CHROMIUM} (apt-get install chromium)`);
      await loadChromium(PLAYWRIGHT_DIR);
    } catch (e) { infraErr.browser = `chromium / playwright-core (INTEROP_PLAYWRIGHT_DIR=${PLAYWRIGHT_DIR || 'unset'}): ${e.message}`; }
  }
  for (const [k, v] of Object.entries(infraErr)) log(`proxies: ERROR (${k}): ${v}`);
  const code = await runScenarios({ suite: 'proxies', scenarios, infraErr, gateways: () => [gw1, gw2, gw3, gw4, upstream] });
  await closeBrowsers();
  for (const p of [...Object.values(proxies), tpProxy].filter(Boolean)) killGroup(p.child.pid, 'SIGKILL');
  return code;
}

runDriver('proxies', main, async () => { await closeBrowsers(); await stopAll(); await sleep(0); });
