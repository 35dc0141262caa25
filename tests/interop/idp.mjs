// A test identity service that plays oauth2-proxy for nginx's auth_request (the proxy suite's
// trusted-proxy scenarios): nginx asks GET /oauth2/auth for every request; a signed-in browser (a session
// cookie this service set) gets 202 with `X-Auth-Request-User: <user>`, anyone else 401. Signing in is
// GET /oauth2/sign_in?user=<user>&rd=<path>: it sets the cookie and redirects to rd (a real oauth2-proxy
// would send the browser to an identity provider first). Sessions are random, kept in memory, HMAC-free:
// it is a test double, not an authenticator.
//
//   node idp.mjs --port 0 --log <file>     prints `RELAY_LISTENING <port>` once listening (as relay.mjs, so
//                                           lib.mjs's spawnRelay starts it); one JSON line per check in the
//                                           log ({t, path, user|null, uri}).
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';

const args = process.argv.slice(2);
const opt = (k, d) => { const i = args.indexOf(`--${k}`); return i >= 0 ? args[i + 1] : d; };
const logFile = opt('log', null);
const sessions = new Map(); // cookie value -> user
const COOKIE = '_oauth2_proxy';

function record(e) { if (logFile) fs.appendFileSync(logFile, JSON.stringify({ t: Date.now(), ...e }) + '\n'); }
function cookieOf(req) {
  for (const part of String(req.headers.cookie || '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === COOKIE) return v.join('=');
  }
  return null;
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://idp.test');
  if (url.pathname === '/oauth2/auth') {
    const user = sessions.get(cookieOf(req)) || null;
    record({ path: url.pathname, user, uri: req.headers['x-original-uri'] || null });
    if (!user) { res.writeHead(401).end(); return; }
    res.writeHead(202, { 'X-Auth-Request-User': user }).end();
    return;
  }
  if (url.pathname === '/oauth2/sign_in') {
    const user = (url.searchParams.get('user') || '').trim();
    const rd = url.searchParams.get('rd') || '/';
    if (!user || !rd.startsWith('/')) { res.writeHead(400).end('user and a local rd are required'); return; }
    const sid = crypto.randomBytes(18).toString('base64url');
    sessions.set(sid, user);
    record({ path: url.pathname, user, uri: rd });
    res.writeHead(302, { Location: rd, 'Set-Cookie': `${COOKIE}=${sid}; Path=/; HttpOnly; Secure; SameSite=Lax` }).end();
    return;
  }
  res.writeHead(404).end();
});
server.listen(Number(opt('port', '0')), opt('host', '127.0.0.1'), () => {
  process.stdout.write(`RELAY_LISTENING ${server.address().port}\n`);
});
