// Tiny WebSocket relay for the interop suite (loopback only).
//
//   node relay.mjs --target ws://127.0.0.1:GATEWAY_PORT [--port 0] [--xff 203.0.113.7|none] [--log FILE] [--http]
//
// Listens on 127.0.0.1:<port>, and for every WebSocket upgrade opens a WebSocket to the target adding
// `X-Forwarded-For: <xff>` (so a loopback client looks remote when 127.0.0.1 is a trusted proxy).
// `--xff none` adds no header: a transparent tap that only logs frames.
// - A non-101 answer from the target (status + headers + body) is forwarded to the client verbatim.
// - Frames are relayed in both directions; close codes/reasons are passed through.
// - Everything (upgrade, frames, closes, errors) is logged as JSON lines to --log (default: stderr).
// - `--http` (optional): plain HTTP requests (anything that is not an upgrade) are forwarded to the target too
//   (method, path, headers, body streamed both ways), with the same `X-Forwarded-For` added and `Host` set to the
//   target (as the WebSocket side does), so a browser can load a page through the relay. Without it they get 426.
// Prints `RELAY_LISTENING <port>` on stdout once listening.
// Uses the `ws` package from the openclaw install (resolved via NODE_PATH or --ws-module).
import http from 'node:http';
import fs from 'node:fs';
import { createRequire } from 'node:module';

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}
const target = arg('target');
const port = Number(arg('port', '0'));
const xff = arg('xff', '203.0.113.7');
const logFile = arg('log', '');
const wsModule = arg('ws-module', process.env.INTEROP_WS_MODULE || 'ws');
const forwardHttp = process.argv.includes('--http');
// loopback, or (the proxy suite) one of its own test hosts on 172.17.0.0/16 when the guard allows them
const testHosts = /(^|,)\s*172\.17\.0\.0\/16\s*(,|$)/.test(process.env.INTEROP_GUARD_ALLOW || '') ? '|172\\.17\\.\\d+\\.\\d+' : '';
if (!target || !new RegExp(`^wss?:\\/\\/(127\\.\\d+\\.\\d+\\.\\d+|localhost|\\[::1\\]${testHosts})(:\\d+)?(\\/.*)?$`).test(target)) {
  console.error('relay: --target must be a loopback ws:// URL (or a test host on 172.17.0.0/16 with INTEROP_GUARD_ALLOW)');
  process.exit(2);
}
const require = createRequire(import.meta.url);
const wsLib = require(wsModule);
const WebSocket = wsLib.WebSocket || wsLib;
const WebSocketServer = wsLib.WebSocketServer || wsLib.Server;

let connSeq = 0;
function log(obj) {
  const line = JSON.stringify({ t: Date.now(), ...obj }) + '\n';
  if (logFile) { try { fs.appendFileSync(logFile, line); } catch {} } else process.stderr.write(line);
}
function preview(data, isBinary) {
  const s = isBinary ? Buffer.from(data).toString('utf8') : String(data);
  try { return JSON.parse(s); } catch { return s.length > 2000 ? s.slice(0, 2000) + '…' : s; }
}
// Close codes that may not be sent on the wire.
function sendableCode(code) {
  return Number.isInteger(code) && ((code >= 1000 && code <= 1014 && ![1004, 1005, 1006].includes(code)) || (code >= 3000 && code <= 4999));
}
function safeClose(ws, code, reason) {
  try {
    if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
      if (code === 1005) ws.close(); // peer sent a close frame without a code: do the same
      else if (sendableCode(code)) ws.close(code, Buffer.from(String(reason || '')).subarray(0, 123));
      else ws.terminate();
    }
  } catch { try { ws.terminate(); } catch {} }
}

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
// Hop-by-hop headers (RFC 9110 §7.6.1) stop at the relay, in both directions.
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate'];
function endToEnd(headers) {
  const named = String(headers.connection || '').split(',').map((h) => h.trim().toLowerCase()).filter(Boolean);
  const outH = {};
  for (const [k, v] of Object.entries(headers)) if (!HOP_BY_HOP.includes(k) && !named.includes(k)) outH[k] = v;
  return outH;
}
let httpSeq = 0;
function forward(req, res) {
  const id = ++httpSeq;
  const t = new URL(target);
  const headers = endToEnd(req.headers);
  headers.host = t.host;
  if (xff && xff !== 'none') headers['x-forwarded-for'] = xff;
  const started = Date.now();
  const up = http.request({ host: t.hostname.replace(/^\[|\]$/g, ''), port: t.port || 80, method: req.method, path: req.url, headers }, (ures) => {
    log({ http: id, dir: 'http', method: req.method, url: req.url, status: ures.statusCode, ms: Date.now() - started });
    res.writeHead(ures.statusCode, ures.statusMessage, endToEnd(ures.headers));
    ures.pipe(res);
    ures.on('error', () => res.destroy());
  });
  up.on('error', (e) => {
    log({ http: id, dir: 'http-error', method: req.method, url: req.url, error: String(e && e.message) });
    if (!res.headersSent) { res.writeHead(502, { 'content-type': 'text/plain' }); res.end('relay: upstream error\n'); } else res.destroy();
  });
  res.on('close', () => { if (!res.writableFinished) up.destroy(); });
  req.pipe(up);
}
const server = http.createServer((req, res) => {
  if (forwardHttp) return forward(req, res);
  res.writeHead(426, { 'content-type': 'text/plain' });
  res.end('relay: websocket upgrade required\n');
});

