# _storage_hvguest_guest: not a scenario of its own; the L2 side of
# storage_hvguest_hvhost, run by the rig kernel with hv_guest.ko
# (production build) under hvhost (4 vCPUs) with three disks on its SCSI
# controller: LUN 0 (64 MiB), LUN 1 (16 MiB, read-only, filled by L1 with
# a pattern) and LUN 2 (128 MiB). hv_guest's disk driver negotiates 6.2
# and opens a channel per CPU; the disks appear as hvdX with their sizes,
# write protection and discard; a 64 MiB random pattern written raw reads
# back the same; its upper half is discarded and reads as zeroes; a write
# to LUN 1 fails; ext4 on LUN 0 (mke2fs, mount, write, e2fsck clean, read
# back); direct reads from every CPU put requests on every queue; a
# partition table written to LUN 0 shows as hvdX1 after a reload; 20
# unload/reload cycles, each verifying a block written in the cycle
# before; LUN 3 hot-added and hot-removed under I/O; and last, the
# controller rescinded (rig_request hvctl remove) while fio runs: fio gets
# errors, the disks go, nothing hangs, no ring page is leaked.
# The guest sends the pattern's and LUN 1's sha256 to L1 as marks.
# helper

MIB=1048576
D=/sys/kernel/debug/hv_guest/vmbus

# The driver's debugfs file (one controller).
storage_file() {
	local f
	for f in $D/devices/scsi.*/storage; do
		[ -e "$f" ] && { echo "$f"; return 0; }
	done
	return 1
}

# disk_of LUN: the disk name of LUN.
disk_of() {
	local f
	f=$(storage_file) || return 1
	kv "$f" "lun=$1" name | grep .
}

three_disks() {
	disk_of 0 >/dev/null && disk_of 1 >/dev/null && disk_of 2 >/dev/null &&
		[ -e /dev/$(disk_of 0) ] && [ -e /dev/$(disk_of 2) ]
}

load() {
	insmod $HV_GUEST_KO || { echo "# insmod failed"; return 1; }
	wait_for 60 three_disks || { echo "# disks did not appear"; storage_file && sed 's/^/# /' "$(storage_file)"; return 1; }
}

disks_appear() {
	local l d
	load || return 1
	sed 's/^/# /' "$(storage_file)"
	for l in 0 1 2; do
		d=$(disk_of $l)
		echo "# LUN $l: $d, $(cat /sys/block/$d/size) sectors, ro=$(cat /sys/block/$d/ro), discard_max_bytes=$(cat /sys/block/$d/queue/discard_max_bytes), write_cache=$(cat /sys/block/$d/queue/write_cache), max_sectors_kb=$(cat /sys/block/$d/queue/max_hw_sectors_kb)"
	done
}

controller() {
	local f
	f=$(storage_file)
	rig_check version_6_2 [ "$(kv $f - version)" = 6.2 ]
	rig_check channel_per_cpu [ "$(kv $f - channels)" = "$(nproc)" ]
	rig_check max_transfer_1_mib [ "$(kv $f - max_transfer)" = $MIB ]
	[ "$KTAP_CNT_FAIL" = 0 ]
}

geometry() {
	local d0 d1 d2
	d0=$(disk_of 0) d1=$(disk_of 1) d2=$(disk_of 2)
	rig_check lun0_64_mib [ "$(cat /sys/block/$d0/size)" = $((64 * 2048)) ]
	ro16() { [ "$(cat /sys/block/$d1/size)" = $((16 * 2048)) ] && [ "$(cat /sys/block/$d1/ro)" = 1 ]; }
	rig_check lun1_16_mib_read_only ro16
	rig_check lun2_128_mib_writable sh -c "[ $(cat /sys/block/$d2/size) = $((128 * 2048)) ] && [ $(cat /sys/block/$d2/ro) = 0 ]"
	rig_check lun2_discard_enabled [ "$(cat /sys/block/$d2/queue/discard_max_bytes)" -gt 0 ]
	rig_check write_back_cache_and_fua sh -c "[ '$(cat /sys/block/$d0/queue/write_cache)' = 'write back' ] && [ $(cat /sys/block/$d0/queue/fua) = 1 ]"
	rig_check max_transfer_1_mib [ "$(cat /sys/block/$d0/queue/max_hw_sectors_kb)" = 1024 ]
	[ "$KTAP_CNT_FAIL" = 0 ]
}

pattern() {
	local d sum back
	d=$(disk_of 2)
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
	echo "# discarded half: $back non-zero bytes; discards=$(kv "$(storage_file)" "lun=2" discards)"
	[ "$back" = 0 ] && [ "$(kv "$(storage_file)" "lun=2" discards)" -gt 0 ]
}

