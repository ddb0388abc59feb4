// SPDX-License-Identifier: GPL-2.0
/*
 * Drives hv_guest's in-module contract tests: loads the module (unless it
 * is loaded), writes "run" (or HV_GUEST_CONTRACT=traffic) to
 * /sys/kernel/debug/hv_guest/contract, and reports each of the module's
 * results (key=value records) as one of its own tests, then whether the
 * module gave every result it planned (contract_complete). Then its own
 * checks: the SynIC has a vector for every online CPU;
 * taking CPU 1 offline returns its vectors and irqs and bringing it back
 * programs them again, with traffic working on every CPU afterwards (the
 * module's CPU hotplug state); the kernel log of the run has no warning;
 * and unloading removes every irq the module had (/sys/kernel/irq,
 * /proc/interrupts) and its debugfs.
 *
 * The tests need a host with a test device (QEMU -device hyperv-testdev,
 * hvhost --test-device).
 *
 * It loads the selftest build of the module (the production one has no
 * contract file). Environment: HV_GUEST_SELFTEST_KO (its path),
 * HV_GUEST_KEEP=1 (leave it loaded).
 */

#include "hv_guest_util.h"

static char log_text[1 << 20];
static char buf[1 << 16];




static int vector_lines(void)
{
	int n = 0;
	char *p;

	if (hv_read_file(HV_DEBUGFS "/synic", buf, sizeof(buf)) <= 0)
		return -1;
	for (p = strstr(buf, "vector"); p; p = strstr(p + 1, "vector"))
		n++;
	return n;
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY), ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

#define CPU1_ONLINE "/sys/devices/system/cpu/cpu1/online"

/*
 * Offlines and onlines CPU 1; NULL if the SynIC followed (and, with a test
 * device, traffic works on every CPU afterwards), else a reason.
 */
static const char *hotplug(int online, bool with_device)
{
	static char why[256];
	int irqs = hv_count_irqs(), v, ret, plan, passed, failed;

	if ((ret = write_str(CPU1_ONLINE, "0")))
		return snprintf(why, sizeof(why), "offline: %s", strerror(-ret)), why;
	v = vector_lines();
	if (v != 2 * (online - 1) || hv_count_irqs() != irqs - 2) {
		write_str(CPU1_ONLINE, "1");
		return snprintf(why, sizeof(why), "CPU 1 offline: %d vectors, irqs %d -> %d", v,
				irqs, hv_count_irqs()), why;
	}
	if ((ret = write_str(CPU1_ONLINE, "1")))
		return snprintf(why, sizeof(why), "online: %s", strerror(-ret)), why;
	v = vector_lines();
	if (v != 2 * online || hv_count_irqs() != irqs)
		return snprintf(why, sizeof(why), "CPU 1 back: %d vectors, irqs %d -> %d", v, irqs,
				hv_count_irqs()), why;
	if (!with_device)
		return NULL;
	if ((ret = write_str(HV_DEBUGFS "/contract", "traffic")))
		return snprintf(why, sizeof(why), "traffic: %s", strerror(-ret)), why;
	if (hv_read_file(HV_DEBUGFS "/contract", buf, sizeof(buf)) <= 0)
		return "traffic after online: no report";
	hv_contract_counts(buf, &plan, &passed, &failed);
	if (plan != 2 || passed != 2 || failed)
		return snprintf(why, sizeof(why), "traffic after online failed: %.200s", buf), why;
	return NULL;
}

