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
# controller rescinded (rig_request hvctl remove) while fio runs on a file
# of LUN 0's mounted ext4: fio gets errors, the disks go although one is
# mounted, it unmounts, nothing hangs, no ring page is leaked.
# The guest sends the pattern's and LUN 1's sha256 to L1 as marks.
# helper

. /rig/scenarios/_storage_lib.sh
DISK_OF=hv_disk_of

three_disks() {
	hv_disk_of 0 >/dev/null && hv_disk_of 1 >/dev/null && hv_disk_of 2 >/dev/null &&
		[ -e /dev/$(hv_disk_of 0) ] && [ -e /dev/$(hv_disk_of 2) ]
}

load() {
	insmod $HV_GUEST_KO || { echo "# insmod failed"; return 1; }
	wait_for 60 three_disks || { echo "# disks did not appear"; hv_storage_file && sed 's/^/# /' "$(hv_storage_file)"; return 1; }
}

disks_appear() {
	local l d
	load || return 1
	sed 's/^/# /' "$(hv_storage_file)"
	for l in 0 1 2; do
		d=$(hv_disk_of $l)
		echo "# LUN $l: $d, $(cat /sys/block/$d/size) sectors, ro=$(cat /sys/block/$d/ro), discard_max_bytes=$(cat /sys/block/$d/queue/discard_max_bytes), write_cache=$(cat /sys/block/$d/queue/write_cache), max_sectors_kb=$(cat /sys/block/$d/queue/max_hw_sectors_kb)"
	done
}

controller() {
	local f
	f=$(hv_storage_file)
	rig_check version_6_2 [ "$(kv $f - version)" = 6.2 ]
	rig_check channel_per_cpu [ "$(kv $f - channels)" = "$(nproc)" ]
	rig_check max_transfer_1_mib [ "$(kv $f - max_transfer)" = $MIB ]
	[ "$KTAP_CNT_FAIL" = 0 ]
}

geometry() {
	local d0 d1 d2
	d0=$(hv_disk_of 0) d1=$(hv_disk_of 1) d2=$(hv_disk_of 2)
	rig_check lun0_64_mib [ "$(cat /sys/block/$d0/size)" = $((64 * 2048)) ]
	ro16() { [ "$(cat /sys/block/$d1/size)" = $((16 * 2048)) ] && [ "$(cat /sys/block/$d1/ro)" = 1 ]; }
	rig_check lun1_16_mib_read_only ro16
	rig_check lun2_128_mib_writable sh -c "[ $(cat /sys/block/$d2/size) = $((128 * 2048)) ] && [ $(cat /sys/block/$d2/ro) = 0 ]"
	rig_check lun2_discard_enabled [ "$(cat /sys/block/$d2/queue/discard_max_bytes)" -gt 0 ]
	rig_check write_back_cache_and_fua sh -c "[ '$(cat /sys/block/$d0/queue/write_cache)' = 'write back' ] && [ $(cat /sys/block/$d0/queue/fua) = 1 ]"
	rig_check max_transfer_1_mib [ "$(cat /sys/block/$d0/queue/max_hw_sectors_kb)" = 1024 ]
	[ "$KTAP_CNT_FAIL" = 0 ]
}

# The pattern and the discard, which the driver counted.
pattern() {
	storage_pattern || return 1
	echo "# discards=$(kv "$(hv_storage_file)" "lun=2" discards)"
	[ "$(kv "$(hv_storage_file)" "lun=2" discards)" -gt 0 ]
}

ext4() {
	storage_ext4 || return 1
	echo "# flushes=$(kv "$(hv_storage_file)" "lun=0" flushes) fua_writes=$(kv "$(hv_storage_file)" "lun=0" fua_writes)"
	# The journal commits: flushes, and writes with FUA.
	[ "$(kv "$(hv_storage_file)" "lun=0" flushes)" -gt 0 ] && [ "$(kv "$(hv_storage_file)" "lun=0" fua_writes)" -gt 0 ]
}

# Direct reads from each CPU: blk-mq maps each CPU to its own hardware
# queue, one per channel, so every queue sends some.
every_cpu_reads() {
	local f idle
	storage_every_cpu_reads || return 1
	f=$(hv_storage_file)
	grep '^queue ' "$f" | sed 's/^/# /'
	idle=$(grep '^queue ' "$f" | grep -c ' submitted=0 ')
	[ "$idle" = 0 ] && [ "$(grep -c '^queue ' "$f")" = "$(nproc)" ]
}

