'use strict';
// Offline guard for the interop suite. Load with NODE_OPTIONS="--require /abs/path/guard.cjs".
// - dns.lookup / dns.promises.lookup / resolve* fail (ENOTFOUND) for anything but localhost / loopback literals;
// - net sockets (and therefore http/https/ws/undici via net) to non-loopback addresses are refused;
// - UDP sends/connects to non-loopback addresses (e.g. mDNS multicast) are refused.
// Every process of the suite must only ever talk to 127.0.0.0/8 or ::1 (or the test hosts of INTEROP_GUARD_ALLOW).
const dns = require('dns');
const net = require('net');

const LOG = process.env.INTEROP_GUARD_LOG ? String(process.env.INTEROP_GUARD_LOG) : '';
function note(msg) {
  if (!LOG) return;
  try { require('fs').appendFileSync(LOG, `[guard pid=${process.pid}] ${msg}\n`); } catch {}
}

// INTEROP_GUARD_ALLOW: IPv4 ranges ("172.17.0.0/16,…") of the suite's own test hosts, in network
// namespaces it created (the proxy suite's veth pair); never anything else.
const ALLOW = String(process.env.INTEROP_GUARD_ALLOW || '').split(',').map((c) => c.trim()).filter(Boolean).map((c) => {
  const [ip, bits] = c.split('/');
  return { net: ipv4(ip), bits: Number(bits ?? 32) };
}).filter((r) => r.net !== null && r.bits >= 8 && r.bits <= 32);
function ipv4(s) {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(String(s));
  if (!m) return null;
  const o = m.slice(1).map(Number);
  if (o.some((x) => x > 255)) return null;
  return ((o[0] << 24) | (o[1] << 16) | (o[2] << 8) | o[3]) >>> 0;
}
function isAllowedTestHost(s) {
  const a = ipv4(s);
  if (a === null) return false;
  return ALLOW.some((r) => ((a ^ r.net) >>> (32 - r.bits)) === 0 || r.bits === 32 && a === r.net);
}

function isLoopbackHost(h) {
  if (h == null) return true; // net default host is localhost
  let s = String(h).trim().toLowerCase();
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  if (s === '' || s === 'localhost' || s.endsWith('.localhost')) return true;
  if (s === '::1' || s === '0:0:0:0:0:0:0:1') return true;
  if (s.startsWith('::ffff:')) s = s.slice(7);
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(s) || isAllowedTestHost(s);
}

function denyErr(host, syscall) {
  const e = new Error(`interop guard: ${syscall} to non-loopback host "${host}" refused`);
  e.code = syscall === 'connect' ? 'ECONNREFUSED' : 'ENOTFOUND';
  e.errno = e.code === 'ECONNREFUSED' ? -111 : -3008;
  e.syscall = syscall;
  e.hostname = host;
  return e;
}

// ---- dns -------------------------------------------------------------------
const origLookup = dns.lookup;
function guardedLookup(hostname, options, callback) {
  if (typeof options === 'function') { callback = options; options = {}; }
  if (!isLoopbackHost(hostname)) {
    note(`dns.lookup ${hostname} refused`);
    const err = denyErr(hostname, 'getaddrinfo');
    process.nextTick(() => callback(err));
    return {};
  }
  return origLookup.call(dns, hostname, options, callback);
}
dns.lookup = guardedLookup;

if (dns.promises) {
  const origPLookup = dns.promises.lookup;
  dns.promises.lookup = function (hostname, options) {
    if (!isLoopbackHost(hostname)) { note(`dns.promises.lookup ${hostname} refused`); return Promise.reject(denyErr(hostname, 'getaddrinfo')); }
    return origPLookup.call(dns.promises, hostname, options);
  };
}
// Resolver-based queries (resolve4, resolveSrv, ...) never target loopback usefully: refuse non-localhost names.
for (const target of [dns, dns.promises].filter(Boolean)) {
  for (const k of Object.keys(target)) {
    if (!/^resolve/.test(k) || typeof target[k] !== 'function') continue;
    const orig = target[k];
    const isPromise = target === dns.promises;
    target[k] = function (hostname, ...rest) {
      if (isLoopbackHost(hostname)) return orig.call(this, hostname, ...rest);
      note(`dns.${k} ${hostname} refused`);
      const err = denyErr(hostname, 'query');
      if (isPromise) return Promise.reject(err);
      const cb = rest[rest.length - 1];
      if (typeof cb === 'function') process.nextTick(() => cb(err));
      return undefined;
    };
  }
}

// ---- net -------------------------------------------------------------------
function extractTarget(args) {
  // net.Socket#connect(options[, cb]) | (path[, cb]) | (port[, host][, cb]); also normalized [options, cb] arrays.
  let a0 = args[0];
  if (Array.isArray(a0)) a0 = a0[0];
  if (a0 && typeof a0 === 'object') {
    if (a0.path) return { ipc: true };
    return { host: a0.host == null ? 'localhost' : a0.host };
  }
  if (typeof a0 === 'string' && !/^\d+$/.test(a0)) return { ipc: true }; // unix socket path
  const h = typeof args[1] === 'string' ? args[1] : 'localhost';
  return { host: h };
}

const origConnect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  const t = extractTarget(args);
  if (!t.ipc && !isLoopbackHost(t.host)) {
    note(`socket connect to ${t.host} refused`);
    const err = denyErr(t.host, 'connect');
    process.nextTick(() => this.destroy(err));
    return this;
  }
  return origConnect.apply(this, args);
};

// ---- dgram (mDNS/bonjour, telemetry over UDP, ...) ---------------------------
const dgram = require('dgram');
const origSend = dgram.Socket.prototype.send;
dgram.Socket.prototype.send = function (...args) {
  const cb = typeof args[args.length - 1] === 'function' ? args[args.length - 1] : null;
  // send(msg[, offset, length][, port][, address][, callback]): the address is the last string argument after msg
  const addr = args.slice(1).filter((a) => typeof a === 'string').pop();
  if (addr !== undefined && !isLoopbackHost(addr)) {
    note(`udp send to ${addr} refused`);
    const err = denyErr(addr, 'send');
    if (cb) process.nextTick(() => cb(err));
    return undefined;
  }
  return origSend.apply(this, args);
};
const origUdpConnect = dgram.Socket.prototype.connect;
if (origUdpConnect) {
  dgram.Socket.prototype.connect = function (port, address, cb) {
    if (typeof address === 'string' && !isLoopbackHost(address)) {
      note(`udp connect to ${address} refused`);
      const err = denyErr(address, 'connect');
      const callback = typeof cb === 'function' ? cb : null;
      process.nextTick(() => (callback ? callback(err) : this.emit('error', err)));
      return undefined;
    }
    return origUdpConnect.apply(this, arguments);
  };
}

process.env.__INTEROP_GUARD_LOADED = '1';
