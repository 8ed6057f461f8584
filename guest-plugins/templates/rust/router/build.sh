#!/usr/bin/env bash
# Build router.wasm: rustup's wasm32-wasip2 target, a release build, the component copied here.
set -euo pipefail
cd "$(dirname "$0")"
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
cargo build --release --target wasm32-wasip2
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/router.wasm" router.wasm
echo "wrote router.wasm ($(stat -c %s router.wasm) bytes)"
