#!/usr/bin/env bash
# Create or reuse python/.venv, install the isthmus Python package with its test and
# reflex extras (skipped when pyproject.toml and the interpreter are unchanged), run pytest.
# Extra arguments go to pytest, e.g. `python/test.sh -k identity -x`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="$(bash "$here/venv.sh")"

cd "$here"
exec "$python" -m pytest "$@"
