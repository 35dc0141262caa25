#!/usr/bin/env bash
# Property-based conformance check of the admin API against openapi.yaml with
# Schemathesis.
#
# Builds nothing: runs ${CLAWGATE_BIN:-target/debug/clawgate} (run `cargo build`
# first) with a fresh temporary state dir, checks every admin operation
# against the spec within a time budget, stops the server, and exits non-zero
# when Schemathesis reports a failure (or cannot run).
#
# Schemathesis is installed from PyPI into a venv in
# ${CLAWGATE_TOOLS_CACHE:-$HOME/.cache/clawgate-tools} when absent.
#
# Knobs (environment):
#   CLAWGATE_BIN              the server binary (default target/debug/clawgate)
#   CLAWGATE_ST_MAX_EXAMPLES  test cases per operation and round (default 10)
#   CLAWGATE_ST_MAX_TIME      time budget of the run in seconds (default 60)
#   CLAWGATE_ST_SEED          seed for a reproducible run (default: random)
#   CLAWGATE_ST_REPORT_DIR    keep JUnit/NDJSON reports there (default: none)
#   CLAWGATE_ST_ARGS          extra arguments for `st run`
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CALLER_PWD=$PWD
CACHE=${CLAWGATE_TOOLS_CACHE:-$HOME/.cache/clawgate-tools}
VENV=$CACHE/schemathesis-$SCHEMATHESIS_VERSION
ST=$VENV/bin/st
MAX_EXAMPLES=${CLAWGATE_ST_MAX_EXAMPLES:-10}
MAX_TIME=${CLAWGATE_ST_MAX_TIME:-40}

die() { echo "schemathesis.sh: $*" >&2; exit 1; }
say() { echo "schemathesis.sh: $*" >&2; }

cd "$ROOT"
BIN=${CLAWGATE_BIN:-target/debug/clawgate}
[[ -x $BIN ]] || die "no server binary at $BIN (run \`cargo build\`, or set CLAWGATE_BIN)"
[[ -f openapi.yaml ]] || die "no openapi.yaml in $ROOT"

# ---------------------------------------------------------------- the tool
if [[ ! -x $ST ]]; then
    command -v python3 >/dev/null || die "python3 is not installed; cannot install schemathesis"
    say "installing schemathesis==$SCHEMATHESIS_VERSION into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION" \
        || { rm -rf "$VENV"; die "pip install schemathesis==$SCHEMATHESIS_VERSION failed"; }
    [[ -x $ST ]] || die "the st command is missing after install ($ST)"
fi

# ---------------------------------------------------------------- the server
WORK=$(mktemp -d "${TMPDIR:-/tmp}/clawgate-st.XXXXXX")
STATE=$WORK/state
mkdir -p "$STATE"
SERVER_PID=
cleanup() {
    local rc=$?
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ $rc -ne 0 && -s $WORK/server.log ]]; then
        say "server log (last 20 lines):"
        tail -n 20 "$WORK/server.log" >&2
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# An explicit, empty config so nothing from ~/.openclaw leaks in, and no
# CLAWGATE_* settings from the caller's environment (this script's own knobs
# included) but the log ones.
echo '{}' >"$WORK/openclaw.json"
SERVER_ENV=(env -u OPENCLAW_CONFIG_PATH)
while IFS= read -r var; do
    [[ $var == CLAWGATE_* && $var != CLAWGATE_LOG && $var != CLAWGATE_LOG_FORMAT ]] && SERVER_ENV+=(-u "$var")
done < <(compgen -e)
"${SERVER_ENV[@]}" CLAWGATE_LOG="${CLAWGATE_LOG:-warn}" \
    "$BIN" serve --config "$WORK/openclaw.json" --state-dir "$STATE" --port 0 --admin-port 0 \
    </dev/null >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

