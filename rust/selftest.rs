// SPDX-License-Identifier: GPL-2.0

//! What only the selftest build of `hv_guest.ko` has (`make module
//! SELFTEST=1`, the Rust cfg `hv_guest_selftest`; the production module
//! has none of it, and `make test` checks that on the built file):
//!
//! - [`contract`]: the in-module contract tests and benchmarks, which
//!   drive the hosts' test device (port 0x3000) and consume SINT 5
//!   (debugfs `contract`: commands when written, key=value result records when read);
//! - [`misbehave`]: a guest that breaks the VMBus protocol on purpose, to
//!   test hosts (debugfs `vmbus/misbehave`);
//! - [`hostfuzz`]: a guest that fuzzes its host (`contract` command
//!   `fuzz SEED OPS`);
//! - and in the drivers' layer, `crate::drivers::perf`: the driver of
//!   hvhost's benchmark sink, with its `perf` file in its device's
//!   directory.

pub(crate) mod contract;
pub(crate) mod hostfuzz;
pub(crate) mod misbehave;

use core::fmt::{self, Formatter};

use kernel::debugfs::File;
use kernel::prelude::*;
use kernel::sync::{new_mutex, Arc, Mutex};
use kernel::uaccess::UserSliceReader;

use crate::control::{read_command, show_report};
use crate::debugfs::{DebugData, Dirs};
use contract::{BenchPhase, Peer, Suite};

/// The data of a selftest control file: what it acts on, and the report of
/// its last command, whose lock also serializes the commands.
#[pin_data]
pub(crate) struct Control {
    data: Arc<DebugData>,
    #[pin]
    report: Mutex<KVec<u8>>,
}

impl Control {
    fn new(data: &Arc<DebugData>) -> impl PinInit<Self, Error> {
        let data = data.clone();
        try_pin_init!(Self {
            data,
            report <- new_mutex!(KVec::new(), "hv_guest_selftest_report"),
        }? Error)
    }
}

/// The selftest files; dropping this removes them.
pub(crate) struct Files {
    _contract: Pin<KBox<File<Control>>>,
    _misbehave: Pin<KBox<File<Control>>>,
}

/// Creates `contract` and `vmbus/misbehave` in `dirs`.
pub(crate) fn create_files(dirs: &Dirs, data: &Arc<DebugData>) -> Result<Files> {
    Ok(Files {
        _contract: KBox::pin_init(
            dirs.root.read_write_callback_file(
                c"contract",
                Control::new(data),
                &show_control,
                &run_contract,
            ),
            GFP_KERNEL,
        )?,
        _misbehave: KBox::pin_init(
            dirs.vmbus.read_write_callback_file(
                c"misbehave",
                Control::new(data),
                &show_control,
                &run_misbehave,
            ),
            GFP_KERNEL,
        )?,
    })
}

fn show_control(c: &Control, f: &mut Formatter<'_>) -> fmt::Result {
    show_report(&c.report, f)
}

/// Writing `run` runs the contract tests expecting the TLFS's answers,
/// `run qemu` also accepting QEMU+KVM's documented ones, `traffic` only a
/// message echo and an event on every CPU, `statuses` and `roundtrip`
/// the two halves of `run`, `hostile` hvhost's fault injection (see
/// [`contract`]), `bench PHASE` one benchmark phase (in the writer's
/// context; one run at a time), `fuzz SEED OPS` the guest fuzzer
/// ([`hostfuzz`]).
fn run_contract(c: &Control, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 48];
    let cmd = read_command(reader, &mut buf)?;
    if let Some(args) = cmd.strip_prefix("fuzz ") {
        let (seed, ops) = args.trim().split_once(' ').ok_or(EINVAL)?;
        let seed: u64 = seed.trim().parse().map_err(|_| EINVAL)?;
        let ops: u32 = ops.trim().parse().map_err(|_| EINVAL)?;
        let mut out = c.report.lock();
        *out = hostfuzz::run(&c.data.core.hypercalls, seed, ops)?;
        return Ok(());
    }
    let (peer, suite) = match cmd {
        "run" => (Peer::Tlfs, Suite::All),
        "run qemu" => (Peer::Qemu, Suite::All),
        "traffic" => (Peer::Tlfs, Suite::Traffic),
        "hostile" => (Peer::Tlfs, Suite::Hostile),
        "statuses" => (Peer::Tlfs, Suite::Statuses),
        "roundtrip" => (Peer::Tlfs, Suite::Roundtrip),
        _ => match cmd.strip_prefix("bench ").and_then(BenchPhase::parse) {
            Some(phase) => (Peer::Tlfs, Suite::Bench(phase)),
            None => return Err(EINVAL),
        },
    };
    let mut out = c.report.lock();
    let core = &c.data.core;
    *out = contract::run(&core.hypercalls, core.synic.synic(), peer, suite)?;
    Ok(())
}

/// Writing a command makes the VMBus client break the protocol on purpose
/// (see [`misbehave`]); `ENODEV` without VMBus.
fn run_misbehave(c: &Control, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 64];
    let cmd = read_command(reader, &mut buf)?;
    let vmbus = c.data.vmbus.as_ref().ok_or(ENODEV)?;
    let mut out = c.report.lock();
    misbehave::run(vmbus.bus(), cmd, &mut out)
}
