#!/usr/bin/env bash
# Builds router.wasm, a WebAssembly component of the world `router` (wit/policy.wit),
# from app.py. The first run creates .venv/ and installs componentize-py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
source ./venv.sh

start=$SECONDS
# VIRTUAL_ENV tells componentize-py which site-packages to search (only modules that
# app.py imports end up in the component).
VIRTUAL_ENV="$PWD/.venv" .venv/bin/componentize-py -d wit -w router componentize -p . app -o router.wasm

# A component starts with \0asm, version 0d 00, layer 01 00 (a core module: 01 00 00 00).
magic=$(head -c 8 router.wasm | od -An -tx1 | tr -d ' \n')
[[ $magic == 0061736d0d000100 ]] || { echo "error: router.wasm is not a component (header $magic)" >&2; exit 1; }
echo "router.wasm: $(stat -c %s router.wasm) bytes in $((SECONDS - start)) s"
