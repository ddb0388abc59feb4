# storage_hostile: hv_guest's disk driver (production build) under a
# hostile storage host. hvhost (2 vCPUs, one 16 MiB disk) commits, on
# request, each fault of storage::fault on a completion: an unknown
# transaction ID, a short packet, a wrong operation, bogus sense, a
# completion for a request never sent, and no completion at all. The
# guest (_storage_hostile_guest) checks each outcome, that the disk still
# works and that the module unloads cleanly; here, hvhost counts the six
# faults it committed and exits 0.
# timeout: 400
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
	umount $dir
	[ "$KTAP_CNT_FAIL" = 0 ]
}

guest() {
	run_test storage_hostile storage_hostile_run
}
