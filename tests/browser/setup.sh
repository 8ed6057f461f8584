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

step "chromium, curl, openssl, h2load (Debian packages)"
t=$(date +%s)
bash "$repo/tests/debian-package.sh" chromium "$chromium" curl curl openssl openssl nghttp2-client h2load
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
