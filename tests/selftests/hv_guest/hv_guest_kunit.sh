#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Loads hv_guest_kunit.ko (KUnit tests of the shared hvcall contract as the
# kernel compiles it) and prints the suite's KTAP results document as this
# test's output. Runs on any machine: the test module needs no hypervisor.
#
# Environment: HV_GUEST_KUNIT_KO (module path).

ko=${HV_GUEST_KUNIT_KO:-/lib/modules/hv_guest/hv_guest_kunit.ko}
suite=hv_guest_hvcall
results=/sys/kernel/debug/kunit/$suite/results
copy=$(mktemp)

# The kernel's KTAP library for shell, as kselftest installs it.
. "$(dirname "$0")/../kselftest/ktap_helpers.sh"

fail() {
	ktap_print_header
	ktap_set_plan 1
	ktap_test_fail "$suite # $*"
	rm -f "$copy"
	exit 1
}

[ -d /sys/kernel/debug/kunit ] || mount -t debugfs none /sys/kernel/debug 2>/dev/null
rmmod hv_guest_kunit 2>/dev/null
insmod "$ko" || fail "insmod $ko failed"
# KUnit runs the suite during the module's load; the results vanish with it.
cp "$results" "$copy" 2>/dev/null
rmmod hv_guest_kunit || fail "rmmod hv_guest_kunit failed"
[ -s "$copy" ] || fail "no KUnit results at $results (CONFIG_KUNIT_DEBUGFS?)"
cat "$copy"
if grep -q "^ok 1 $suite\$" "$copy"; then
	rm -f "$copy"
	exit 0
fi
rm -f "$copy"
exit 1
