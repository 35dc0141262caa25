// The real Control UI in Debian's headless chromium, driven by playwright-core: browser profiles (one
// user-data-dir each, every WebSocket frame recorded), screenshots, and the waits on what the page shows
// (connected, a login gate, the pairing screen). Shared by browser.mjs and proxies.mjs; each calls
// configureUi() first (where profiles and screenshots go, the browser, the token the login gate gets).
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { sleep } from './lib.mjs';

export class Fail extends Error {
  constructor(msg, ...details) { super(msg); this.details = details.filter(Boolean); }
}
// Bounds of the waits (never fixed sleeps as synchronisation: every wait is for a condition, bounded).
export const T_PAGE = 30000; // a page state to appear (the UI's first load, a login gate, a pairing screen)
export const T_CONNECT = 30000; // connected after an approval (the UI retries with backoff 800 ms × 1.7)
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const cfg = { work: null, art: null, prefix: 'ui', chromiumPath: '/usr/bin/chromium', chromium: null, token: '', log: console.log };
const browsers = new Set(); // open Playwright contexts, closed before the children
let shotSeq = 0;

// work: scratch folder; art: screenshots; prefix: screenshot name prefix; chromiumPath; token: for the login gate.
export function configureUi(o) { Object.assign(cfg, o); }
// playwright-core from its installed folder; throws when it cannot be loaded.
export async function loadChromium(playwrightDir) {
  const chromium = (await import(pathToFileURL(path.join(playwrightDir, 'index.mjs')).href)).chromium;
  if (!chromium) throw new Error('no chromium export');
  cfg.chromium = chromium;
  return chromium;
}
export async function closeBrowsers() {
  for (const b of [...browsers]) { try { await Promise.race([b.close(), sleep(5000)]); } catch {} browsers.delete(b); }
}
function trunc(s, n = 3000) { s = String(s ?? ''); return s.length > n ? s.slice(0, n) + `… [${s.length - n} more chars]` : s; }

// Wait for a condition: polls `fn` until it returns a truthy value, at most `timeoutMs`.
export async function waitUntil(what, fn, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Fail(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? ` (last error: ${last.message})` : ''}`);
    await sleep(200);
  }
}


export class Profile {
  // One Chromium profile: its own user-data-dir (launchPersistentContext), its own storage.
  constructor(name, { flags = [] } = {}) { this.name = name; this.flags = flags; this.frames = []; this.framesFile = path.join(cfg.work, `frames-${name}.jsonl`); }
  async open() {
    this.dir = fs.mkdtempSync(path.join(cfg.work, `profile-${this.name}-`));
    const home = path.join(cfg.work, 'chromium-home');
    fs.mkdirSync(home, { recursive: true });
    this.ctx = await cfg.chromium.launchPersistentContext(this.dir, {
      executablePath: cfg.chromiumPath,
      headless: true,
      args: [...CHROMIUM_FLAGS, ...(this.flags || [])],
      viewport: { width: 1280, height: 800 },
      env: { PATH: process.env.PATH || '/usr/bin:/bin', HOME: home, TMPDIR: cfg.work },
      timeout: 60000,
    });
    browsers.add(this.ctx);
    this.ctx.setDefaultTimeout(T_PAGE);
    this.ctx.on('page', (p) => this.watch(p));
    for (const p of this.ctx.pages()) this.watch(p);
    return this;
  }
  watch(page) {
    if (page.__watched) return;
    page.__watched = true;
    page.__id = `${this.name}#${this.ctx.pages().indexOf(page) + 1}`;
    page.on('websocket', (ws) => {
      const rec = (dir, payload) => {
        let frame;
        try { frame = JSON.parse(String(payload)); } catch { frame = String(payload).slice(0, 500); }
        const e = { t: Date.now(), page: page.__id, url: ws.url(), dir, frame };
        this.frames.push(e);
        try { fs.appendFileSync(this.framesFile, JSON.stringify(e) + '\n'); } catch {}
      };
      rec('open', '');
      ws.on('framesent', (f) => rec('c2s', f.payload));
      ws.on('framereceived', (f) => rec('s2c', f.payload));
      ws.on('close', () => rec('close', ''));
    });
  }
  async page() { return this.ctx.pages()[0] || this.ctx.newPage(); }
  async newPage() { return this.ctx.newPage(); }
  async close() { if (this.ctx) { browsers.delete(this.ctx); await Promise.race([this.ctx.close(), sleep(10000)]).catch(() => {}); this.ctx = null; } }
  // The connect requests a page sent, with what came back for each.
  connects(page, since = 0) {
    const out = [];
    for (const e of this.frames) {
      if (e.t < since || (page && e.page !== page.__id)) continue;
      if (e.dir === 'c2s' && e.frame?.method === 'connect') out.push({ t: e.t, req: e.frame, res: null });
      if (e.dir === 's2c' && e.frame?.type === 'res') {
        const c = out.find((x) => x.req.id === e.frame.id);
        if (c) c.res = e.frame;
      }
    }
    return out;
  }
}
export function fmtConnects(list, max = 6) {
  return list.slice(-max).map((c) => {
    const auth = c.req.params?.auth ? Object.keys(c.req.params.auth).join('+') : 'none';
    const res = !c.res ? 'no answer' : c.res.ok ? `hello-ok (auth.method=${c.res.payload?.auth?.method}, server=${JSON.stringify(c.res.payload?.server?.version)})`
      : `${c.res.error?.code} ${c.res.error?.details?.code || ''} "${trunc(c.res.error?.message, 200)}"`;
    return `connect auth=[${auth}] device=${String(c.req.params?.device?.id || '-').slice(0, 12)}… -> ${res}`;
  }).join('\n');
}

