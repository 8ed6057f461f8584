#!/usr/bin/env bash
# End-to-end tests of the event bridge on the shop example (examples/shop/): a real
# Django (uvicorn), a real Reflex 0.10.1 backend and `isthmus serve` in front, all on
# 127.0.0.1, driven by Socket.IO and HTTP clients.
#
#   bash tests/e2e/run.sh              # everything: set-up, builds, pytest
#   bash tests/e2e/run.sh -k spoof -x  # extra arguments go to pytest
#
# Set-up (idempotent, a second run only checks):
#   - python/.venv (created and filled by python/test.sh's recipe) plus the test
#     dependencies below, installed once and remembered in a stamp file;
#   - the guest plugins (guest-plugins/build.sh) and the gateway (cargo build --release);
#   - the example's own Python policy (examples/shop/policies.sh: its unit tests, its
#     componentize-py build in its own .venv, `isthmus plugin test` on its cases.toml;
#     a second run only checks a stamp), even with ISTHMUS_BIN;
#   - for test_browser.py: chromium, playwright-core, Node 22 + bun (tests/browser/setup.sh).
# Environment:
#   ISTHMUS_E2E_SKIP_BUILD=1   use target/release/isthmus and target/plugins as they are
#   ISTHMUS_BIN=/path/isthmus  use this gateway binary (implies no cargo build)
#   ISTHMUS_E2E_KEEP=1         keep the temporary folder (logs, configs, DB) after the run
# Exit status: pytest's (non-zero on any failure).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$repo/python/.venv"

step() { printf '\n==> %s\n' "$*"; }
t0=$(date +%s)

# Test dependencies on top of isthmus[test,reflex]. Pinned loosely; the stamp makes the
# second run skip pip entirely.
E2E_DEPS=(
    "djangorestframework>=3.15"
    "uvicorn>=0.30"
    "python-socketio>=5.11"
    "aiohttp>=3.9"
    "httpx>=0.27"
    "tomli-w>=1.0"
    "pytest-timeout>=2.3"
    # Reflex's OpenTelemetry spans (test_traces.py): exact pins, the receiver decodes
    # with opentelemetry-proto as the exporter encodes.
    "reflex-otel==0.2.0"
    "opentelemetry-sdk==1.45.2"
    "opentelemetry-exporter-otlp-proto-http==1.45.2"
)

step "python environment ($venv)"
bash "$repo/python/venv.sh" >/dev/null
e2e_stamp="$venv/.isthmus-e2e-stamp"
e2e_want="$(printf '%s\n' "${E2E_DEPS[@]}" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$e2e_stamp" ] || [ "$(cat "$e2e_stamp")" != "$e2e_want" ] \
    || ! "$venv/bin/python" -c 'import rest_framework, uvicorn, socketio, aiohttp, httpx, tomli_w, pytest_timeout, reflex_otel, opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http' 2>/dev/null; then
    echo "installing the e2e test dependencies: ${E2E_DEPS[*]}"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${E2E_DEPS[@]}"
    echo "$e2e_want" > "$e2e_stamp"
else
    echo "python packages already installed"
fi
t_py=$(date +%s)

step "browser test set-up (tests/browser/setup.sh)"
bash "$repo/tests/browser/setup.sh"
t_browser=$(date +%s)

if [ -n "${ISTHMUS_BIN:-}" ] || [ "${ISTHMUS_E2E_SKIP_BUILD:-}" = 1 ]; then
    step "builds skipped (ISTHMUS_BIN / ISTHMUS_E2E_SKIP_BUILD)"
else
    step "guest plugins"
    bash "$repo/guest-plugins/build.sh"
    step "gateway (cargo build --release -p isthmus)"
    (cd "$repo" && cargo build --release -p isthmus)
fi

step "the example's own policies (examples/shop/policies.sh)"
bash "$repo/examples/shop/policies.sh"
t_build=$(date +%s)

step "pytest tests/e2e"
export ISTHMUS_E2E_SKIP_BUILD=1
set +e
(cd "$here" && "$venv/bin/python" -m pytest -c "$here/pytest.ini" --rootdir "$here" "$@")
status=$?
set -e
t_end=$(date +%s)
printf '\ntests/e2e/run.sh: python set-up %ss, browser set-up %ss, builds %ss, pytest %ss, total %ss; exit %s\n' \
    $((t_py - t0)) $((t_browser - t_py)) $((t_build - t_browser)) $((t_end - t_build)) $((t_end - t0)) "$status"
exit "$status"
