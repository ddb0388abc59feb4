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
MIB=1048576

storage_run() {
	local dir=/tmp/disks
	mkdir -p $dir
	# tmpfs punches holes (ramfs, the initramfs' own, does not).
	mount -t tmpfs -o size=320m tmpfs $dir || return 1
	truncate -s $((64 * MIB)) $dir/lun0.img
	dd if=/dev/urandom of=$dir/lun1.img bs=$MIB count=16 2>/dev/null
	truncate -s $((128 * MIB)) $dir/lun2.img
	dd if=/dev/urandom of=$dir/lun3.img bs=$MIB count=16 2>/dev/null
	rm -f $HVHOST_API
	lun1_before=$(sha256sum $dir/lun1.img | cut -d' ' -f1)
	HVHOST_KERNEL=/boot/ref-bzImage hvhost_start 400 _storage_stock_guest --cpus 4 \
		--disk $dir/lun0.img --disk $dir/lun1.img,readonly --disk $dir/lun2.img \
		--api-socket $HVHOST_API --memory 512
	hvhost_wait
	hvhost_verdict_or_bail "the reference guest"
	rig_check hvhost_exit_status_0 [ "$HVHOST_STATUS" = 0 ]
	hvhost_guest_ktap guest_tests
	grep '^channel .* name=scsi ' /tmp/hvhost.report | sed 's/^/# /'
	rig_check version_6_2 report_is name=scsi version 6.2
	rig_check no_refused_request report_is name=scsi invalid 0 busy 0 completions_dropped 0
	rig_check three_sub_channels report_is vmbus sub_channels 3
	every_channel() {
		local n=0 idle=0 c
		for c in $(grep '^channel .* name=scsi ' /tmp/hvhost.report | sed 's/.* channel_commands=\([0-9]*\).*/\1/'); do
			n=$((n + 1))
			[ "$c" -gt 0 ] || idle=$((idle + 1))
		done
		echo "# $n SCSI channels, $idle without a command"
		[ "$n" = 4 ] && [ "$idle" = 0 ]
	}
	rig_check io_on_every_channel every_channel
	pattern_in_image() {
		local want got
		want=$(sed -n 's/^[0-9.]* [0-9]* pattern_sha256 //p' /tmp/hvhost.marks)
		got=$(head -c $((64 * MIB)) $dir/lun2.img | sha256sum | cut -d' ' -f1)
		echo "# pattern: guest $want, image $got"
		[ -n "$want" ] && [ "$want" = "$got" ]
	}
	rig_check pattern_sha256_in_image pattern_in_image
	hole() {
		local allocated
		allocated=$(($(stat -c %b $dir/lun2.img) * 512))
		echo "# LUN 2 image: $allocated bytes allocated of $((128 * MIB))"
		[ "$allocated" -le $((64 * MIB)) ]
	}
	rig_check discard_punched_a_hole hole
	lun1_same() {
		local guest after
		guest=$(sed -n 's/^[0-9.]* [0-9]* lun1_sha256 //p' /tmp/hvhost.marks)
		after=$(sha256sum $dir/lun1.img | cut -d' ' -f1)
		echo "# LUN 1: before $lun1_before, guest $guest, after $after"
		[ "$lun1_before" = "$after" ] && [ "$guest" = "$after" ]
	}
	rig_check read_only_image_unchanged lun1_same
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
	umount $dir
	[ "$KTAP_CNT_FAIL" = 0 ]
}

guest() {
	run_test storage_stock_guest_hvhost storage_run
}
