// SPDX-License-Identifier: GPL-2.0
/*
 * hv_guest detection, as a user sees it: the module loads exactly where the
 * CPU presents a usable Hyper-V interface and refuses with ENODEV elsewhere,
 * says why in the kernel log, shows what it found in debugfs (checked here
 * against CPUID read independently), and unloads without a trace.
 *
 * Environment: HV_GUEST_KO (module path), HV_GUEST_EXPECT=hyperv|none
 * (otherwise derived from CPUID).
 */
#include "hv_guest_util.h"
#include "kselftest_harness.h"

FIXTURE(module)
{
	struct hv_cpuid cpuid;
	bool expect;
	int load_ret;
	char log[16384];
};

FIXTURE_SETUP(module)
{
	int kmsg;

	hv_read_cpuid(&self->cpuid);
	self->expect = hv_expect_load(&self->cpuid);
	hv_unload("hv_guest");
	ASSERT_TRUE(hv_exists(hv_module_path())) TH_LOG("no module at %s", hv_module_path());
	kmsg = hv_kmsg_open();
	ASSERT_LE(0, kmsg) TH_LOG("cannot read /dev/kmsg: %s", strerror(errno));
	self->load_ret = hv_load(hv_module_path());
	self->log[0] = 0;
	hv_kmsg_collect(kmsg, self->log, sizeof(self->log));
	close(kmsg);
}

FIXTURE_TEARDOWN(module)
{
	hv_unload("hv_guest");
}

TEST_F(module, load_result_matches_cpuid)
{
	TH_LOG("CPUID: hypervisor %s, max leaf %#x, vendor '%s', privileges %#llx",
	       self->cpuid.present ? "present" : "absent", self->cpuid.max_leaf,
	       self->cpuid.vendor, (unsigned long long)self->cpuid.privileges);
	if (self->expect) {
		ASSERT_EQ(0, self->load_ret) TH_LOG("load failed: %s", strerror(-self->load_ret));
	} else {
		ASSERT_EQ(-ENODEV, self->load_ret) TH_LOG("load returned %d", self->load_ret);
	}
}

TEST_F(module, log_says_what_and_why)
{
	char want[128];

	if (!self->expect) {
		ASSERT_NE(NULL, strstr(self->log, "hv_guest: not loading: ")) TH_LOG("log: %s", self->log);
		if (!self->cpuid.present) {
			ASSERT_NE(NULL, strstr(self->log, "no hypervisor present"));
		} else if (self->cpuid.max_leaf < 0x40000005 || self->cpuid.max_leaf > 0x4000ffff) {
			snprintf(want, sizeof(want), "reports max leaf %#x", self->cpuid.max_leaf);
			ASSERT_NE(NULL, strstr(self->log, want)) TH_LOG("want '%s' in: %s", want, self->log);
		}
		return;
	}
	snprintf(want, sizeof(want), "hv_guest: Hyper-V interface: vendor %s, max leaf %#x",
		 self->cpuid.vendor, self->cpuid.max_leaf);
	ASSERT_NE(NULL, strstr(self->log, want)) TH_LOG("want '%s' in: %s", want, self->log);
	snprintf(want, sizeof(want), "hv_guest: privileges: %#llx ",
		 (unsigned long long)self->cpuid.privileges);
	ASSERT_NE(NULL, strstr(self->log, want)) TH_LOG("want '%s' in: %s", want, self->log);
	ASSERT_EQ(NULL, hv_kmsg_trouble(self->log)) TH_LOG("log: %s", self->log);
}

static void read_debugfs(struct __test_metadata *_metadata, const char *file, char *buf, size_t size)
{
	char path[128];
	int n;

	snprintf(path, sizeof(path), HV_DEBUGFS "/%s", file);
	n = hv_read_file(path, buf, size);
	ASSERT_LT(0, n) TH_LOG("%s: %s", path, strerror(-n));
}

/* Whether a name appears as a whole word in a "0x.. NAME NAME" line. */
static bool has_name(const char *line, const char *name)
{
	size_t len = strlen(name);

	for (const char *p = strstr(line, name); p; p = strstr(p + 1, name))
		if (p[-1] == ' ' && (p[len] == ' ' || p[len] == '\n' || !p[len]))
			return true;
	return false;
}

TEST_F(module, debugfs_matches_cpuid)
{
	const struct hv_cpuid *c = &self->cpuid;
	char buf[256], want[64];

	if (!self->expect) {
		ASSERT_FALSE(hv_exists(HV_DEBUGFS)) TH_LOG("debugfs left behind by a refused load");
		return;
	}
	ASSERT_EQ(0, self->load_ret);

	read_debugfs(_metadata, "vendor", buf, sizeof(buf));
	snprintf(want, sizeof(want), "%s\n", c->vendor);
	ASSERT_STREQ(want, buf);

	read_debugfs(_metadata, "max_leaf", buf, sizeof(buf));
	ASSERT_EQ(c->max_leaf, strtoul(buf, NULL, 0));

	read_debugfs(_metadata, "privileges", buf, sizeof(buf));
	ASSERT_EQ(c->privileges, strtoull(buf, NULL, 0)) TH_LOG("privileges: %s", buf);
	ASSERT_EQ(!!(c->privileges & HV_PRIV_SYNIC), has_name(buf, "SYNIC")) TH_LOG("%s", buf);
	ASSERT_EQ(!!(c->privileges & HV_PRIV_VP_INDEX), has_name(buf, "VP_INDEX")) TH_LOG("%s", buf);
	ASSERT_TRUE(has_name(buf, "HYPERCALL")) TH_LOG("%s", buf);

	read_debugfs(_metadata, "features", buf, sizeof(buf));
	ASSERT_EQ(c->features, strtoul(buf, NULL, 0)) TH_LOG("features: %s", buf);

	read_debugfs(_metadata, "recommendations", buf, sizeof(buf));
	ASSERT_EQ(c->recommendations, strtoul(buf, NULL, 0)) TH_LOG("recommendations: %s", buf);

	read_debugfs(_metadata, "limits", buf, sizeof(buf));
	/* One record: max_vps=N max_lps=N max_int_vectors=N. */
	snprintf(want, sizeof(want), "max_vps=%u ", c->max_vps);
	ASSERT_EQ(0, strncmp(want, buf, strlen(want))) TH_LOG("limits: %s", buf);
}

TEST_F(module, unload_removes_everything)
{
	if (!self->expect) {
		ASSERT_FALSE(hv_exists(HV_SYSFS_MODULE)) TH_LOG("refused module still listed");
		return;
	}
	ASSERT_EQ(0, self->load_ret);
	ASSERT_TRUE(hv_exists(HV_DEBUGFS));
	ASSERT_EQ(0, hv_unload("hv_guest"));
	ASSERT_FALSE(hv_exists(HV_SYSFS_MODULE));
	ASSERT_FALSE(hv_exists(HV_DEBUGFS));
}

TEST_HARNESS_MAIN