read_only_refuses() {
	local d
	d=$(disk_of 1)
	rig_mark "lun1_sha256 $(dd if=/dev/$d bs=$MIB 2>/dev/null | sha256sum | cut -d' ' -f1)"
	if dd if=/dev/zero of=/dev/$d bs=512 count=1 oflag=direct 2>/tmp/ro.err; then
		echo "# a write to the read-only /dev/$d succeeded"
		return 1
	fi
	echo "# write refused: $(head -1 /tmp/ro.err)"
}

ext4() {
	local d sum
	d=$(disk_of 0)
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
	echo "# flushes=$(kv "$(storage_file)" "lun=0" flushes) fua_writes=$(kv "$(storage_file)" "lun=0" fua_writes)"
	# The journal commits: flushes, and writes with FUA.
	[ "$(kv "$(storage_file)" "lun=0" flushes)" -gt 0 ] && [ "$(kv "$(storage_file)" "lun=0" fua_writes)" -gt 0 ]
}

# Direct reads from each CPU: blk-mq maps each CPU to its own hardware
# queue, one per channel, so every queue sends some.
every_cpu_reads() {
	local d c f idle
	d=$(disk_of 2)
	for c in $(seq 0 $(($(nproc) - 1))); do
		taskset -c $c dd if=/dev/$d of=/dev/null bs=4096 count=16 iflag=direct 2>/dev/null ||
			{ echo "# direct read on CPU $c failed"; return 1; }
	done
	f=$(storage_file)
	grep '^queue ' "$f" | sed 's/^/# /'
	idle=$(grep '^queue ' "$f" | grep -c ' submitted=0 ')
	[ "$idle" = 0 ] && [ "$(grep -c '^queue ' "$f")" = "$(nproc)" ]
}

# An MBR with one partition (type 0x83, sectors 2048..65535) on LUN 0,
# seen as hvdX1 once the disk is added again (the next load).
write_partition_table() {
	local d
	d=$(disk_of 0)
	dd if=/dev/zero of=/tmp/mbr bs=512 count=1 2>/dev/null
	# Entry 1 at 446: status, CHS, type 0x83, CHS, LBA 2048, 63488 sectors.
	printf '\000\000\000\000\203\000\000\000\000\010\000\000\000\370\000\000' |
		dd of=/tmp/mbr bs=1 seek=446 conv=notrunc 2>/dev/null
	printf '\125\252' | dd of=/tmp/mbr bs=1 seek=510 conv=notrunc 2>/dev/null
	dd if=/tmp/mbr of=/dev/$d bs=512 count=1 oflag=direct 2>/dev/null
}

# One 4 KiB block per cycle, at 127 MiB + 4 KiB * cycle of LUN 2 (above
# the pattern, in the discarded half).
cycle_block() {
	printf 'cycle %08d' "$1" | dd of=/tmp/block bs=4096 conv=sync 2>/dev/null
	dd if=/tmp/block of=/dev/$(disk_of 2) bs=4096 seek=$((32512 + $1)) count=1 oflag=direct conv=fsync 2>/dev/null
}

cycle_block_is() {
	printf 'cycle %08d' "$1" | dd of=/tmp/block bs=4096 conv=sync 2>/dev/null
	dd if=/dev/$(disk_of 2) bs=4096 skip=$((32512 + $1)) count=1 iflag=direct 2>/dev/null | cmp -s - /tmp/block
}

reload_cycles() {
	local i d
	write_partition_table || { echo "# writing the partition table failed"; return 1; }
	cycle_block 0 || { echo "# writing the block of cycle 0 failed"; return 1; }
	for i in $(seq 1 20); do
		rmmod hv_guest || { echo "# rmmod $i failed"; return 1; }
		load || { echo "# load $i failed"; return 1; }
		cycle_block_is $((i - 1)) || { echo "# cycle $i: block of cycle $((i - 1)) lost"; return 1; }
		cycle_block $i || { echo "# cycle $i: write failed"; return 1; }
	done
	d=$(disk_of 0)
	echo "# 20 reloads, every block read back; $d partitions: $(ls /sys/block/$d | grep "^$d" | tr '\n' ' ')"
	[ -e /sys/block/$d/${d}1 ] && [ "$(cat /sys/block/$d/${d}1/size)" = 63488 ]
}

four_disks() { disk_of 3 >/dev/null && [ -e /dev/$(disk_of 3) ]; }
three_left() { ! disk_of 3 >/dev/null; }

