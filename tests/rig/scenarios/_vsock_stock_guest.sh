# _vsock_stock_guest: not a scenario of its own; the L2 side of
# vsock_stock_guest_hvhost, run by the reference kernel (Linux's own
# hv_vmbus and hv_sock) under hvhost with --vsock. Debian's socat over
# AF_VSOCK: 32 connections at once to the host's port 1234, 1 MiB each
# way each, then one of 64 MiB each way, every byte back as sent; a
# connect to a host port nobody listens on fails; then it listens on port
# 5000 for L1's host programs (the "vsock listening" mark) and serves 9 of
# them (one held open while L1 reads its rings' sizes); a 64 MiB transfer is cut by hvctl's rescind of its channel, and
# socat ends with an error rather than hang. Afterwards every socket
# channel is rescinded and released (hvctl devices lists none), and L1
# saves hvhost's stats before and after for its checks (descriptors,
# channels, GPADLs). No kernel warning.
# helper

. /rig/scenarios/_vsock_lib.sh

guest() {
	echo "# rig: nproc=$(nproc)"
	mkdir -p $VS
	run_test stats_before rig_request stats before
	# hv_sock gives a guest's connect 24 KiB rings, whatever the program
	# asked for (its init sets the socket's buffers when connect gives it
	# the transport).
	run_test rings_of_a_connect vsock_guest_rings connect 24576 24576
	run_test rings_of_a_connect_asking_more vsock_guest_rings connect_asking 24576 24576 \
		,sndbuf=131072,rcvbuf=131072
	run_test guest_connects_32_x_1_mib vsock_guest_connects 32 1024
	run_test guest_connects_64_mib vsock_guest_connects 1 65536
	rm -f $VS/g.*
	run_test connect_without_listener_fails vsock_guest_no_listener
	run_test host_programs_connect vsock_guest_serves 9
	run_test rescind_mid_transfer vsock_guest_rescinded
	run_test every_channel_released vsock_guest_settled
	run_test no_kernel_warnings dmesg_clean
}
