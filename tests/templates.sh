#!/usr/bin/env bash
# Every policy template, as a plugin author uses it: `isthmus plugin new`, the
# template's own unit tests, its one-line build with the pinned toolchain, then
# `isthmus plugin test` on the component; each router is also loaded by `isthmus serve`
# and sent a request, each bridge policy loaded by `isthmus check`.
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
    for _ in $(seq 1 600); do
        grep -q "isthmus listening" "$dir/site/gateway.log" && break
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

check_bridge() { # DIR
    local dir=$1
    mkdir -p "$dir/site/plugins"
    cp "$dir/bridge.wasm" "$dir/site/plugins/"
    cp "$repo/target/plugins/prefix_router.wasm" "$dir/site/plugins/"
    mkdir -p "$dir/site/spa"
    cat >"$dir/site/isthmus.toml" <<TOML
[listen]
addr = "127.0.0.1:0"
[upstreams.django]
url = "http://127.0.0.1:9"
[upstreams.reflex]
url = "http://127.0.0.1:9"
[static.frontend]
root = "spa"
[routing]
cache_dir = "$cache"
[[routing.routers]]
plugin = "prefix_router.wasm"
[bridge]
identity_secret = "0123456789abcdef0123456789abcdef"
bridge_secret = "fedcba9876543210fedcba9876543210"
[bridge.policy]
plugin = "bridge.wasm"
max_memory = 67108864
deadline = "50ms"
TOML
    "$bin" check --config "$dir/site/isthmus.toml"
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
        if [[ $world == router ]]; then serve_router "$dir"; else check_bridge "$dir"; fi
        echo "$lang $world: done in $(($(date +%s) - start)) s"
    done
done
