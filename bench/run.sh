#!/usr/bin/env bash
# The benchmark suite, in one run: isthmus against nginx, direct connections and
# reflex-django, with the same CPU pinning for every case.
#
#   bash bench/run.sh            # full run (5 repetitions), refreshes BENCHMARKS.md
#   bash bench/run.sh --quick    # 1 short repetition: checks the harness, touches no doc
#
# Options: --no-doc (do not rewrite BENCHMARKS.md), --no-profile (skip perf profiles),
# --only http,plugins,ws,profile (parts to run). Env: BENCH_REPS (default 5),
# BENCH_LOADGEN_CPU (0), BENCH_SERVER_CPU (1).
#
# Installs what it needs, idempotently: nginx-light, wrk, nghttp2-client (h2load) and
# linux-perf from Debian; bench/.venv (matplotlib) and bench/.venv-rd (Python 3.12 from
# pyenv with reflex-django==4.0.3 and uvicorn[standard]) from PyPI; builds the guest
# plugins and the release gateway. Writes bench/results/<UTC timestamp>/: one JSON file
# per part, meta.json, report.md, chart.png, profile-*.md. Every server listens on
# 127.0.0.1 only and is stopped on exit or interrupt; every load run is bounded in time.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
quick=0
doc=1
profile=1
only="http,plugins,ws,profile"
for arg in "$@"; do
    case $arg in
        --quick) quick=1 ;;
        --no-doc) doc=0 ;;
        --no-profile) profile=0 ;;
        --only=*) only=${arg#--only=} ;;
        -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "bench/run.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
    esac
done
[[ $quick == 1 ]] && doc=0
wants() { [[ ",$only," == *",$1,"* ]]; }

say() { printf '\n== bench: %s\n' "$*" >&2; }
die() { printf 'bench/run.sh: error: %s\n' "$*" >&2; exit 1; }

# The part running now; an interrupt is passed on to it, and it stops its servers.
child=""
on_signal() {
    if [[ -n $child ]] && kill -0 "$child" 2>/dev/null; then
        kill -TERM "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    echo "bench/run.sh: interrupted" >&2
    exit 130
}
trap on_signal INT TERM HUP
run_part() {  # run_part NAME CMD...: runs a part in the background and waits for it
    local name=$1; shift
    say "$name: $*"
    "$@" &
    child=$!
    local rc=0
    wait "$child" || rc=$?
    child=""
    ((rc == 0)) && return 0
    echo "bench/run.sh: part $name FAILED (exit $rc)" >&2
    failed_parts+=("$name")
    return 0
}
failed_parts=()

# ------------------------------------------------------------------ tools (Debian)
need=()
for pkg in nginx-light wrk nghttp2-client linux-perf; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
    say "apt-get install -y ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y "${need[@]}" >&2 || { apt-get update >&2 && apt-get install -y "${need[@]}" >&2; }
fi
for tool in nginx wrk taskset; do
    command -v "$tool" >/dev/null || die "$tool is not on PATH after installing"
done
# The Debian package starts a system nginx on port 80; nothing here uses or stops it.

# ------------------------------------------------------------------ Python (PyPI)
venv() {  # venv DIR PYTHON PACKAGES...: create/reuse, install when the recipe changed
    local dir=$1 py=$2; shift 2
    local want
    want=$( { echo "$*"; "$py" -VV; } | sha256sum | cut -d' ' -f1)
    if [[ ! -x $dir/bin/python ]] || ! "$dir/bin/python" -c 'import sys' 2>/dev/null; then
        rm -rf "$dir"
        "$py" -m venv "$dir" >&2
    fi
    if [[ ! -f $dir/.bench-stamp || $(cat "$dir/.bench-stamp") != "$want" ]]; then
        say "pip install $* into $dir"
        "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >&2
        echo "$want" > "$dir/.bench-stamp"
    fi
}
venv "$here/.venv" "${BENCH_PYTHON:-python3}" 'matplotlib>=3.8'
py="$here/.venv/bin/python"

skipped=()
rd_args=()
meta_args=()
py312=""
pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
for cand in $(ls -d "$pyenv_root"/versions/3.12* 2>/dev/null | sort -V -r); do
    if [[ -x $cand/bin/python3.12 ]]; then py312=$cand/bin/python3.12; break; fi
done
if [[ -n $py312 ]]; then
    venv "$here/.venv-rd" "$py312" 'reflex-django==4.0.3' 'uvicorn[standard]'
    rd_args=(--rd-python "$here/.venv-rd/bin/python")
    meta_args=(--rd-python "$here/.venv-rd/bin/python")
else
    reason="no Python 3.12 under $pyenv_root/versions (pyenv): the reflex-django/uvicorn cases were NOT run"
    echo "bench/run.sh: $reason" >&2
    skipped+=("$reason")
    rd_args=(--no-rd "$reason")
fi

# ------------------------------------------------------------------ build
say "guest plugins: bash guest-plugins/build.sh"
bash "$repo/guest-plugins/build.sh" >&2
say "gateway: cargo build --release -p isthmus"
(cd "$repo" && cargo build --release -p isthmus >&2)
for f in target/release/isthmus target/plugins/prefix_router.wasm target/plugins/django_bridge.wasm; do
    [[ -e $repo/$f ]] || die "$f is missing after the build"
done

# ------------------------------------------------------------------ run
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results="$here/results/$stamp"
mkdir -p "$results"
mode=full; qflag=()
if [[ $quick == 1 ]]; then mode=quick; qflag=(--quick); fi
command="bash bench/run.sh${*:+ $*}"
"$py" "$here/meta.py" "$results" start --mode "$mode" --command "$command" "${meta_args[@]}"
say "results: $results (load average $(cut -d' ' -f1-3 /proc/loadavg))"

wants http && run_part http "$py" "$here/http/run.py" "$results" "${qflag[@]}" "${rd_args[@]}"
wants plugins && run_part plugins "$py" "$here/plugins/run.py" "$results" "${qflag[@]}"
if wants ws; then
    if [[ -f $here/ws/run.sh ]]; then
        run_part websocket bash "$here/ws/run.sh" "$results" "${qflag[@]}"
    else
        skipped+=("bench/ws/run.sh does not exist: no WebSocket/event-bridge results")
        echo "bench/run.sh: ${skipped[-1]}" >&2
    fi
fi
if wants profile && [[ $profile == 1 ]]; then
    run_part profile "$py" "$here/http/profile.py" "$results" --seconds "$([[ $quick == 1 ]] && echo 4 || echo 8)"
fi

for p in "${failed_parts[@]}"; do skipped+=("part $p failed; its rows may be missing"); done
skip_args=()
for s in "${skipped[@]}"; do skip_args+=(--skipped "$s"); done
"$py" "$here/meta.py" "$results" end "${skip_args[@]}"

report_args=("$results")
[[ $doc == 1 ]] && report_args+=(--update-doc "$repo/BENCHMARKS.md")
say "report"
"$py" "$here/report.py" "${report_args[@]}"
echo >&2
echo "bench/run.sh: results in ${results#"$repo"/} (report.md, chart.png)" >&2
if ((${#failed_parts[@]})); then
    echo "bench/run.sh: FAILED parts: ${failed_parts[*]}" >&2
    exit 1
fi
