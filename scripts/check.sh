#!/usr/bin/env bash
# Quick local gate before a commit: fmt, clippy, tests. Exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt
cargo clippy --all-targets -- -D warnings
cargo test 2>&1 | tee /tmp/clawgate-check.log | grep -E "^test result|FAILED|panicked" || true
! grep -qE "FAILED|panicked|error\[" /tmp/clawgate-check.log
