# storage_hostile, both ways, with one 16 MiB disk and 2 vCPUs.
# A hostile host: hvhost commits, on request, each fault of storage::fault
# on a completion (an unknown transaction ID, a short packet, a wrong
# operation, bogus sense, a completion for a request never sent, none at
# all) under hv_guest's disk driver (production build). The guest
# (_storage_hostile_guest) checks each outcome, that the disk still works
# and that the module unloads cleanly; here, hvhost counts the six faults.
# A hostile guest: a second VM, hv_guest's selftest build
# (_storage_misbehave_guest), sends hvhost garbage, an unknown operation,
# a bad CDB, bad ranges and a flood; each is refused as the protocol says;
# here, hvhost exits 0, counted the refusals, and closed no channel.
# timeout: 600
# debug-by-name: 1800
MIB=1048576

storage_hostile_run() {
	local dir=/tmp/disks
	mkdir -p $dir
	mount -t tmpfs -o size=32m tmpfs $dir || return 1
	truncate -s $((16 * MIB)) $dir/lun0.img
	rm -f $HVHOST_API
	hvhost_start 300 _storage_hostile_guest --cpus 2 --disk $dir/lun0.img \
		--api-socket $HVHOST_API --memory 256
	hvhost_wait
	hvhost_verdict_or_bail "hv_guest"
	rig_check hvhost_exit_status_0 [ "$HVHOST_STATUS" = 0 ]
	hvhost_guest_ktap guest_tests
	sed 's/^/# /' /tmp/hvhost.ctl
	grep '^channel .* name=scsi ' /tmp/hvhost.report | sed 's/^/# /'
	faults() {
		local n=0 c
		for c in $(grep '^channel .* name=scsi ' /tmp/hvhost.report | head -1 | sed 's/.* faults_injected=\([0-9]*\).*/\1/'); do
			n=$c
		done
		echo "# hvhost committed $n faults"
		[ "$n" = 6 ]
	}
	rig_check hvhost_committed_six_faults faults
	hostile_guest
	umount $dir
	[ "$KTAP_CNT_FAIL" = 0 ]
}

# The second VM: a misbehaving guest.
hostile_guest() {
	local dir=/tmp/disks
	hvhost_start 300 _storage_misbehave_guest --cpus 2 --disk $dir/lun0.img --memory 256
	hvhost_wait
	hvhost_verdict_or_bail "hv_guest (selftest)"
	rig_check misbehaving_guest_hvhost_exit_status_0 [ "$HVHOST_STATUS" = 0 ]
	hvhost_guest_ktap misbehaving_guest_tests misbehaving_guest
	grep '^channel .* name=scsi ' /tmp/hvhost.report | sed 's/^/# /'
	refused() {
		local invalid
		invalid=$(kv /tmp/hvhost.report name=scsi invalid)
		echo "# hvhost refused $invalid requests as malformed"
		# garbage, short-range, foreign-range, data-in-band.
		[ "$invalid" -ge 4 ]
	}
	rig_check malformed_requests_refused_and_counted refused
	rig_check no_channel_closed_by_the_host report_is name=scsi faults 0
}

guest() {
	run_test storage_hostile storage_hostile_run
}
