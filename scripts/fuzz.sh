#!/bin/bash
# Runs the cargo-fuzz targets (fuzz/; harnesses in vmm/src/fuzzing/) on the
# machine's nightly toolchain.
#
#   scripts/fuzz.sh [-t SECONDS] [-r RUNS] [TARGET...]
#       each TARGET (default: all) until SECONDS have passed (default 60)
#       or RUNS inputs ran (default: no limit), whichever comes first,
#       starting from the committed corpus (fuzz/corpus/TARGET) and
#       growing a work corpus in build/fuzz/corpus/TARGET; prints one
#       record per target:
#         fuzz target=T runs=N seconds=S exec_per_sec=E cov=C ft=F corpus=K crashes=X
#       and the path of every crashing input (build/fuzz/artifacts/T/).
#       Exit status 1 if any target crashed.
#   scripts/fuzz.sh --merge [TARGET...]
#       replaces each committed corpus with a set cover of it and the work
#       corpus (libFuzzer's -set_cover_merge=1: the fewest inputs that reach
#       every feature either reaches), keeping the named seed-* and
#       regression-* inputs: a small corpus to commit.
#
# Built without a sanitizer (-s none): the harnesses drive safe Rust, where
# a bug shows as a panic or an assertion, and the runs are 4 to 20 times
# faster than under AddressSanitizer.
. "$(dirname "$0")/lib.sh"

FUZZ=$ROOT/fuzz
WORK=${HVGUEST_BUILD:-$ROOT/build}/fuzz
SECONDS_EACH=60
RUNS=
MERGE=0
while [ $# -gt 0 ]; do
    case $1 in
    -t) SECONDS_EACH=$2; shift 2 ;;
    -r) RUNS=$2; shift 2 ;;
    --merge) MERGE=1; shift ;;
    *) break ;;
    esac
done
all_targets() { sed -n 's/^name = "\([a-z_]*\)"$/\1/p' "$FUZZ/Cargo.toml" | grep -v '^hvhost-fuzz$'; }
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || mapfile -t TARGETS < <(all_targets)

mkdir -p "$WORK"
cargo +nightly --version >/dev/null 2>&1 || die "no nightly toolchain (rustup toolchain list): cargo-fuzz needs it"
command -v cargo-fuzz >/dev/null || die "cargo-fuzz is not installed (make setup installs it)"
cd "$FUZZ"
stage "building the fuzz targets (nightly, libFuzzer)"
cargo +nightly fuzz build -O -s none >"$WORK.build.log" 2>&1 ||
    { tail -20 "$WORK.build.log"; die "cargo fuzz build failed (log: $WORK.build.log)"; }

if [ $MERGE = 1 ]; then
    # A set cover of what the committed and the work corpus reach
    # (-set_cover_merge: fewer inputs than -merge for the same features);
    # the named inputs (seed-*, regression-*) stay whatever they add.
    for t in "${TARGETS[@]}"; do
        [ -d "$WORK/corpus/$t" ] || { info "$t: no work corpus"; continue; }
        mkdir -p "corpus/$t"
        before=$(ls "corpus/$t" | wc -l)
        out=$WORK/merge/$t
        rm -rf "$out"
        mkdir -p "$out"
        cargo +nightly fuzz run -O -s none "$t" -- -set_cover_merge=1 "$out" "corpus/$t" "$WORK/corpus/$t" \
            >"$WORK/$t.merge.log" 2>&1 || { tail -5 "$WORK/$t.merge.log"; die "merge of $t failed"; }
        find "corpus/$t" -maxdepth 1 -type f \( -name 'seed-*' -o -name 'regression-*' \) -exec cp {} "$out/" \;
        rm -rf "corpus/$t"
        mv "$out" "corpus/$t"
        info "$t: $before -> $(ls "corpus/$t" | wc -l) inputs in fuzz/corpus/$t"
    done
    exit 0
fi

crashed=0
for t in "${TARGETS[@]}"; do
    mkdir -p "$WORK/corpus/$t" "$WORK/artifacts/$t" "corpus/$t"
    stage "fuzzing $t for ${SECONDS_EACH}s${RUNS:+ or $RUNS runs}"
    log=$WORK/$t.log
    rc=0
    cargo +nightly fuzz run -O -s none "$t" "$WORK/corpus/$t" "corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" ${RUNS:+-runs=$RUNS} -max_len=4096 \
        -artifact_prefix="$WORK/artifacts/$t/" -print_final_stats=1 >"$log" 2>&1 || rc=$?
    stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
    # libFuzzer's last status line ("#RUNS DONE cov: ..."; a crashed run
    # has no DONE and no final stats).
    last=$(grep -aE '^#[0-9]+[[:space:]]' "$log" | tail -1 || true)
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    runs=$(stat number_of_executed_units)
    [ -n "$runs" ] || runs=$(echo "$last" | sed -n 's/^#\([0-9]*\).*/\1/p')
    crashes=$(ls "$WORK/artifacts/$t" | grep -c '^crash-\|^timeout-\|^oom-' || true)
    [ $rc = 0 ] || crashed=1
    echo "fuzz target=$t runs=${runs:-0} seconds=$SECONDS_EACH" \
        "exec_per_sec=$(stat average_exec_per_sec) cov=${cov:-0} ft=${ft:-0}" \
        "corpus=$(ls "$WORK/corpus/$t" | wc -l) crashes=$crashes status=$rc"
    if [ $rc != 0 ]; then
        grep -aE 'panicked at|SUMMARY|Test unit written' "$log" | head -5 | sed 's/^/    /' || true
    fi
done
exit $crashed
