# guest_load_unload_stress_hvhost: guest_load_unload_stress under hvhost
# --test-device with 2 vCPUs: 100 load/unload cycles with a message echo and
# an event on every CPU in each, nothing leaked, dmesg clean.
# timeout: 600
guest() {
	run_test stress_under_hvhost rig_hvhost_guest _stress_guest 2 --test-device
}
