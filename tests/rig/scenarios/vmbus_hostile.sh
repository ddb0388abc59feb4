# vmbus_hostile: hvhost's VMBus fault injection against hv_guest's client
# (2 vCPUs): a malformed OFFERCHANNEL, a GPADL_CREATED for a GPADL the guest
# never sent, a corrupt write index in a channel's host-to-guest ring. The
# guest rejects each with a logged error and stays usable (real offers
# bound, clean unload, a normal reload); hvhost keeps running and exits 0.
# The reverse direction (a misbehaving guest program against hvhost) is
# still to be added here.
# timeout: 400
guest() {
	run_test hostile_host_faults rig_hvhost_guest _vmbus_hostile_guest 2 \
		--vmbus-fault malformed-offer --vmbus-fault bogus-gpadl-reply --vmbus-fault corrupt-ring
}
