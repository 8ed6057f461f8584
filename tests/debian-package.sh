#!/usr/bin/env bash
# Debian packages the tests need, each installed when its command is missing (root, or
# sudo -n), in one apt-get call: `bash tests/debian-package.sh PACKAGE COMMAND [PACKAGE COMMAND]…`.
# COMMAND may be a path (`/usr/bin/chromium`): it must then run `--version`.
set -euo pipefail
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
need=()
while [ $# -ge 2 ]; do
    case "$2" in
        /*) { [ -x "$2" ] && "$2" --version >/dev/null 2>&1; } || need+=("$1") ;;
        *) command -v "$2" >/dev/null 2>&1 || need+=("$1") ;;
    esac
    shift 2
done
if [ ${#need[@]} -gt 0 ]; then
    echo "debian-package.sh: + apt-get install ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt=(apt-get -o DPkg::Lock::Timeout=600 -y)
    # The package lists may be missing or stale on a fresh machine: update once if the
    # install cannot find or fetch a package.
    if ! as_root "${apt[@]}" install "${need[@]}"; then
        as_root "${apt[@]}" update
        as_root "${apt[@]}" install "${need[@]}"
    fi
fi
