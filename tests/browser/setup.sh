#!/usr/bin/env bash
# What the browser test (tests/e2e/test_browser.py) needs, installed idempotently; a
# second run only checks. Each step prints how long it took.
#   - Debian's chromium (/usr/bin/chromium), through apt-get (root, or sudo -n), and
#     the HTTP/2 and TLS tools test_browser_tls.py runs beside it: curl, openssl and
#     h2load (nghttp2-client);
#   - playwright-core, pinned in package.json + package-lock.json, into
#     tests/browser/node_modules through `npm ci` (it never downloads a browser);
#   - Node >= 22 and bun from the npm registry (examples/shop/tools.sh), for
#     `reflex export` of the shop's SPA.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
chromium=/usr/bin/chromium

step() { printf '\n==> %s\n' "$*"; }
took() { printf '    (%ss)\n' $(($(date +%s) - $1)); }
as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        echo "tests/browser/setup.sh: root needed for: $*" >&2
        return 1
    fi
}

step "chromium, curl, openssl, h2load (Debian packages)"
t=$(date +%s)
need=()
{ [ -x "$chromium" ] && "$chromium" --version >/dev/null 2>&1; } || need+=(chromium)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
command -v h2load >/dev/null || need+=(nghttp2-client)
if [ ${#need[@]} -eq 0 ]; then
    echo "    already installed"
else
    export DEBIAN_FRONTEND=noninteractive
    apt=(apt-get -o DPkg::Lock::Timeout=600 -y)
    # The package lists may be missing or stale on a fresh machine: update once if the
    # install cannot find or fetch a package.
    if ! as_root "${apt[@]}" install "${need[@]}"; then
        as_root "${apt[@]}" update
        as_root "${apt[@]}" install "${need[@]}"
    fi
fi
echo "    $("$chromium" --version 2>/dev/null); $(h2load --version | head -1)"
took "$t"

step "playwright-core (npm ci in $here)"
t=$(date +%s)
stamp="$here/node_modules/.isthmus-lock-sha256"
want="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$here/node_modules/playwright-core/package.json" ]; then
    echo "    already installed"
else
    (cd "$here" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
    echo "$want" > "$stamp"
fi
echo "    playwright-core $(node -p 'require(process.argv[1]).version' "$here/node_modules/playwright-core/package.json"), node $(node --version)"
took "$t"

step "Node >= 22 and bun for reflex export ($repo/examples/shop/.tools)"
t=$(date +%s)
bash "$repo/examples/shop/tools.sh"
took "$t"
