#!/usr/bin/env bash
# Builds every guest policy crate of this workspace (each folder holding a Cargo.toml
# with a cdylib), or only the crates named as arguments, to a WebAssembly component
# and copies it to
#   <repo>/target/plugins/<crate_name_with_underscores>.wasm
# e.g. target/plugins/prefix_router.wasm, target/plugins/test_hostile.wasm.
# ISTHMUS_PLUGINS_OUT names another folder (host/build.rs builds the built-ins so).
#
#   bash guest-plugins/build.sh [CRATE ...]
#
# Toolchain, chosen by ISTHMUS_GUEST_TOOLCHAIN:
#   auto    (default) rustup if it can add the wasm32-wasip2 target, else debian.
#   rustup  `rustup target add wasm32-wasip2`, then
#           `cargo build --release --target wasm32-wasip2`. Fails if rustup cannot.
#   debian  Debian's rustc 1.96 packages (installed with apt-get when missing), building
#           std from source for wasm32-unknown-unknown and linking with
#           wasm-component-ld. Needs only the Debian package archive. Components built
#           this way import no WASI at all, so what a guest prints goes nowhere.
#
# Idempotent: a second run only lets cargo see that nothing changed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
manifest="$here/Cargo.toml"
out="${ISTHMUS_PLUGINS_OUT:-$repo/target/plugins}"
toolchain=${ISTHMUS_GUEST_TOOLCHAIN:-auto}

DEBIAN_PACKAGES=(rustc-web cargo-web rust-web-src rust-web-llvm lld-22)
DEBIAN_RUSTC=/usr/bin/rustc
DEBIAN_CARGO=/usr/bin/cargo
COMPONENT_LD=/usr/lib/rustlib/x86_64-unknown-linux-gnu/bin/wasm-component-ld
WASM_LD=/usr/lib/llvm-22/bin/wasm-ld

say() { printf 'build.sh: %s\n' "$*"; }
die() { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }
run() { say "+ $*"; "$@"; }

# Crates to build: "<folder> <crate name>" for every member with a cdylib.
guest_crates() {
    local toml name
    for toml in "$here"/*/Cargo.toml; do
        grep -q 'cdylib' "$toml" || continue
        name=$(sed -n 's/^name *= *"\([^"]*\)".*/\1/p' "$toml" | head -n 1)
        [[ -n $name ]] || die "no package name in $toml"
        printf '%s\n' "$name"
    done
}

rustup_ready() {
    if ! command -v rustup >/dev/null 2>&1; then
        say "rustup not found"
        return 1
    fi
    if rustup target list --installed 2>/dev/null | grep -qx 'wasm32-wasip2'; then
        say "rustup: target wasm32-wasip2 already installed"
        return 0
    fi
    say "+ rustup target add wasm32-wasip2"
    if ! rustup target add wasm32-wasip2; then
        say "rustup could not add wasm32-wasip2"
        return 1
    fi
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        run "$@"
    elif command -v sudo >/dev/null 2>&1; then
        run sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

debian_ready() {
    local missing=() pkg
    for pkg in "${DEBIAN_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    if ((${#missing[@]})); then
        command -v apt-get >/dev/null 2>&1 || die "apt-get not found; cannot install ${missing[*]}"
        say "installing Debian packages: ${missing[*]}"
        as_root apt-get update
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${DEBIAN_PACKAGES[@]}"
    else
        say "Debian packages already installed: ${DEBIAN_PACKAGES[*]}"
    fi
    local f
    for f in "$DEBIAN_RUSTC" "$DEBIAN_CARGO" "$COMPONENT_LD" "$WASM_LD"; do
        [[ -x $f ]] || die "$f is missing after installing ${DEBIAN_PACKAGES[*]}"
    done
}

build_rustup() {
    target=wasm32-wasip2
    run cargo build --release --target "$target" --manifest-path "$manifest" "${packages[@]}"
}

build_debian() {
    target=wasm32-unknown-unknown
    say "$("$DEBIAN_RUSTC" --version), $("$DEBIAN_CARGO" --version)"
    run env RUSTC="$DEBIAN_RUSTC" RUSTC_BOOTSTRAP=1 \
        RUSTFLAGS="-C linker=$COMPONENT_LD -C link-arg=--wasm-ld-path=$WASM_LD -C link-arg=-zstack-size=65536" \
        "$DEBIAN_CARGO" build --release -Zbuild-std=std,panic_abort --target "$target" --manifest-path "$manifest" \
        "${packages[@]}"
}

# Cargo's `-p` for each crate asked for (none: the whole workspace).
packages=()
for crate in "$@"; do packages+=(-p "$crate"); done

start=$(date +%s)
case $toolchain in
    auto)
        if rustup_ready; then
            build_rustup
        else
            say "falling back to Debian's Rust packages"
            debian_ready
            build_debian
        fi
        ;;
    rustup)
        rustup_ready || die "ISTHMUS_GUEST_TOOLCHAIN=rustup but the wasm32-wasip2 target is unavailable"
        build_rustup
        ;;
    debian)
        debian_ready
        build_debian
        ;;
    *) die "ISTHMUS_GUEST_TOOLCHAIN must be auto, rustup or debian, not '$toolchain'" ;;
esac

if (($#)); then crates="$*"; else crates=$(guest_crates); fi
[[ -n $crates ]] || die "no guest crate found in $here"
mkdir -p "$out"
built=0
for crate in $crates; do
    file="${crate//-/_}.wasm"
    src="$here/target/$target/release/$file"
    dst="$out/$file"
    [[ -f $src ]] || die "$src was not produced"
    # A component starts with \0asm and version 0d 00, layer 01 00 (a core module: 01 00 00 00).
    magic=$(head -c 8 "$src" | od -An -tx1 | tr -d ' \n')
    [[ $magic == 0061736d0d000100 ]] || die "$src is not a component (header $magic)"
    if cmp -s "$src" "$dst"; then
        say "unchanged $dst"
    else
        cp "$src" "$dst.tmp" && mv -f "$dst.tmp" "$dst"
        say "wrote $dst"
    fi
    say "$(printf '%-22s %8d bytes  (%s)' "$file" "$(stat -c %s "$dst")" "$target")"
    built=$((built + 1))
done
say "done: $built component(s) in $out, $(($(date +%s) - start)) s"
