# SPDX-License-Identifier: GPL-2.0
#
# Shell helpers for scenarios, sourced by the rig's init in the guest.

# Module and test locations inside the initramfs.
KO_DIR=/lib/modules/hv_guest
TESTS=/tests
export HV_GUEST_KO=$KO_DIR/hv_guest.ko
export HV_GUEST_KUNIT_KO=$KO_DIR/hv_guest_kunit.ko

RIG_TEST_NR=0

# rig_scenario: runs guest() and prints the scenario's KTAP document, its
# plan counted from the tests that ran. In L2, whose console is a file, a
# copy goes to the console too (the log).
rig_scenario() {
	RIG_TEST_NR=0
	guest >/tmp/scenario.ktap
	{
		echo "KTAP version 1"
		echo "1..$RIG_TEST_NR"
		cat /tmp/scenario.ktap
	} >/tmp/scenario.doc
	[ "$LAYER" = 2 ] && cat /tmp/scenario.doc >/dev/console
	cat /tmp/scenario.doc
}

# run_test NAME CMD...: one test program as a KTAP subtest.
run_test() {
	name=$1
	shift
	RIG_TEST_NR=$((RIG_TEST_NR + 1))
	out=/tmp/test.$RIG_TEST_NR.out
	"$@" >"$out" 2>/dev/console
	rc=$?
	sed 's/^/    /' "$out"
	case $rc in
	0) echo "ok $RIG_TEST_NR $name" ;;
	4) echo "ok $RIG_TEST_NR $name # SKIP" ;;
	*) echo "not ok $RIG_TEST_NR $name # exit status $rc" ;;
	esac
}
