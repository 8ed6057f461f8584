#!/usr/bin/env bash
# The shop example behind one isthmus gateway, from a fresh machine: every set-up step
# of prepare.sh (each printed with its wall time, skipped when already done), then
# `isthmus run`, which starts Django (uvicorn) and the Reflex backend, waits for both,
# and serves http://127.0.0.1:3000 until Ctrl-C, which stops all three.
#
#   bash examples/shop/run.sh           # production-like: the exported SPA
#   bash examples/shop/run.sh --dev     # Reflex's dev server with hot reload instead
#   bash examples/shop/run.sh --scaled  # scaled out: Redis, two Reflex replicas sharing
#                                       # their state through it, two Django workers
#                                       # (isthmus-scaled.toml, made by scaled.py)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

t0=$(date +%s)
bash "$here/prepare.sh"
printf '\n==> set-up done in %ss\n' $(($(date +%s) - t0))

# shellcheck disable=SC1091
. "$here/.env"
# The `run` commands of isthmus.toml (`python -m uvicorn`, `reflex`) come from the venv;
# Reflex's dev server needs Node >= 22 and bun (prepare.sh put them in .tools).
export PATH="$repo/python/.venv/bin:$here/.tools/node_modules/.bin:$PATH"
export ISTHMUS_PUBLIC_ORIGIN="${ISTHMUS_PUBLIC_ORIGIN:-http://127.0.0.1:3000}"
export REFLEX_TELEMETRY_ENABLED=false REFLEX_USE_SYSTEM_BUN=1

config="$here/isthmus.toml"
if [ "${1:-}" = --scaled ]; then
    shift
    printf '\n==> scaled out: redis-server (Debian), %s\n' "$here/isthmus-scaled.toml"
    bash "$repo/tests/debian-package.sh" redis-server redis-server
    # scaled.py writes the config and prints the environment the Reflex replicas need.
    eval "$(python "$here/scaled.py")"
    config="$here/isthmus-scaled.toml"
fi

printf '\n==> isthmus run: %s (Ctrl-C stops the gateway and everything it started)\n' "$ISTHMUS_PUBLIC_ORIGIN"
echo "    log in at $ISTHMUS_PUBLIC_ORIGIN/admin/ as admin or staffer, password $SHOP_DEMO_PASSWORD"
exec "$repo/target/release/isthmus" run --config "$config" "$@"
