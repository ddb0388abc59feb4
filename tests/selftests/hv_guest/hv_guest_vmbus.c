// SPDX-License-Identifier: GPL-2.0
/*
 * hv_guest's VMBus client, from user space: loads the module, checks that
 * it connected at the expected version (debugfs vmbus/state), lists the
 * channels (debugfs vmbus/channels) and that the expected
 * drivers bound with their channels open, optionally waits for IC traffic
 * (heartbeats answered, time samples seen), unloads, and checks that the
 * UNLOAD handshake completed, every open channel was closed with its GPADL
 * torn down (the module's last words, its log line: debugfs is gone by
 * then), no host message was rejected and nothing is left behind. All of
 * it HV_GUEST_VMBUS_CYCLES times.
 *
 * Environment:
 *   HV_GUEST_KO               module path
 *   HV_GUEST_VMBUS_VERSION    version expected, e.g. 4.0 or 6.0 (required)
 *   HV_GUEST_VMBUS_DEVICES    drivers expected bound, e.g. "heartbeat shutdown"
 *   HV_GUEST_VMBUS_CYCLES     load/unload cycles (default 1)
 *   HV_GUEST_VMBUS_WAIT_IC=1  wait (30 s at most) for a heartbeat and a time
 *                             sample applied to the clock (SYNC)
 */
#include <time.h>

#include "hv_guest_util.h"

static char log_text[1 << 20];
static char state[4096], channels[1 << 16], ic[1024];

static void comment_block(const char *title, const char *text)
{
	char copy[1 << 16], *p, *save;

	printf("# %s:\n", title);
	snprintf(copy, sizeof(copy), "%s", text);
	for (p = strtok_r(copy, "\n", &save); p; p = strtok_r(NULL, "\n", &save))
		printf("#   %s\n", p);
}

/* The number in the first field "key=N" of text (key=value records), or -1. */
static long long field(const char *text, const char *key)
{
	char pat[64];
	const char *p;
	size_t n;

	n = snprintf(pat, sizeof(pat), "%s=", key);
	for (p = strstr(text, pat); p; p = strstr(p + 1, pat))
		if (p == text || p[-1] == ' ' || p[-1] == '\n')
			return atoll(p + n);
	return -1;
}

/* Whether driver `name` is bound to an Open channel: one channels record has both. */
static bool bound_open(const char *text, const char *name)
{
	char pat[64];
	const char *p, *end;

	snprintf(pat, sizeof(pat), " driver=%s ", name);
	p = strstr(text, pat);
	if (!p)
		return false;
	while (p > text && p[-1] != '\n')
		p--;
	end = strchr(p, '\n');
	if (!end)
		end = p + strlen(p);
	p = strstr(p, " state=Open ");
	return p && p < end;
}

static int count_lines(const char *text, const char *what)
{
	int n = 0;

	for (const char *p = strstr(text, what); p; p = strstr(p + 1, what))
		n++;
	return n;
}

