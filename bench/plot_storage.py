#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Draws bench_storage's medians (the TSV tables tests/run.py writes) as a
bar chart: per workload, each configuration's IOPS as a ratio to IDE's and
to virtio-blk's of the same run, and its KVM exits per I/O.

    bench/plot_storage.py BUILD_BENCH_DIR OUT.png

Debian's python3-matplotlib (scripts/setup-host.sh installs it).
"""
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CONFIGS = ["ide", "ahci", "virtio", "storvsc", "hvguest"]
LABELS = {
    "ide": "QEMU IDE",
    "ahci": "QEMU AHCI",
    "virtio": "QEMU virtio-blk",
    "storvsc": "hvhost + storvsc",
    "hvguest": "hvhost + hv_guest",
}


def table(path):
    """Rows of a run.py TSV as dicts."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def main():
    src, out = sys.argv[1], sys.argv[2]
    ratios = table(os.path.join(src, "bench_storage.storage_ratio.tsv"))
    samples = table(os.path.join(src, "bench_storage.storage.tsv"))
    workloads = []
    for r in samples:
        if r["workload"] not in workloads:
            workloads.append(r["workload"])

    def value(rows, cfg, w, key):
        for r in rows:
            if r["config"] == cfg and r["workload"] == w and r.get(key) not in (None, "", "-"):
                return float(r[key])
        return 0.0

    panels = [
        ("IOPS / IDE's (same run)", ratios, "vs_ide", True),
        ("IOPS / virtio-blk's (same run)", ratios, "vs_virtio", False),
        ("KVM exits per I/O", samples, "exits_per_io", True),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(16, 4.8))
    width = 0.8 / len(CONFIGS)
    for ax, (title, rows, key, log) in zip(axes, panels):
        for i, cfg in enumerate(CONFIGS):
            xs = [j + (i - (len(CONFIGS) - 1) / 2) * width for j in range(len(workloads))]
            ax.bar(xs, [value(rows, cfg, w, key) for w in workloads], width, label=LABELS[cfg])
        ax.set_title(title)
        ax.set_xticks(range(len(workloads)))
        ax.set_xticklabels(workloads, rotation=20, fontsize=8)
        if log:
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("bench_storage: medians of interleaved runs, one L1 (make bench)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
