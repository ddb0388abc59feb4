# detect_qemu_hyperv: L2 under QEMU+KVM with Hyper-V enlightenments: the
# module loads, logs 'Microsoft Hv' and the offered bits (checked against
# CPUID, including the SynIC and VP index bits asked for), debugfs shows
# them, rmmod succeeds and removes everything.
# timeout: 300
L2_CPU=qemu64,hv-vpindex,hv-synic,hv-runtime,hv-time
L2_SMP=1
guest() {
	run_test hv_guest_detect env HV_GUEST_EXPECT=hyperv $TESTS/hv_guest_detect
	run_test hv_guest_offers_requested_bits rig_check_qemu_bits
}

# The flags above must show up by name: SYNIC and VP_INDEX privileges.
rig_check_qemu_bits() {
	insmod $HV_GUEST_KO || { rig_not_ok "synic_and_vp_index # insmod failed"; return 1; }
	p=$(cat /sys/kernel/debug/hv_guest/privileges)
	v=$(cat /sys/kernel/debug/hv_guest/vendor)
	rmmod hv_guest
	echo "# vendor '$v', privileges: $p"
	case " $p " in
	*" SYNIC "*" VP_INDEX "*)
		[ "$v" = "Microsoft Hv" ] && { rig_ok "synic_and_vp_index"; return 0; } ;;
	esac
	rig_not_ok "synic_and_vp_index"
	return 1
}