export async function shot(page, label) {
  const file = path.join(cfg.art, `${cfg.prefix}-${String(++shotSeq).padStart(2, '0')}-${label}.png`);
  try { await page.screenshot({ path: file, timeout: 15000 }); } catch (e) { cfg.log(`      (screenshot ${label} failed: ${e.message})`); return null; }
  cfg.log(`      screenshot ${path.basename(file)}`);
  return file;
}
export async function pageText(page) {
  try { return (await page.locator('body').innerText({ timeout: 5000 })).replace(/\s*\n\s*/g, ' | '); } catch (e) { return `(no text: ${e.message})`; }
}
// The page's connection status as the UI announces it (an aria-live role=status in the sidebar footer).
const statusLocator = (page) => page.getByRole('status').filter({ hasText: /^\s*(Connected|Reconnecting…|Connecting…|Disconnected|Offline)/ });
export async function statusText(page) {
  const l = statusLocator(page);
  if (!(await l.count())) return null;
  return (await l.first().textContent()).trim();
}
// Wait until the page shows it lost the connection: the status reads "Reconnecting…" (or the like), or a
// login / pairing gate is shown.
export async function expectDisconnected(page, what, timeoutMs = T_PAGE) {
  await waitUntil(`${what} to show that it is disconnected`, async () => {
    const st = await statusText(page);
    if (st && st !== 'Connected') return st;
    for (const gate of ['This Gateway expects its token', 'Approve this browser', 'Approve the new role']) {
      if (await page.getByText(gate).first().isVisible().catch(() => false)) return gate;
    }
    return null;
  }, timeoutMs).catch(async (e) => { throw new Fail(`${e.message}\n  page text: ${trunc(await pageText(page), 800)}`); });
}
// Wait until the page shows the connected app: the status reads "Connected", the app navigation is there, and
// no login or pairing gate is shown.
export async function expectConnected(page, what, timeoutMs = T_CONNECT) {
  try {
    await page.getByRole('status').filter({ hasText: /^\s*Connected\s*$/ }).first().waitFor({ state: 'attached', timeout: timeoutMs });
    await page.getByText('Home', { exact: true }).first().waitFor({ state: 'visible', timeout: 5000 });
  } catch (e) {
    throw new Fail(`${what}: the page does not show the connected app within ${timeoutMs} ms (status: ${JSON.stringify(await statusText(page))})\n  page text: ${trunc(await pageText(page), 800)}`);
  }
  for (const gate of ['This Gateway expects its token', 'Approve this browser', 'Browser origin not allowed']) {
    if (await page.getByText(gate).first().isVisible().catch(() => false)) throw new Fail(`${what}: connected, but the page still shows "${gate}"`);
  }
}
export async function expectText(page, text, what, timeoutMs = T_PAGE) {
  try {
    await page.getByText(text).first().waitFor({ state: 'visible', timeout: timeoutMs });
  } catch {
    throw new Fail(`${what}: the page does not show ${text instanceof RegExp ? text : JSON.stringify(text)} within ${timeoutMs} ms\n  page text: ${trunc(await pageText(page), 800)}`);
  }
}
// The login gate (control-ui.md §3.1): "This Gateway expects its token", #login-gate-credential, button.login-gate__connect.
export async function login(page, what) {
  await expectText(page, 'This Gateway expects its token', `${what}: login gate`);
  await page.locator('#login-gate-credential').fill(cfg.token);
  await page.locator('button.login-gate__connect').click();
}
// The pairing screen (control-ui.md §3.2); returns the request id it names in `openclaw devices approve <id>`.
// `title`: "Approve this browser" for a new device, "Approve the new role" for a role-upgrade (a revoked role).
export async function expectPairingScreen(page, what, title = 'Approve this browser') {
  await expectText(page, title, what);
  await expectText(page, /Waiting for approval/, what, 5000);
  const m = /openclaw devices approve ([0-9a-f-]{8,})/.exec(await pageText(page));
  if (!m) throw new Fail(`${what}: the pairing screen names no request id ("openclaw devices approve <id>")\n  page text: ${trunc(await pageText(page), 800)}`);
  return m[1];
}

