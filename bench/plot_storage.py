#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Draws bench_storage's medians (the TSV tables tests/run.py writes) as a
bar chart: per workload, each configuration's IOPS as a ratio to IDE's and
to virtio-blk's of the same run, and its KVM exits per I/O.

    bench/plot_storage.py BUILD_BENCH_DIR OUT.png

Debian's python3-matplotlib (scripts/setup-host.sh installs it).
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from plot_common import grouped_bars, table, value  # noqa: E402

CONFIGS = ["ide", "ahci", "virtio", "storvsc", "hvguest"]
LABELS = {
    "ide": "QEMU IDE",
    "ahci": "QEMU AHCI",
    "virtio": "QEMU virtio-blk",
    "storvsc": "hvhost + storvsc",
    "hvguest": "hvhost + hv_guest",
}


def main():
    src, out = sys.argv[1], sys.argv[2]
    ratios = table(os.path.join(src, "bench_storage.storage_ratio.tsv"))
    samples = table(os.path.join(src, "bench_storage.storage.tsv"))
    workloads = []
    for r in samples:
        if r["workload"] not in workloads:
            workloads.append(r["workload"])

    panels = [
        ("IOPS / IDE's (same run)", ratios, "vs_ide", True),
        ("IOPS / virtio-blk's (same run)", ratios, "vs_virtio", False),
        ("KVM exits per I/O", samples, "exits_per_io", True),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(16, 4.8))
    for ax, (title, rows, key, log) in zip(axes, panels):
        grouped_bars(ax, title, CONFIGS, LABELS, workloads,
                     lambda c, w, rows=rows, key=key: value(rows, key, config=c, workload=w),
                     log, rotation=20)
    axes[0].legend(fontsize=8)
    fig.suptitle("bench_storage: medians of interleaved runs, one L1 (make bench)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
