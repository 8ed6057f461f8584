#!/usr/bin/env bash
# Create or reuse python/.venv, install the isthmus Python package with its test, reflex
# and lint extras (skipped when pyproject.toml and the interpreter are unchanged), run the
# linters (ruff check, ruff format --check, mypy; configured in pyproject.toml), then pytest.
# Any finding fails the script before the tests run.
# Extra arguments go to pytest, e.g. `python/test.sh -k identity -x`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="$(bash "$here/venv.sh")"

cd "$here"
"$python" -m ruff check src tests
"$python" -m ruff format --check src tests
"$python" -m mypy src
exec "$python" -m pytest "$@"
