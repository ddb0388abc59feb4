# guest_hostile_host: hvhost's test device misbehaves on purpose on every
# VP: a message whose header claims 255 payload bytes, a message of a type
# nobody accepts, an event flag beyond what the consumer declared. hv_guest
# drops and counts each (debugfs synic counters), its consumer never sees
# them, a message echo still works on every CPU afterwards, the kernel log
# stays clean and the module unloads cleanly.
# timeout: 400
# debug: 900
guest() {
	run_test hostile_host_under_hvhost rig_hvhost_guest _hostile_guest 2 --test-device
}
