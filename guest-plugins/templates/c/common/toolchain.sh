#!/usr/bin/env bash
# toolchain.sh: checks for, and installs, what `make` and `make test` need, then writes
# the paths to .tools/toolchain.mk (which the Makefile reads). `make` runs it by itself
# the first time; run it again after changing a version below.
#
#   system (Debian packages; installed with apt-get when run as root, else the exact
#   command is printed):
#     clang-22 (or clang-19), lld, libclang-rt-NN-dev-wasm32, wasi-libc  -> wasm32 build
#     gcc (or any cc), binutils (nm, objcopy), make                      -> native tests
#     node >= 20 with npm, cargo >= 1.88                                  -> the two tools below
#   project (pinned, installed into $ISTHMUS_C_TOOLS, default ./.tools):
#     wit-bindgen 0.63.0 (crates.io, `cargo install`, ~8 CPU-minutes: no registry has a
#       prebuilt one)
#     @bytecodealliance/jco 1.35.0 (npm, prebuilt, ~1 minute): `jco new` turns the core
#       module into a component, with WASI's preview1 adapter when the code uses stdio
#
# Environment:
#   ISTHMUS_C_TOOLS=DIR   where to install wit-bindgen and jco (share one between projects
#                         to install them once)
#   HOST_CC=cc            the compiler for the native tests
#   WASM_CC=clang-NN      which clang builds the wasm (default: clang-22, else clang-19);
#                         to switch later: WASM_CC=clang-19 make toolchain
set -euo pipefail

WIT_BINDGEN_VERSION=0.63.0
JCO_VERSION=1.35.0
MIN_CARGO_MINOR=88 # wit-bindgen-cli 0.63 needs Rust 1.88
MIN_NODE_MAJOR=20

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tools=${ISTHMUS_C_TOOLS:-$here/.tools}
mkdir -p "$tools"
tools=$(cd "$tools" && pwd)

