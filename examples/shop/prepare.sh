#!/usr/bin/env bash
# Prepares the shop example to run behind the gateway. Idempotent: a second run only
# checks what is already there.
#
#   bash examples/shop/prepare.sh            # everything, including the exported SPA
#   bash examples/shop/prepare.sh --no-spa   # skip Node/bun and `reflex export`
#   ISTHMUS_SKIP_BUILD=1 bash examples/shop/prepare.sh   # use the plugins and gateway already built
#
# Steps: Python packages (python/.venv), guest plugins and gateway build, plugins copied
# to examples/shop/plugins/, the shop's own Python policy (policies/staff_reports: unit
# tests, componentize-py build, `isthmus plugin test`; skipped when unchanged; see
# policies.sh), secrets in examples/shop/.env (generated once), migrations, collectstatic,
# demo users, the SPA exported with its API URL at the gateway's origin, and
# `isthmus check`. Then start the three processes as README.md shows.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$repo/python/.venv"
spa=1
[ "${1:-}" = "--no-spa" ] && spa=0

step() { printf '\n==> %s\n' "$*"; }
timed() { local t=$(date +%s); "$@"; printf '    (%ss)\n' $(($(date +%s) - t)); }

step "Python packages"
py_setup() {
    if [ ! -x "$venv/bin/python" ]; then
        "${ISTHMUS_PYTHON:-python3}" -m venv "$venv"
    fi
    # tomli-w: scaled.py writes the scaled config (run.sh --scaled).
    if ! "$venv/bin/python" -c 'import isthmus_django, isthmus_reflex, reflex, rest_framework, uvicorn, tomli_w' 2>/dev/null; then
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$repo/python[reflex]" djangorestframework uvicorn tomli-w
    else
        echo "    already installed"
    fi
}
timed py_setup
export PATH="$venv/bin:$PATH"

step "guest plugins and the gateway"
if [ "${ISTHMUS_SKIP_BUILD:-}" = 1 ]; then
    echo "    skipped (ISTHMUS_SKIP_BUILD=1): using target/plugins and target/release/isthmus"
else
    timed bash "$repo/guest-plugins/build.sh"
    timed cargo build --release -p isthmus --manifest-path "$repo/Cargo.toml"
fi
mkdir -p "$here/plugins"
for p in prefix_router.wasm django_bridge.wasm; do
    cp -f "$repo/target/plugins/$p" "$here/plugins/$p"
done

step "the shop's own policies (policies.sh: unit tests, build, isthmus plugin test)"
timed bash "$here/policies.sh"
echo "    plugins in $here/plugins: $(ls "$here/plugins" | tr '\n' ' ')"

step "secrets ($here/.env)"
if [ ! -f "$here/.env" ]; then
    umask 077
    {
        echo "export ISTHMUS_IDENTITY_SECRET=$(openssl rand -hex 32)"
        echo "export ISTHMUS_BRIDGE_SECRET=$(openssl rand -hex 32)"
        echo "export DJANGO_SECRET_KEY=$(openssl rand -hex 32)"
        echo "export SHOP_DEMO_PASSWORD=$(openssl rand -hex 8)"
    } > "$here/.env"
    echo "    generated"
else
    echo "    kept"
fi
# shellcheck disable=SC1091
. "$here/.env"
export ISTHMUS_PUBLIC_ORIGIN="${ISTHMUS_PUBLIC_ORIGIN:-http://127.0.0.1:3000}"

step "Django: migrate, collectstatic, demo users"
cd "$here/backend"
timed python manage.py migrate --noinput -v0
timed python manage.py collectstatic --noinput -v0
python manage.py shop_demo_users --password "$SHOP_DEMO_PASSWORD" | sed 's/^/    /'
echo "    demo users admin, staffer, plain, clerk, buyer; password: $SHOP_DEMO_PASSWORD"

if [ "$spa" = 1 ]; then
    step "Node >= 22 and bun from the npm registry ($here/.tools)"
    tools="$here/.tools"
    bash "$here/tools.sh"
    export PATH="$tools/node_modules/.bin:$PATH"
    step "Reflex: export the SPA (api_url = $ISTHMUS_PUBLIC_ORIGIN)"
    cd "$here/frontend"
    export REFLEX_USE_SYSTEM_BUN=1 REFLEX_TELEMETRY_ENABLED=false
    timed reflex export --frontend-only --no-zip
fi

step "isthmus check"
"$repo/target/release/isthmus" check --config "$here/isthmus.toml"
