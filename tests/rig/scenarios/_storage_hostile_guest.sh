# _storage_hostile_guest: not a scenario of its own; the L2 side of
# storage_hostile. hv_guest's disk driver (production build) under a
# hostile hvhost: for each fault hvhost can commit on a completion
# (rig_request hvctl storage-fault KIND), one direct 4 KiB read of LUN 0,
# whose outcome and the driver's counters say the fault was survived as
# the protocol wants:
#   unknown-id, short, wrong-operation: the completion is dropped and
#     counted (unknown_id, bad_packets), the read times out (timeout_ms
#     set to 3000) and fails;
#   bogus-sense: the read fails at once with an I/O error;
#   phantom: the read succeeds, the extra completion is counted;
#   drop: the read times out and fails.
# Afterwards the disk still works (a pattern written and read back),
# nothing is in flight, no kernel warning, and the module unloads with no
# ring page leaked.
# helper

. /rig/scenarios/_storage_lib.sh

# queue_sum KEY: KEY summed over the controller's queues.
queue_sum() {
	grep '^queue ' "$(hv_storage_file)" | tr ' ' '\n' | sed -n "s/^$1=//p" | awk '{ s += $1 } END { print s + 0 }'
}

load() {
	insmod $HV_GUEST_KO || { echo "# insmod failed"; return 1; }
	wait_for 60 hv_disk_of 0 >/dev/null || { echo "# no disk"; return 1; }
	DISK=$(hv_disk_of 0)
	echo "timeout_ms 3000" >"$(hv_storage_file)" || return 1
	echo "# disk $DISK, I/O timeout $(kv "$(hv_storage_file)" - timeout_ms) ms"
}

read_one() {
	dd if=/dev/$DISK of=/dev/null bs=4096 count=1 iflag=direct 2>/tmp/dd.err
}

# fault KIND READ_OK COUNTER...: arms KIND, reads once; the read must
# succeed (READ_OK 1) or fail (0), and each COUNTER of the queues must
# have grown by one.
fault() {
	local kind=$1 want_ok=$2 c ok=1 start elapsed
	shift 2
	for c in "$@"; do eval "before_$c=$(queue_sum $c)"; done
	rig_request hvctl storage-fault "$kind" || { echo "# storage-fault: $RIG_ANSWER"; return 1; }
	start=$(date +%s)
	read_one || ok=0
	elapsed=$(($(date +%s) - start))
	echo "# $kind: read ok=$ok after ${elapsed}s ($(head -1 /tmp/dd.err))"
	[ "$ok" = "$want_ok" ] || return 1
	for c in "$@"; do
		eval "b=\$before_$c"
		echo "# $kind: $c $b -> $(queue_sum $c)"
		[ "$(queue_sum $c)" = $((b + 1)) ] || return 1
	done
	[ "$(queue_sum in_flight)" = 0 ] || { echo "# requests left in flight"; return 1; }
}

# No ring page leaked (every GPADL torn down as the host confirmed), then
# an unload whose VMBus UNLOAD was answered.
unload_clean() {
	local leaked
	leaked=$(hv_state ring_pages_leaked)
	echo "# ring pages leaked: $leaked"
	[ "$leaked" = 0 ] && rmmod_clean
}

guest() {
	run_test load load
	run_test unknown_id_dropped_request_times_out fault unknown-id 0 unknown_id timeouts
	run_test short_completion_dropped_request_times_out fault short 0 bad_packets timeouts
	run_test wrong_operation_dropped_request_times_out fault wrong-operation 0 bad_packets timeouts
	run_test bogus_sense_is_an_io_error fault bogus-sense 0 errors
	run_test phantom_completion_counted fault phantom 1 unknown_id
	run_test dropped_completion_times_out fault drop 0 timeouts
	run_test disk_still_works hv_still_works 64
	run_test no_kernel_warnings dmesg_clean
	run_test unload_clean unload_clean
}
