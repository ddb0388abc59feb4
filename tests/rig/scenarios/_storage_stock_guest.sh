# _storage_stock_guest: not a scenario of its own; the L2 side of
# storage_stock_guest_hvhost, run by the reference kernel (Linux's own
# hv_vmbus, storvsc and sd) under hvhost (4 vCPUs: storvsc asks for 3
# sub-channels) with three disks on its SCSI controller: LUN 0 (64 MiB),
# LUN 1 (16 MiB, read-only, filled by L1 with a pattern) and LUN 2
# (128 MiB). The disks appear with their sizes and write protection; the
# data checks hv_guest's driver gets too (_storage_lib): a 64 MiB random
# pattern written raw to LUN 2 reads back the same, the 64 MiB above it
# discarded read as zeroes, a write to LUN 1 fails, ext4 on LUN 0 checked
# clean, direct reads from every CPU (each CPU's requests go on its
# channel), LUN 3 hot-added and hot-removed under I/O.
# The guest sends the pattern's and LUN 1's sha256 to L1 as marks, for
# L1 to compare with the image files.
# helper

. /rig/scenarios/_storage_lib.sh
DISK_OF=sd_of

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

# A disk removed under I/O: nothing warns (the I/O errors are expected).
hot_plug() {
	storage_hot_plug && dmesg_clean
}

guest() {
	echo "# rig: nproc=$(nproc)"
	run_test disks_appear disks_appear
	run_test geometry geometry
	run_test raw_pattern_and_discard storage_pattern
	run_test read_only_disk_refuses_writes storage_read_only_refuses
	run_test ext4_mkfs_mount_fsck storage_ext4
	run_test every_cpu_reads storage_every_cpu_reads
	run_test no_kernel_warnings dmesg_clean "I/O error"
	# Last: a disk removed under I/O logs I/O errors, as it should.
	run_test hot_plug hot_plug
}
