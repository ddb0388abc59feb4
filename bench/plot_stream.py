#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Draws bench_stream's medians (the TSV tables tests/run.py writes) as a
bar chart: per direction, each configuration's throughput as a ratio to
hvhost's 16550 and to virtio-vsock of the same round, its KVM exits per
MiB, and the one-byte round trip as a ratio to the raw port-I/O exit.

    bench/plot_stream.py BUILD_BENCH_DIR OUT.png

Debian's python3-matplotlib (scripts/setup-host.sh installs it).
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from plot_common import grouped_bars, table, value  # noqa: E402

CONFIGS = ["uart_hvhost", "uart_qemu", "virtio_vsock", "hvsock", "hvsock_accept", "hvguest"]
LABELS = {
    "uart_hvhost": "hvhost 16550",
    "uart_qemu": "QEMU 16550",
    "virtio_vsock": "QEMU vhost-vsock",
    "hvsock": "hvhost + hv_sock (connect)",
    "hvsock_accept": "hvhost + hv_sock (accept)",
    "hvguest": "hvhost + hv_guest",
}
PHASES = ["guest_to_host", "host_to_guest"]


def main():
    src, out = sys.argv[1], sys.argv[2]
    ratios = table(os.path.join(src, "bench_stream.stream_ratio.tsv"))
    samples = table(os.path.join(src, "bench_stream.stream.tsv"))
    rtts = table(os.path.join(src, "bench_stream.stream_rtt.tsv"))
    configs = [c for c in CONFIGS if any(r["config"] == c for r in samples)]
    panels = [
        ("MiB/s / hvhost 16550's (same round)", ratios, "vs_uart_hvhost", True),
        ("MiB/s / vhost-vsock's (same round)", ratios, "vs_virtio_vsock", False),
        ("KVM exits per MiB", samples, "exits_per_mib", True),
    ]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(18, 5.2))
    for ax, (title, rows, key, log) in zip(axes, panels):
        grouped_bars(ax, title, configs, LABELS, PHASES,
                     lambda c, p, rows=rows, key=key: value(rows, key, config=c, phase=p), log)
    ax = axes[-1]
    ax.bar(range(len(configs)), [value(rtts, "vs_pio_exit", config=c) for c in configs],
           color=[f"C{i}" for i in range(len(configs))])
    ax.set_title("1-byte round trip / raw port-I/O exit")
    ax.set_xticks(range(len(configs)))
    ax.set_xticklabels([LABELS[c] for c in configs], rotation=20, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(configs), fontsize=9)
    fig.suptitle("bench_stream: medians of interleaved rounds, one L1 (make bench)")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
