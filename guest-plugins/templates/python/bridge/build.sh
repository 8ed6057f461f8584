#!/usr/bin/env bash
# Builds bridge.wasm, a WebAssembly component of the world `bridge` (wit/policy.wit),
# from app.py. The first run creates .venv/ and installs componentize-py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
source ./venv.sh

start=$SECONDS
# VIRTUAL_ENV tells componentize-py which site-packages to search (only modules that
# app.py imports end up in the component).
VIRTUAL_ENV="$PWD/.venv" .venv/bin/componentize-py -d wit -w bridge componentize -p . app -o bridge.wasm

# A component starts with \0asm, version 0d 00, layer 01 00 (a core module: 01 00 00 00).
magic=$(head -c 8 bridge.wasm | od -An -tx1 | tr -d ' \n')
[[ $magic == 0061736d0d000100 ]] || { echo "error: bridge.wasm is not a component (header $magic)" >&2; exit 1; }
echo "bridge.wasm: $(stat -c %s bridge.wasm) bytes in $((SECONDS - start)) s"
