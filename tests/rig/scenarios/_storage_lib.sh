# _storage_lib: not a scenario of its own; the checks the storage
# scenarios share, sourced by them (`. /rig/scenarios/_storage_lib.sh`).
#
# L2 side: the same data checks run against Linux's sd disks (storvsc) and
# against hv_guest's hvdX disks. A scenario sets DISK_OF to the function
# that names the disk of a LUN (sd_of or hv_disk_of) before calling them.
# L1 side: the disk images on a tmpfs, and the checks of the images and of
# hvhost's counters once the guest is done.
# helper

MIB=1048576

# ---- L2 ----------------------------------------------------------------

# sd_of LUN: the sd disk of LUN (its SCSI address is H:C:T:LUN).
sd_of() {
	local d
	for d in /sys/block/sd*; do
		[ -e "$d/device" ] || continue
		case $(basename "$(readlink -f "$d/device")") in
		*:*:0:"$1") basename "$d"; return 0 ;;
		esac
	done
	return 1
}

# hv_storage_file: hv_guest's storage debugfs file (one controller).
hv_storage_file() {
	local f
	for f in /sys/kernel/debug/hv_guest/vmbus/devices/scsi.*/storage; do
		[ -e "$f" ] && { echo "$f"; return 0; }
	done
	return 1
}

# hv_disk_of LUN: the hvdX disk of LUN, from hv_guest's storage file.
hv_disk_of() {
	local f
	f=$(hv_storage_file) || return 1
	kv "$f" "lun=$1" name | grep .
}

disk() { "$DISK_OF" "$@"; }

# hv_still_works BLOCKS: BLOCKS random 64 KiB blocks written to hv_guest's
# disk $DISK with direct I/O read back the same; the queues are shown.
hv_still_works() {
	dd if=/dev/urandom of=/tmp/pattern bs=65536 count="$1" 2>/dev/null
	dd if=/tmp/pattern of=/dev/$DISK bs=65536 oflag=direct 2>/dev/null || return 1
	dd if=/dev/$DISK bs=65536 count="$1" iflag=direct 2>/dev/null | cmp -s - /tmp/pattern || { echo "# pattern differs"; return 1; }
	grep '^queue ' "$(hv_storage_file)" | sed 's/^/# /'
}

# 64 MiB of random data written raw to LUN 2 read back the same with the
# page cache dropped (its sha256 goes to L1 as the mark pattern_sha256);
# then the 64 MiB above it, written first, are discarded and read as zeroes.
storage_pattern() {
	local d sum back
	d=$(disk 2)
	dd if=/dev/urandom of=/tmp/pattern bs=$MIB count=64 2>/dev/null || return 1
	sum=$(sha256sum /tmp/pattern | cut -d' ' -f1)
	dd if=/tmp/pattern of=/dev/$d bs=$MIB conv=fsync 2>/dev/null || { echo "# write to /dev/$d failed"; return 1; }
	dd if=/dev/urandom of=/dev/$d bs=$MIB seek=64 count=16 conv=fsync 2>/dev/null || return 1
	echo 3 >/proc/sys/vm/drop_caches
	back=$(dd if=/dev/$d bs=$MIB count=64 2>/dev/null | sha256sum | cut -d' ' -f1)
	echo "# 64 MiB pattern $sum, read back $back"
	rig_mark "pattern_sha256 $sum"
	[ "$sum" = "$back" ] || return 1
	blkdiscard -o $((64 * MIB)) -l $((64 * MIB)) /dev/$d || { echo "# blkdiscard failed"; return 1; }
	echo 3 >/proc/sys/vm/drop_caches
	back=$(dd if=/dev/$d bs=$MIB skip=64 count=64 2>/dev/null | tr -d '\000' | wc -c)
	echo "# discarded half: $back non-zero bytes"
	[ "$back" = 0 ]
}

# LUN 1 (read-only) refuses a write; its sha256 goes to L1 (lun1_sha256).
storage_read_only_refuses() {
	local d
	d=$(disk 1)
	rig_mark "lun1_sha256 $(dd if=/dev/$d bs=$MIB 2>/dev/null | sha256sum | cut -d' ' -f1)"
	if dd if=/dev/zero of=/dev/$d bs=512 count=1 oflag=direct 2>/tmp/ro.err; then
		echo "# a write to the read-only /dev/$d succeeded"
		return 1
	fi
	echo "# write refused: $(head -1 /tmp/ro.err)"
}

# ext4 on LUN 0: made, mounted, 8 MiB of the pattern written, unmounted,
# e2fsck clean, mounted read-only again and the file the same.
storage_ext4() {
	local d sum
	d=$(disk 0)
	/usr/sbin/mke2fs -q -F -t ext4 /dev/$d || { echo "# mke2fs failed"; return 1; }
	mkdir -p /mnt/disk
	mount -t ext4 /dev/$d /mnt/disk || { echo "# mount failed"; return 1; }
	head -c $((8 * MIB)) /tmp/pattern >/mnt/disk/pattern
	sum=$(head -c $((8 * MIB)) /tmp/pattern | sha256sum | cut -d' ' -f1)
	umount /mnt/disk || return 1
	/usr/sbin/e2fsck -fn /dev/$d >/tmp/fsck.out 2>&1 || { sed 's/^/# /' /tmp/fsck.out; return 1; }
	echo "# $(tail -1 /tmp/fsck.out)"
	echo 3 >/proc/sys/vm/drop_caches
	mount -t ext4 -o ro /dev/$d /mnt/disk || return 1
	[ "$(sha256sum /mnt/disk/pattern | cut -d' ' -f1)" = "$sum" ] || { echo "# file changed"; umount /mnt/disk; return 1; }
	umount /mnt/disk
}