server.on('upgrade', (req, socket, head) => {
  const id = ++connSeq;
  const url = new URL(req.url || '/', target).toString();
  const headers = xff && xff !== 'none' ? { 'X-Forwarded-For': xff } : {};
  for (const h of ['origin', 'user-agent', 'x-forwarded-proto', 'x-real-ip', 'forwarded']) {
    if (req.headers[h] !== undefined) headers[h] = req.headers[h];
  }
  log({ conn: id, dir: 'upgrade', url, from: `${req.socket.remoteAddress}:${req.socket.remotePort}`, addHeaders: headers });
  const upstream = new WebSocket(url, { headers, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024, handshakeTimeout: 15000 });
  const pending = [];
  let downstream = null;
  let done = false;
  socket.on('error', (e) => log({ conn: id, dir: 'client-socket-error', error: String(e && e.message) }));

  upstream.on('unexpected-response', (ureq, ures) => {
    const chunks = [];
    ures.on('data', (c) => chunks.push(c));
    ures.on('end', () => {
      const body = Buffer.concat(chunks);
      log({ conn: id, dir: 'upgrade-rejected', status: ures.statusCode, headers: ures.headers, body: body.toString('utf8') });
      const lines = [`HTTP/1.1 ${ures.statusCode} ${http.STATUS_CODES[ures.statusCode] || 'Status'}`];
      for (const [k, v] of Object.entries(ures.headers)) {
        if (['connection', 'transfer-encoding', 'content-length', 'keep-alive'].includes(k)) continue;
        for (const vv of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${vv}`);
      }
      lines.push(`content-length: ${body.length}`, 'connection: close', '', '');
      try { socket.end(Buffer.concat([Buffer.from(lines.join('\r\n')), body])); } catch {}
      done = true;
      try { ureq.destroy(); } catch {}
    });
  });
  upstream.on('message', (data, isBinary) => {
    log({ conn: id, dir: 's2c', frame: preview(data, isBinary) });
    if (downstream && downstream.readyState === WebSocket.OPEN) downstream.send(data, { binary: isBinary });
    else pending.push([data, isBinary]);
  });
  upstream.on('close', (code, reason) => {
    log({ conn: id, dir: 'close', by: 'server', code, reason: String(reason) });
    done = true;
    if (downstream) safeClose(downstream, code, reason);
    else if (!socket.destroyed) socket.destroy();
  });
  upstream.on('error', (e) => {
    log({ conn: id, dir: 'upstream-error', error: String(e && e.message) });
    if (downstream) safeClose(downstream, 1011, 'relay upstream error');
    else if (!done && !socket.destroyed) {
      done = true;
      try { socket.end('HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\ncontent-length: 21\r\nconnection: close\r\n\r\nrelay: upstream error'); } catch {}
    }
  });
  upstream.on('open', () => {
    log({ conn: id, dir: 'open' });
    wss.handleUpgrade(req, socket, head, (client) => {
      downstream = client;
      for (const [d, b] of pending.splice(0)) client.send(d, { binary: b });
      client.on('message', (data, isBinary) => {
        log({ conn: id, dir: 'c2s', frame: preview(data, isBinary) });
        if (upstream.readyState === WebSocket.OPEN) upstream.send(data, { binary: isBinary });
      });
      client.on('close', (code, reason) => {
        log({ conn: id, dir: 'close', by: 'client', code, reason: String(reason) });
        safeClose(upstream, code, reason);
      });
      client.on('error', (e) => log({ conn: id, dir: 'client-error', error: String(e && e.message) }));
      if (upstream.readyState !== WebSocket.OPEN) safeClose(client, 1011, 'upstream gone');
    });
  });
});

server.listen(port, '127.0.0.1', () => {
  const p = server.address().port;
  log({ dir: 'listening', port: p, target, xff, http: forwardHttp });
  process.stdout.write(`RELAY_LISTENING ${p}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => { try { server.close(); } catch {} process.exit(0); });