for _ in $(seq 100); do
    [[ -s $STATE/runtime.json && -s $STATE/admin-token ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited early"
    sleep 0.1
done
[[ -s $STATE/runtime.json ]] || die "the server wrote no runtime.json within 10 s"
ADMIN_ADDR=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["adminAddr"])' "$STATE/runtime.json")
TOKEN=$(cat "$STATE/admin-token")
URL=http://$ADMIN_ADDR
say "server pid $SERVER_PID, admin API on $URL"

for _ in $(seq 50); do
    curl -fsS -o /dev/null "$URL/healthz" 2>/dev/null && break
    sleep 0.1
done
curl -fsS -o /dev/null "$URL/healthz" || die "$URL/healthz does not answer"

# ---------------------------------------------------------------- the SSE route, bounded
# Schemathesis cannot test an endless stream; check its status, media type and
# opening comment within 2 seconds instead.
SSE_HEAD=$WORK/sse.head
SSE_BODY=$WORK/sse.body
curl -sS -N --max-time 2 -D "$SSE_HEAD" -o "$SSE_BODY" \
    -H "Authorization: Bearer $TOKEN" "$URL/admin/v1/events" 2>/dev/null || true
grep -qE '^HTTP/[0-9.]+ 200' "$SSE_HEAD" || die "GET /admin/v1/events: not 200: $(head -1 "$SSE_HEAD")"
grep -qiE '^content-type: text/event-stream' "$SSE_HEAD" || die "GET /admin/v1/events: not text/event-stream"
grep -q '^: connected' "$SSE_BODY" || die "GET /admin/v1/events: no ': connected' opening comment"
SSE_UNAUTH=$(curl -sS --max-time 2 -o /dev/null -w '%{http_code}' "$URL/admin/v1/events" || true)
[[ $SSE_UNAUTH == 401 ]] || die "GET /admin/v1/events without a token answered $SSE_UNAUTH, not 401"
say "GET /admin/v1/events: ok (200 text/event-stream; 401 without a token)"

# ---------------------------------------------------------------- the run
# Expected statuses beyond Schemathesis's defaults, each for a reason the
# schema cannot express:
#   missing_required_header: a missing If-Match answers 428 (RFC 6585).
#   negative_data_rejection: 412 when a random If-Match is checked before
#     the bad value; 413 for oversized bodies.
#   positive_data_acceptance: 412 for a random (stale) If-Match; 422 for
#     semantic checks (IP/CIDR entries, whitespace-only labels, scopes outside
#     what the device asked for or was approved for).
cat >"$WORK/schemathesis.toml" <<'EOF'
[checks.missing_required_header]
expected-statuses = [400, 401, 403, 406, 415, 422, 428]

[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 412, 413, 415, 422, 428, 429, "5XX"]

[checks.positive_data_acceptance]
expected-statuses = ["2XX", "3XX", 401, 403, 404, 409, 412, 422, 429, "5XX"]
EOF

ST_ARGS=(
    --config-file "$WORK/schemathesis.toml"
    run "$ROOT/openapi.yaml"
    --url "$URL"
    -H "Authorization: Bearer $TOKEN"
    --checks all
    --exclude-path /admin/v1/events
    --max-examples "$MAX_EXAMPLES"
    --max-time "$MAX_TIME"
    --request-timeout 5
    --max-response-time 3
    --workers 2
    --no-color
    --suppress-health-check too_slow,filter_too_much
)
[[ -n ${CLAWGATE_ST_SEED:-} ]] && ST_ARGS+=(--seed "$CLAWGATE_ST_SEED")
if [[ -n ${CLAWGATE_ST_REPORT_DIR:-} ]]; then
    REPORT_DIR=$(cd "$CALLER_PWD" && mkdir -p "$CLAWGATE_ST_REPORT_DIR" && cd "$CLAWGATE_ST_REPORT_DIR" && pwd)
    ST_ARGS+=(--report junit,ndjson --report-dir "$REPORT_DIR")
fi
# shellcheck disable=SC2206 # deliberate word splitting of the extra arguments
[[ -n ${CLAWGATE_ST_ARGS:-} ]] && ST_ARGS+=($CLAWGATE_ST_ARGS)

say "st run: max $MAX_EXAMPLES examples per operation, ${MAX_TIME}s budget"
# Run from the scratch dir: st keeps a .schemathesis/ cache in its working dir.
cd "$WORK"
rc=0
# A hard stop past the budget in case a request or the tool hangs.
SCHEMATHESIS_HOOKS= timeout --kill-after=10 $((MAX_TIME + 90)) "$ST" "${ST_ARGS[@]}" || rc=$?
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    say "the server died during the run"
    [[ $rc -eq 0 ]] && rc=1
fi
if [[ $rc -eq 124 || $rc -eq 137 ]]; then
    say "schemathesis did not finish within $((MAX_TIME + 90))s"
fi
[[ $rc -eq 0 ]] && say "no conformance failures" || say "schemathesis reported failures (exit $rc)"
exit "$rc"
