# vsock_stock_guest_hvhost: Linux's own hv_sock (the reference kernel)
# under hvhost --vsock, with Debian's socat at both ends (_vsock_lib).
# The guest (_vsock_stock_guest) connects to L1's Unix listener
# ($VS/v.sock_1234): 32 connections at once with 1 MiB each way, then one
# with 64 MiB; L1's host programs connect to the guest's listener through
# $VS/v.sock with CONNECT 5000: 8 at once with 1 MiB each way, each
# getting "OK <port>" with its own port from 2^30. Every transfer is a
# round trip through a half-close, checked whole at the client, and the
# sha256 each server recorded is the one its client sent. A guest connect
# to a port with no listener fails (refused by hvhost, counted), a host
# CONNECT to a guest port with no listener closes without an OK (the
# offer withdrawn, counted). `hvctl remove hvsock` in the middle of a
# 64 MiB transfer ends the guest's program with an error, not a hang.
# Afterwards hvhost has the descriptors, channels and GPADLs it had
# before (hvctl stats, process open_fds), no error and no warning in the
# guest.
# timeout: 900
. /rig/scenarios/_vsock_lib.sh

vsock_run() {
	# The guest's connect to no listener.
	HVHOST_KERNEL=/boot/ref-bzImage
	vsock_l1_run "the reference guest" 1 600 800 _vsock_stock_guest --cpus 2 --memory 768
}

guest() {
	run_test vsock_stock_guest_hvhost vsock_run
}