hot_plug() {
	local d
	rig_request hvctl disk-add /tmp/disks/lun3.img,lun=3 || { echo "# disk-add: $RIG_ANSWER"; return 1; }
	wait_for 60 four_disks || { echo "# LUN 3 did not appear"; sed 's/^/# /' "$(storage_file)"; return 1; }
	d=$(disk_of 3)
	echo "# LUN 3 appeared as $d, $(cat /sys/block/$d/size) sectors"
	[ "$(cat /sys/block/$d/size)" = $((16 * 2048)) ] || return 1
	rm -f /tmp/reader.done
	(
		while dd if=/dev/$d of=/dev/null bs=65536 count=64 iflag=direct 2>/dev/null; do :; done
		: >/tmp/reader.done
	) &
	sleep 1
	rig_request hvctl disk-remove 3 || { echo "# disk-remove: $RIG_ANSWER"; return 1; }
	wait_for 60 three_left || { echo "# LUN 3 still there"; return 1; }
	wait_for 30 [ -e /tmp/reader.done ] || { echo "# the reader did not end"; return 1; }
	echo "# LUN 3 gone; the reader ended"
}

no_kernel_warnings() {
	if dmesg | grep -E 'WARNING:|BUG:|Oops|Call Trace'; then
		return 1
	fi
}

no_disks() { ! storage_file >/dev/null && ! ls /sys/block | grep -q '^hvd'; }

# lun_ios LUN: the reads and writes hv_guest sent to LUN.
lun_ios() {
	local f
	f=$(storage_file)
	echo $(($(kv "$f" "lun=$1" reads) + $(kv "$f" "lun=$1" writes)))
}

# ring_pages FIELD: the VMBus client's ring page count FIELD (live, leaked).
ring_pages() {
	kv $D/state - "ring_pages_$1"
}

# Last: the controller rescinded while fio runs on LUN 0 (random reads
# and writes, libaio, 32 in flight; LUN 0's data is checked no more,
# LUN 2 holds the pattern L1 compares with its image): fio ends with I/O errors, at once;
# the disks and the device go; the controller's ring pages are freed (the
# 4 channels' 66 pages each), none leaked; the module unloads cleanly.
rescind_under_fio() {
	local d f relid before after
	d=$(disk_of 0)
	f=$(storage_file)
	relid=$(kv "$f" - relid)
	before=$(ring_pages live)
	# hvhost's counters of the controller, for L1, before it goes: its
	# channels were opened by this load, so a read from each CPU first
	# gives every one of them commands to count.
	every_cpu_reads >/dev/null || { echo "# per-CPU reads failed"; return 1; }
	rig_request stats || { echo "# stats: $RIG_ANSWER"; return 1; }
	rm -f /tmp/fio.status
	io_before=$(lun_ios 0)
	(
		fio --name=rescind --filename=/dev/$d --ioengine=libaio --direct=1 --rw=randrw \
			--bs=4k --iodepth=32 --time_based --runtime=300 --thread --output=/tmp/fio.out 2>/tmp/fio.err
		echo $? >/tmp/fio.status
	) &
	sleep 5
	[ ! -e /tmp/fio.status ] || { echo "# fio ended early: $(head -3 /tmp/fio.err /tmp/fio.out)"; return 1; }
	io_running=$(lun_ios 0)
	echo "# fio running: $((io_running - io_before)) requests to LUN 0 so far"
	[ $((io_running - io_before)) -ge 32 ] || { echo "# fio is not doing I/O"; return 1; }
	rig_request hvctl remove "$relid" || { echo "# remove: $RIG_ANSWER"; return 1; }
	wait_for 60 no_disks || { echo "# disks still there"; ls /sys/block | sed 's/^/# /'; return 1; }
	wait_for 30 [ -e /tmp/fio.status ] || { echo "# fio did not end"; return 1; }
	echo "# fio ended with status $(cat /tmp/fio.status): $(grep -m1 -i 'error' /tmp/fio.err /tmp/fio.out)"
	[ "$(cat /tmp/fio.status)" != 0 ] && grep -qi 'error' /tmp/fio.err /tmp/fio.out ||
		{ echo "# fio saw no I/O error"; return 1; }
	after=$(ring_pages live)
	echo "# ring pages: $before live before, $after after, $(ring_pages leaked) leaked"
	[ "$after" = $((before - 4 * 66)) ] && [ "$(ring_pages leaked)" = 0 ] || return 1
	rmmod_clean || { echo "# unload after the rescind failed"; return 1; }
	echo "# $(dmesg | grep 'hv_guest: module_unload ' | tail -1 | sed 's/.*hv_guest: //')"
	[ "$(kmsg_record module_unload complete)" = 1 ]
}

guest() {
	echo "# rig: nproc=$(nproc)"
	run_test disks_appear disks_appear
	run_test controller_6_2_channel_per_cpu controller
	run_test geometry geometry
	run_test raw_pattern_and_discard pattern
	run_test read_only_disk_refuses_writes read_only_refuses
	run_test ext4_mkfs_mount_fsck ext4
	run_test every_cpu_reads_on_its_queue every_cpu_reads
	run_test reload_20_cycles_data_kept reload_cycles
	run_test no_kernel_warnings no_kernel_warnings
	run_test hot_plug hot_plug
	run_test rescind_under_fio rescind_under_fio
}
