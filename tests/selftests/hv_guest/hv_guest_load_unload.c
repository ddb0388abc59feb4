// SPDX-License-Identifier: GPL-2.0
/*
 * Repeated load/unload of hv_guest leaves nothing behind: after every cycle
 * the module is gone from /sys/module and debugfs, its reference count was 0
 * while loaded, and the kernel log of the whole run has no warning.
 *
 * Environment: HV_GUEST_KO (module path), HV_GUEST_CYCLES (default 50).
 * Needs a Hyper-V interface (the module must load): skipped elsewhere.
 */
#include "hv_guest_util.h"
#include "kselftest_harness.h"

static char log_text[1 << 20];

TEST(load_unload_cycles)
{
	const char *env = getenv("HV_GUEST_CYCLES");
	int cycles = env ? atoi(env) : 50;
	struct hv_cpuid c;
	char buf[64];
	int kmsg, ret, loaded = 0;

	hv_read_cpuid(&c);
	if (!hv_expect_load(&c))
		SKIP(return, "no usable Hyper-V interface here: hv_guest cannot load");
	hv_unload("hv_guest");
	kmsg = hv_kmsg_open();
	ASSERT_LE(0, kmsg);

	for (int i = 0; i < cycles; i++) {
		ret = hv_load(hv_module_path());
		ASSERT_EQ(0, ret) TH_LOG("cycle %d: load: %s", i, strerror(-ret));
		loaded++;
		ASSERT_LT(0, hv_read_file(HV_SYSFS_MODULE "/refcnt", buf, sizeof(buf)));
		ASSERT_EQ(0, atoi(buf)) TH_LOG("cycle %d: refcnt %s", i, buf);
		ASSERT_TRUE(hv_exists(HV_DEBUGFS "/privileges")) TH_LOG("cycle %d", i);
		ret = hv_unload("hv_guest");
		ASSERT_EQ(0, ret) TH_LOG("cycle %d: unload: %s", i, strerror(-ret));
		ASSERT_FALSE(hv_exists(HV_SYSFS_MODULE)) TH_LOG("cycle %d: still in /sys/module", i);
		ASSERT_FALSE(hv_exists(HV_DEBUGFS)) TH_LOG("cycle %d: debugfs left behind", i);
	}

	hv_kmsg_collect(kmsg, log_text, sizeof(log_text));
	close(kmsg);
	ASSERT_EQ(NULL, hv_kmsg_trouble(log_text)) TH_LOG("kernel log: %s", log_text);
	{
		int unloads = 0;

		for (const char *p = strstr(log_text, "hv_guest: unloaded"); p;
		     p = strstr(p + 1, "hv_guest: unloaded"))
			unloads++;
		ASSERT_EQ(loaded, unloads) TH_LOG("%d loads, %d unload messages", loaded, unloads);
	}
	TH_LOG("%d load/unload cycles clean", loaded);
}

TEST_HARNESS_MAIN
