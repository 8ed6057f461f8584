#!/usr/bin/env bash
# promtool for the metrics tests (host/tests/metrics.rs runs `promtool check metrics` on
# a scrape): Debian's prometheus package, installed when missing.
set -euo pipefail
bash "$(dirname "$0")/debian-package.sh" prometheus promtool
promtool --version | head -1
