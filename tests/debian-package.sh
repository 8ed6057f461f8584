#!/usr/bin/env bash
# A Debian package the tests need, installed when its command is missing (root, or
# sudo -n): `bash tests/debian-package.sh PACKAGE COMMAND`.
set -euo pipefail
package="$1"
command="$2"
as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        echo "tests/debian-package.sh: root needed for: $*" >&2
        return 1
    fi
}
if ! command -v "$command" >/dev/null 2>&1; then
    echo "debian-package.sh: + apt-get install $package"
    export DEBIAN_FRONTEND=noninteractive
    apt=(apt-get -o DPkg::Lock::Timeout=600 -y --no-install-recommends)
    # The package lists may be missing or stale on a fresh machine: update once if the
    # install cannot find or fetch the package.
    if ! as_root "${apt[@]}" install "$package"; then
        as_root apt-get -o DPkg::Lock::Timeout=600 update
        as_root "${apt[@]}" install "$package"
    fi
fi
