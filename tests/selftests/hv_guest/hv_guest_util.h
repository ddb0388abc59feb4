/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the hv_guest selftests: loading and unloading the module
 * by path, reading the kernel log from a mark, reading debugfs files, and an
 * independent decode of the hypervisor CPUID leaves that the module's own
 * view is checked against.
 */
#ifndef HV_GUEST_UTIL_H
#define HV_GUEST_UTIL_H

#include <cpuid.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kselftest.h"

#define HV_DEBUGFS "/sys/kernel/debug/hv_guest"
#define HV_SYSFS_MODULE "/sys/module/hv_guest"

/* Privilege bits (TLFS; include/hyperv/hvgdk_mini.h) the tests look at. */
#define HV_PRIV_SYNIC (1ull << 2)
#define HV_PRIV_HYPERCALL (1ull << 5)
#define HV_PRIV_VP_INDEX (1ull << 6)

struct hv_cpuid {
	bool present;		/* CPUID.1:ECX[31] */
	uint32_t max_leaf;	/* 0x40000000 EAX, 0 when not present */
	char vendor[13];
	uint32_t interface;
	uint64_t privileges;	/* 0x40000003 EBX:EAX */
	uint32_t features;	/* 0x40000003 EDX */
	uint32_t recommendations;
	uint32_t max_vps;
};

static inline void hv_read_cpuid(struct hv_cpuid *c)
{
	unsigned int a, b, cx, d;

	memset(c, 0, sizeof(*c));
	__cpuid(1, a, b, cx, d);
	c->present = cx & (1u << 31);
	if (!c->present)
		return;
	__cpuid(0x40000000, a, b, cx, d);
	c->max_leaf = a;
	memcpy(c->vendor, &b, 4);
	memcpy(c->vendor + 4, &cx, 4);
	memcpy(c->vendor + 8, &d, 4);
	if (a < 0x40000005 || a > 0x4000ffff)
		return;
	__cpuid(0x40000001, a, b, cx, d);
	c->interface = a;
	__cpuid(0x40000003, a, b, cx, d);
	c->privileges = (uint64_t)b << 32 | a;
	c->features = d;
	__cpuid(0x40000004, a, b, cx, d);
	c->recommendations = a;
	__cpuid(0x40000005, a, b, cx, d);
	c->max_vps = a;
}

/*
 * Whether the module should load here. HV_GUEST_EXPECT=hyperv|none states it
 * (the rig sets it per scenario); otherwise it follows from CPUID.
 */
static inline bool hv_expect_load(const struct hv_cpuid *c)
{
	const char *e = getenv("HV_GUEST_EXPECT");
	uint64_t need = HV_PRIV_HYPERCALL | HV_PRIV_VP_INDEX;

	if (e && !strcmp(e, "hyperv"))
		return true;
	if (e && !strcmp(e, "none"))
		return false;
	return c->present && c->max_leaf >= 0x40000005 && c->max_leaf <= 0x4000ffff &&
	       c->interface == 0x31237648 && (c->privileges & need) == need;
}

/* The production module (HV_GUEST_KO overrides the rig's path). */
static inline const char *hv_module_path(void)
{
	const char *p = getenv("HV_GUEST_KO");

	return p ? p : "/lib/modules/hv_guest/hv_guest.ko";
}

/*
 * The selftest build of the module, which has the contract tests and the
 * test-device client (HV_GUEST_SELFTEST_KO overrides the rig's path).
 */
static inline const char *hv_selftest_module_path(void)
{
	const char *p = getenv("HV_GUEST_SELFTEST_KO");

	return p ? p : "/lib/modules/hv_guest/selftest/hv_guest.ko";
}

/*
 * finit_module() of a .ko by path, with the module parameters in
 * HV_GUEST_PARAMS (e.g. "vmbus=0"); returns 0 or -errno.
 */
static inline int hv_load(const char *path)
{
	const char *params = getenv("HV_GUEST_PARAMS");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -errno;
	ret = syscall(SYS_finit_module, fd, params ? params : "", 0);
	ret = ret ? -errno : 0;
	close(fd);
	return ret;
}

/* delete_module(); returns 0 or -errno. */
static inline int hv_unload(const char *name)
{
	return syscall(SYS_delete_module, name, O_NONBLOCK) ? -errno : 0;
}

static inline bool hv_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* Reads a small text file; returns its length or -errno. */
static inline int hv_read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return n;
}

/* A reader of /dev/kmsg positioned at "now": sees only later records. */
static inline int hv_kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd >= 0)
		lseek(fd, 0, SEEK_END);
	return fd;
}

