#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The test runner behind `make test`, `make run` and `make shell`.

Runs the host unit tests (cargo), the checks of the built modules and the
rig scenarios, prints one KTAP
document with every scenario as a subtest, and ends with the plain line
`N passed, N failed, N skipped` counted over leaf tests.

A scenario is tests/rig/scenarios/NAME.sh. Its header comments say:
    # timeout: SECONDS    killed and reported `not ok` after that long
    # skip: REASON        reported `ok N NAME # SKIP REASON` without booting
    # interactive         not part of `make test` (make shell)
    # probe               not part of `make test` (tests/rig/bisect.py's unit)
    # l1: ARGS            extra L1 kernel arguments when L0 is TCG
    # debug: SECONDS      also run as NAME@debug, on the debug kernel
                          (tests/debug.config) as L1 and L2, with that
                          timeout; each layer ends with its checkers'
                          reports (kernel_checkers_clean)
    # debug-by-name: SECONDS
                          the same, but NAME@debug runs only when named
                          (out of `make test` for CI's time)
Each scenario boots L0 QEMU (TCG) on the rig kernel with the L1 initramfs;
L1 runs the scenario itself or boots L2 under QEMU+KVM to run it. The
console of every layer goes to build/test-logs/NAME.log; the KTAP leaves
the guest through the debug console port 0xe9 (L2's console through 0xeb).
"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIOS = os.path.join(ROOT, "tests", "rig", "scenarios")
BUILD = os.environ.get("HVGUEST_BUILD") or os.path.join(ROOT, "build")
LOGS = os.path.join(BUILD, "test-logs")
RESULT_RE = re.compile(r"^(\s*)(not ok|ok) (\d+)\s*(.*)$")


def progress(msg):
    print(msg, file=sys.stderr, flush=True)


def scenario_meta(name):
    path = os.path.join(SCENARIOS, name + ".sh")
    if not os.path.isfile(path):
        return None
    meta = {"timeout": 300, "skip": None, "interactive": False, "bench": False, "probe": False,
            "l1": "", "doc": "", "debug": None, "debug_by_name": False}
    with open(path) as f:
        for line in f:
            if not line.startswith("#"):
                break
            text = line[1:].strip()
            if text.startswith("timeout:"):
                meta["timeout"] = int(text.split(":", 1)[1])
            elif text.startswith("skip:"):
                meta["skip"] = text.split(":", 1)[1].strip()
            elif text == "interactive":
                meta["interactive"] = True
            elif text == "bench":
                meta["bench"] = True
            elif text == "probe":
                meta["probe"] = True
            elif text.startswith("l1:"):
                meta["l1"] = text.split(":", 1)[1].strip()
            elif text.startswith("debug:"):
                meta["debug"] = int(text.split(":", 1)[1])
            elif text.startswith("debug-by-name:"):
                meta["debug"] = int(text.split(":", 1)[1])
                meta["debug_by_name"] = True
            elif not meta["doc"]:
                meta["doc"] = text
    return meta


def all_scenarios():
    names = sorted(n[:-3] for n in os.listdir(SCENARIOS) if n.endswith(".sh"))
    # "run" is make run's; "_name" files are the guest side of other scenarios.
    metas = {n: scenario_meta(n) for n in names if n != "run" and not n.startswith("_")}
    return [n for n, m in metas.items() if not (m["interactive"] or m["bench"] or m["probe"])]


def count_leaves(lines):
    """Counts leaf results (a result with no nested results) by outcome."""
    passed = failed = skipped = 0
    results = []
    for line in lines:
        m = RESULT_RE.match(line)
        if m:
            results.append((len(m.group(1).expandtabs()), m.group(2), m.group(4)))
    for i, (depth, status, rest) in enumerate(results):
        # A result is a parent when the result just before it is deeper.
        if i > 0 and results[i - 1][0] > depth:
            continue
        if re.search(r"#\s*SKIP", rest, re.I):
            skipped += 1
        elif status == "ok":
            passed += 1
        else:
            failed += 1
    return passed, failed, skipped


def indent(lines, n=4):
    return [(" " * n + line) if line else line for line in lines]


def host_unit_tests():
    """cargo test over the workspace, as KTAP subtest lines."""
    progress("==> host unit tests (cargo test --workspace)")
    os.makedirs(LOGS, exist_ok=True)
    log = os.path.join(LOGS, "host_unit.log")
    proc = subprocess.run(["cargo", "test", "--workspace", "--no-fail-fast", "--color", "never"],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with open(log, "w") as f:
        f.write(proc.stdout)
    out = ["KTAP version 1"]
    tests = []
    for line in proc.stdout.splitlines():
        m = re.match(r"^test (\S.*?) \.\.\. (ok|FAILED|ignored)$", line)
        if m:
            tests.append((m.group(1), m.group(2)))
    if proc.returncode != 0 and not any(s == "FAILED" for _, s in tests):
        tests.append(("cargo_test_build", "FAILED"))
    out.append("1..%d" % len(tests))
    for i, (name, status) in enumerate(tests, 1):
        if status == "ok":
            out.append("ok %d %s" % (i, name))
        elif status == "ignored":
            out.append("ok %d %s # SKIP ignored" % (i, name))
        else:
            out.append("not ok %d %s # see %s" % (i, name, os.path.relpath(log, ROOT)))
    ok = proc.returncode == 0
    progress("    %s: %d tests (log: %s)" % ("ok" if ok else "FAILED", len(tests), os.path.relpath(log, ROOT)))
    return ok, out


# Seconds each fuzz target runs in make test (make fuzz SECONDS=N for a
# campaign; fuzz/README.md has the campaigns' counts).
FUZZ_SMOKE_SECONDS = int(os.environ.get("FUZZ_SMOKE_SECONDS", "10"))


def fuzz_smoke():
    """Every cargo-fuzz target for FUZZ_SMOKE_SECONDS from the committed
    corpus (scripts/fuzz.sh), one KTAP result per target: not ok if the
    target crashed (its input and panic are in the log) or did not run."""
    progress("==> fuzz targets, %d s each (scripts/fuzz.sh)" % FUZZ_SMOKE_SECONDS)
    os.makedirs(LOGS, exist_ok=True)
    log = os.path.join(LOGS, "fuzz.log")
    proc = subprocess.run(["bash", "scripts/fuzz.sh", "-t", str(FUZZ_SMOKE_SECONDS)], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with open(log, "w") as f:
        f.write(proc.stdout)
    records = [dict(kv.split("=", 1) for kv in line.split()[1:])
               for line in proc.stdout.splitlines() if line.startswith("fuzz target=")]
    out = ["KTAP version 1"]
    if not records:
        out += ["1..1", "not ok 1 fuzz_targets_ran # see %s" % os.path.relpath(log, ROOT)]
        progress("    FAILED: no target ran (log: %s)" % os.path.relpath(log, ROOT))
        return False, out
    out.append("1..%d" % len(records))
    ok = True
    for i, r in enumerate(records, 1):
        good = r.get("status") == "0" and int(r.get("runs") or 0) > 0
        ok = ok and good
        desc = "%s # runs=%s cov=%s corpus=%s" % (r["target"], r.get("runs"), r.get("cov"), r.get("corpus"))
        out.append("%s %d %s%s" % ("ok" if good else "not ok", i, desc,
                                     "" if good else " status=%s, see %s" % (r.get("status"), os.path.relpath(log, ROOT))))
    progress("    %s: %d targets (log: %s)" % ("ok" if ok else "FAILED", len(records), os.path.relpath(log, ROOT)))
    return ok, out


# What only the selftest build of hv_guest.ko may have (rust/selftest.rs):
# code under the selftest module, the test-device client, the protocol
# breaker, the benchmark driver, and their debugfs files.
SELFTEST_SYMBOLS = ("selftest", "testdev", "misbehave", "corrupt_send_ring", "PerfDriver")
SELFTEST_FILES = (b"\0contract\0", b"\0misbehave\0", b"\0perf\0", b"\0hv_guest-sint5\0")


def module_build_checks():
    """KTAP subtests on the built modules: the production hv_guest.ko has
    no selftest code (symbols), no selftest debugfs file names or SynIC
    test SINT (strings) and no port I/O instruction (the test device and
    the raw-exit benchmark are the only users of `out`); the selftest build
    has all three, which shows that each check can fail."""
    progress("==> checks of the built modules (production vs selftest build)")
    mods = {"production": os.path.join(BUILD, "module", "rust", "hv_guest.ko"),
            "selftest": os.path.join(BUILD, "module-selftest", "rust", "hv_guest.ko")}
    out = ["KTAP version 1"]
    results = []

    def facts(path):
        syms = subprocess.run(["nm", path], stdout=subprocess.PIPE, text=True, check=True).stdout
        with open(path, "rb") as f:
            data = f.read()
        dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path], stdout=subprocess.PIPE,
                             text=True, check=True).stdout
        return {
            "symbols": sorted({w for line in syms.splitlines() for w in SELFTEST_SYMBOLS if w in line}),
            "strings": sorted(s.strip(b"\0").decode() for s in SELFTEST_FILES if s in data),
            "port_io": sum(1 for line in dis.splitlines() if re.search(r"\tout[bwl]?\s", line)),
        }

    try:
        prod, test = facts(mods["production"]), facts(mods["selftest"])
    except (OSError, subprocess.CalledProcessError) as e:
        out += ["1..1", "not ok 1 modules_built # %s (run make rig)" % e]
        return False, out
    for what in ("symbols", "strings", "port_io"):
        results.append(("production_has_no_selftest_%s" % what, not prod[what],
                        "production hv_guest.ko has %s" % (prod[what],)))
        results.append(("selftest_build_has_%s" % what, bool(test[what]),
                        "the selftest build has none: the check could not fail"))
    out.append("1..%d" % len(results))
    for i, (name, ok, why) in enumerate(results, 1):
        out.append("%s %d %s%s" % ("ok" if ok else "not ok", i, name, "" if ok else " # " + why))
    out.insert(1, "# production: %s" % (prod,))
    out.insert(2, "# selftest build: %s" % (test,))
    ok = all(r[1] for r in results)
    progress("    %s" % ("ok" if ok else "FAILED"))
    return ok, out


# The rig's knobs (tests/rig/README.md; tests/rig/bisect.py sets them per
# configuration). The defaults are the adopted configuration.
def l0_accel():
    """L0's accelerator: tcg unless RIG_L0_ACCEL says otherwise."""
    return os.environ.get("RIG_L0_ACCEL", "tcg")


# L1's KVM under TCG: shadow paging, not nested paging. TCG's emulation of
# nested paging loses L2 guests (an 8-vCPU guest triple-faulted in 9 of 29
# boots, and still in 2 of 12 with the L0 fixes); with shadow paging and the
# fixes in tests/rig/l0-qemu/ every count in README.md's table passed.
# Shadow paging is what KVM does on hardware without NPT: faithful, slower.
L1_TCG_APPEND = "kvm_amd.npt=0"


def host_tsc_khz():
    """This machine's TSC rate in kHz (build/tsc-khz, tests/rig/tsc_khz.c),
    measured once per run; None if the helper is not built.

    Under TCG, L1's TSC is the host's. L1 is told its rate (tsc_early_khz)
    because its own early calibration under emulation is now and then 600
    ppm off (HPET fallback: 2598.441 MHz against 2599.98 refined). Then
    L1's KVM, on a CPU without constant TSC, keeps the stale early rate as
    every VM's default; kvm_set_tsc_khz finds it out of tolerance, and with
    no TSC scaling gives up ("user requested TSC rate below hardware
    speed") leaving the vCPU's scaling ratio at 0: KVM's view of the guest
    TSC stands still, and an L2 guest's TSC-deadline timer fires only after
    about L1's uptime. The reference guest hung at SMP bring-up that way
    (README, "The rig")."""
    if not hasattr(host_tsc_khz, "value"):
        helper = os.path.join(BUILD, "tsc-khz")
        host_tsc_khz.value = None
        if os.access(helper, os.X_OK):
            out = subprocess.run([helper], stdout=subprocess.PIPE, text=True, check=False).stdout.strip()
            if out.isdigit():
                host_tsc_khz.value = int(out)
    return host_tsc_khz.value


def l0_qemu():
    """L0's QEMU: RIG_L0_QEMU, else the build `make l0-qemu` recorded
    (Debian's QEMU with tests/rig/l0-qemu/'s fixes to TCG's nested SVM, which
    the rig needs for SMP: README.md, "What the rig can and cannot run"),
    else the system's, with a warning."""
    if os.environ.get("RIG_L0_QEMU"):
        return os.environ["RIG_L0_QEMU"]
    recorded = os.path.join(BUILD, "l0-qemu")
    if os.path.exists(recorded):
        with open(recorded) as f:
            path = f.read().strip()
        if os.access(path, os.X_OK):
            return path
    if l0_accel() == "tcg" and not getattr(l0_qemu, "warned", False):
        l0_qemu.warned = True
        progress("warning: no patched L0 QEMU (make l0-qemu): the system's TCG loses "
                 "interrupts and re-injects events wrongly under nested SMP")
    return "qemu-system-x86_64"


def l0_command(kernel, initrd, append):
    """The L0 QEMU command line, without the result channels."""
    accel = l0_accel()
    if os.environ.get("RIG_L0_TCG"):
        accel += "," + os.environ["RIG_L0_TCG"]
    return [l0_qemu(), "-accel", accel,
            "-cpu", os.environ.get("RIG_L0_CPU", "max"), "-smp", os.environ.get("RIG_L0_SMP", "2"),
            "-m", "2048", "-L", "/usr/share/qemu", "-L", "/usr/share/seabios", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", kernel, "-initrd", initrd, "-append", append]


def dump_l0_cpus(monitor, out_path):
    """Asks a hung L0, through its monitor socket, where each vCPU is:
    every vCPU's registers three times a second apart (HMP `info registers
    -a`: a RIP that moves is a loop, one that does not is a stall), then the
    top of each vCPU's stack (`x/48gx` at its RSP, for the callers: symbolize with
    addr2line on the rig kernel's vmlinux). Writes it all to out_path: where
    L1 was stuck, which a hang otherwise never says."""
    import socket

    def hmp(sock, command, wait=1.0):
        sock.sendall(command.encode() + b"\n")
        data = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            data += chunk
        return data

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            sock.connect(monitor)
            out = b""
            for sample in range(3):
                out += b"\n==== sample %d: info registers -a ====\n" % sample
                out += hmp(sock, "info registers -a", 1.0)
            last = out[out.rfind(b"==== sample 2"):]
            for cpu, rsp in enumerate(re.findall(rb"RSP=([0-9a-f]{16})", last)):
                out += b"\n==== CPU %d: stack at %s ====\n" % (cpu, rsp)
                hmp(sock, "cpu %d" % cpu, 0.3)
                out += hmp(sock, "x/48gx 0x%s" % rsp.decode(), 0.5)
        with open(out_path, "wb") as f:
            f.write(out)
        return True
    except OSError:
        return False


def dump_l0_threads(pid, out_path):
    """gdb's backtrace of every thread of a hung L0 QEMU, if gdb is there:
    where QEMU itself waits (a vCPU thread blocked on a lock or condition
    looks stuck at one guest instruction in the registers)."""
    gdb = shutil.which("gdb")
    if not gdb:
        return False
    try:
        with open(out_path, "wb") as f:
            subprocess.run([gdb, "-p", str(pid), "-batch", "-nx", "-ex", "info threads",
                            "-ex", "thread apply all bt"],
                           stdout=f, stderr=subprocess.STDOUT, timeout=120)
        return True
    except (OSError, subprocess.TimeoutExpired):
        return False


def boot_scenario(name, meta, kernel, initrd, console=False, interactive=False):
    """Boots L0 for one scenario; returns (ok, ktap lines of the scenario).
    NAME@debug is scenario NAME on the debug kernel pair (its logs are
    NAME@debug.*)."""
    label, name = name, name.split("@")[0]
    os.makedirs(LOGS, exist_ok=True)
    log_path = os.path.join(LOGS, label + ".log")
    ktap_path = os.path.join(LOGS, label + ".ktap")
    l2_log_path = os.path.join(LOGS, label + ".l2.log")
    for path in (ktap_path, l2_log_path):
        if os.path.exists(path):
            os.unlink(path)
    append = "console=ttyS0 panic=-1 rig.scenario=%s rig.layer=1" % name
    if interactive:
        append += " rig.interactive=1"
    if l0_accel() == "tcg":
        append += " " + L1_TCG_APPEND
        if host_tsc_khz():
            append += " tsc_early_khz=%d" % host_tsc_khz()
    if meta.get("l1") and l0_accel() == "tcg":
        # The scenario's own L1 arguments for TCG (its "# l1:" header).
        append += " " + meta["l1"]
    if label.endswith("@debug"):
        # 4-level paging on the debug kernel (tests/debug.config says why).
        append += " no5lvl"
    if os.environ.get("RIG_L1_APPEND"):
        # After the defaults: a later kvm_amd.X=... on the command line wins.
        append += " " + os.environ["RIG_L1_APPEND"]
    cmd = l0_command(kernel, initrd, append)
    monitor = None
    if interactive:
        cmd += ["-monitor", "none"]
    else:
        # The L0 monitor, for the registers of a hung L1 (dump_l0_cpus).
        monitor = os.path.join(LOGS, label + ".monitor")
        if os.path.exists(monitor):
            os.unlink(monitor)
        cmd += ["-monitor", "unix:%s,server=on,wait=off" % monitor]
    if os.environ.get("RIG_L0_DEBUG"):
        # QEMU's own log of L1's CPU resets (a triple fault in L1 shows here).
        cmd += ["-d", os.environ["RIG_L0_DEBUG"], "-D", os.path.join(LOGS, label + ".l0.log")]
    cmd += [
           "-serial", "stdio",
           # Results and L2's console come up through debugcon ports (see tests/rig/init).
           "-chardev", "file,id=ktap,path=" + ktap_path,
           "-device", "isa-debugcon,iobase=0xe9,chardev=ktap",
           "-chardev", "file,id=l2con,path=" + l2_log_path,
           "-device", "isa-debugcon,iobase=0xeb,chardev=l2con"]
    timeout = int(os.environ.get("RIG_TIMEOUT", meta["timeout"]))
    if interactive:
        return subprocess.call(cmd) == 0, [], None
    progress("==> %s: booting L0 (timeout %ds, log %s)" % (label, timeout, os.path.relpath(log_path, ROOT)))
    start = time.monotonic()
    timed_out = False
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        os.set_blocking(proc.stdout.fileno(), False)
        while True:
            chunk = None
            try:
                chunk = proc.stdout.read()
            except BlockingIOError:
                pass
            if chunk:
                log.write(chunk)
                log.flush()
                if console:
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.flush()
            if proc.poll() is not None and not chunk:
                break
            if time.monotonic() - start > timeout:
                timed_out = True
                regs = os.path.join(LOGS, label + ".l0-cpus.txt")
                if monitor and dump_l0_cpus(monitor, regs):
                    progress("    %s: hung; L1's vCPU registers in %s" % (label, os.path.relpath(regs, ROOT)))
                threads = os.path.join(LOGS, label + ".l0-threads.txt")
                if dump_l0_threads(proc.pid, threads):
                    progress("    %s: L0's threads in %s" % (label, os.path.relpath(threads, ROOT)))
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
            time.sleep(0.05)
    elapsed = time.monotonic() - start
    # One log for every layer: L1's console, then L2's.
    if os.path.exists(l2_log_path):
        with open(log_path, "ab") as log, open(l2_log_path, "rb") as l2:
            log.write(b"\n==== L2 console ====\n" + l2.read())
        os.unlink(l2_log_path)
    lines = []
    if os.path.exists(ktap_path):
        # Serial ttys on the way may have turned each newline into CR LF
        # (twice, through two layers): CRs are noise here.
        with open(ktap_path, "rb") as f:
            lines = f.read().decode(errors="replace").replace("\r", "").split("\n")
        while lines and not lines[-1]:
            lines.pop()
    # Only the KTAP document: from its version line on.
    for i, line in enumerate(lines):
        if line.startswith("KTAP version") or line.startswith("TAP version"):
            lines = lines[i:]
            break
    plan = next((l for l in lines if re.match(r"^1\.\.\d+$", l)), None)
    top = [l for l in lines if re.match(r"^(ok|not ok) \d+", l)]
    problem = None
    if timed_out:
        problem = "timed out after %ds" % timeout
    elif plan is None:
        problem = "no KTAP from the guest (crashed or failed to boot?)"
    elif int(plan[3:]) != len(top):
        problem = "plan says %s tests, %d reported" % (plan[3:], len(top))
    elif any(l.strip().startswith("Bail out!") for l in lines):
        problem = "bailed out"
    if problem:
        if not lines:
            lines = ["KTAP version 1", "1..0"]
        lines.append("not ok %d rig_completion # %s; log: %s" % (len(top) + 1, problem,
                                                                 os.path.relpath(log_path, ROOT)))
    _, failed, _ = count_leaves(lines)
    ok = failed == 0 and problem is None
    progress("    %s: %s in %ds%s" % (label, "ok" if ok else "FAILED", elapsed,
                                     "" if ok else " (log: %s)" % os.path.relpath(log_path, ROOT)))
    return ok, lines, problem


SAMPLE = re.compile(r"^\s*# sample (\S+) (.*)$")


def number(text):
    try:
        return float(text)
    except ValueError:
        return None


def bench_tables(name, lines):
    """The tables of a benchmark scenario, computed here from its samples.

    A benchmark prints one record per run and configuration,
    `# sample TABLE key=value ...`: fields with a numeric value are
    measurements (ratios within one run included), the others name the
    row (the VMM, the operation). For each TABLE, a row per distinct row
    name in the order first seen, with the median over the runs of each
    measurement and the number of runs. Written to build/bench/NAME.TABLE.tsv;
    returned as KTAP comment lines for the scenario's output, followed, for a
    table of several runs, by the same rows with each measurement's spread
    (smallest..largest over the runs).
    """
    tables = {}
    for line in lines:
        m = SAMPLE.match(line)
        if not m:
            continue
        fields = [f.split("=", 1) for f in m.group(2).split() if "=" in f]
        row = tuple((k, v) for k, v in fields if number(v) is None)
        cols = tables.setdefault(m.group(1), {"order": [], "rows": {}, "measures": []})
        if row not in cols["rows"]:
            cols["order"].append(row)
            cols["rows"][row] = {}
        for k, v in fields:
            x = number(v)
            if x is None:
                continue
            if k not in cols["measures"]:
                cols["measures"].append(k)
            cols["rows"][row].setdefault(k, []).append(x)
    out = []
    os.makedirs(os.path.join(BUILD, "bench"), exist_ok=True)
    for table, t in tables.items():
        keys = [k for k, _ in t["order"][0]] if t["order"] else []
        head = keys + ["runs"] + t["measures"]
        body = summarised(t, lambda xs: cell(statistics.median(xs)))
        with open(os.path.join(BUILD, "bench", "%s.%s.tsv" % (name, table)), "w") as f:
            for cells in [head] + body:
                f.write("\t".join(cells) + "\n")
        out += format_table("%s: medians over runs (run.py, from the samples above)" % table,
                            len(keys), [head] + body)
        spread = summarised(t, lambda xs: "%s..%s" % (cell(min(xs)), cell(max(xs))))
        if any(int(cells[len(keys)]) > 1 for cells in spread):
            out += format_table("%s: spread over runs (smallest..largest)" % table, len(keys),
                                [head] + spread)
    return out


def summarised(t, summary):
    """A table's rows as cells: each row's names, its number of runs, then
    `summary` of each measurement's values over the runs ("-" for none)."""
    rows = []
    for row in t["order"]:
        vals = t["rows"][row]
        runs = max((len(v) for v in vals.values()), default=0)
        rows.append([v for _, v in row] + [str(runs)] +
                    [summary(vals[k]) if k in vals else "-" for k in t["measures"]])
    return rows


def cell(x):
    """A measurement as the bench tables print it."""
    return "%d" % x if x == int(x) and abs(x) >= 100 else "%.4g" % x


def format_table(title, keys, rows):
    """KTAP comment lines of a table: `keys` left-aligned name columns, then
    right-aligned numbers."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["# " + title]
    for cells in rows:
        out.append("# " + "  ".join(c.rjust(w) if i >= keys else c.ljust(w)
                                     for i, (c, w) in enumerate(zip(cells, widths))))
    return out


def run_scenario(name, meta, kernel, initrd, console=False):
    """Boots a scenario; with RIG_RETRIES=N (default 0), boots it again up
    to N times when the rig itself gave no verdict.

    A run that ends without a complete KTAP document (timeout, no plan,
    fewer results than planned) is the rig failing: an L1 or L2 that died or
    hung. Since the rig's L0 carries the fixes in tests/rig/l0-qemu/ and L1
    uses shadow paging, that is a failure someone must look at, so nothing
    is retried by default. A retry, when asked for, is stated in the KTAP
    and the first attempt's log is kept; a test that reports `not ok` is
    never retried.
    """
    attempts = 1 + int(os.environ.get("RIG_RETRIES", "0"))
    notes = []
    for attempt in range(1, attempts + 1):
        ok, lines, problem = boot_scenario(name, meta, kernel, initrd, console)
        if problem is None or attempt == attempts:
            break
        kept = os.path.join(LOGS, "%s.attempt%d.log" % (name, attempt))
        os.replace(os.path.join(LOGS, name + ".log"), kept)
        notes.append("# rig: attempt %d gave no verdict (%s); log kept as %s; retrying"
                     % (attempt, problem, os.path.relpath(kept, ROOT)))
        progress("    %s: retrying (%s)" % (name, problem))
    if notes:
        at = 2 if lines and lines[0].startswith(("KTAP", "TAP")) else 0
        lines = lines[:at] + notes + lines[at:]
    return ok, lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*", help="scenario names (default: host unit tests and all scenarios)")
    ap.add_argument("--kernel", help="rig kernel bzImage")
    ap.add_argument("--initrd", help="L1 initramfs")
    ap.add_argument("--debug-kernel", help="debug kernel bzImage (the NAME@debug scenarios)")
    ap.add_argument("--debug-initrd", help="L1 initramfs of the debug kernel")
    ap.add_argument("--no-host", action="store_true", help="skip the cargo unit tests")
    ap.add_argument("--console", action="store_true", help="copy the console to stdout")
    ap.add_argument("--interactive", action="store_true", help="attach the terminal (make shell)")
    ap.add_argument("--list", action="store_true", help="list scenarios and exit")
    args = ap.parse_args()

    if args.list:
        for n in sorted(n[:-3] for n in os.listdir(SCENARIOS) if n.endswith(".sh")):
            print("%-24s %s" % (n, scenario_meta(n)["doc"]))
        return 0

    # NAME@debug: scenario NAME again on the debug kernel (tests/debug.config)
    # as L1 and L2, for the scenarios whose header says "# debug: TIMEOUT".
    names = args.scenarios or all_scenarios()
    if not args.scenarios:
        metas = {n: scenario_meta(n) for n in names}
        names += [n + "@debug" for n, m in metas.items() if m["debug"] and not m["debug_by_name"]]
    for n in names:
        base, _, flavour = n.partition("@")
        meta = scenario_meta(base)
        if meta is None or flavour not in ("", "debug") or (flavour and not meta["debug"]):
            print("error: no scenario '%s' (see --list)" % n, file=sys.stderr)
            return 2
    if args.interactive:
        ok, _, _ = boot_scenario(names[0], scenario_meta(names[0]), args.kernel, args.initrd, interactive=True)
        return 0 if ok else 1
    if not (args.kernel and args.initrd):
        print("error: --kernel and --initrd are required (use make test)", file=sys.stderr)
        return 2

    suites = []
    if not args.scenarios and not args.no_host:
        suites.append(("host_unit", None))
        suites.append(("fuzz", None))
        suites.append(("module_builds", None))
    for n in names:
        base, _, flavour = n.partition("@")
        meta = dict(scenario_meta(base))
        if flavour:
            meta["timeout"] = meta["debug"]
            if not (args.debug_kernel and args.debug_initrd):
                meta["skip"] = "no debug kernel given (--debug-kernel, --debug-initrd: make test)"
        suites.append((n, meta))

    print("KTAP version 1")
    print("1..%d" % len(suites), flush=True)
    totals = [0, 0, 0]
    for i, (name, meta) in enumerate(suites, 1):
        if meta is None:
            ok, lines = {"host_unit": host_unit_tests, "fuzz": fuzz_smoke,
                         "module_builds": module_build_checks}[name]()
        elif meta["skip"]:
            ok, lines = True, None
            progress("==> %s: SKIP %s" % (name, meta["skip"]))
        else:
            debug = name.endswith("@debug")
            ok, lines = run_scenario(name, meta, args.debug_kernel if debug else args.kernel,
                                     args.debug_initrd if debug else args.initrd, console=args.console)
            if meta["bench"]:
                lines = lines + bench_tables(name, lines)
        if lines is None:
            print("ok %d %s # SKIP %s" % (i, name, meta["skip"]))
            totals[2] += 1
            continue
        print("    # Subtest: %s" % name)
        print("\n".join(indent(lines)))
        print("%s %d %s" % ("ok" if ok else "not ok", i, name), flush=True)
        p, f, s = count_leaves(lines)
        totals[0] += p
        totals[1] += f
        totals[2] += s
    print("# totals: %d passed, %d failed, %d skipped" % tuple(totals))
    print("%d passed, %d failed, %d skipped" % tuple(totals))
    return 1 if totals[1] else 0


if __name__ == "__main__":
    sys.exit(main())
