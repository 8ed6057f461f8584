#!/usr/bin/env bash
# Every test of the project, on a fresh machine: builds what the tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "guest plugins (WebAssembly components)"
bash guest-plugins/build.sh

step "guest plugin unit tests"
cargo test --manifest-path guest-plugins/Cargo.toml --target "$(rustc -vV | sed -n 's/^host: //p')" --quiet

step "gateway: unit and integration tests"
cargo test --workspace --quiet

step "Python companion (Django app, Reflex helpers)"
bash python/test.sh -q

step "end to end: real Django and Reflex behind the gateway (examples/shop)"
ISTHMUS_BIN="$PWD/target/debug/isthmus" bash tests/e2e/run.sh -q
