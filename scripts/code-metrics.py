#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Structure metrics of the tree at a git revision (default: the working
tree), for before/after tables in closing notes and reviews:

  unsafe sites per KLOC   `unsafe {`, `unsafe fn`, `unsafe impl`, `unsafe
                          extern` in rust/ and vmm/ (comments excluded),
                          per thousand non-blank lines
  C shim functions        non-static functions defined in rust/hv_shim.c
  largest files           the five largest .rs files of rust/ and vmm/src
  import circles          cycles between rust/'s top-level modules (a
                          module is a top-level file with its directory),
                          from `crate::MODULE` paths; bus/'s inner ones
                          are inside one module and not counted
  KTAP writers            implementations of a KTAP writer, and literal
                          plans (`1..N`) written by hand
  log-wording checks      rig checks and kselftests that look for
                          hv_guest's or hvhost's own messages in hvhost's
                          log or a kernel log (dmesg, the guest console)

    scripts/code-metrics.py [REV]
"""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def files_at(rev):
    """{path: text} of the tracked files at REV (None: the working tree)."""
    if rev is None:
        names = subprocess.run(["git", "ls-files"], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                               check=True).stdout.split()
        out = {}
        for n in names:
            p = os.path.join(ROOT, n)
            if os.path.isfile(p):
                with open(p, errors="replace") as f:
                    out[n] = f.read()
        return out
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev], cwd=ROOT,
                           stdout=subprocess.PIPE, text=True, check=True).stdout.split()
    out = {}
    for n in names:
        if n.endswith((".rs", ".c", ".h", ".sh", ".py")) or "/scenarios/" in n:
            out[n] = subprocess.run(["git", "show", "%s:%s" % (rev, n)], cwd=ROOT,
                                    stdout=subprocess.PIPE, text=True, errors="replace").stdout
    return out


def strip_comments(text):
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def unsafe_per_kloc(files, prefix):
    sites = lines = 0
    for n, t in files.items():
        if n.startswith(prefix) and n.endswith(".rs"):
            code = strip_comments(t)
            sites += len(re.findall(r"\bunsafe\s*(\{|fn\b|impl\b|extern\b)", code))
            lines += sum(1 for line in code.splitlines() if line.strip())
    return sites, lines, 1000.0 * sites / max(lines, 1)


def shim_functions(files):
    text = files.get("rust/hv_shim.c", "")
    return len(re.findall(r"^(?!static)[a-z][\w \*]*\bhvg_\w+\([^;]*\)\s*$", text, re.M))


def largest(files):
    sizes = [(t.count("\n"), n) for n, t in files.items()
             if n.endswith(".rs") and (n.startswith("rust/") or n.startswith("vmm/src/"))]
    return sorted(sizes, reverse=True)[:5]


def module_of(path):
    rel = path[len("rust/"):]
    top = rel.split("/", 1)[0]
    return top[:-3] if top.endswith(".rs") else top


def import_circles(files):
    mods = {}
    for n, t in files.items():
        if n.startswith("rust/") and n.endswith(".rs"):
            m = module_of(n)
            deps = set(re.findall(r"crate::(\w+)", strip_comments(t)))
            # `use crate::{a, b}` groups
            for group in re.findall(r"crate::\{([^}]*)\}", strip_comments(t)):
                deps |= set(re.findall(r"^\s*(\w+)", g)[0] for g in group.split(",") if g.strip())
            mods.setdefault(m, set()).update(d for d in deps if d != m)
    known = set(mods)
    graph = {m: {d for d in ds if d in known} for m, ds in mods.items()}
    cycles = set()

    def walk(start, node, path):
        for d in graph.get(node, ()):
            if d == start:
                cyc = path[:]
                i = cyc.index(min(cyc))
                cycles.add(tuple(cyc[i:] + cyc[:i]))
            elif d not in path and d > start:
                walk(start, d, path + [d])

    for m in sorted(graph):
        walk(m, m, [m])
    return sorted(cycles)


def ktap_writers(files):
    """(implementations of a KTAP writer, hand-written plans): a writer is
    code that formats results as KTAP for others to call (the kernel's
    kselftest headers count once); a hand-written plan is a literal `1..N`
    in a test script or program."""
    impl = set()
    plans = []
    for n, t in files.items():
        if not n.startswith(("rust/", "tests/", "vmm/")):
            continue
        # Shell that prints results itself (lib.sh's rig_check did, before it
        # called ktap_helpers.sh); C or Rust with a result formatter of its own.
        if re.search(r"static inline void hv_ktap_result|^struct Ktap\b|"
                     r'^\s*echo "(not )?ok \$|^def (count_leaves|host_unit_tests)', t, re.M):
            impl.add(n)
        if re.search(r"^\s*\. .*ktap_helpers\.sh", t, re.M):
            impl.add("ktap_helpers.sh (the kernel's)")
        if re.search(r'#include "(\.\./)*kselftest(_harness)?\.h"|#include <kselftest', t):
            impl.add("kselftest.h/kselftest_harness.h (the kernel's)")
        if n.endswith((".sh", ".c")):
            for i, line in enumerate(t.splitlines(), 1):
                if re.search(r'"1\.\.[0-9]', line):
                    plans.append("%s:%d" % (n, i))
    return sorted(impl), plans


LOG_GREP = re.compile(r"grep[^|\n]*['\"][^'\"]*(vmbus: |heartbeat: |shutdown: |hv_guest: |closing it|"
                      r"hvhost: error|exits:|relid [0-9\[])[^'\"]*['\"][^|\n]*(\$e|hvhost\.err|dmesg|\$c\b|console)"
                      r"|dmesg[^\n]*\|\s*grep[^|\n]*-[qc][^|\n]*['\"][^'\"]*(vmbus: |hv_guest|relid|bad packet)")


RECORD = re.compile(r"'hv_guest: [a-z]+_[a-z_]+ '")

C_LOG_GREP = re.compile(r'strstr\([a-z_]*log[a-z_]*[^,]*, "[^"]*(hv_guest|vmbus)')


def log_wording_checks(files):
    hits = []
    for n, t in files.items():
        if n.startswith("tests/selftests/") and n.endswith(".c"):
            for i, line in enumerate(t.splitlines(), 1):
                if C_LOG_GREP.search(line) or re.search(r'want_log|"vmbus: Vmbus version', line):
                    hits.append("%s:%d" % (n, i))
        if n.startswith("tests/rig/") and n.endswith(".sh"):
            for i, line in enumerate(t.splitlines(), 1):
                if line.lstrip().startswith("#"):
                    continue
                # hv_guest's key=value records ("hv_guest: KIND k=v"), read
                # by kind, are data, not wording.
                if RECORD.search(line):
                    continue
                if LOG_GREP.search(line) and re.search(r"grep[^|\n]*-[qc]|\[ |rig_check|&&|\|\|", line):
                    hits.append("%s:%d" % (n, i))
    return hits


def main():
    rev = sys.argv[1] if len(sys.argv) > 1 else None
    files = files_at(rev)
    print("revision: %s" % (rev or "working tree"))
    for prefix in ("rust/", "vmm/"):
        s, l, k = unsafe_per_kloc(files, prefix)
        print("unsafe sites %-6s %4d in %5d lines: %.1f per KLOC" % (prefix, s, l, k))
    print("C shim functions: %d" % shim_functions(files))
    print("largest files: %s" % ", ".join("%s (%d)" % (n, c) for c, n in largest(files)))
    cycles = import_circles(files)
    print("import circles in rust/ (between top-level modules): %d%s" % (
        len(cycles), "".join("\n    " + " -> ".join(c + (c[0],)) for c in cycles)))
    w, plans = ktap_writers(files)
    print("KTAP writer implementations: %d%s" % (len(w), "".join("\n    " + n for n in w)))
    print("hand-written KTAP plans: %d" % len(plans))
    h = log_wording_checks(files)
    print("checks grepping log wording: %d%s" % (len(h), "".join("\n    " + x for x in h)))


if __name__ == "__main__":
    main()
