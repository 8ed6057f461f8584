#!/usr/bin/env bash
# Create or reuse python/.venv with the isthmus package (extras test, reflex and lint)
# installed, skipping pip when pyproject.toml and the interpreter are unchanged.
# Prints the venv's python on stdout; progress goes to stderr.
# Used by python/test.sh and tests/e2e/run.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
python="${ISTHMUS_PYTHON:-python3}"

if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    echo "python/venv.sh: $python is not Python >= 3.11 (set ISTHMUS_PYTHON)" >&2
    exit 2
fi

# A venv whose interpreter no longer runs (moved or upgraded base Python) is rebuilt.
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2
fi

stamp="$venv/.isthmus-install-stamp"
want="$( { cat "$here/pyproject.toml"; "$venv/bin/python" -VV; } | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] \
    || ! "$venv/bin/python" -c 'import isthmus_django, isthmus_reflex, pytest_django, reflex, ruff, mypy' 2>/dev/null; then
    echo "python/venv.sh: installing isthmus[test,reflex,lint] into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$here[test,reflex,lint]" >&2
    echo "$want" > "$stamp"
fi
echo "$venv/bin/python"
