#!/usr/bin/env bash
# promtool for the metrics tests (host/tests/metrics.rs runs `promtool check metrics` on
# a scrape): Debian's prometheus package, installed when missing (root, or sudo -n).
set -euo pipefail
as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        echo "tests/promtool.sh: root needed for: $*" >&2
        return 1
    fi
}
if ! promtool --version >/dev/null 2>&1; then
    echo "promtool.sh: + apt-get install prometheus"
    export DEBIAN_FRONTEND=noninteractive
    apt=(apt-get -o DPkg::Lock::Timeout=600 -y --no-install-recommends)
    # The package lists may be missing or stale on a fresh machine: update once if the
    # install cannot find or fetch the package.
    if ! as_root "${apt[@]}" install prometheus; then
        as_root apt-get -o DPkg::Lock::Timeout=600 update
        as_root "${apt[@]}" install prometheus
    fi
fi
promtool --version | head -1