int main(void)
{
	const char *what = getenv("HV_GUEST_CONTRACT");
	bool keep = getenv("HV_GUEST_KEEP") && !strcmp(getenv("HV_GUEST_KEEP"), "1");
	int irqs_before = hv_count_irqs(), kmsg, fd, ret, online, lines;
	bool loaded_here = false;
	struct hv_cpuid c;
	const char *trouble;
	char *p;

	ksft_print_header();
	hv_read_cpuid(&c);
	if (!hv_expect_load(&c)) {
		ksft_set_plan(5);
		ksft_test_result_skip("contract_complete: no usable Hyper-V interface here\n");
		ksft_test_result_skip("vectors\n");
		ksft_test_result_skip("cpu_hotplug\n");
		ksft_test_result_skip("kernel_log\n");
		ksft_test_result_skip("unload_clean\n");
		ksft_finished();
	}
	kmsg = hv_kmsg_open();
	if (!hv_exists(HV_SYSFS_MODULE)) {
		ret = hv_load(hv_selftest_module_path());
		if (ret) {
			ksft_set_plan(1);
			ksft_exit_fail_msg("load %s: %s\n", hv_selftest_module_path(), strerror(-ret));
		}
		loaded_here = true;
	}

	/* 1: the module's own tests, each result one of ours, then whether all came. */
	fd = open(HV_DEBUGFS "/contract", O_WRONLY);
	ret = fd < 0 ? -errno : 0;
	if (!ret) {
		const char *cmd = what ? what : "run";

		if (write(fd, cmd, strlen(cmd)) < 0)
			ret = -errno;
		close(fd);
	}
	if (!ret && hv_read_file(HV_DEBUGFS "/contract", buf, sizeof(buf)) <= 0)
		ret = -EIO;
	if (ret) {
		ksft_set_plan(5);
		hv_result(false, "contract_complete", "running %s/contract: %s", HV_DEBUGFS,
			  strerror(-ret));
	} else {
		int plan, passed, failed;
		struct hv_contract_result r;

		hv_contract_counts(buf, &plan, &passed, &failed);
		ksft_set_plan(passed + failed + 5);
		for (p = strtok(buf, "\n"); p; p = strtok(NULL, "\n")) {
			if (!strncmp(p, "note ", 5))
				ksft_print_msg("%s\n", p + 5);
			else if (hv_contract_line(p, &r))
				hv_result(r.ok, r.name, "%s", r.why);
			else if (!strncmp(p, "result ", 7))
				hv_result(false, "malformed_result", "%s", p);
			else if (strncmp(p, "plan ", 5))
				ksft_print_msg("module: %s\n", p);
		}
		hv_result(plan > 0 && plan == passed + failed, "contract_complete",
			  "the module planned %d results and gave %d", plan, passed + failed);
	}

	/* 2: a vector for every SINT on every online CPU, each on its CPU. */
	online = (int)sysconf(_SC_NPROCESSORS_ONLN);
	lines = vector_lines();
	hv_result(lines == 2 * online, "vectors", "%d SINT vectors for %d online CPUs:\n%s", lines,
	       online, buf);

	/* 3: CPU hotplug takes CPU 1's SynIC down and up again. */
	if (online < 2 || !hv_exists(CPU1_ONLINE)) {
		ksft_test_result_skip("cpu_hotplug: needs a CPU 1 that can go offline\n");
	} else {
		/* "statuses" runs without a test device (hvhost_msr_contract). */
		const char *why = hotplug(online, !what || strcmp(what, "statuses"));

		hv_result(!why, "cpu_hotplug", "%s", why);
	}

	/* 4: nothing alarming in the log meanwhile. */
	hv_kmsg_collect(kmsg, log_text, sizeof(log_text));
	trouble = hv_kmsg_trouble(log_text);
	if (!trouble && strstr(log_text, "No irq handler"))
		trouble = "No irq handler";
	hv_result(!trouble, "kernel_log", "'%s' in the log: %s", trouble ? trouble : "", log_text);

	/* 5: unloading returns every irq and removes debugfs. */
	if (keep || !loaded_here) {
		ksft_test_result_skip("unload_clean: module kept loaded\n");
	} else {
		ret = hv_unload("hv_guest");
		hv_result(!ret && hv_count_irqs() == irqs_before && hv_module_irq_lines() == 0 &&
			       !hv_exists(HV_DEBUGFS),
		       "unload_clean", "unload %d, irqs %d -> %d, %d /proc/interrupts lines", ret,
		       irqs_before, hv_count_irqs(), hv_module_irq_lines());
	}
	close(kmsg);
	ksft_finished();
}
