#!/usr/bin/env bash
# redis-server for the several-gateways tests (host/tests/peers.rs starts its own on a
# free loopback port): Debian's redis-server package, installed when missing. Its
# system service is not needed and is left as the package sets it up.
set -euo pipefail
bash "$(dirname "$0")/debian-package.sh" redis-server redis-server
redis-server --version
