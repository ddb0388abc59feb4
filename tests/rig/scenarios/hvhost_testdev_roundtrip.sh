# hvhost_testdev_roundtrip: hvhost --test-device with 4 vCPUs, driven by
# hv_guest's 'roundtrip' suite: a posted message comes back in the SIMP
# slot of the right vCPU through that CPU's own vector, an event sets the
# flag numbered after its connection on the right vCPU, messages queued
# behind a busy slot arrive in order after EOM, and a masked SINT gets its
# message without an interrupt (then served by polling); plus CPU hotplug,
# a clean log and a clean unload.
# timeout: 400
guest() {
	run_test roundtrip_under_hvhost rig_hvhost_guest _roundtrip_guest 4 --test-device
}
