# SPDX-License-Identifier: GPL-2.0
#
# hvguest / hvhost. The two commands a user needs:
#   make run    set everything up, boot a Hyper-V guest, load hv_guest.ko, show what it found
#   make test   set everything up, run every test, print KTAP and "N passed, N failed, N skipped"
# and: make shell (interactive guest), make test T=scenario (one scenario),
# make list (scenarios). Kernel builds are cached in ~/.cache/hvguest.
#
# The kernel's out-of-tree module build reads ./Kbuild, not this file.

SHELL := /bin/bash
ROOT := $(CURDIR)
BUILD ?= $(ROOT)/build
export HVGUEST_BUILD := $(BUILD)
CACHE := $(or $(HVGUEST_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/hvguest)
export HVGUEST_CACHE := $(CACHE)
KSRC := $(CACHE)/src/linux
RUSTC_KERNEL := /usr/bin/rustc
CLIPPY_KERNEL := /usr/bin/clippy-driver
BINDGEN := $(HOME)/.cargo/bin/bindgen
KDIR = $$(cat $(BUILD)/kdir)
DEBUGDIR = $$(cat $(BUILD)/debugdir)
# hvhost goes into the rig's initramfs, so it is linked statically.
HVHOST := $(ROOT)/target/x86_64-unknown-linux-gnu/release/hvhost

.PHONY: all setup kernel module module-selftest module-debug selftests hvhost l0-qemu rig test run shell bench fuzz fuzz-merge list host-test clean

all: module

setup:
	@bash scripts/setup-host.sh

# The rig kernel (L1 and L2 alike), the reference guest (Linux's own
# Hyper-V drivers, the peer for hvhost) and the debug kernel (the rig's
# with KASAN, lockdep, kmemleak, UBSAN..., and no KVM_HYPERV: L1 and L2 of
# the "@debug" scenarios); their cached build directories are recorded in
# build/kdir, build/refdir and build/debugdir for the steps below.
kernel: setup
	@mkdir -p $(BUILD)
	@bash scripts/build-kernel.sh rig >$(BUILD)/kdir.tmp && mv $(BUILD)/kdir.tmp $(BUILD)/kdir
	@bash scripts/build-kernel.sh ref >$(BUILD)/refdir.tmp && mv $(BUILD)/refdir.tmp $(BUILD)/refdir
	@bash scripts/build-kernel.sh debug >$(BUILD)/debugdir.tmp && mv $(BUILD)/debugdir.tmp $(BUILD)/debugdir

# hv_guest.ko and hv_guest_kunit.ko, linted by the kernel's clippy setup
# (Debian's clippy matches its rustc-web) with warnings as errors: the
# kernel's lints, undocumented_unsafe_blocks among them, check every build.
# SELFTEST=1 builds the selftest variant (rust/selftest/: contract tests,
# test-device client, misbehaviour, benchmark driver) into
# build/module-selftest; the production build has none of it.
# The module is built with the kernel's own C compiler (.hvguest-cc in its
# build directory: clang for the debug kernel). module-debug builds both
# variants for the debug kernel, into build/module-debug and
# build/module-selftest-debug (no clippy there: the same code is linted
# above).
MODULE_DIR = $(BUILD)/module$(if $(filter 1,$(SELFTEST)),-selftest)
KCC = $$(cat $(1)/.hvguest-cc 2>/dev/null || echo gcc)
module: kernel
	@echo "==> building hv_guest.ko$(if $(filter 1,$(SELFTEST)), (selftest build)) and hv_guest_kunit.ko (clippy, -Dwarnings)" >&2
	@$(MAKE) -s -C $(KDIR) M=$(ROOT) MO=$(MODULE_DIR) CC=$(call KCC,$(KDIR)) RUSTC=$(RUSTC_KERNEL) BINDGEN=$(BINDGEN) \
		CLIPPY=1 CLIPPY_DRIVER=$(CLIPPY_KERNEL) KRUSTFLAGS=-Dwarnings HV_GUEST_SELFTEST=$(if $(filter 1,$(SELFTEST)),1,0)

module-selftest: kernel
	@$(MAKE) -s module SELFTEST=1

module-debug: kernel
	@echo "==> building hv_guest.ko (production and selftest builds) for the debug kernel" >&2
	@$(MAKE) -s -C $(DEBUGDIR) M=$(ROOT) MO=$(BUILD)/module-debug CC=$(call KCC,$(DEBUGDIR)) RUSTC=$(RUSTC_KERNEL) \
		BINDGEN=$(BINDGEN) KRUSTFLAGS=-Dwarnings HV_GUEST_SELFTEST=0
	@$(MAKE) -s -C $(DEBUGDIR) M=$(ROOT) MO=$(BUILD)/module-selftest-debug CC=$(call KCC,$(DEBUGDIR)) RUSTC=$(RUSTC_KERNEL) \
		BINDGEN=$(BINDGEN) KRUSTFLAGS=-Dwarnings HV_GUEST_SELFTEST=1

selftests: setup
	@mkdir -p $(BUILD)/selftests
	@$(MAKE) -s -C tests/selftests/hv_guest KSFT_DIR=$(KSRC)/tools/testing/selftests OUTPUT=$(BUILD)/selftests
	@cp $(KSRC)/tools/testing/selftests/kselftest/ktap_helpers.sh $(BUILD)/selftests/

hvhost: setup
	@echo "==> building hvhost (static)" >&2
	@RUSTFLAGS='-C target-feature=+crt-static' cargo build -q --release -p hvhost --target x86_64-unknown-linux-gnu

# L0 of the rig: Debian's QEMU with the fixes to TCG's nested SVM in
# tests/rig/l0-qemu/ (cached); its path goes to build/l0-qemu for run.py.
l0-qemu: setup
	@mkdir -p $(BUILD)
	@bash scripts/build-l0-qemu.sh >$(BUILD)/l0-qemu.tmp && mv $(BUILD)/l0-qemu.tmp $(BUILD)/l0-qemu

rig: module module-selftest module-debug selftests hvhost l0-qemu
	@gcc -O2 -Wall -o $(BUILD)/tsc-khz tests/rig/tsc_khz.c
	@echo "==> building the rig's initramfs images" >&2
	@bash tests/rig/mkinitramfs.sh $(KDIR) $(BUILD)/module/rust $(BUILD)/module-selftest/rust $(BUILD)/selftests $(BUILD)/rig $(HVHOST) $$(cat $(BUILD)/refdir)/arch/x86/boot/bzImage
	@bash tests/rig/mkinitramfs.sh $(DEBUGDIR) $(BUILD)/module-debug/rust $(BUILD)/module-selftest-debug/rust $(BUILD)/selftests $(BUILD)/rig-debug $(HVHOST) $$(cat $(BUILD)/refdir)/arch/x86/boot/bzImage

RUN_PY = python3 tests/run.py --kernel $(KDIR)/arch/x86/boot/bzImage --initrd $(BUILD)/rig/l1.cpio \
	--debug-kernel $(DEBUGDIR)/arch/x86/boot/bzImage --debug-initrd $(BUILD)/rig-debug/l1.cpio

test: rig
	@$(RUN_PY) $(T)

run: rig
	@$(RUN_PY) --no-host run

shell: rig
	@$(RUN_PY) --interactive shell

# Benchmarks (not tests): ratios and counts measured in one rig run.
bench: rig
	@$(RUN_PY) --no-host bench_exits bench_hypercalls bench_vmbus bench_storage bench_stream
	@/usr/bin/python3 bench/plot_storage.py $(BUILD)/bench bench/storage.png
	@/usr/bin/python3 bench/plot_stream.py $(BUILD)/bench bench/stream.png

# The cargo-fuzz targets (fuzz/, harnesses in vmm/src/fuzzing/): each for
# SECONDS (default 60), or RUNS inputs, from the committed corpus;
# TARGETS="a b" for some. fuzz-merge folds what they found into fuzz/corpus.
fuzz: setup
	@bash scripts/fuzz.sh -t $(or $(SECONDS),60) $(if $(RUNS),-r $(RUNS)) $(TARGETS)

fuzz-merge: setup
	@bash scripts/fuzz.sh --merge $(TARGETS)

list:
	@python3 tests/run.py --list

host-test:
	cargo test --workspace

clean:
	rm -rf $(BUILD) target
