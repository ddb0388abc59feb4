# smp_probe: one boot of an N-vCPU guest, the unit that tests/rig/bisect.py
# counts. Under hvhost (default) it is hvhost_boot_smp's boot of that size:
# the guest reports its CPUs, loads and unloads hv_guest.ko (vmbus=0) and
# powers off, and hvhost must exit 0. With rig.opt.vmm=qemu the same guest
# runs under QEMU+KVM in L1 with QEMU's Hyper-V enlightenments. Knobs, on
# L1's kernel command line (RIG_L1_APPEND):
#   rig.opt.cpus=N        vCPUs of the guest (8)
#   rig.opt.vmm=hvhost|qemu
#   rig.opt.l2cpu=MODEL   QEMU's -cpu for the guest (qemu64,hv-...)
#   rig.opt.l2args=A,B    extra QEMU arguments for the guest (-machine,hpet=off)
#   rig.opt.l2append=A,B  extra guest kernel arguments (commas for spaces)
#   rig.opt.hvhost=A,B    extra hvhost arguments
# probe
# timeout: 300
if [ "$LAYER" = 2 ]; then
	. /rig/scenarios/_hvhost_guest.sh
elif [ "${RIG_OPT_VMM:-hvhost}" = qemu ]; then
	# rig.opt values have their commas turned into spaces: back to commas.
	L2_CPU=$(echo "${RIG_OPT_L2CPU:-qemu64,hv-vpindex,hv-synic,hv-runtime,hv-time}" | tr " " ,)
	L2_SMP=${RIG_OPT_CPUS:-8}
	L2_DEVICES=$RIG_OPT_L2ARGS
else
	guest() {
		echo "# rig: smp_probe cpus=${RIG_OPT_CPUS:-8} l2append='$RIG_OPT_L2APPEND' hvhost='$RIG_OPT_HVHOST'"
		HVHOST_EXTRA_CMDLINE=$RIG_OPT_L2APPEND run_test "boot_${RIG_OPT_CPUS:-8}cpus" \
			rig_hvhost_guest _hvhost_guest "${RIG_OPT_CPUS:-8}" $RIG_OPT_HVHOST
	}
fi
