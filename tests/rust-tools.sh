#!/usr/bin/env bash
# rustfmt and clippy for the test command's lint gates: rustup's default profile has
# both; a minimal profile gets them from rustup here.
set -euo pipefail
for component in rustfmt clippy; do
    tool=$([[ $component == clippy ]] && echo cargo-clippy || echo rustfmt)
    if ! "$tool" --version >/dev/null 2>&1; then
        echo "rust-tools.sh: + rustup component add $component"
        rustup component add "$component" || { echo "rust-tools.sh: error: $component is missing and rustup could not add it" >&2; exit 1; }
    fi
done