# Direct reads of LUN 2 from each CPU in turn: both drivers send a request
# on the channel of the CPU that submits it, so every channel gets some.
storage_every_cpu_reads() {
	local d c
	d=$(disk 2)
	for c in $(seq 0 $(($(nproc) - 1))); do
		taskset -c $c dd if=/dev/$d of=/dev/null bs=4096 count=16 iflag=direct 2>/dev/null ||
			{ echo "# direct read on CPU $c failed"; return 1; }
	done
}

lun3_there() { disk 3 >/dev/null && [ -e /dev/$(disk 3) ]; }
lun3_gone() { ! disk 3 >/dev/null; }

# Hot plug: LUN 3 added at run time (hvctl disk-add, through L1) and seen
# with its 16 MiB; then removed while a reader loops on it with direct
# I/O: the disk goes, the reader ends, nothing hangs.
storage_hot_plug() {
	local d
	rig_request hvctl disk-add /tmp/disks/lun3.img,lun=3 || { echo "# disk-add: $RIG_ANSWER"; return 1; }
	wait_for 60 lun3_there || { echo "# LUN 3 did not appear"; ls /sys/block | sed 's/^/# /'; return 1; }
	d=$(disk 3)
	echo "# LUN 3 appeared as $d, $(cat /sys/block/$d/size) sectors"
	[ "$(cat /sys/block/$d/size)" = $((16 * 2048)) ] || return 1
	rm -f /tmp/reader.done
	(
		while dd if=/dev/$d of=/dev/null bs=65536 count=64 iflag=direct 2>/dev/null; do :; done
		: >/tmp/reader.done
	) &
	sleep 1
	rig_request hvctl disk-remove 3 || { echo "# disk-remove: $RIG_ANSWER"; return 1; }
	wait_for 60 lun3_gone || { echo "# LUN 3 still there"; return 1; }
	wait_for 30 [ -e /tmp/reader.done ] || { echo "# the reader did not end"; return 1; }
	echo "# LUN 3 gone; the reader ended"
}

# ---- L1 ----------------------------------------------------------------

STORAGE_DIR=/tmp/disks

# The images on a tmpfs (ramfs, the initramfs' own, punches no holes):
# LUN 0 64 MiB empty, LUN 1 16 MiB random (served read-only; its sha256
# kept in LUN1_BEFORE), LUN 2 128 MiB empty, LUN 3 16 MiB random (hot
# plug).
storage_images() {
	mkdir -p $STORAGE_DIR
	mount -t tmpfs -o size=320m tmpfs $STORAGE_DIR || return 1
	truncate -s $((64 * MIB)) $STORAGE_DIR/lun0.img
	dd if=/dev/urandom of=$STORAGE_DIR/lun1.img bs=$MIB count=16 2>/dev/null
	truncate -s $((128 * MIB)) $STORAGE_DIR/lun2.img
	dd if=/dev/urandom of=$STORAGE_DIR/lun3.img bs=$MIB count=16 2>/dev/null
	LUN1_BEFORE=$(sha256sum $STORAGE_DIR/lun1.img | cut -d' ' -f1)
}

# The --disk arguments of LUNs 0..2.
storage_disk_args() {
	echo "--disk $STORAGE_DIR/lun0.img --disk $STORAGE_DIR/lun1.img,readonly --disk $STORAGE_DIR/lun2.img"
}

# check_every_channel STATS: hvhost's stats (exit report or hvctl stats)
# list 4 SCSI channels, each with commands of its own.
check_every_channel() {
	local n=0 idle=0 c
	for c in $(grep '^channel .* name=scsi ' "$1" | sed 's/.* channel_commands=\([0-9]*\).*/\1/'); do
		n=$((n + 1))
		[ "$c" -gt 0 ] || idle=$((idle + 1))
	done
	echo "# $n SCSI channels, $idle without a command"
	[ "$n" = 4 ] && [ "$idle" = 0 ]
}

# The guest's pattern (mark pattern_sha256) is the first 64 MiB of LUN 2's
# image.
check_pattern_in_image() {
	local want got
	want=$(sed -n 's/^[0-9.]* [0-9]* pattern_sha256 //p' /tmp/hvhost.marks)
	got=$(head -c $((64 * MIB)) $STORAGE_DIR/lun2.img | sha256sum | cut -d' ' -f1)
	echo "# pattern: guest $want, image $got"
	[ -n "$want" ] && [ "$want" = "$got" ]
}

# check_hole MAX_MIB: the discarded half of LUN 2's image is a hole, so at
# most MAX_MIB of the file are allocated.
check_hole() {
	local allocated
	allocated=$(($(stat -c %b $STORAGE_DIR/lun2.img) * 512))
	echo "# LUN 2 image: $allocated bytes allocated of $((128 * MIB))"
	[ "$allocated" -le $(($1 * MIB)) ]
}

# LUN 1's image is unchanged, and the guest read the same (lun1_sha256).
check_lun1_same() {
	local guest after
	guest=$(sed -n 's/^[0-9.]* [0-9]* lun1_sha256 //p' /tmp/hvhost.marks)
	after=$(sha256sum $STORAGE_DIR/lun1.img | cut -d' ' -f1)
	echo "# LUN 1: before $LUN1_BEFORE, guest $guest, after $after"
	[ "$LUN1_BEFORE" = "$after" ] && [ "$guest" = "$after" ]
}