say() { printf 'toolchain: %s\n' "$*"; }
die() { printf 'toolchain: error: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

# Installs Debian packages when root, else prints the command and stops.
apt_install() {
    local cmd="apt-get update && apt-get install -y --no-install-recommends $*"
    if [[ $(id -u) -ne 0 ]]; then
        die "missing system packages; run as root:  $cmd"
    fi
    have apt-get || die "missing: $* (no apt-get here: install the equivalents)"
    say "+ $cmd"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- wasm32 C toolchain --------------------------------------------------------------
pick_clang() {
    if [[ -n ${WASM_CC:-} ]]; then printf '%s\n' "$WASM_CC"; return; fi
    local v
    for v in 22 19; do
        if have "clang-$v"; then printf 'clang-%s\n' "$v"; return; fi
    done
}
cc_wasm=$(pick_clang)
if [[ -z $cc_wasm ]]; then
    if apt-cache show clang-22 >/dev/null 2>&1; then v=22; else v=19; fi
    apt_install "clang-$v" "lld-$v" "libclang-rt-$v-dev-wasm32" wasi-libc
    cc_wasm=clang-$v
fi
found=$(command -v "$cc_wasm") || die "$cc_wasm not found (Debian: apt-get install $cc_wasm, with the lld, libclang-rt-NN-dev-wasm32 and wasi-libc to match)"
cc_wasm=$found
major=$("$cc_wasm" -dumpversion)
major=${major%%.*}

# Debian's wasi-libc has the wasm32-wasi layout. clang 22 wants wasm32-wasip1 (and calls
# wasm32-wasi deprecated): a sysroot of two links bridges the names. clang 19 finds its
# runtime only under the old name. So: the first of the two that links a test module.
sysroot=$here/.tools/sysroot # in the project: $ISTHMUS_C_TOOLS may be read-only
mkdir -p "$sysroot/include" "$sysroot/lib"
ln -sfn /usr/include/wasm32-wasi "$sysroot/include/wasm32-wasip1"
ln -sfn /usr/lib/wasm32-wasi "$sysroot/lib/wasm32-wasip1"
probe_dir=$(mktemp -d)
trap 'rm -rf "$probe_dir"' EXIT
printf '#include <stdlib.h>\nvoid *f(int n) { return malloc(n); }\n' >"$probe_dir/p.c"
probe() {
    local target root
    for target in wasm32-wasip1 wasm32-wasi; do
        if [[ $target == wasm32-wasip1 ]]; then root=$sysroot; else root=/usr; fi
        if "$cc_wasm" --target="$target" --sysroot="$root" -mexec-model=reactor -Os -o "$probe_dir/p.wasm" \
            "$probe_dir/p.c" 2>"$probe_dir/err"; then
            wasm_target=$target wasm_sysroot=$root
            return 0
        fi
    done
    return 1
}
if ! probe; then
    missing=()
    for pkg in "lld-$major" "libclang-rt-$major-dev-wasm32" wasi-libc; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    ((${#missing[@]} > 0)) || die "$cc_wasm cannot build for wasm32: $(cat "$probe_dir/err")"
    apt_install "${missing[@]}"
    probe || die "$cc_wasm cannot build for wasm32: $(cat "$probe_dir/err")"
fi

# --- native test toolchain -------------------------------------------------------------
host_cc=${HOST_CC:-}
if [[ -z $host_cc ]]; then
    have cc || have gcc || apt_install gcc libc6-dev
    if have cc; then host_cc=cc; else host_cc=gcc; fi
fi
missing=()
have nm || missing+=(binutils)
have objcopy || missing+=(binutils)
have make || missing+=(make)
((${#missing[@]} == 0)) || apt_install $(printf '%s\n' "${missing[@]}" | sort -u)

# --- wit-bindgen (crates.io) ----------------------------------------------------------
wit_bindgen=$tools/bin/wit-bindgen
if have wit-bindgen && [[ $(wit-bindgen --version 2>/dev/null) == "wit-bindgen-cli $WIT_BINDGEN_VERSION" ]]; then
    wit_bindgen=$(command -v wit-bindgen)
elif [[ ! -x $wit_bindgen || $("$wit_bindgen" --version 2>/dev/null) != "wit-bindgen-cli $WIT_BINDGEN_VERSION" ]]; then
    cargo_ok=false
    if have cargo; then
        minor=$(cargo --version | sed -n 's/^cargo 1\.\([0-9]*\).*/\1/p')
        [[ -n $minor && $minor -ge $MIN_CARGO_MINOR ]] && cargo_ok=true
    fi
    if ! $cargo_ok; then
        # Debian's `cargo` is too old; `cargo-web` (Rust 1.96) is recent enough.
        [[ $(id -u) -eq 0 ]] || die "wit-bindgen needs cargo >= 1.$MIN_CARGO_MINOR: install Rust with rustup, or as root: apt-get install cargo-web rustc-web"
        apt_install cargo-web rustc-web
        have cargo || die "cargo still missing after installing cargo-web"
    fi
    target_dir=$(mktemp -d)
    trap 'rm -rf "$probe_dir" "$target_dir"' EXIT
    say "+ cargo install wit-bindgen-cli@$WIT_BINDGEN_VERSION (C generator only; takes minutes)"
    start=$(date +%s)
    cargo install wit-bindgen-cli --version "$WIT_BINDGEN_VERSION" --locked --no-default-features \
        --features c --root "$tools" --target-dir "$target_dir" --quiet
    rm -rf "$target_dir"
    say "wit-bindgen installed in $(($(date +%s) - start)) s"
fi

# --- jco (npm) --------------------------------------------------------------------------
jco=$tools/npm/node_modules/.bin/jco
if [[ ! -x $jco || $("$jco" --version 2>/dev/null) != "$JCO_VERSION" ]]; then
    node_major=0
    have node && node_major=$(node --version | sed -n 's/^v\([0-9]*\).*/\1/p')
    if ((node_major < MIN_NODE_MAJOR)) || ! have npm; then
        die "jco needs node >= $MIN_NODE_MAJOR and npm (Debian bookworm's nodejs is 18: use a newer Debian or NodeSource's nodejs package)"
    fi
    mkdir -p "$tools/npm"
    say "+ npm install @bytecodealliance/jco@$JCO_VERSION"
    npm install --prefix "$tools/npm" --no-audit --no-fund --save-exact --loglevel=error \
        "@bytecodealliance/jco@$JCO_VERSION" >/dev/null
fi

mkdir -p "$here/.tools"
cat >"$here/.tools/toolchain.mk.tmp" <<EOF
# Written by toolchain.sh; values given on make's command line win.
WASM_CC ?= $cc_wasm
WASM_TARGET ?= $wasm_target
WASM_SYSROOT ?= $wasm_sysroot
WIT_BINDGEN ?= $wit_bindgen
JCO ?= $jco
HOST_CC ?= $host_cc
EOF
mv "$here/.tools/toolchain.mk.tmp" "$here/.tools/toolchain.mk"
say "ready: $("$cc_wasm" --version | head -n 1); $("$wit_bindgen" --version); jco $("$jco" --version)"
