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

. /rig/scenarios/_storage_lib.sh

# The controller's debugfs directory (its storage and misbehave files).
dev_dir() {
	local f
	f=$(hv_storage_file) || return 1
	dirname "$f"
}

load() {
	insmod $HV_GUEST_SELFTEST_KO || { echo "# insmod failed"; return 1; }
	wait_for 60 hv_disk_of 0 >/dev/null || { echo "# no disk"; return 1; }
	DISK=$(hv_disk_of 0)
}

misbehave() {
	echo "$*" >"$(dev_dir)/misbehave" || { echo "# misbehave $*: the host's answer was wrong"; return 1; }
	echo "# $(cat "$(dev_dir)/misbehave")"
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
	run_test disk_still_works hv_still_works 16
	run_test unload_clean rmmod_clean
}
