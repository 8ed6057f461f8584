#!/usr/bin/env bash
# Writes what `kubectl apply -k deploy/kubernetes` needs beside the committed files, and
# never commits: the secrets (random, once) and the small plugins of the isthmus-plugins
# ConfigMap. Idempotent: existing secrets are kept, plugins copied only when changed.
#
#   bash deploy/kubernetes/prepare.sh [DIR]
#
# DIR: a copy of deploy/kubernetes to fill instead of this folder (tests/deploy.sh).
#
# - secrets/isthmus.env (ISTHMUS_IDENTITY_SECRET, ISTHMUS_BRIDGE_SECRET) and
#   secrets/shop.env (DJANGO_SECRET_KEY, SHOP_POSTGRES_PASSWORD, SHOP_DEMO_PASSWORD),
#   mode 0600, from `openssl rand`; the secretGenerator of kustomization.yaml reads them.
# - plugins/prefix_router.wasm and plugins/django_bridge.wasm from target/plugins (built
#   by guest-plugins/build.sh when missing; ISTHMUS_SKIP_BUILD=1 never builds), checked
#   to fit a ConfigMap (at most 1 MiB in all).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$(cd "${1:-$repo/deploy/kubernetes}" && pwd)"
PLUGINS=(prefix_router.wasm django_bridge.wasm)
# A ConfigMap is stored whole in etcd: 1 MiB at most, binaryData included.
CONFIGMAP_MAX_BYTES=1048576

say() { printf 'prepare.sh: %s\n' "$*"; }

write_secrets() {
    local file="$1"
    shift
    if [ -f "$file" ]; then
        say "kept $file"
        return
    fi
    (
        umask 077
        for name in "$@"; do printf '%s=%s\n' "$name" "$(openssl rand -hex 32)"; done > "$file.tmp"
        mv -f "$file.tmp" "$file"
    )
    say "wrote $file (random values, mode 0600)"
}

write_secrets "$here/secrets/isthmus.env" ISTHMUS_IDENTITY_SECRET ISTHMUS_BRIDGE_SECRET
write_secrets "$here/secrets/shop.env" DJANGO_SECRET_KEY SHOP_POSTGRES_PASSWORD SHOP_DEMO_PASSWORD

missing=()
for p in "${PLUGINS[@]}"; do [ -f "$repo/target/plugins/$p" ] || missing+=("$p"); done
if ((${#missing[@]})); then
    if [ "${ISTHMUS_SKIP_BUILD:-}" = 1 ]; then
        say "error: target/plugins lacks ${missing[*]} (ISTHMUS_SKIP_BUILD=1: run guest-plugins/build.sh)" >&2
        exit 1
    fi
    bash "$repo/guest-plugins/build.sh" prefix-router django-bridge
fi

mkdir -p "$here/plugins"
total=0
for p in "${PLUGINS[@]}"; do
    if ! cmp -s "$repo/target/plugins/$p" "$here/plugins/$p"; then
        cp -f "$repo/target/plugins/$p" "$here/plugins/$p"
        say "copied target/plugins/$p"
    fi
    total=$((total + $(stat -c %s "$here/plugins/$p")))
done
if [ "$total" -gt "$CONFIGMAP_MAX_BYTES" ]; then
    say "error: the plugins take $total bytes; a ConfigMap holds at most $CONFIGMAP_MAX_BYTES (ship larger ones in the image)" >&2
    exit 1
fi
say "plugins for the isthmus-plugins ConfigMap: ${PLUGINS[*]} ($total bytes of at most $CONFIGMAP_MAX_BYTES)"
