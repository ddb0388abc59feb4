#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Loads hv_guest_kunit.ko (KUnit tests of the shared hvcall contract as the
# kernel compiles it) and reports its KUnit results as this test's KTAP.
# Runs on any machine: the test module needs no hypervisor.
#
# Environment: HV_GUEST_KUNIT_KO (module path).

ko=${HV_GUEST_KUNIT_KO:-/lib/modules/hv_guest/hv_guest_kunit.ko}
results=/sys/kernel/debug/kunit/hv_guest_hvcall/results

echo "TAP version 13"
echo "1..1"
if [ ! -d /sys/kernel/debug/kunit ]; then
	mount -t debugfs none /sys/kernel/debug 2>/dev/null
fi
rmmod hv_guest_kunit 2>/dev/null
if ! insmod "$ko"; then
	echo "not ok 1 hv_guest_hvcall # insmod $ko failed"
	exit 1
fi
if [ ! -r "$results" ]; then
	rmmod hv_guest_kunit
	echo "not ok 1 hv_guest_hvcall # no KUnit results at $results (CONFIG_KUNIT_DEBUGFS?)"
	exit 1
fi
# The suite's own KTAP, indented as a subtest of this one.
sed 's/^/    /' "$results"
rmmod hv_guest_kunit
# The suite result is the last top-level line of its results file.
if grep -q '^ok [0-9]* hv_guest_hvcall' "$results" 2>/dev/null ||
   tail -n 1 "$results" | grep -q '^ok '; then
	echo "ok 1 hv_guest_hvcall"
	exit 0
fi
echo "not ok 1 hv_guest_hvcall"
exit 1
