# shell: an interactive shell in a Hyper-V guest (L2 under QEMU+KVM with
# enlightenments) with hv_guest.ko and the tests at hand; exit powers off.
# interactive
L2_CPU=qemu64,hv-vpindex,hv-synic,hv-runtime,hv-time
L2_SMP=2
guest() {
	echo "hv_guest: insmod $HV_GUEST_KO; tests in $TESTS; exit to power off" >/dev/console
	setsid cttyhack sh </dev/console >/dev/console 2>&1
}
