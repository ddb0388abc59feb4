#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Counts rig boots per configuration, to find what makes the nested rig fail.

Each configuration is a name and the rig knobs it sets (environment
variables read by tests/run.py, see tests/rig/README.md):

    tests/rig/bisect.py --runs 10 \\
        -c 'baseline:' \\
        -c 'l1-vgif0:RIG_L1_APPEND=kvm_amd.vgif=0' \\
        -c 'l0-novgif:RIG_L0_CPU=max,-vgif'

Boots are interleaved across configurations (one of each, then the next
round), so that a slow spell of the machine does not land on one of them.
Every boot is classified from its logs:

    pass       the scenario passed
    L1-died    L1's kernel oopsed or panicked, or L1 reset (triple fault)
    L2-died    L1 survived; the guest's VMM reported a reset, triple fault or
               KVM error (hvhost exit status != 0), or the guest oopsed
    hang       timed out with neither of the above in the logs
    fail       the boot completed and a test failed

Results go to build/bisect/results.jsonl (one line per boot, with the
kept log's path) and a table is printed; --table reprints it.
"""

import argparse
import importlib.util
import json
import os
import re
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("HVGUEST_BUILD") or os.path.join(ROOT, "build")
OUT = os.path.join(BUILD, "bisect")
RESULTS = os.path.join(OUT, "results.jsonl")

spec = importlib.util.spec_from_file_location("rig_run", os.path.join(ROOT, "tests", "run.py"))
rig_run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rig_run)

# What a dying kernel prints (either layer).
KERNEL_DEATH = re.compile(r"Kernel panic|BUG: |Oops|general protection fault|"
                          r"Thread overran stack|double fault|Attempted to kill")


def split_log(text):
    """(L1 console, everything L1 passed up: L2's console and hvhost's log)."""
    l1, _, rest = text.partition("\n==== L2 console ====\n")
    return l1, rest


def classify(ok, problem, log_text):
    """One boot's class and a short note (the first sign of death)."""
    l1, l2 = split_log(log_text)
    m = KERNEL_DEATH.search(l1)
    if ok:
        return "pass", ""
    # QEMU in L1 stops (and keeps waiting) when KVM reports an internal error.
    internal = re.search(r"KVM internal error\. Suberror: (\d+)", l1)
    if not m and internal:
        return "L2-died", "KVM internal error, suberror %s (QEMU in L1 stopped the guest)" % internal.group(1)
    if m or "reboot: Power down" not in l1 and problem and "timed out" not in problem:
        line = l1[m.start():].splitlines()[0] if m else "L1 reset without powering off"
        return "L1-died", line[:100]
    statuses = re.findall(r"==== hvhost .*\(status (\d+)", l2)
    bad = [s for s in statuses if s != "0"]
    qemu = re.findall(r"rig: L2 QEMU exited with status (\d+)", l1)
    m2 = KERNEL_DEATH.search(l2)
    # QEMU runs L2 with -no-reboot: a reset (triple fault, panic) ends it
    # with status 0 too, but without L2's "Power down".
    qemu_reset = qemu and "reboot: Power down" not in l2
    if bad or m2 or qemu_reset or any(s != "0" for s in qemu):
        note = "hvhost status %s" % ",".join(bad) if bad else ""
        if qemu_reset:
            note = "L2 under QEMU reset before powering off"
        if m2:
            note += (" " if note else "") + l2[m2.start():].splitlines()[0][:80]
        return "L2-died", note
    if problem and "timed out" in problem:
        return "hang", problem
    return "fail", problem or "a test failed"


def parse_config(text):
    name, _, rest = text.partition(":")
    env = {}
    for item in filter(None, rest.split(";")):
        k, _, v = item.partition("=")
        env[k.strip()] = v
    return name, env


def table(rows):
    classes = ["pass", "L1-died", "L2-died", "hang", "fail"]
    by = {}
    for r in rows:
        by.setdefault(r["config"], []).append(r)
    out = ["| configuration | knobs | boots | " + " | ".join(classes) + " |",
           "|---|---|---:|" + "---:|" * len(classes)]
    for name, rs in by.items():
        counts = [sum(1 for r in rs if r["class"] == c) for c in classes]
        knobs = " ".join("%s=%s" % kv for kv in sorted(rs[0]["env"].items())) or "(defaults)"
        out.append("| %s | `%s` | %d | %s |" % (name, knobs, len(rs), " | ".join(map(str, counts))))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-c", "--config", action="append", default=[], help="NAME:VAR=VALUE;VAR=VALUE")
    ap.add_argument("--runs", type=int, default=10, help="boots per configuration")
    ap.add_argument("--scenario", default="smp_probe")
    ap.add_argument("--kernel", default=None)
    ap.add_argument("--initrd", default=os.path.join(BUILD, "rig", "l1.cpio"))
    ap.add_argument("--table", action="store_true", help="print the table of results.jsonl")
    ap.add_argument("--reclassify", action="store_true", help="with --table: classify failed boots again from their logs")
    args = ap.parse_args()

    if args.table:
        with open(RESULTS) as f:
            rows = [json.loads(l) for l in f if l.strip()]
        if args.reclassify:
            # Boots that were not passes, classified again from their kept
            # logs by the current rules.
            for r in rows:
                if r["class"] != "pass" and os.path.exists(os.path.join(ROOT, r["log"])):
                    with open(os.path.join(ROOT, r["log"]), errors="replace") as f:
                        r["class"], r["note"] = classify(False, r["note"], f.read())
            with open(RESULTS, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
        names = [parse_config(c)[0] for c in args.config]
        print(table([r for r in rows if not names or r["config"] in names]))
        return 0
    kernel = args.kernel
    if kernel is None:
        with open(os.path.join(BUILD, "kdir")) as f:
            kernel = os.path.join(f.read().strip(), "arch", "x86", "boot", "bzImage")
    configs = [parse_config(c) for c in args.config] or [("defaults", {})]
    meta = rig_run.scenario_meta(args.scenario)
    os.makedirs(OUT, exist_ok=True)
    rows = []
    saved = dict(os.environ)
    for run in range(1, args.runs + 1):
        for name, env in configs:
            os.environ.clear()
            os.environ.update(saved)
            os.environ.update(env)
            rig_run.progress("==> bisect %s: boot %d of %d" % (name, run, args.runs))
            start = time.monotonic()
            wall_start = time.time()
            ok, _, problem = rig_run.boot_scenario(args.scenario, meta, kernel, args.initrd)
            log = os.path.join(rig_run.LOGS, args.scenario + ".log")
            with open(log, errors="replace") as f:
                text = f.read()
            cls, note = classify(ok, problem, text)
            kept = os.path.join(OUT, "%s.%d.%d.log" % (name, run, int(time.time())))
            shutil.copy(log, kept)
            # A hang leaves L0's register dump and thread backtraces
            # (tests/run.py, dump_l0_cpus and dump_l0_threads): keep them.
            for what in (".l0-cpus.txt", ".l0-threads.txt"):
                dump = os.path.join(rig_run.LOGS, args.scenario + what)
                if os.path.exists(dump) and os.path.getmtime(dump) >= wall_start:
                    shutil.copy(dump, kept[:-len(".log")] + what)
            row = {"config": name, "env": env, "run": run, "class": cls, "note": note,
                   "seconds": round(time.monotonic() - start), "log": os.path.relpath(kept, ROOT)}
            rows.append(row)
            with open(RESULTS, "a") as f:
                f.write(json.dumps(row) + "\n")
            rig_run.progress("    %s: %s %s" % (name, cls, note))
    os.environ.clear()
    os.environ.update(saved)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
