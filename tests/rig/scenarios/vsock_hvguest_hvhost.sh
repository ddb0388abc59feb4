# vsock_hvguest_hvhost: hv_guest's own AF_VSOCK transport (the production
# hv_guest.ko, in the rig kernel, which has VSOCKETS and no Hyper-V
# drivers) under hvhost --vsock, with Debian's socat at both ends: the
# same transfers as vsock_stock_guest_hvhost (_vsock_lib), so the two
# guests are held to one standard, plus what only hv_guest does or is
# asked to do (_vsock_hvguest_guest): a connect nobody listens for fails
# at once with ECONNREFUSED (hvhost's TL_CONNECT_RESULT), the connection
# limit (--vsock-max-conns 40: the 41st connect is refused, and once the
# 40 close a new one works), 20 unload/reload cycles (5 on the debug
# kernel) with a connection
# open (rmmod refuses while a socket lives and works once it is closed),
# and the transport's counters add up. Afterwards hvhost has the
# descriptors, channels and GPADLs it had before.
# timeout: 1200
# debug: 2400
. /rig/scenarios/_vsock_lib.sh

vsock_run() {
	# The connect to no listener and the 41st of the limit.
	vsock_l1_run "hv_guest's guest" 2 900 1100 _vsock_hvguest_guest --cpus 2 --memory 768 \
		--vsock-max-conns 40
}

guest() {
	run_test vsock_hvguest_hvhost vsock_run
}
