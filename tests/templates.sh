#!/usr/bin/env bash
# Every policy template, as a plugin author uses it: `isthmus plugin new`, the
# template's own unit tests, its one-line build with the pinned toolchain, then
# `isthmus plugin test` on the component; then each is loaded by `isthmus serve`: a router
# is sent a request, a bridge policy gets its cases.toml replayed as Socket.IO traffic
# through the gateway to a stub Reflex (tests/bridge_traffic.py; Python >= 3.11 and aiohttp,
# see traffic_python below).
#
#   ISTHMUS_BIN=target/debug/isthmus bash tests/templates.sh [LANG ...]   # default: rust python js c
#
# With ISTHMUS_TEMPLATES_BENCH=1 each component is also timed by `isthmus plugin bench`
# (bench/plugins/languages.sh runs it so, with the release build).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="${ISTHMUS_BIN:-$repo/target/debug/isthmus}"
langs=("${@:-rust python js c}")
read -r -a langs <<<"${langs[*]}"
work="$(mktemp -d /tmp/isthmus-templates.XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
# Toolchains that several templates share are installed once, next to the repository.
export CARGO_TARGET_DIR="$work/rust-target"
export ISTHMUS_C_TOOLS="${ISTHMUS_C_TOOLS:-$repo/target/c-tools}"

# Where `isthmus plugin test` keeps compiled plugins: the gateways below reuse them.
cache="${TMPDIR:-/tmp}/isthmus-plugin-cache"

say() { printf '\n--> %s\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

build() { # LANG WORLD DIR
    local lang=$1 world=$2 dir=$3
    case $lang in
        rust) (cd "$dir" && cargo test --quiet && ./build.sh) ;;
        python) (cd "$dir" && ./test.sh && ./build.sh) ;;
        js) (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error && npm test && npm run build) ;;
        c) (cd "$dir" && make && make test) ;;
        *) echo "unknown language $lang" >&2; return 1 ;;
    esac
}

# A gateway whose chain is the template router; an anonymous request for the staff area
# must be sent to log in, as every template's example logic does.
serve_router() { # DIR
    local dir=$1 port django
    port=$(free_port)
    django=$(free_port)
    mkdir -p "$dir/site/plugins"
    cp "$dir/router.wasm" "$dir/site/plugins/"
    cp "$repo/target/plugins/django_bridge.wasm" "$dir/site/plugins/"
    cat >"$dir/site/isthmus.toml" <<TOML
[listen]
addr = "127.0.0.1:$port"
[upstreams.django]
url = "http://127.0.0.1:$django"
[routing]
cache_dir = "$cache"
[[routing.routers]]
plugin = "router.wasm"
max_memory = 67108864
deadline = "50ms"
[bridge]
identity_secret = "0123456789abcdef0123456789abcdef"
bridge_secret = "fedcba9876543210fedcba9876543210"
[bridge.policy]
plugin = "django_bridge.wasm"
TOML
    "$bin" serve --config "$dir/site/isthmus.toml" 2>"$dir/site/gateway.log" &
    local pid=$!
    pids+=("$pid")
    # Listening, and the router loaded (a large component may still compile past startup_wait).
    for _ in $(seq 1 600); do
        grep -q "isthmus listening" "$dir/site/gateway.log" 2>/dev/null &&
            grep -q 'plugin loaded plugin="router"' "$dir/site/gateway.log" && break
        kill -0 "$pid" 2>/dev/null || { cat "$dir/site/gateway.log"; return 1; }
        sleep 0.1
    done
    local headers
    headers=$(curl -sS -o /dev/null -D - "http://127.0.0.1:$port/staff/report")
    kill "$pid"
    wait "$pid" || true
    if ! grep -qi '^location: .*next=/staff/report' <<<"$headers" || ! grep -q '^HTTP/1.1 302' <<<"$headers"; then
        echo "the gateway did not send an anonymous /staff/report to log in:"; echo "$headers"; cat "$dir/site/gateway.log"
        return 1
    fi
    echo "isthmus serve: GET /staff/report -> $(head -n1 <<<"$headers" | tr -d '\r'), $(grep -i '^location' <<<"$headers" | tr -d '\r')"
}

# A gateway whose bridge policy is the template's, between a stub Django (the identity
# endpoint) and a stub Reflex that echoes every event it gets; the template's cases.toml
# is replayed through it by a Socket.IO client (tests/bridge_traffic.py says what it checks).
serve_bridge() { # DIR
    local dir=$1 python
    python=$(traffic_python)
    "$python" "$repo/tests/bridge_traffic.py" --isthmus "$bin" --plugin "$dir/bridge.wasm" \
        --cases "$dir/cases.toml" --dir "$dir/site" --router "$repo/target/plugins/prefix_router.wasm" --cache "$cache"
}

# A Python >= 3.11 with aiohttp for tests/bridge_traffic.py: $ISTHMUS_PYTHON, else python/.venv
# when tests/e2e/run.sh has filled it, else a venv of our own next to the repository,
# made once (like the toolchains above).
traffic_python() {
    local ok='import sys, aiohttp; sys.exit(sys.version_info < (3, 11))' venv="$repo/target/traffic-venv"
    for py in ${ISTHMUS_PYTHON:-} "$repo/python/.venv/bin/python" "$venv/bin/python"; do
        if [[ -x $py ]] && "$py" -c "$ok" 2>/dev/null; then echo "$py"; return; fi
    done
    echo "templates.sh: installing aiohttp into $venv for the bridge traffic test" >&2
    python3 -m venv "$venv" >&2 || return 1
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "aiohttp>=3.9" >&2 || return 1
    echo "$venv/bin/python"
}

for lang in "${langs[@]}"; do
    for world in router bridge; do
        dir="$work/$lang-$world"
        start=$(date +%s)
        say "$lang $world: isthmus plugin new, unit tests, build"
        "$bin" plugin new --lang "$lang" --world "$world" "$dir"
        build "$lang" "$world" "$dir"
        say "$lang $world: isthmus plugin test $world.wasm cases.toml ($(stat -c %s "$dir/$world.wasm") bytes)"
        "$bin" plugin test "$dir/$world.wasm" "$dir/cases.toml"
        if [[ ${ISTHMUS_TEMPLATES_BENCH:-} == 1 ]]; then
            say "$lang $world: isthmus plugin bench"
            "$bin" plugin bench "$dir/$world.wasm" "$dir/cases.toml"
        fi
        if [[ $world == router ]]; then serve_router "$dir"; else serve_bridge "$dir"; fi
        echo "$lang $world: done in $(($(date +%s) - start)) s"
    done
done
