#!/usr/bin/env bash
# Runs the unit tests in plain CPython (no WebAssembly): generates the `wit_world`
# bindings from wit/policy.wit into .bindings/, then runs unittest over tests/.
# Extra arguments go to unittest, e.g. `./test.sh -v` or `./test.sh -k staff`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
source ./venv.sh

rm -rf .bindings
.venv/bin/componentize-py -q -d wit -w router bindings .bindings
PYTHONPATH="$PWD/.bindings:$PWD" .venv/bin/python -m unittest discover -s tests -t tests "$@"
