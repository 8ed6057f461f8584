#!/usr/bin/env bash
# The fuzz targets of host/fuzz (cargo-fuzz, libFuzzer), on the stable toolchain.
#
#   bash tests/fuzz.sh build [dev|release]        build the targets (release)
#   bash tests/fuzz.sh short [SECONDS]            each target SECONDS (15) from its seeds;
#                                                 fails on any crash, timeout or out-of-memory
#   bash tests/fuzz.sh campaign SECONDS [TARGET…] each target (or those named) SECONDS,
#                                                 niced, two at a time, the grown corpus kept
#                                                 in host/fuzz/corpus (not in git); summary
#                                                 in bench/results/<UTC>-fuzz/
#   bash tests/fuzz.sh run TARGET [ARGS…]         one target, libFuzzer's own arguments
#
# The targets are the oracles of host/src/fuzzing.rs; HARDENING.md describes them.
set -euo pipefail
cd "$(dirname "$0")/.."

# cargo-fuzz passes -Z flags (sanitizer coverage); RUSTC_BOOTSTRAP lets stable take them.
export RUSTC_BOOTSTRAP=1
FUZZ_DIR=host/fuzz
# No sanitizer: the code under test is safe Rust (`unsafe_code = "deny"`), and AddressSanitizer
# would only watch the C and assembly of dependencies. Two builds, each in its own folder
# under host/fuzz: `dev` (debug assertions on) for the short run of the test command, as
# its cold build fits the test command's time budget; `release` for the campaign, for
# executions per second. The measured build times are in HARDENING.md.
HOST_TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
profile_flags() { if [ "$1" = dev ]; then echo --dev; else echo -O; fi; }
bin_dir() { echo "$FUZZ_DIR/target/none-$1/$HOST_TRIPLE/$([ "$1" = dev ] && echo debug || echo release)"; }
# A unit slower than this is a hang; more memory than this is a leak or a blow-up.
LIBFUZZER_LIMITS=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048)

targets() { (cd "$FUZZ_DIR" && cargo fuzz list); }

ensure_cargo_fuzz() {
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "fuzz.sh: + cargo install cargo-fuzz --locked"
        cargo install cargo-fuzz --locked
    fi
}

# build dev|release
build() {
    ensure_cargo_fuzz
    (cd "$FUZZ_DIR" && nice -n 10 cargo fuzz build "$(profile_flags "$1")" --sanitizer none --target-dir "target/none-$1")
}

short() {
    local seconds=${1:-15} work t failed=()
    work=$(mktemp -d /tmp/isthmus-fuzz.XXXXXX)
    trap 'rm -rf "$work"' RETURN
    for t in $(targets); do
        mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
        # New inputs go to the first folder (scratch); the seeds are only read.
        if "$(bin_dir dev)/$t" "${LIBFUZZER_LIMITS[@]}" -max_total_time="$seconds" -print_final_stats=1 \
            -artifact_prefix="$work/$t/artifacts/" "$work/$t/corpus" "$FUZZ_DIR/seeds/$t" >"$work/$t.log" 2>&1; then
            echo "fuzz $t: $(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log") runs, no failure"
        else
            failed+=("$t")
            tail -n 30 "$work/$t.log"
            for f in "$work/$t/artifacts"/*; do
                [ -e "$f" ] && echo "fuzz $t: failing input $(basename "$f"): $(base64 -w0 "$f")"
            done
        fi
    done
    if [ ${#failed[@]} -gt 0 ]; then
        echo "fuzz.sh: failures in: ${failed[*]} (reproduce: bash tests/fuzz.sh run TARGET FILE)" >&2
        return 1
    fi
}

case "${1:-}" in
    build) build "${2:-release}" ;;
    short) build dev && short "${2:-15}" ;;
    campaign)
        [ -n "${2:-}" ] || { echo "usage: tests/fuzz.sh campaign SECONDS_PER_TARGET [TARGET…]" >&2; exit 2; }
        seconds=$2
        shift 2
        build release
        chosen=$(if [ $# -gt 0 ]; then printf '%s\n' "$@"; else targets; fi | paste -sd,)
        python3 bench/fuzz/campaign.py --seconds "$seconds" --bin-dir "$(bin_dir release)" --fuzz-dir "$FUZZ_DIR" \
            --targets "$chosen" -- "${LIBFUZZER_LIMITS[@]}"
        ;;
    run)
        [ -n "${2:-}" ] || { echo "usage: tests/fuzz.sh run TARGET [LIBFUZZER ARGS…]" >&2; exit 2; }
        build release
        t=$2
        shift 2
        "$(bin_dir release)/$t" "${LIBFUZZER_LIMITS[@]}" "$@"
        ;;
    *)
        echo "usage: tests/fuzz.sh build [dev|release] | short [SECONDS] | campaign SECONDS [TARGET…] | run TARGET [ARGS…]" >&2
        exit 2
        ;;
esac
