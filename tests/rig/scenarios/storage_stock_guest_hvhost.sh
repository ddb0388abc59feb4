# storage_stock_guest_hvhost: Linux's own storvsc and sd (the reference
# kernel) on hvhost's SCSI controller, 4 vCPUs and 512 MiB, three disks
# backed by image files on L1's tmpfs: LUN 0 (64 MiB), LUN 1 (16 MiB,
# read-only, filled with a pattern), LUN 2 (128 MiB). The guest's checks
# (_storage_stock_guest): the disks with their sizes and write protection,
# a 64 MiB raw pattern read back, a discard, a refused write to the
# read-only disk, ext4 made, mounted, checked clean and read back, direct
# reads from every CPU, a fourth disk hot-added and hot-removed under I/O.
# Then here: the protocol version hvhost agreed (6.2, Linux's first
# choice), the 3 sub-channels Linux asked for, each of the 4 channels with
# commands of its own, the pattern's sha256 equal in the guest and in LUN
# 2's image file, the discarded half a hole in that file (at most 64 MiB
# allocated), LUN 1's image unchanged and the same sha256 in the guest,
# per-LUN counters in hvhost's exit report (reads, writes, flushes,
# discards; no write ever reached LUN 1), no refused request, both hot-plug
# requests answered ok and LUN 3 gone from the report, and no warning.
# timeout: 500
. /rig/scenarios/_storage_lib.sh

storage_run() {
	storage_images || return 1
	rm -f $HVHOST_API
	HVHOST_KERNEL=/boot/ref-bzImage hvhost_start 400 _storage_stock_guest --cpus 4 \
		$(storage_disk_args) \
		--api-socket $HVHOST_API --memory 512
	hvhost_wait
	hvhost_verdict_or_bail "the reference guest"
	rig_check hvhost_exit_status_0 [ "$HVHOST_STATUS" = 0 ]
	hvhost_guest_ktap guest_tests
	grep '^channel .* name=scsi ' /tmp/hvhost.report | sed 's/^/# /'
	rig_check version_6_2 report_is name=scsi version 6.2
	rig_check no_refused_request report_is name=scsi invalid 0 busy 0 completions_dropped 0
	rig_check three_sub_channels report_is vmbus sub_channels 3
	rig_check io_on_every_channel check_every_channel /tmp/hvhost.report
	rig_check pattern_sha256_in_image check_pattern_in_image
	rig_check discard_punched_a_hole check_hole 64
	rig_check read_only_image_unchanged check_lun1_same
	counted() {
		report_is name=scsi lun1_writes 0 &&
			[ "$(kv /tmp/hvhost.report name=scsi lun0_writes)" -gt 0 ] &&
			[ "$(kv /tmp/hvhost.report name=scsi lun0_reads)" -gt 0 ] &&
			[ "$(kv /tmp/hvhost.report name=scsi lun0_flushes)" -gt 0 ] &&
			[ "$(kv /tmp/hvhost.report name=scsi lun2_discards)" -gt 0 ] &&
			[ "$(kv /tmp/hvhost.report name=scsi lun2_queue_high)" -gt 0 ]
	}
	rig_check per_lun_counters counted
	sed 's/^/# /' /tmp/hvhost.ctl
	hot_plug_answered() {
		grep -q ': hvctl disk-add .* -> ok LUN 3 added' /tmp/hvhost.ctl &&
			grep -q ': hvctl disk-remove 3 -> ok LUN 3 removed' /tmp/hvhost.ctl &&
			! grep -q "name=scsi .*lun3_" /tmp/hvhost.report
	}
	rig_check hot_plug_answered_and_lun_gone hot_plug_answered
	rig_check no_guest_warnings hvhost_guest_clean
	umount $STORAGE_DIR
	[ "$KTAP_CNT_FAIL" = 0 ]
}

guest() {
	run_test storage_stock_guest_hvhost storage_run
}
