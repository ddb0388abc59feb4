#!/bin/bash
# Builds the rig's two initramfs images (uncompressed newc cpio):
#   l2.cpio: busybox, the rig init and scenarios, the modules (production
#            in /lib/modules/hv_guest, the selftest build of hv_guest.ko in
#            /lib/modules/hv_guest/selftest), the selftests
#   l1.cpio: all of l2 plus QEMU with its libraries and firmware, hvhost,
#            the kernel image and l2.cpio itself (L1 boots L2 from them),
#            and the reference guest's image (/boot/ref-bzImage)
#
#   mkinitramfs.sh KERNEL_BUILD_DIR MODULE_DIR SELFTEST_MODULE_DIR SELFTEST_DIR OUT_DIR HVHOST REF_BZIMAGE
. "$(dirname "$0")/../../scripts/lib.sh"

kbuild=$1 mods=$2 selftest_mods=$3 tests=$4 out=$5 hvhost=$6 ref=$7
rig=$ROOT/tests/rig
stage=$out/stage
mkdir -p "$out"

copy_with_libs() { # BINARY DESTROOT: the binary and every library it links
    local bin=$1 dest=$2
    install -D -m755 "$bin" "$dest$bin"
    ldd "$bin" | awk '/=>/ { print $3 } /^\t\/lib/ { print $1 }' | while read -r lib; do
        [ -f "$lib" ] && install -D -m755 "$(readlink -f "$lib")" "$dest$lib"
    done
}

make_cpio() { # DIR OUT
    (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) >"$2.tmp"
    mv "$2.tmp" "$2"
}

rm -rf "$stage"
l2=$stage/l2
mkdir -p "$l2"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,rig/scenarios,tests,lib/modules/hv_guest/selftest,lib/modules/extra}
install -m755 /bin/busybox "$l2/bin/busybox"
/bin/busybox --list-full | while read -r applet; do
    [ -e "$l2/$applet" ] || ln -s /bin/busybox "$l2/$applet"
done
install -m755 "$rig/init" "$l2/init"
gcc -static -O2 -Wall -o "$l2/bin/rig-debugcon" "$rig/debugcon.c"
install -m644 "$rig/lib.sh" "$l2/rig/lib.sh"
install -m644 "$rig"/scenarios/*.sh "$l2/rig/scenarios/"
install -m644 "$mods"/*.ko "$l2/lib/modules/hv_guest/"
install -m644 "$selftest_mods/hv_guest.ko" "$l2/lib/modules/hv_guest/selftest/"
# virtio-vsock, for the QEMU comparator's guests only (see rig.config).
install -D -m644 "$kbuild/net/vmw_vsock/vmw_vsock_virtio_transport.ko" "$l2/lib/modules/extra/vmw_vsock_virtio_transport.ko"
# Every selftest program that was built, and the shell ones.
find "$tests" -maxdepth 1 -type f -perm -u+x -exec install -m755 {} "$l2/tests/" \;
install -m755 "$ROOT"/tests/selftests/hv_guest/*.sh "$l2/tests/"
# The kernel's KTAP library for shell, where kselftest scripts look for it
# (../kselftest/ from theirs); lib.sh uses it too.
install -D -m644 "$tests/ktap_helpers.sh" "$l2/kselftest/ktap_helpers.sh"
gcc -static -O2 -Wall -o "$l2/tests/pio_exit" "$ROOT/bench/pio_exit.c"
# bench_stream's two ends (the guest's client, L1's server).
gcc -static -O2 -Wall -o "$l2/usr/bin/hvstream" "$ROOT/bench/hvstream.c"
# ext4 tools for the storage scenarios, at /usr/sbin (busybox's mke2fs,
# earlier in PATH, makes ext2 only: scenarios call these by path).
for tool in mke2fs e2fsck; do
    [ -x "/usr/sbin/$tool" ] || die "/usr/sbin/$tool not found (package e2fsprogs)"
    rm -f "$l2/usr/sbin/$tool" # not a busybox link: the real one
    copy_with_libs "/usr/sbin/$tool" "$l2"
done
# socat for the socket scenarios: AF_VSOCK in the guests, Unix sockets in
# L1 (hvhost's --vsock), as host programs use them.
[ -x /usr/bin/socat ] || die "/usr/bin/socat not found (package socat)"
copy_with_libs /usr/bin/socat "$l2"
# fio for the storage benchmark and the I/O under rescind: a static build
# of Debian's source (scripts/build-fio.sh, cached).
fio=$(bash "$ROOT/scripts/build-fio.sh") || die "fio not built"
install -m755 "$fio" "$l2/usr/bin/fio"
make_cpio "$l2" "$out/l2.cpio"

l1=$stage/l1
cp -a "$l2" "$l1"
mkdir -p "$l1/boot" "$l1/usr/share/qemu"
install -m644 "$kbuild/arch/x86/boot/bzImage" "$l1/boot/bzImage"
install -m644 "$out/l2.cpio" "$l1/boot/l2.cpio"
install -m644 "$ref" "$l1/boot/ref-bzImage"
copy_with_libs "$(command -v qemu-system-x86_64)" "$l1"
# strace for rig.strace=1: the system calls of each hvhost thread, the
# list its seccomp filters are kept against.
[ -x /usr/bin/strace ] || die "/usr/bin/strace not found (package strace)"
copy_with_libs /usr/bin/strace "$l1"
install -m755 "$hvhost" "$l1/usr/bin/hvhost"
install -m755 "$(dirname "$hvhost")/hvctl" "$l1/usr/bin/hvctl"
for fw in bios-256k.bin linuxboot_dma.bin kvmvapic.bin; do
    src=/usr/share/qemu/$fw
    [ -e "$src" ] || src=/usr/share/seabios/$fw
    [ -e "$src" ] || die "QEMU firmware $fw not found (package seabios/qemu-system-data)"
    install -m644 "$(readlink -f "$src")" "$l1/usr/share/qemu/$fw"
done
make_cpio "$l1" "$out/l1.cpio"
rm -rf "$stage"
info "initramfs: $out/l1.cpio ($(du -m "$out/l1.cpio" | cut -f1) MiB), $out/l2.cpio ($(du -m "$out/l2.cpio" | cut -f1) MiB)"
