#!/usr/bin/env bash
# The WebSocket part of the benchmark: bash bench/ws/run.sh RESULTS_DIR [--quick]
# Installs what it needs (idempotently), builds the load tool, the gateway and the
# plugins, then runs bench/ws/bench.py, which writes RESULTS_DIR/ws.json.
# See bench/ws/README.md for what each case measures and how.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
if [ $# -lt 1 ]; then
    echo "usage: bash bench/ws/run.sh RESULTS_DIR [--quick]" >&2
    exit 2
fi
results="$1"
shift
quick=()
for arg in "$@"; do
    case "$arg" in
        --quick) quick=(--quick) ;;
        *) echo "bench/ws/run.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done
mkdir -p "$results"
say() { echo "[bench/ws] $*" >&2; }

# 5,000 held connections: the proxy holds two descriptors per connection.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 12000 ]; then
    say "ulimit -n is $(ulimit -n); 12000 or more is needed to hold 5,000 proxied connections"
    exit 1
fi

# Debian tools: nginx (the reference proxy), taskset (util-linux), perf (profiles, optional).
missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v taskset >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} from Debian"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
command -v perf >/dev/null || say "perf not found: no profile will be taken if a target is missed (apt-get install linux-perf)"

# The load generator and upstreams (own workspace, own target folder).
say "building wsbench"
CARGO_TARGET_DIR="$repo/target/bench-ws" cargo build --release --quiet --manifest-path "$here/tools/Cargo.toml" >&2

# The gateway and its plugins.
say "building isthmus (release)"
if ! (cd "$repo" && cargo build --release --quiet -p isthmus >&2); then
    if [ -x "$repo/target/release/isthmus" ]; then
        say "WARNING: cargo build --release -p isthmus failed; using the existing target/release/isthmus"
    else
        exit 1
    fi
fi
if [ ! -f "$repo/target/plugins/prefix_router.wasm" ] || [ ! -f "$repo/target/plugins/django_bridge.wasm" ]; then
    say "building the guest plugins"
    bash "$repo/guest-plugins/build.sh" >&2
fi

# Python 3.12 (pyenv) venv for the real-Reflex cases: reflex-django 4.0.3 needs 3.12+;
# the direct and isthmus cases run on the same interpreter, Reflex and Django.
py312=""
for candidate in /root/.pyenv/versions/3.12*/bin/python3.12 "$(command -v python3.12 || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then py312="$candidate"; break; fi
done
venv="$here/.venv-rd"
if [ -z "$py312" ]; then
    say "Python 3.12 not found (ls /root/.pyenv/versions): the events section (real Reflex, reflex-django) will be skipped"
    rm -rf "$venv"
else
    want="reflex-django==4.0.3 reflex==0.10.1 uvicorn"
    stamp="$venv/.bench-stamp"
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
        rm -rf "$venv"
        "$py312" -m venv "$venv"
    fi
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! "$venv/bin/python" -c 'import reflex_django, reflex, uvicorn' 2>/dev/null; then
        say "installing $want into $venv (PyPI)"
        # shellcheck disable=SC2086
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $want >&2
        echo "$want" > "$stamp"
    fi
fi

python3 "$here/bench.py" "$results" "${quick[@]}"
