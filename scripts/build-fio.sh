#!/bin/bash
# Builds a fio for the guests' initramfs: bookworm's fio source package
# (3.33, fetched from the Debian mirror apt is configured with, so neither
# GitHub nor fio's site is needed), compiled as a static binary with every
# engine that pulls in a heavy library (rados, rbd, gfapi, http, nfs, pmem,
# rdma, numa, xnvme, libzbc, daos, tcmalloc) turned off. What stays in:
# psync and the other syscall engines, io_uring (fio's own, no liburing) and
# libaio (linked statically from libaio-dev). A static binary needs nothing
# from the busybox userland; built without -march=native, it runs on any
# x86_64 CPU a guest is given. (The linker warns that getaddrinfo and dlopen
# in a static glibc binary need glibc's shared libraries at run time: that
# only matters for the net engine given a host name and for external engine
# plugins, neither of which the guests use.)
#
# Without System V shared memory (--disable-shm: the guests' kernels have
# no SYSVIPC), so jobs run as threads: every fio command line in the rig
# passes --thread.
#
# Prints the binary's path on stdout: $CACHE/fio/<Debian version>-noshm/fio. A
# second run finds it there and does nothing. The compile runs at nice 19
# with one job, so that it does not starve a test running beside it (under a
# minute on 2 CPUs).
#
#   cp "$(scripts/build-fio.sh)" "$initramfs/bin/fio"
. "$(dirname "$0")/lib.sh"

FIO_VERSION=3.33-3   # bookworm's fio source package
# The build's name: a change of the options below is a new build.
BUILD_NAME=$FIO_VERSION-noshm
OUT=$CACHE/fio/$BUILD_NAME
BIN=$OUT/fio
# Debian packages the build needs; installed here when missing (root only).
BUILD_PKGS=(gcc make libc6-dev dpkg-dev zlib1g-dev libaio-dev)

[ -x "$BIN" ] && { echo "$BIN"; exit 0; }

# One build at a time: a second caller waits here and then finds it cached.
mkdir -p "$CACHE/fio"
exec 9>"$CACHE/fio/.lock"
if ! flock -n 9; then
    info "waiting for another build of fio to finish"
    flock 9
fi
[ -x "$BIN" ] && { echo "$BIN"; exit 0; }

missing=()
for p in "${BUILD_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    stage "installing Debian packages for building fio: ${missing[*]}"
    [ "$(id -u)" = 0 ] || die "need root to install ${missing[*]} (or install them yourself)"
    apt-get update -q >/tmp/hvguest-apt.log 2>&1 || { tail -20 /tmp/hvguest-apt.log; die "apt-get update failed"; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
        >/tmp/hvguest-apt.log 2>&1 || { tail -20 /tmp/hvguest-apt.log; die "apt-get install failed (log: /tmp/hvguest-apt.log)"; }
fi

stage "building fio $FIO_VERSION (static, basic engines; once, under a minute)"
start=$SECONDS
W=$CACHE/fio/work.$$
rm -rf "$W"; mkdir -p "$W/apt/lists/partial" "$W/apt/cache/archives/partial" "$W/apt/parts"
trap 'rm -rf "$W"' EXIT

# The source package through a private apt state directory with a deb-src
# entry for bookworm on the system's mirror; the system's apt configuration
# is not touched (it has no deb-src lines).
uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$uri" ] || uri=$(awk '/^deb / && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$uri" ] || die "cannot find a Debian mirror URI in /etc/apt/sources.list.d/debian.sources"
cat >"$W/apt/parts/src.sources" <<SRC
Types: deb-src
URIs: $uri
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
opts=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$W/apt/parts"
      -o Dir::State::Lists="$W/apt/lists" -o Dir::Cache="$W/apt/cache" -o Dir::State::Status=/var/lib/dpkg/status)
info "fetching the fio $FIO_VERSION source package from $uri"
apt-get "${opts[@]}" update -q >"$W/update.log" 2>&1 \
    || { tail "$W/update.log"; die "apt-get update (private deb-src state) failed"; }
(cd "$W" && apt-get "${opts[@]}" source --download-only "fio=$FIO_VERSION" >"$W/source.log" 2>&1) \
    || { tail "$W/source.log"; die "could not download the source of fio $FIO_VERSION"; }
# dpkg-source also applies Debian's patches (build-system tweaks only).
(cd "$W" && dpkg-source -q -x fio_*.dsc src >"$W/unpack.log" 2>&1) \
    || { tail "$W/unpack.log"; die "dpkg-source -x failed"; }

info "configuring"
CONF=(--build-static --disable-native --disable-lex --disable-numa --disable-rdma
      --disable-rados --disable-rbd --disable-http --disable-gfapi --disable-libnfs
      --disable-pmem --disable-xnvme --disable-libzbc --disable-tcmalloc --disable-dfs
      # The guests' kernels have no System V IPC: fio keeps its job state
      # in private memory instead and runs jobs as threads (--thread).
      --disable-shm)
(cd "$W/src" && ./configure "${CONF[@]}" >"$W/configure.log" 2>&1) \
    || { tail -20 "$W/configure.log"; die "configuring fio failed (log above)"; }
grep -q '^Static build *yes' "$W/configure.log" || { cat "$W/configure.log" >&2; die "fio's configure refused --build-static"; }
grep -q '^Linux AIO support *yes' "$W/configure.log" || { cat "$W/configure.log" >&2; die "fio's configure did not find libaio (libaio-dev)"; }

info "compiling (nice 19, one job; progress every 50 files)"
set +e
(cd "$W/src" && nice -n 19 make -j1 fio 2>&1) | tee "$W/build.log" \
    | awk '/^ *CC / { n++; if (n % 50 == 0) printf "    %d files compiled\n", n > "/dev/stderr" }'
rc=${PIPESTATUS[0]}
set -e
[ "$rc" = 0 ] && [ -x "$W/src/fio" ] || { tail -30 "$W/build.log" >&2; die "building fio failed"; }

rm -rf "$OUT.tmp"; mkdir -p "$OUT.tmp"
# Without its debug info the binary is less than half the size (2.8 MB
# instead of 6.5 MB): the initramfs gets the stripped one.
strip -o "$OUT.tmp/fio" "$W/src/fio"
"$OUT.tmp/fio" --version >/dev/null || die "the built fio does not run"
cp "$W/configure.log" "$OUT.tmp/configure.log"
rm -rf "$OUT"; mv "$OUT.tmp" "$OUT"
info "fio $("$BIN" --version) built in $((SECONDS - start))s: $BIN ($(du -k "$BIN" | cut -f1) KiB)"
echo "$BIN"
