#!/bin/bash
# Installs what the build and the rig need on a bookworm machine: Debian
# packages, bindgen-cli, and the kernel source (unpacked into the cache).
# Idempotent: every step checks first and does nothing when already done.
. "$(dirname "$0")/lib.sh"

PKGS=(rustc-web rust-web-src rust-web-clippy libclang-19-dev clang-19 bc bison flex libelf-dev
      libssl-dev cpio busybox-static qemu-system-x86 acpica-tools xz-utils make
      gcc libc6-dev kmod python3 dpkg-dev seabios
      # mke2fs and e2fsck for the storage scenarios' guests
      e2fsprogs
      # socat for the socket scenarios (guests and L1 run Debian's, with its libraries)
      socat
      # strace in L1 (RIG_L1_APPEND=rig.strace=1: each hvhost thread's system calls)
      strace
      # fio for the guests, built static from Debian's source (scripts/build-fio.sh)
      libaio-dev
      # the benchmark plots (make bench: bench/plot_storage.py)
      python3-matplotlib
      # the rig's L0 QEMU is built from Debian's source (scripts/build-l0-qemu.sh)
      patch meson ninja-build pkg-config libglib2.0-dev libpixman-1-dev libfdt-dev zlib1g-dev)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    stage "installing Debian packages: ${missing[*]}"
    [ "$(id -u)" = 0 ] || die "need root to install ${missing[*]} (or install them yourself)"
    apt-get update -q >/tmp/hvguest-apt.log 2>&1 || { tail -20 /tmp/hvguest-apt.log; die "apt-get update failed"; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
        >/tmp/hvguest-apt.log 2>&1 || { tail -20 /tmp/hvguest-apt.log; die "apt-get install failed (log: /tmp/hvguest-apt.log)"; }
fi
mkdir -p "$CACHE"

if ! { [ -x "$BINDGEN" ] && "$BINDGEN" --version 2>/dev/null | grep -q " $BINDGEN_VERSION"; }; then
    stage "installing bindgen-cli $BINDGEN_VERSION (cargo, about a minute)"
    LIBCLANG_PATH=/usr/lib/llvm-19/lib cargo install -q bindgen-cli --version "$BINDGEN_VERSION" --locked \
        >"$CACHE/bindgen-install.log" 2>&1 || { tail -20 "$CACHE/bindgen-install.log"; die "cargo install bindgen-cli failed (log: $CACHE/bindgen-install.log)"; }
fi

# cargo-fuzz for the fuzz targets (make fuzz, and a short run in make test),
# on the machine's nightly toolchain.
if ! { command -v cargo-fuzz >/dev/null && cargo-fuzz --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION"; }; then
    stage "installing cargo-fuzz $CARGO_FUZZ_VERSION (cargo, about a minute)"
    cargo install -q cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked \
        >"$CACHE/cargo-fuzz-install.log" 2>&1 || { tail -20 "$CACHE/cargo-fuzz-install.log"; die "cargo install cargo-fuzz failed (log: $CACHE/cargo-fuzz-install.log)"; }
fi

# Kernel source: linux-source-7.3 from trixie-backports through a private apt
# state directory. The system's apt sources are never touched: installing
# from that suite would pull in a newer libc and break the bookworm system.
SRCDIR=$CACHE/src
if [ ! -f "$SRCDIR/.version" ]; then
    stage "fetching $KVER_PKG (private apt state, system sources untouched)"
    A=$CACHE/apt
    rm -rf "$A"; mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/parts"
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$uri" ] || uri=$(awk '/^deb / && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$uri" ] || die "cannot find a Debian mirror URI in /etc/apt/sources.list.d/debian.sources"
    cat >"$A/parts/trixie.sources" <<SRC
Types: deb
URIs: $uri
Suites: trixie-backports trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    opts=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$A/parts"
          -o Dir::State::Lists="$A/lists" -o Dir::Cache="$A/cache" -o Dir::State::Status=/var/lib/dpkg/status)
    apt-get "${opts[@]}" update -q >"$A/update.log" 2>&1 || { tail "$A/update.log"; die "apt-get update (private trixie state) failed: kernel source not reachable"; }
    (cd "$A" && apt-get "${opts[@]}" download "$KVER_PKG" >"$A/download.log" 2>&1) \
        || { tail "$A/download.log"; die "could not download $KVER_PKG: kernel source not reachable"; }
    deb=$(ls "$A"/${KVER_PKG}_*.deb | head -1)
    ver=$(dpkg-deb -f "$deb" Version)
    info "unpacking $KVER_PKG $ver"
    rm -rf "$SRCDIR.tmp"; mkdir -p "$SRCDIR.tmp/deb"
    dpkg-deb -x "$deb" "$SRCDIR.tmp/deb"
    tar -C "$SRCDIR.tmp" -xf "$SRCDIR.tmp/deb/usr/src/$KVER_PKG.tar.xz"
    rm -rf "$SRCDIR.tmp/deb" "$A/cache"
    mv "$SRCDIR.tmp/$KVER_PKG" "$SRCDIR.tmp/linux"
    echo "$ver" >"$SRCDIR.tmp/.version"
    rm -rf "$SRCDIR"; mv "$SRCDIR.tmp" "$SRCDIR"
fi
info "kernel source: $KVER_PKG $(cat "$SRCDIR/.version") in $SRCDIR/linux"
