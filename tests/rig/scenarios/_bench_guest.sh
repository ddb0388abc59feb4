# _bench_guest: not a scenario of its own; the guest side of bench_exits.
# Reports its uptime at /init, measures the port-I/O exit floor, powers off.
# helper
guest() {
	echo "# rig: init_uptime=$(cut -d' ' -f1 /proc/uptime)"
	run_test pio_exit $TESTS/pio_exit 20000 0xe0
}
