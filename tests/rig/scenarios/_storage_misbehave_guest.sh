# _storage_misbehave_guest: not a scenario of its own; the second VM of
# storage_hostile. hv_guest's selftest build, its disk driver bound, sends
# hvhost what no correct storage guest sends (the driver's debugfs file
# `misbehave`, rust/drivers/storage/misbehave.rs): garbage, an unknown
# operation, a bad CDB, a range shorter than the transfer, a range
# outside RAM, data without a range, and a flood of 3000 commands whose
# completions go unclaimed. Each must be refused as the protocol says
# (the write fails with EPROTO otherwise); afterwards the disk still
# works and the module unloads cleanly.
# helper

D=/sys/kernel/debug/hv_guest/vmbus

dev_dir() {
	local d
	for d in $D/devices/scsi.*; do
		[ -e "$d/misbehave" ] && { echo "$d"; return 0; }
	done
	return 1
}

has_disk() { dev_dir >/dev/null && grep -q '^disk .* lun=0 ' "$(dev_dir)/storage"; }

load() {
	insmod $HV_GUEST_SELFTEST_KO || { echo "# insmod failed"; return 1; }
	wait_for 60 has_disk || { echo "# no disk"; return 1; }
	DISK=$(kv "$(dev_dir)/storage" "lun=0" name)
}

misbehave() {
	echo "$*" >"$(dev_dir)/misbehave" || { echo "# misbehave $*: the host's answer was wrong"; return 1; }
	echo "# $(cat "$(dev_dir)/misbehave")"
}

still_works() {
	dd if=/dev/urandom of=/tmp/pattern bs=65536 count=16 2>/dev/null
	dd if=/tmp/pattern of=/dev/$DISK bs=65536 oflag=direct 2>/dev/null || return 1
	dd if=/dev/$DISK bs=65536 count=16 iflag=direct 2>/dev/null | cmp -s - /tmp/pattern || { echo "# pattern differs"; return 1; }
	grep '^queue ' "$(dev_dir)/storage" | sed 's/^/# /'
}

guest() {
	run_test load load
	run_test garbage_refused misbehave garbage
	run_test unknown_operation_refused misbehave unknown-operation
	run_test bad_cdb_illegal_request misbehave bad-cdb
	run_test short_range_refused misbehave short-range
	run_test foreign_range_refused misbehave foreign-range
	run_test data_without_range_refused misbehave data-in-band
	run_test flood_survived misbehave flood 3000
	run_test disk_still_works still_works
	run_test unload_clean rmmod_clean
}
