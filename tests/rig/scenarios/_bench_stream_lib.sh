# _bench_stream_lib: not a scenario of its own; what both sides of
# bench_stream agree on: per configuration, the guest's endpoint, the
# interrupt lines of its stream, and the phases' sizes. A serial line
# moves a byte per exit, so its phases are smaller; the bench compares
# rates (bytes per L1 second), not times.
# helper

BENCH_STREAM_PORT=7000
MIB=1048576

# bench_stream_config CONFIG: EP, IRQ_PAT, BYTES, RTTS.
bench_stream_config() {
	case $1 in
	uart_hvhost | uart_qemu) EP=tty:/dev/ttyS1 IRQ_PAT='^ *3:' BYTES=$((256 * 1024)) RTTS=300 ;;
	hvsock) EP=vsock:2:$BENCH_STREAM_PORT IRQ_PAT='HYP:|Hypervisor callback' BYTES=$((64 * MIB)) RTTS=2000 ;;
	# The guest listens and L1 connects in through hvhost (CONNECT): Linux's
	# hv_sock sizes such a connection's rings from the listening socket's
	# buffers (208 KiB by default: 204 KiB rings) instead of the 24 KiB of a
	# guest's connect.
	hvsock_accept) EP=vsock-accept:$BENCH_STREAM_PORT IRQ_PAT='HYP:|Hypervisor callback' BYTES=$((64 * MIB)) RTTS=2000 ;;
	hvguest) EP=vsock:2:$BENCH_STREAM_PORT IRQ_PAT='hv_guest' BYTES=$((64 * MIB)) RTTS=2000 ;;
	virtio_vsock) EP=vsock:2:$BENCH_STREAM_PORT IRQ_PAT='virtio' BYTES=$((64 * MIB)) RTTS=2000 ;;
	*) return 1 ;;
	esac
}
