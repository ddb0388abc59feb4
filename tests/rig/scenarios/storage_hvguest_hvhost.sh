# storage_hvguest_hvhost: hv_guest's own disk driver (production build, on
# the rig kernel) on hvhost's SCSI controller, 4 vCPUs and 512 MiB, the
# disks of storage_stock_guest_hvhost: LUN 0 (64 MiB), LUN 1 (16 MiB,
# read-only, a pattern), LUN 2 (128 MiB). The guest's checks
# (_storage_hvguest_guest): 6.2 and a channel per CPU, the disks with their
# sizes, write protection, discard, write cache and FUA; a 64 MiB raw
# pattern, a discard, a refused write, ext4, requests on every queue, a
# partition, 20 reloads each finding the block of the cycle before, hot
# plug under I/O, and the controller rescinded under I/O. Then here: the
# pattern's sha256 in LUN 2's image, the discarded half a hole, LUN 1's
# image unchanged, I/O on every channel in hvhost's report, no refused
# request, no write to LUN 1.
# A second VM then checks what a crash keeps: the guest writes 4 MiB with
# a flush (conv=fsync) and says so; hvhost is killed with SIGKILL at once,
# and the image holds the data.
# timeout: 900
# debug-by-name: 1800
. /rig/scenarios/_storage_lib.sh

storage_hvguest_run() {
	storage_images || return 1
	rm -f $HVHOST_API
	: >/tmp/hvctl.stats
	hvhost_start 800 _storage_hvguest_guest --cpus 4 \
		$(storage_disk_args) \
		--api-socket $HVHOST_API --memory 512
	hvhost_wait
	hvhost_verdict_or_bail "hv_guest"
	rig_check hvhost_exit_status_0 [ "$HVHOST_STATUS" = 0 ]
	hvhost_guest_ktap guest_tests
	# The controller is rescinded at the end: its counters are those the
	# guest had L1 save just before (rig_request stats).
	grep '^channel .* name=scsi ' /tmp/hvctl.stats | sed 's/^/# /'
	rig_check version_6_2 stats_is name=scsi version 6.2
	rig_check no_refused_request stats_is name=scsi invalid 0 busy 0 completions_dropped 0
	# Each load asks for 3 sub-channels (and each unload closes them).
	subs=$(kv /tmp/hvhost.report vmbus sub_channels)
	loads=$(kv /tmp/hvhost.report vmbus contacts)
	echo "# $loads loads, $subs sub-channels offered"
	rig_check three_sub_channels_per_load [ "$subs" = $((3 * loads)) ]
	rig_check io_on_every_channel check_every_channel /tmp/hvctl.stats
	rig_check pattern_sha256_in_image check_pattern_in_image
	rig_check discard_punched_a_hole check_hole 65
	rig_check read_only_image_unchanged check_lun1_same
	rig_check no_write_reached_lun1 stats_is name=scsi lun1_writes 0
	sed 's/^/# /' /tmp/hvhost.ctl
	rig_check no_guest_warnings hvhost_guest_clean
	crash_keeps_flushed_data
	umount $STORAGE_DIR
	[ "$KTAP_CNT_FAIL" = 0 ]
}

# The second VM: SIGKILL right after the guest's flush.
crash_keeps_flushed_data() {
	local dir=$STORAGE_DIR want got
	truncate -s 0 $dir/lun0.img
	truncate -s $((64 * MIB)) $dir/lun0.img
	hvhost_start 300 _storage_hvguest_flush_guest --cpus 2 --disk $dir/lun0.img --memory 256
	if hvhost_wait_mark '# rig: flushed' 240; then
		kill -KILL $HVHOST_PID
	fi
	hvhost_wait
	want=$(sed -n 's/^[0-9.]* [0-9]* flushed //p' /tmp/hvhost.marks)
	got=$(dd if=$dir/lun0.img bs=$MIB skip=8 count=4 2>/dev/null | sha256sum | cut -d' ' -f1)
	echo "# flushed: guest $want, image after SIGKILL $got"
	rig_check sigkill_after_flush_keeps_data sh -c "[ -n '$want' ] && [ '$want' = '$got' ]"
}

guest() {
	run_test storage_hvguest_hvhost storage_hvguest_run
}
