#!/bin/bash
# Builds one kernel flavour from the cached source: x86_64 tinyconfig plus
# the fragment tests/<flavour>.config (and the one it names as its base),
# out of tree in the cache, keyed by the source version, the fragments and
# the toolchain. Prints the build directory
# on stdout. A second run with the same key reuses the build (no rebuild).
#
#   scripts/build-kernel.sh rig
. "$(dirname "$0")/lib.sh"

flavour=${1:?usage: build-kernel.sh FLAVOUR}
own=$ROOT/tests/$flavour.config
[ -f "$own" ] || die "no config fragment $own"
SRC=$CACHE/src/linux
[ -f "$CACHE/src/.version" ] || die "kernel source not set up: run 'make setup' (scripts/setup-host.sh)"

# A fragment may say "# base: FLAVOUR" (that flavour's fragment is merged
# first; a symbol set in both takes this one's value) and "# cc: COMPILER"
# (the C compiler, gcc by default; modules are built with the same one,
# recorded in the build directory as .hvguest-cc).
base=$(sed -n 's/^# base: *//p' "$own")
cc=$(sed -n 's/^# cc: *//p' "$own")
cc=${cc:-gcc}
command -v "$cc" >/dev/null || die "kernel '$flavour' wants the C compiler $cc, which is not installed"
mkdir -p "$CACHE/kernels"
frag=$CACHE/kernels/$flavour.fragment
{ [ -n "$base" ] && cat "$ROOT/tests/$base.config"; cat "$own"; } |
    awk -F= '/^CONFIG_/ { if (!($1 in v)) order[n++] = $1; v[$1] = $0; next } END { for (i = 0; i < n; i++) print v[order[i]] }' >"$frag.$$"
mv "$frag.$$" "$frag"

key=$( { cat "$CACHE/src/.version" "$frag"; "$RUSTC_KERNEL" --version; "$BINDGEN" --version; "$cc" --version | head -1; } | sha256sum | cut -c1-16)
OUT=$CACHE/kernels/$flavour-$key
LOG=$OUT.log
KMAKE=(make -C "$SRC" O="$OUT" ARCH=x86_64 CC="$cc" RUSTC="$RUSTC_KERNEL" BINDGEN="$BINDGEN" LIBCLANG_PATH=/usr/lib/llvm-19/lib)

# One build per flavour at a time (make test, make run and a second shell
# may all ask for it): later callers wait here and then find it cached.
exec 9>"$CACHE/kernels/$flavour.lock"
if ! flock -n 9; then
    info "waiting for another build of kernel '$flavour' to finish"
    flock 9
fi

if [ -f "$OUT/.hvguest-done" ]; then
    info "kernel '$flavour' cached: $OUT"
    echo "$OUT"; exit 0
fi

stage "configuring kernel '$flavour' (tinyconfig + tests/$flavour.config)"
mkdir -p "$OUT"
: >"$LOG"
export PATH=$HOME/.cargo/bin:$PATH
"${KMAKE[@]}" tinyconfig >>"$LOG" 2>&1 || die "tinyconfig failed (log: $LOG)"
"$SRC/scripts/kconfig/merge_config.sh" -m -O "$OUT" "$OUT/.config" "$frag" >>"$LOG" 2>&1 || die "merge_config failed (log: $LOG)"
"${KMAKE[@]}" olddefconfig >>"$LOG" 2>&1 || die "olddefconfig failed (log: $LOG)"

# Every symbol of the fragment must have stuck: a dependency that silently
# turned one off (Rust not available, say) is an error here, not a mystery
# in a guest later.
bad=0
while IFS='=' read -r sym val; do
    case "$sym" in ''|\#*) continue ;; esac
    if [ "$val" = n ]; then
        grep -q "^$sym=" "$OUT/.config" && { echo "error: $sym=n requested, but .config has $(grep "^$sym=" "$OUT/.config")" >&2; bad=1; }
    else
        grep -qx "$sym=$val" "$OUT/.config" || { echo "error: $sym=$val requested, but .config has '$(grep -E "^$sym=|^# $sym is not set" "$OUT/.config")' (unmet dependency?)" >&2; bad=1; }
    fi
done <"$frag"
[ $bad = 0 ] || { [ -f "$OUT/.config" ] && "${KMAKE[@]}" rustavailable >&2 || true; die "kernel config for '$flavour' is not what tests/$flavour.config asks for"; }

# The build prints one line per step; show a counter against the step count
# of the previous build of this flavour (or a measured default) every 5 s.
est_file=$CACHE/kernels/$flavour.steps
est=$(cat "$est_file" 2>/dev/null || echo 1900)
stage "building kernel '$flavour' with $(nproc) jobs (full log: $LOG)"
start=$SECONDS
count_steps() {
    local n=0 last=$SECONDS line
    while IFS= read -r line; do
        printf '%s\n' "$line" >>"$LOG"
        case $line in "  "[A-Z]*) n=$((n + 1)) ;; esac
        if ((SECONDS - last >= 5)); then
            last=$SECONDS
            p=$((100 * n / est)); ((p > 99)) && p=99
            printf '    kernel: %d steps, ~%d%%, %ds\n' "$n" "$p" "$((SECONDS - start))" >&2
        fi
    done
    echo "$n" >"$OUT.steps.tmp"
}
set +e
"${KMAKE[@]}" -j"$(nproc)" bzImage modules 2>&1 | count_steps
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" != 0 ]; then
    echo "---- last errors from $LOG ----" >&2
    grep -E 'error|Error' "$LOG" | tail -20 >&2 || tail -20 "$LOG" >&2
    die "kernel '$flavour' build failed (full log: $LOG)"
fi
mv "$OUT.steps.tmp" "$est_file"
echo "$cc" >"$OUT/.hvguest-cc"
touch "$OUT/.hvguest-done"
# Keep this build and the newest other one of the flavour; older ones go.
ls -1dt "$CACHE/kernels/$flavour"-*/ 2>/dev/null | tail -n +3 | while read -r old; do
    info "removing old kernel build ${old%/}"
    rm -rf "${old%/}" "${old%/}.log"
done
info "kernel '$flavour' built in $((SECONDS - start))s: $OUT/arch/x86/boot/bzImage"
echo "$OUT"