/* Appends the text of every record since the mark to buf (one per line). */
static inline void hv_kmsg_collect(int fd, char *buf, size_t size)
{
	char rec[2048];
	size_t len = strlen(buf);

	for (;;) {
		ssize_t n = read(fd, rec, sizeof(rec) - 1);
		char *text;

		if (n < 0) {
			if (errno == EPIPE) /* overwritten records: keep going */
				continue;
			break;
		}
		rec[n] = 0;
		text = strchr(rec, ';');
		text = text ? text + 1 : rec;
		if (len + strlen(text) + 1 >= size)
			break;
		strcpy(buf + len, text);
		len += strlen(text);
	}
}

/* Whether the log text holds any sign of a kernel warning or crash. */
static inline const char *hv_kmsg_trouble(const char *log)
{
	static const char *const bad[] = { "WARNING:", "BUG:", "Oops", "Call Trace",
					   "refcount_t:", "general protection", "UBSAN", NULL };

	for (int i = 0; bad[i]; i++)
		if (strstr(log, bad[i]))
			return bad[i];
	return NULL;
}

/*
 * hv_guest's key=value records in the kernel log ("hv_guest: KIND k=v ..."),
 * written for what a test needs after the module is gone (vmbus_unload,
 * module_unload): how many records of KIND LOG holds, and the last one
 * (from KIND on, to the end of its line) in OUT.
 */
static inline int hv_kmsg_record(const char *log, const char *kind, char *out, size_t size)
{
	char pat[64];
	const char *p, *last = NULL;
	int n = 0;

	snprintf(pat, sizeof(pat), "hv_guest: %s ", kind);
	for (p = strstr(log, pat); p; p = strstr(p + 1, pat)) {
		last = p + strlen("hv_guest: ");
		n++;
	}
	if (size)
		out[0] = '\0';
	if (last && size) {
		size_t len = strcspn(last, "\n");

		snprintf(out, size, "%.*s", (int)len, last);
	}
	return n;
}

/* Allocated irq descriptors (/sys/kernel/irq), -1 if unreadable. */
static inline int hv_count_irqs(void)
{
	DIR *d = opendir("/sys/kernel/irq");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Lines of /proc/interrupts naming one of the module's SINT irqs. */
static inline int hv_module_irq_lines(void)
{
	FILE *f = fopen("/proc/interrupts", "r");
	char line[4096];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, "hv_guest-sint") != NULL;
	fclose(f);
	return n;
}

/*
 * A result through kselftest.h (the one KTAP writer of these programs):
 * "ok N name", or the reason as a diagnostic then "not ok N name".
 */
static inline __attribute__((format(printf, 3, 4))) void hv_result(bool ok, const char *name,
								   const char *fmt, ...)
{
	if (!ok && fmt) {
		static char why[1 << 16];
		va_list ap;

		va_start(ap, fmt);
		vsnprintf(why, sizeof(why), fmt, ap);
		va_end(ap);
		ksft_print_msg("%s: %s\n", name, why);
	}
	ksft_test_result(ok, "%s\n", name);
	fflush(stdout);
}

/*
 * One line of the selftest module's contract report (debugfs "contract";
 * rust/selftest/contract.rs, Report): "plan tests=N", "result name=NAME
 * ok=0|1[ why=TEXT]", "note TEXT" or "bench ...". hv_contract_line()
 * splits a result in place: name, ok and why (the rest of the line, or "").
 */
struct hv_contract_result {
	const char *name;
	const char *why;
	bool ok;
};

/* True if LINE is a well-formed result; R then describes it. */
static inline bool hv_contract_line(char *line, struct hv_contract_result *r)
{
	char *name, *ok, *why;

	if (strncmp(line, "result name=", 12))
		return false;
	name = line + 12;
	ok = strstr(name, " ok=");
	if (!ok || (ok[4] != '0' && ok[4] != '1') || (ok[5] != '\0' && ok[5] != ' '))
		return false;
	why = ok[5] == ' ' && !strncmp(ok + 6, "why=", 4) ? ok + 10 : "";
	r->ok = ok[4] == '1';
	*ok = '\0';
	r->name = name;
	r->why = why;
	return true;
}

/*
 * Counts a whole report (left as it is): its plan (-1 if none), and its
 * results that passed and failed (a malformed result counts as failed).
 */
static inline void hv_contract_counts(const char *report, int *plan, int *passed, int *failed)
{
	const char *p;

	*plan = -1;
	*passed = *failed = 0;
	for (p = report; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (!strncmp(p, "plan tests=", 11))
			*plan = atoi(p + 11);
		else if (!strncmp(p, "result ", 7)) {
			const char *ok = strstr(p, " ok=");
			const char *eol = strchr(p, '\n');

			if (ok && (!eol || ok < eol) && ok[4] == '1')
				(*passed)++;
			else
				(*failed)++;
		}
	}
}

#endif /* HV_GUEST_UTIL_H */
