#!/usr/bin/env bash
# Lints openapi.yaml with Redocly CLI (rules in redocly.yaml).
#
# The CLI is installed with npm into a cache outside the repo,
# ${CLAWGATE_TOOLS_CACHE:-$HOME/.cache/clawgate-tools}/redocly, when absent.
# Exits non-zero on lint errors, and when the tool cannot be installed.
#
# Usage: scripts/openapi-lint.sh [SPEC]   (default: openapi.yaml at the repo top)
set -euo pipefail

REDOCLY_VERSION=2.77.0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CLAWGATE_TOOLS_CACHE:-$HOME/.cache/clawgate-tools}
PREFIX=$CACHE/redocly-$REDOCLY_VERSION
BIN=$PREFIX/node_modules/.bin/redocly
SPEC=${1:-openapi.yaml}

die() { echo "openapi-lint: $*" >&2; exit 1; }

if [[ ! -x $BIN ]]; then
    command -v npm >/dev/null || die "npm is not installed; cannot install @redocly/cli"
    echo "openapi-lint: installing @redocly/cli@$REDOCLY_VERSION into $PREFIX" >&2
    mkdir -p "$PREFIX"
    # A private prefix with its own package.json keeps npm from walking up
    # into another project.
    [[ -f $PREFIX/package.json ]] || echo '{"private":true}' >"$PREFIX/package.json"
    npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error \
        "@redocly/cli@$REDOCLY_VERSION" >&2 \
        || die "npm install @redocly/cli@$REDOCLY_VERSION failed"
    [[ -x $BIN ]] || die "the redocly binary is missing after install ($BIN)"
fi

cd "$ROOT"
[[ -f $SPEC ]] || die "no $SPEC"
# No usage telemetry; the box drawn around Node's deprecation notice is noise.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
"$BIN" lint --format=codeframe "$SPEC"
