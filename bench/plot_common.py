# SPDX-License-Identifier: GPL-2.0
"""What the bench plots share: reading tests/run.py's TSV tables, and one
panel of grouped bars (a bar per configuration in each group).

Debian's python3-matplotlib (scripts/setup-host.sh installs it).
"""
import csv


def table(path):
    """Rows of a run.py TSV as dicts."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def value(rows, key, **match):
    """KEY of the first row whose fields equal MATCH, as a float; 0.0 if
    there is none or it has no number there."""
    for r in rows:
        if all(r.get(k) == v for k, v in match.items()) and r.get(key) not in (None, "", "-"):
            return float(r[key])
    return 0.0


def grouped_bars(ax, title, configs, labels, groups, height, log, rotation=0):
    """Draws HEIGHT(config, group) for every configuration in every group
    on AX, titled, on a log scale if LOG."""
    width = 0.8 / len(configs)
    for i, cfg in enumerate(configs):
        xs = [j + (i - (len(configs) - 1) / 2) * width for j in range(len(groups))]
        ax.bar(xs, [height(cfg, g) for g in groups], width, label=labels[cfg])
    ax.set_title(title)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=rotation, fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)
