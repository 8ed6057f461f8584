#!/usr/bin/env bash
# Every test of the project, on a fresh machine: builds what the tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

host_target="$(rustc -vV | sed -n 's/^host: //p')"

step "formatting and lints (rustfmt, clippy with warnings as errors)"
bash tests/rust-tools.sh
cargo fmt --all --check
cargo fmt --manifest-path guest-plugins/Cargo.toml --all --check
# The fuzz targets are one line each (their logic is host/src/fuzzing.rs, linted above).
cargo fmt --manifest-path host/fuzz/Cargo.toml --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo clippy --manifest-path guest-plugins/Cargo.toml --workspace --all-targets --target "$host_target" --quiet -- -D warnings

step "guest plugins (WebAssembly components)"
bash guest-plugins/build.sh

step "guest plugin unit tests"
cargo test --manifest-path guest-plugins/Cargo.toml --target "$host_target" --quiet

# Among them the allocation guard (host/tests/allocations.rs, ~5 s): heap allocations per
# request on the hot paths against bench/alloc-baseline.toml; more than the baseline fails.
step "gateway: unit and integration tests (promtool checks the metrics scrape; redis-server links several gateways; the allocation guard)"
bash tests/promtool.sh
bash tests/redis-server.sh
cargo test --workspace --quiet

step "HTTP/1 framing and request smuggling: the corpus against the gateway and nginx (tests/smuggling)"
python3 -m unittest discover -s tests/smuggling -q
smuggling_out="$(mktemp -d)"
python3 tests/smuggling/run.py --isthmus "$PWD/target/debug/isthmus" --out "$smuggling_out"
rm -rf "$smuggling_out"

step "fuzz targets: a short run of each from its seeds (tests/fuzz.sh; the long campaign: HARDENING.md)"
bash tests/fuzz.sh short

step "policy templates: isthmus plugin new, each template's tests and build, isthmus plugin test, a gateway"
ISTHMUS_BIN="$PWD/target/debug/isthmus" bash tests/templates.sh

step "Python companion (ruff, mypy, then its tests), the smuggling corpus's and the deployment checks' lint"
bash python/test.sh -q
python/.venv/bin/ruff check tests/smuggling tests/deploy
python/.venv/bin/ruff format --check tests/smuggling tests/deploy
(cd tests/smuggling && ../../python/.venv/bin/mypy)

step "Kubernetes deployment, offline: render, dry-run apply, schemas, review checks, isthmus check, Dockerfile lint (tests/deploy.sh)"
ISTHMUS_BIN="$PWD/target/debug/isthmus" bash tests/deploy.sh

step "end to end: real Django and Reflex behind the gateway (examples/shop)"
ISTHMUS_BIN="$PWD/target/debug/isthmus" bash tests/e2e/run.sh -q
