#!/usr/bin/env bash
# Builds the shop's own policies (examples/shop/policies/*, projects written by
# `isthmus plugin new`) and copies each into examples/shop/plugins/ as <project>.wasm.
# Today one: policies/staff_reports, a Python router (componentize-py, pinned by its
# venv.sh and installed from PyPI into its own .venv/ on the first run).
#
#   bash examples/shop/policies.sh
#
# For each project whose sources changed since its last good build: its unit tests
# (./test.sh), its build (./build.sh), then `isthmus plugin test` on the component with
# its cases.toml; any failure stops the script. Unchanged projects (a stamp of their
# sources in .venv/) are only copied, in well under a second. Used by prepare.sh and
# tests/e2e/run.sh.
# Environment:
#   ISTHMUS_BIN=/path/isthmus   the gateway binary for `isthmus plugin test` (default:
#                               target/release/isthmus, else target/debug/isthmus)
#   PYTHON=/path/python3        the interpreter of the projects' .venv (>= 3.11; default
#                               $ISTHMUS_PYTHON, else python3)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export PYTHON="${PYTHON:-${ISTHMUS_PYTHON:-python3}}"

isthmus="${ISTHMUS_BIN:-}"
if [ -z "$isthmus" ]; then
    for candidate in "$repo/target/release/isthmus" "$repo/target/debug/isthmus"; do
        if [ -x "$candidate" ]; then isthmus="$candidate"; break; fi
    done
fi

# The sources a build depends on: everything in the project but what the builds make
# (and the READMEs), by content.
sources_hash() {
    (cd "$1" && find . \( -name .venv -o -name .bindings -o -name __pycache__ -o -name .mypy_cache \) -prune \
        -o -type f ! -name '*.wasm' ! -name '*.cwasm' ! -name '*.md' -print0 \
        | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

mkdir -p "$here/plugins"
for project in "$here"/policies/*/; do
    project="${project%/}"
    name="$(basename "$project")"
    [ -f "$project/build.sh" ] || continue
    # A project's build writes <world>.wasm: router.wasm or bridge.wasm.
    world="$(sed -n 's/^world *= *"\(router\|bridge\)".*/\1/p' "$project/cases.toml")"
    [ -n "$world" ] || { echo "error: $project/cases.toml names no world" >&2; exit 1; }
    wasm="$project/$world.wasm"
    stamp="$project/.venv/.isthmus-shop-stamp"
    want="$(sources_hash "$project")"
    if [ -f "$wasm" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        echo "    $name: unchanged ($world.wasm, $(stat -c %s "$wasm") bytes)"
    else
        t=$(date +%s)
        rm -f "$stamp"
        echo "    $name: unit tests (./test.sh)"
        (cd "$project" && ./test.sh 2>&1 | sed 's/^/        /'; exit "${PIPESTATUS[0]}")
        echo "    $name: build (./build.sh)"
        (cd "$project" && ./build.sh 2>&1 | sed 's/^/        /'; exit "${PIPESTATUS[0]}")
        if [ -z "$isthmus" ]; then
            echo "error: no isthmus binary for 'isthmus plugin test' (set ISTHMUS_BIN or cargo build)" >&2
            exit 1
        fi
        echo "    $name: isthmus plugin test $world.wasm cases.toml"
        if ! out="$(cd "$project" && "$isthmus" plugin test "$world.wasm" cases.toml 2>&1)"; then
            printf '%s\n' "$out" | sed 's/^/        /'
            exit 1
        fi
        printf '%s\n' "$out" | tail -n 1 | sed 's/^/        /'
        echo "$want" > "$stamp"
        printf '    %s: built in %ss\n' "$name" $(($(date +%s) - t))
    fi
    # Copied only when different, so a running gateway's hot reload sees no change.
    if ! cmp -s "$wasm" "$here/plugins/$name.wasm"; then
        cp -f "$wasm" "$here/plugins/$name.wasm"
        echo "    copied to plugins/$name.wasm"
    fi
done
