#!/usr/bin/env bash
# The project's test command (README "Run the tests"; `.ci/run` calls exactly
# this): formatting, lints, the Rust unit and integration tests, the OpenAPI
# lint and a bounded Schemathesis run against the real server, then the interop
# suite with the real `openclaw` npm client, against clawgate alone and with
# clawgate in front of the real gateway (the upstream, offline, in the same
# loopback-only namespace), and the browser suite (the real Control UI in
# Debian's headless chromium, driven by playwright-core) in both modes, and the
# node-host suite (the real `openclaw node run` and `openclaw nodes …` through
# clawgate in front of the real gateway), and the proxy suite (Debian's nginx,
# Caddy and HAProxy in front of clawgate in front-door mode, the real CLI on a
# second network namespace over a veth pair, the Docker bridge cases). Tools
# that are missing (Node 24, openclaw, @redocly/cli, schemathesis, chromium,
# playwright-core, nginx, caddy, haproxy) are installed into caches outside the
# repo (chromium and the proxies with apt-get); a missing tool fails the run, it is never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s (at %ds)\n' "$*" "$SECONDS"; }
step "cargo fmt --check"
cargo fmt --check
step "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
step "cargo test"
cargo test --locked
step "openapi.yaml lint"
bash scripts/openapi-lint.sh
step "schemathesis against the admin API"
CLAWGATE_BIN="${CARGO_TARGET_DIR:-target}/debug/clawgate" bash scripts/schemathesis.sh
step "interop with the real openclaw CLI"
CLAWGATE_BIN="${CARGO_TARGET_DIR:-target}/debug/clawgate" bash tests/interop/run.sh
step "interop in front of the real openclaw gateway (front-door mode)"
INTEROP_TARGET=frontdoor CLAWGATE_BIN="${CARGO_TARGET_DIR:-target}/debug/clawgate" bash tests/interop/run.sh
step "browser: the real Control UI in headless chromium against clawgate (standalone)"
INTEROP_SUITE=browser CLAWGATE_BIN="${CARGO_TARGET_DIR:-target}/debug/clawgate" bash tests/interop/run.sh
step "browser: the real Control UI through clawgate in front of the real openclaw gateway (front-door mode)"
INTEROP_SUITE=browser INTEROP_TARGET=frontdoor CLAWGATE_BIN="${CARGO_TARGET_DIR:-target}/debug/clawgate" bash tests/interop/run.sh
step "nodes: the real node host and \`openclaw nodes\` through clawgate in front of the real openclaw gateway"
INTEROP_SUITE=nodes INTEROP_TARGET=frontdoor CLAWGATE_BIN="${CARGO_TARGET_DIR:-target}/debug/clawgate" bash tests/interop/run.sh
# (the same suite against clawgate alone, `INTEROP_SUITE=proxies bash tests/interop/run.sh`, is not in
# this command: it would take the run past 20 minutes on two cores; it passed 11/11 on 2026-12-04)
step "proxies: nginx, Caddy and HAProxy in front of clawgate in front of the real openclaw gateway, a client on another namespace; trusted-proxy auth behind nginx auth_request"
INTEROP_SUITE=proxies INTEROP_TARGET=frontdoor CLAWGATE_BIN="${CARGO_TARGET_DIR:-target}/debug/clawgate" bash tests/interop/run.sh
echo "test.sh: all steps passed in ${SECONDS}s"
