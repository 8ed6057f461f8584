#!/usr/bin/env bash
# Per-call cost, start memory and compile time of a policy in each language, from the
# templates (`isthmus plugin new`), timed by `isthmus plugin bench` with the release
# build on each template's first case. Prints what tests/templates.sh prints, plus the
# bench lines.
#
#   bash bench/plugins/languages.sh [LANG ...]     # default: rust python js c
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
[[ -x target/release/isthmus ]] || cargo build --release --bin isthmus
[[ -f target/plugins/prefix_router.wasm ]] || bash guest-plugins/build.sh
ISTHMUS_BIN="$repo/target/release/isthmus" ISTHMUS_TEMPLATES_BENCH=1 bash tests/templates.sh "$@"
