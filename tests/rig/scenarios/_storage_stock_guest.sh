# _storage_stock_guest: not a scenario of its own; the L2 side of
# storage_stock_guest_hvhost, run by the reference kernel (Linux's own
# hv_vmbus, storvsc and sd) under hvhost (4 vCPUs: storvsc asks for 3
# sub-channels) with three disks on its SCSI controller: LUN 0 (64 MiB), LUN 1 (16 MiB, read-only, filled by L1 with
# a pattern) and LUN 2 (16 MiB). The disks appear with their sizes and
# write protection; an 8 MiB random pattern written raw to LUN 2 reads
# back the same with the page cache dropped; 8 MiB more are then
# discarded; a write to LUN 1 fails; ext4 on LUN 0: mke2fs, mount, a file
# written, unmounted, e2fsck clean, mounted again and the file intact;
# direct reads from every CPU (each CPU's requests go on its channel);
# LUN 3 hot-added and hot-removed under I/O (rig_request hvctl ...).
# The guest sends the pattern's and LUN 1's sha256 to L1 as marks, for
# L1 to compare with the image files.
# helper

MIB=1048576

# sd_of LUN: the sd disk name of LUN (its SCSI address is H:C:T:LUN).
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

three_disks() {
	sd_of 0 >/dev/null && sd_of 1 >/dev/null && sd_of 2 >/dev/null
}

disks_appear() {
	local l d
	wait_for 90 three_disks || { ls -l /sys/block/ | sed 's/^/# /'; dmesg | grep -i 'scsi\|sd ' | sed 's/^/# /'; return 1; }
	for l in 0 1 2; do
		d=$(sd_of $l)
		echo "# LUN $l: $d, $(cat /sys/block/$d/size) sectors, ro=$(cat /sys/block/$d/ro), discard_max_bytes=$(cat /sys/block/$d/queue/discard_max_bytes)"
	done
}

geometry() {
	local d0 d1 d2
	d0=$(sd_of 0) d1=$(sd_of 1) d2=$(sd_of 2)
	rig_check lun0_64_mib [ "$(cat /sys/block/$d0/size)" = $((64 * 2048)) ]
	ro16() { [ "$(cat /sys/block/$d1/size)" = $((16 * 2048)) ] && [ "$(cat /sys/block/$d1/ro)" = 1 ]; }
	rig_check lun1_16_mib_read_only ro16
	rig_check lun2_writable [ "$(cat /sys/block/$d2/ro)" = 0 ]
	rig_check lun2_discard_enabled [ "$(cat /sys/block/$d2/queue/discard_max_bytes)" -gt 0 ]
	[ "$KTAP_CNT_FAIL" = 0 ]
}

pattern() {
	local d sum back
	d=$(sd_of 2)
	dd if=/dev/urandom of=/tmp/pattern bs=$MIB count=64 2>/dev/null || return 1
	sum=$(sha256sum /tmp/pattern | cut -d' ' -f1)
	dd if=/tmp/pattern of=/dev/$d bs=$MIB conv=fsync 2>/dev/null || { echo "# write to /dev/$d failed"; return 1; }
	# 16 MiB more above it, to be discarded.
	dd if=/dev/urandom of=/dev/$d bs=$MIB seek=64 count=16 conv=fsync 2>/dev/null || return 1
	echo 3 >/proc/sys/vm/drop_caches
	back=$(dd if=/dev/$d bs=$MIB count=64 2>/dev/null | sha256sum | cut -d' ' -f1)
	echo "# 64 MiB pattern $sum, read back $back"
	rig_mark "pattern_sha256 $sum"
	[ "$sum" = "$back" ] || return 1
	# The upper half goes back to the host.
	blkdiscard -o $((64 * MIB)) -l $((64 * MIB)) /dev/$d || { echo "# blkdiscard failed"; return 1; }
	echo 3 >/proc/sys/vm/drop_caches
	back=$(dd if=/dev/$d bs=$MIB skip=64 count=64 2>/dev/null | tr -d '\000' | wc -c)
	echo "# discarded half: $back non-zero bytes"
	[ "$back" = 0 ]
}

read_only_refuses() {
	local d
	d=$(sd_of 1)
	rig_mark "lun1_sha256 $(dd if=/dev/$d bs=$MIB 2>/dev/null | sha256sum | cut -d' ' -f1)"
	if dd if=/dev/zero of=/dev/$d bs=512 count=1 conv=fsync 2>/tmp/ro.err; then
		echo "# a write to the read-only /dev/$d succeeded"
		return 1
	fi
	echo "# write refused: $(cat /tmp/ro.err | head -1)"
}

ext4() {
	local d sum
	d=$(sd_of 0)
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

# Direct reads from each CPU in turn: storvsc sends a request on the
# channel of the CPU that submits it, so every channel gets some.
every_cpu_reads() {
	local d c
	d=$(sd_of 2)
	for c in $(seq 0 $(($(nproc) - 1))); do
		taskset -c $c dd if=/dev/$d of=/dev/null bs=4096 count=16 iflag=direct 2>/dev/null ||
			{ echo "# direct read on CPU $c failed"; return 1; }
	done
}

three_gone() { ! sd_of 3 >/dev/null; }
four_disks() { sd_of 3 >/dev/null; }

# Hot plug: LUN 3 added at run time (hvctl disk-add, through L1), seen
# with its size; then removed while a reader loops on it with direct
# I/O: the disk goes, the reader ends with an error, nothing hangs.
hot_plug() {
	local d
	rig_request hvctl disk-add /tmp/disks/lun3.img,lun=3 || { echo "# disk-add: $RIG_ANSWER"; return 1; }
	wait_for 60 four_disks || { echo "# LUN 3 did not appear"; ls /sys/block | sed 's/^/# /'; return 1; }
	d=$(sd_of 3)
	echo "# LUN 3 appeared as $d, $(cat /sys/block/$d/size) sectors"
	[ "$(cat /sys/block/$d/size)" = $((16 * 2048)) ] || return 1
	rm -f /tmp/reader.done
	(
		while dd if=/dev/$d of=/dev/null bs=65536 count=64 iflag=direct 2>/dev/null; do :; done
		: >/tmp/reader.done
	) &
	sleep 1
	rig_request hvctl disk-remove 3 || { echo "# disk-remove: $RIG_ANSWER"; return 1; }
	wait_for 60 three_gone || { echo "# LUN 3 still there"; return 1; }
	wait_for 30 [ -e /tmp/reader.done ] || { echo "# the reader did not end"; return 1; }
	echo "# LUN 3 gone; the reader ended"
	if dmesg | grep -E 'WARNING:|BUG:|Oops|Call Trace'; then
		return 1
	fi
}

no_kernel_warnings() {
	if dmesg | grep -E 'WARNING:|BUG:|Oops|Call Trace|I/O error'; then
		return 1
	fi
}

guest() {
	echo "# rig: nproc=$(nproc)"
	run_test disks_appear disks_appear
	run_test geometry geometry
	run_test raw_pattern_and_discard pattern
	run_test read_only_disk_refuses_writes read_only_refuses
	run_test ext4_mkfs_mount_fsck ext4
	run_test every_cpu_reads every_cpu_reads
	run_test no_kernel_warnings no_kernel_warnings
	# Last: a disk removed under I/O logs I/O errors, as it should.
	run_test hot_plug hot_plug
}
