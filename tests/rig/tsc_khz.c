// SPDX-License-Identifier: GPL-2.0
/*
 * tsc-khz: this machine's TSC rate in kHz, measured against
 * CLOCK_MONOTONIC_RAW (the median of five 200 ms samples). Under TCG, L1's
 * TSC is the host's, so run.py gives L1 this value as tsc_early_khz: L1's
 * own early calibration under emulation is sometimes 600 ppm off (HPET
 * fallback), and then its KVM keeps that stale rate as every VM's default
 * while the refined tsc_khz moves on; without TSC scaling, KVM's
 * kvm_set_tsc_khz fails ("user requested TSC rate below hardware speed")
 * and leaves the vCPU's TSC scaling ratio at 0, so KVM's view of the guest
 * TSC stands still and an L2 guest's TSC-deadline timer fires only after
 * about L1's uptime: the guest hangs (README, "The rig").
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <x86intrin.h>

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC_RAW, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(void)
{
	const struct timespec pause = { .tv_nsec = 200 * 1000 * 1000 };
	double khz[5];

	for (int i = 0; i < 5; i++) {
		double t0 = now();
		unsigned long long c0 = __rdtsc();

		nanosleep(&pause, NULL);
		khz[i] = (__rdtsc() - c0) / (now() - t0) / 1000.0;
	}
	qsort(khz, 5, sizeof(khz[0]), cmp);
	printf("%.0f\n", khz[2]);
	return 0;
}
