#!/bin/bash
# Builds the rig's L0: Debian's own qemu-system-x86_64 (the version installed
# on this machine, from its Debian source package) with the fixes to TCG's
# nested SVM in tests/rig/l0-qemu/. Without them, the nested rig loses
# interrupts and breaks KVM's event re-injection under SMP (the table in
# README.md, "What the rig can and cannot run").
#
# Prints the binary's path on stdout. Cached in $CACHE/l0-qemu/<key>, where
# the key covers the QEMU version, the patches and this script: a second run
# prints the path and does nothing. About 2-3 minutes on 2 CPUs.
. "$(dirname "$0")/lib.sh"

PATCHES=$ROOT/tests/rig/l0-qemu
ver=$(dpkg-query -W -f='${source:Version}' qemu-system-x86 2>/dev/null) \
    || die "qemu-system-x86 is not installed (make setup installs it)"
key=$( { echo "$ver"; cat "$PATCHES"/*.patch "$0"; } | sha256sum | cut -c1-16)
OUT=$CACHE/l0-qemu/$key
if [ -x "$OUT/qemu-system-x86_64" ]; then
    echo "$OUT/qemu-system-x86_64"
    exit 0
fi

stage "building L0 QEMU $ver with the rig's TCG SVM fixes (once, about 3 minutes)"
W=$CACHE/l0-qemu/work.$$
rm -rf "$W"; mkdir -p "$W/apt/lists/partial" "$W/apt/cache/archives/partial" "$W/apt/parts"
trap 'rm -rf "$W"' EXIT

# The source package through a private apt state directory with deb-src
# entries for the suites the installed binary can come from; the system's
# apt configuration is not touched.
uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$uri" ] || uri=$(awk '/^deb / && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$uri" ] || die "cannot find a Debian mirror URI in /etc/apt/sources.list.d/debian.sources"
suri=$(awk '/^URIs:/ && /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$suri" ] || suri=http://deb.debian.org/debian-security
cat >"$W/apt/parts/src.sources" <<SRC
Types: deb-src
URIs: $uri
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: $suri
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
opts=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$W/apt/parts"
      -o Dir::State::Lists="$W/apt/lists" -o Dir::Cache="$W/apt/cache" -o Dir::State::Status=/var/lib/dpkg/status)
info "fetching the qemu $ver source package"
apt-get "${opts[@]}" update -q >"$W/update.log" 2>&1 \
    || { tail "$W/update.log"; die "apt-get update (private deb-src state) failed"; }
# The installed version's source; a mirror that no longer carries it (an
# image older than the last point release) gets the suite's current 7.2
# source instead, which the patches apply to as well.
if ! (cd "$W" && apt-get "${opts[@]}" source --download-only "qemu=$ver" >"$W/source.log" 2>&1); then
    info "qemu $ver's source is not on the mirror; using the suite's current qemu source"
    rm -f "$W"/qemu_*
    (cd "$W" && apt-get "${opts[@]}" source --download-only qemu >"$W/source.log" 2>&1) \
        || { tail "$W/source.log"; die "could not download the source of qemu"; }
fi
(cd "$W" && dpkg-source -q -x qemu_*.dsc src >"$W/unpack.log" 2>&1) \
    || { tail "$W/unpack.log"; die "dpkg-source -x failed"; }

for p in "$PATCHES"/*.patch; do
    info "applying $(basename "$p")"
    patch -d "$W/src" -p1 -s --no-backup-if-mismatch <"$p" || die "$(basename "$p") does not apply to qemu $ver"
done

# Only what the rig runs: x86_64 system emulation with TCG (the rig) and KVM
# (RIG_L0_ACCEL=kvm on a host that has it). Firmware comes from the installed
# packages (run.py passes -L /usr/share/qemu -L /usr/share/seabios).
info "configuring"
mkdir -p "$W/src/build"
(cd "$W/src/build" && ../configure --target-list=x86_64-softmmu --without-default-features \
    --enable-tcg --enable-kvm --enable-fdt=system --disable-docs --disable-werror \
    --meson=/usr/bin/meson >"$W/configure.log" 2>&1) \
    || { tail -20 "$W/configure.log"; die "configuring qemu failed (log above)"; }
info "compiling qemu-system-x86_64 (ninja; progress every 500 steps)"
(cd "$W/src/build" && ninja qemu-system-x86_64 2>&1 | tee "$W/build.log" \
    | awk -F'[][/ ]+' '/^\[[0-9]+\/[0-9]+\]/ { if ($2 % 500 == 0) printf "    %s of %s\n", $2, $3 > "/dev/stderr" }') >/dev/null
[ -x "$W/src/build/qemu-system-x86_64" ] || { tail -30 "$W/build.log"; die "building qemu failed"; }

mkdir -p "$OUT.tmp"
cp "$W/src/build/qemu-system-x86_64" "$OUT.tmp/"
cp "$PATCHES"/*.patch "$OUT.tmp/"
echo "$ver" >"$OUT.tmp/version"
rm -rf "$OUT"; mv "$OUT.tmp" "$OUT"
info "L0 QEMU: $OUT/qemu-system-x86_64"
echo "$OUT/qemu-system-x86_64"