int main(void)
{
	const char *want_version = getenv("HV_GUEST_VMBUS_VERSION");
	const char *devices = getenv("HV_GUEST_VMBUS_DEVICES");
	const char *cycles_env = getenv("HV_GUEST_VMBUS_CYCLES");
	bool wait_ic = getenv("HV_GUEST_VMBUS_WAIT_IC") && !strcmp(getenv("HV_GUEST_VMBUS_WAIT_IC"), "1");
	int cycles = cycles_env ? atoi(cycles_env) : 1;
	int irqs_before = hv_count_irqs();
	bool load_ok = true, conn_ok = true, dev_ok = true, ic_ok = true, unload_ok = true;
	char why_load[256] = "", why_conn[512] = "", why_dev[512] = "", why_ic[2048] = "",
	     why_unload[512] = "";
	char want_state[64];
	const char *trouble;
	long long rejected = 0;
	int kmsg, ret, c;

	ksft_print_header();
	ksft_set_plan(6);
	if (!want_version) {
		ksft_exit_fail_msg("HV_GUEST_VMBUS_VERSION not set\n");
	}
	if (cycles < 1)
		cycles = 1;
	snprintf(want_state, sizeof(want_state), " version=%s ", want_version);
	kmsg = hv_kmsg_open();
	for (c = 1; c <= cycles; c++) {
		int mark = strlen(log_text), opened;

		ret = hv_load(hv_module_path());
		if (ret) {
			load_ok = false;
			snprintf(why_load, sizeof(why_load), "cycle %d: load: %s", c, strerror(-ret));
			break;
		}
		hv_read_file(HV_DEBUGFS "/vmbus/state", state, sizeof(state));
		hv_read_file(HV_DEBUGFS "/vmbus/channels", channels, sizeof(channels));
		if (c == 1) {
			comment_block("vmbus/state", state);
			comment_block("vmbus/channels", channels[0] ? channels : "(no channels)");
		}
		hv_kmsg_collect(kmsg, log_text, sizeof(log_text));
		if (conn_ok && (strncmp(state, "phase=Connected ", 16) || !strstr(state, want_state))) {
			conn_ok = false;
			snprintf(why_conn, sizeof(why_conn), "cycle %d: want %s; state: %.400s", c,
				 want_version, state);
		}
		if (field(state, "channels") != count_lines(channels, "relid=") && conn_ok) {
			dev_ok = false;
			snprintf(why_dev, sizeof(why_dev), "cycle %d: state says %lld channels, %d listed",
				 c, field(state, "channels"), count_lines(channels, "relid="));
		}
		if (devices && dev_ok) {
			char list[256], *d, *save;

			snprintf(list, sizeof(list), "%s", devices);
			for (d = strtok_r(list, " ", &save); d; d = strtok_r(NULL, " ", &save))
				if (!bound_open(channels, d)) {
					dev_ok = false;
					snprintf(why_dev, sizeof(why_dev), "cycle %d: %s not bound/open", c, d);
					break;
				}
		}
		if (wait_ic && c == 1) {
			time_t end = time(NULL) + 30;

			do {
				hv_read_file(HV_DEBUGFS "/vmbus/ic", ic, sizeof(ic));
				if (field(ic, "beats") > 0 && field(ic, "applied") > 0)
					break;
				usleep(200000);
			} while (time(NULL) < end);
			comment_block("vmbus/ic", ic);
			if (field(ic, "beats") <= 0 || field(ic, "applied") <= 0) {
				ic_ok = false;
				snprintf(why_ic, sizeof(why_ic), "no heartbeat or applied time sample in 30 s: %s", ic);
			}
		}
		opened = count_lines(channels, " state=Open ");
		/* Host messages the client rejected over this cycle (none expected). */
		hv_read_file(HV_DEBUGFS "/vmbus/state", state, sizeof(state));
		{
			long long r = field(state, "rejected");

			rejected += r > 0 ? r : 0;
		}
		ret = hv_unload("hv_guest");
		hv_kmsg_collect(kmsg, log_text, sizeof(log_text));
		{
			/* The module's record of this unload: one, answered, all closed. */
			char rec[256];
			int records = hv_kmsg_record(log_text + mark, "vmbus_unload", rec, sizeof(rec));
			long long closed = field(rec, "channels_closed"), torn = field(rec, "gpadls_torn_down");

			if (unload_ok && (ret || hv_exists(HV_DEBUGFS) || hv_count_irqs() != irqs_before ||
					  records != 1 || field(rec, "unload_response") != 1 ||
					  closed != opened || torn != opened)) {
				unload_ok = false;
				snprintf(why_unload, sizeof(why_unload),
					 "cycle %d: unload %d, irqs %d -> %d, %d open, %d vmbus_unload record(s), last '%s'",
					 c, ret, irqs_before, hv_count_irqs(), opened, records, rec);
			}
		}
		if (ret)
			break;
	}
	printf("# %d cycle(s)\n", c - 1);
	hv_result(load_ok, "load", "%s", why_load);
	hv_result(conn_ok, "connected_at_expected_version", "%s", why_conn);
	hv_result(dev_ok, "channels_listed_and_drivers_bound", "%s", why_dev);
	if (wait_ic)
		hv_result(ic_ok, "ic_traffic", "%s", why_ic);
	else
		ksft_test_result_skip("ic_traffic: not asked for\n");
	hv_result(unload_ok, "unload_handshake_channels_closed", "%s", why_unload);
	trouble = hv_kmsg_trouble(log_text);
	hv_result(!trouble && !rejected, "kernel_log", "'%s' in the log, %lld host message(s) rejected",
		  trouble ? trouble : "", rejected);
	if (trouble || ksft_get_fail_cnt())
		comment_block("kernel log", log_text);
	close(kmsg);
	ksft_finished();
}