# An MBR with one partition (type 0x83, sectors 2048..65535) on LUN 0,
# seen as hvdX1 once the disk is added again (the next load).
write_partition_table() {
	local d
	d=$(hv_disk_of 0)
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
	dd if=/tmp/block of=/dev/$(hv_disk_of 2) bs=4096 seek=$((32512 + $1)) count=1 oflag=direct conv=fsync 2>/dev/null
}

cycle_block_is() {
	printf 'cycle %08d' "$1" | dd of=/tmp/block bs=4096 conv=sync 2>/dev/null
	dd if=/dev/$(hv_disk_of 2) bs=4096 skip=$((32512 + $1)) count=1 iflag=direct 2>/dev/null | cmp -s - /tmp/block
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
	d=$(hv_disk_of 0)
	echo "# 20 reloads, every block read back; $d partitions: $(ls /sys/block/$d | grep "^$d" | tr '\n' ' ')"
	[ -e /sys/block/$d/${d}1 ] && [ "$(cat /sys/block/$d/${d}1/size)" = 63488 ]
}

no_disks() { ! hv_storage_file >/dev/null && ! ls /sys/block | grep -q '^hvd'; }

# lun_ios LUN: the reads and writes hv_guest sent to LUN.
lun_ios() {
	local f
	f=$(hv_storage_file)
	echo $(($(kv "$f" "lun=$1" reads) + $(kv "$f" "lun=$1" writes)))
}

# ring_pages FIELD: the VMBus client's ring page count FIELD (live, leaked).
ring_pages() {
	hv_state "ring_pages_$1"
}

# Last: the controller rescinded while fio runs on a file of the ext4
# mounted from LUN 0 (random reads and writes, libaio, direct, 32 in
# flight; LUN 0's data is checked no more, LUN 2 holds the pattern L1
# compares with its image): fio ends with I/O errors, at once; the disks
# and the device go although one is mounted; the dead file system unmounts
# without a hang; the controller's ring pages are freed (the 4 channels'
# 66 pages each), none leaked; the module unloads cleanly.
rescind_under_fio() {
	local d f relid before after
	d=$(hv_disk_of 0)
	f=$(hv_storage_file)
	relid=$(kv "$f" - relid)
	before=$(ring_pages live)
	# hvhost's counters of the controller, for L1, before it goes: its
	# channels were opened by this load, so a read from each CPU first
	# gives every one of them commands to count.
	every_cpu_reads >/dev/null || { echo "# per-CPU reads failed"; return 1; }
	rig_request stats || { echo "# stats: $RIG_ANSWER"; return 1; }
	/usr/sbin/mke2fs -q -F -t ext4 /dev/$d || { echo "# mke2fs failed"; return 1; }
	mkdir -p /mnt/disk
	mount -t ext4 /dev/$d /mnt/disk || { echo "# mount failed"; return 1; }
	rm -f /tmp/fio.status /tmp/umount.status
	io_before=$(lun_ios 0)
	(
		fio --name=rescind --filename=/mnt/disk/fio.dat --size=16m --ioengine=libaio --direct=1 \
			--rw=randrw --bs=4k --iodepth=32 --time_based --runtime=300 --thread \
			--output=/tmp/fio.out 2>/tmp/fio.err
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
	# The file system whose disk is gone: unmounting it must not hang.
	(
		umount /mnt/disk
		echo $? >/tmp/umount.status
	) &
	wait_for 30 [ -e /tmp/umount.status ] || { echo "# umount of the dead file system hung"; return 1; }
	echo "# umount after the rescind: status $(cat /tmp/umount.status)"
	! grep -q ' /mnt/disk ' /proc/mounts || { echo "# /mnt/disk still mounted"; return 1; }
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
	run_test read_only_disk_refuses_writes storage_read_only_refuses
	run_test ext4_mkfs_mount_fsck ext4
	run_test every_cpu_reads_on_its_queue every_cpu_reads
	run_test reload_20_cycles_data_kept reload_cycles
	run_test no_kernel_warnings dmesg_clean
	run_test hot_plug storage_hot_plug
	run_test rescind_under_fio rescind_under_fio
}
