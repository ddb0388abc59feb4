// SPDX-License-Identifier: GPL-2.0

//! Assembles a VM from a [`VmConfig`] and runs it: the one place that shows, in order,
//! everything a VM is made of.
//!
//! Order matters in three places: files are loaded into guest RAM before KVM is touched
//! (so that "not a kernel" is reported on any host); the irqchip exists before vCPUs are
//! created (KVM requires it); and termination signals are blocked before the first thread
//! starts (the timer thread, VMBus, the vCPUs inherit the mask, so only the event loop
//! sees them).

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread;

use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use crate::acpi::{AcpiDevice, AcpiTables, DsdtBuilder, Hid, Resource};
use crate::api::{self, ApiServer, Request};
use crate::boot::{self, BootError, BootParamsInput};
use crate::cli::{SerialTarget, VmConfig, VmbusFault};
use crate::console::{ConsoleError, RawTerminal, SignalFd, TERMINATION_SIGNALS};
use crate::control::{VmControl, VmExitReason};
use crate::cpuid;
use crate::devices::acpi_pm::{AcpiPmDevice, ACPI_PM_BASE, ACPI_PM_LEN};
use crate::devices::cmos::{Cmos, CMOS_BASE, CMOS_LEN};
use crate::devices::debugcon::{DebugConsole, DebugconInput, DEBUGCON_PORT};
use crate::devices::hv_testdev::{HvTestDev, HV_TESTDEV_PORT};
use crate::devices::i8042::{I8042Reset, I8042_COMMAND_PORT};
use crate::devices::serial::{
    SerialDevice, SerialOutput, COM1_BASE, COM1_GSI, COM1_LEN, COM2_BASE, COM2_GSI,
};
use crate::devices::{MmioBus, PioBus};
use crate::event_loop::{self, InputSource, SerialInput};
use crate::hyperv::msrs::VpHv;
use crate::hyperv::{Partition, TrampolinePort, HYPERCALL_PORT};
use crate::loader::{self, LoadError};
use crate::memory::MemoryLayout;
use crate::sandbox::seccomp::{self, SeccompError, ThreadClass};
use crate::sandbox::user::{User, UserError};
use crate::vmbus::server::Faults;
use crate::vmbus::{Vmbus, VmbusConfig};
use crate::vstate::activity::VcpuActivity;
use crate::vstate::tsc::TscRate;
use crate::vstate::vcpu::{BootEntry, ExitStats, Vcpu, VcpuContext};
use crate::vstate::vm::Vm;
use crate::vstate::{self, VcpuThread, VstateError};

/// Result type of [`run`] and the builder's steps.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can stop hvhost from building or starting a VM: the builder's own
/// failures, and each module's error passed through unchanged.
///
/// Every message reads as a sentence fragment that can follow "hvhost: error: " and names the
/// thing that failed (a file, an ioctl, a guest address) so that the user can act on it
/// without a backtrace. Errors that end a *running* VM are not here: they are
/// [`VmExitReason`]s, because the guest, not the host, caused them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The seccomp filters could not be set up.
    #[error(transparent)]
    Seccomp(#[from] SeccompError),

    /// `--user` cannot be honoured.
    #[error(transparent)]
    User(#[from] UserError),

    /// More vCPUs were asked for than KVM allows.
    #[error("{requested} vCPUs were requested but this KVM supports at most {max}")]
    TooManyVcpus {
        /// `--cpus`.
        requested: u8,
        /// KVM_CAP_MAX_VCPUS (or NR_VCPUS).
        max: usize,
    },

    /// An output file (serial, debug console) could not be created.
    #[error("cannot create {what} output file {}: {source}", path.display())]
    OutputFile {
        /// What the file is for, e.g. "debug console".
        what: &'static str,
        /// The path as given.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// A host OS call failed.
    #[error("cannot {what}: {source}")]
    Os {
        /// What hvhost tried to do, as a verb phrase.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// A UART (COM1, COM2) could not be set up.
    #[error("cannot {what} of {port}: {source}")]
    Uart {
        /// Which, e.g. "COM2".
        port: &'static str,
        /// What hvhost tried to do, as a verb phrase.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// A vCPU thread could not be started.
    #[error("cannot start the thread of vCPU {vcpu}: {source}")]
    SpawnVcpu {
        /// Index of the vCPU.
        vcpu: u8,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// The kernel, initrd or command line could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),

    /// The boot structures could not be built or written.
    #[error(transparent)]
    Boot(#[from] BootError),

    /// The terminal or the termination signals could not be set up.
    #[error(transparent)]
    Console(#[from] ConsoleError),

    /// KVM (the VM, its memory slots, its vCPUs) could not be set up.
    #[error(transparent)]
    Vstate(#[from] VstateError),

    /// VMBus could not start.
    #[error(transparent)]
    Vmbus(#[from] crate::vmbus::worker::VmbusError),

    /// The control socket could not be served.
    #[error(transparent)]
    Api(#[from] crate::api::ApiError),

    /// Guest memory could not be laid out or mapped.
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),

    /// Building the ACPI tables failed.
    #[error("cannot build the ACPI tables: {0}")]
    Acpi(#[from] crate::acpi::AcpiError),

    /// Two devices claim the same port or MMIO range.
    #[error("cannot map a device: {0}")]
    Bus(#[from] crate::devices::BusError),
}

impl Error {
    /// Shorthand for [`Error::Os`].
    pub fn os(what: &'static str, source: io::Error) -> Self {
        Error::Os { what, source }
    }
}

fn eventfd(what: &'static str) -> Result<EventFd> {
    EventFd::new(libc::EFD_NONBLOCK).map_err(|e| Error::os(what, e))
}

fn create_output(what: &'static str, path: &Path, append: bool) -> Result<File> {
    let mut opts = OpenOptions::new();
    opts.create(true);
    if append {
        opts.append(true);
    } else {
        opts.write(true).truncate(true);
    }
    opts.open(path).map_err(|source| Error::OutputFile {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// The DSDT's devices: COM1, and the VMBus root device (`_HID "VMBUS"` with an empty
/// `_CRS`, which Linux's driver requires) when VMBus is on.
fn dsdt(vmbus: bool) -> std::result::Result<DsdtBuilder, crate::acpi::AcpiError> {
    let mut dsdt = DsdtBuilder::new();
    dsdt.add_device(
        AcpiDevice::new("COM1", Hid::eisa("PNP0501")?)?
            .uid(1)
            .resource(Resource::Io {
                base: COM1_BASE,
                len: COM1_LEN as u8,
            })
            .resource(Resource::Interrupt {
                gsi: COM1_GSI,
                edge: true,
                active_low: false,
            }),
    );
    if vmbus {
        dsdt.add_device(
            AcpiDevice::new("VMBS", Hid::string("VMBUS")?)?
                .uid(0)
                .with_crs(),
        );
    }
    Ok(dsdt)
}

/// Loads kernel, command line, initrd, ACPI tables and boot structures into `memory`;
/// returns the 64-bit entry point.
fn load_guest(config: &VmConfig, layout: &MemoryLayout, memory: &GuestMemoryMmap) -> Result<u64> {
    let cmdline = loader::parse_cmdline(&config.cmdline)?;
    let kernel = loader::load_kernel(memory, &config.kernel)?;
    log::debug!(
        "kernel loaded: entry {:#x}, end {:#x}, {}",
        kernel.entry,
        kernel.end,
        if kernel.setup_header.is_some() {
            "bzImage"
        } else {
            "ELF"
        }
    );
    let cmdline_size = loader::load_cmdline(memory, &cmdline)?;
    let initrd = match &config.initrd {
        Some(path) => {
            let (addr, size) = loader::load_initrd(memory, path, &kernel, layout.low_ram_end())?;
            log::debug!("initrd loaded at {addr:#x}, {size} bytes");
            Some((addr, size))
        }
        None => None,
    };
    let acpi = AcpiTables::new(config.vcpus, &dsdt(config.vmbus)?)?;
    acpi.write_to(memory)
        .map_err(|source| BootError::GuestMemoryWrite {
            what: "ACPI tables",
            source,
        })?;
    let params = boot::build_boot_params(
        &BootParamsInput {
            setup_header: kernel.setup_header,
            cmdline_size,
            initrd,
            rsdp_addr: acpi.rsdp_addr(),
        },
        &layout.e820_entries(),
    )?;
    boot::write_boot_params(memory, &params)?;
    boot::write_boot_tables(memory)?;
    Ok(kernel.entry)
}

/// The devices and the parts of them the event loop needs.
struct Devices {
    pio: PioBus,
    mmio: MmioBus,
    serial: Arc<Mutex<SerialDevice>>,
    rx_drained: EventFd,
    /// COM2 (`--serial2`), its FIFO-drained event and its socket.
    com2: Option<(Arc<Mutex<SerialDevice>>, EventFd, UnixStream)>,
    /// The debug console's input, which the control socket fills.
    debugcon: Option<DebugconInput>,
}

fn create_devices(
    config: &VmConfig,
    vm: &Vm,
    control: &Arc<VmControl>,
    partition: &Arc<Partition>,
    serial_out: SerialOutput,
    debugcon_out: Option<File>,
) -> Result<Devices> {
    let mut pio = PioBus::new();
    // The hypercall trampoline's port: the run loop serves OUTs to it; the mapping only
    // keeps any device from claiming it.
    pio.insert(
        HYPERCALL_PORT.into(),
        1,
        Arc::new(Mutex::new(TrampolinePort)),
    )?;
    if config.test_device {
        pio.insert(
            HV_TESTDEV_PORT,
            4,
            Arc::new(Mutex::new(HvTestDev::new(partition.clone()))),
        )?;
    }

    let (serial, rx_drained) = create_uart(vm, "COM1", COM1_GSI, serial_out)?;
    pio.insert(COM1_BASE, COM1_LEN, serial.clone())?;
    let com2 = match &config.serial2 {
        Some(path) => {
            let com2 = create_com2(vm, path)?;
            pio.insert(COM2_BASE, COM1_LEN, com2.0.clone())?;
            Some(com2)
        }
        None => None,
    };
    pio.insert(
        ACPI_PM_BASE,
        ACPI_PM_LEN,
        Arc::new(Mutex::new(AcpiPmDevice::new(control.clone()))),
    )?;
    pio.insert(
        I8042_COMMAND_PORT,
        1,
        Arc::new(Mutex::new(I8042Reset::new(control.clone()))),
    )?;
    pio.insert(CMOS_BASE, CMOS_LEN, Arc::new(Mutex::new(Cmos::new())))?;
    let debugcon = match debugcon_out {
        Some(file) => {
            let input = DebugconInput::default();
            pio.insert(
                DEBUGCON_PORT,
                1,
                Arc::new(Mutex::new(DebugConsole::new(Box::new(file), input.clone()))),
            )?;
            Some(input)
        }
        None => None,
    };
    log::debug!(
        "devices: COM1 {COM1_BASE:#x} (GSI {COM1_GSI}), ACPI PM {ACPI_PM_BASE:#x}, \
         8042 {I8042_COMMAND_PORT:#x}, CMOS {CMOS_BASE:#x}, debug console {}, hypercall \
         port {HYPERCALL_PORT:#x}, Hyper-V test device {}",
        if config.debug_console.is_some() {
            "0xe9"
        } else {
            "off"
        },
        if config.test_device { "0x3000" } else { "off" }
    );
    Ok(Devices {
        pio,
        mmio: MmioBus::new(),
        serial,
        rx_drained,
        com2,
        debugcon,
    })
}

/// How long a vCPU may wait to hand COM2's output to a host program that
/// does not read; then the bytes are lost (and that is logged once).
const COM2_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A 16550 called `port` that interrupts on `gsi` and writes to `out`, and
/// the eventfd it signals when the guest empties its receive FIFO.
fn create_uart(
    vm: &Vm,
    port: &'static str,
    gsi: u32,
    out: SerialOutput,
) -> Result<(Arc<Mutex<SerialDevice>>, EventFd)> {
    let err = |what| move |source| Error::Uart { port, what, source };
    let irq = EventFd::new(libc::EFD_NONBLOCK).map_err(err("create the interrupt eventfd"))?;
    vm.register_irqfd(&irq, gsi)?;
    let rx_drained = EventFd::new(libc::EFD_NONBLOCK).map_err(err("create the input eventfd"))?;
    let rx_signal = rx_drained
        .try_clone()
        .map_err(err("clone the input eventfd"))?;
    let serial = SerialDevice::new(irq, rx_signal, out);
    Ok((Arc::new(Mutex::new(serial)), rx_drained))
}

/// COM2 joined to the Unix socket at `path` (a host program's listener).
fn create_com2(vm: &Vm, path: &Path) -> Result<(Arc<Mutex<SerialDevice>>, EventFd, UnixStream)> {
    let stream = UnixStream::connect(path).map_err(|source| Error::OutputFile {
        what: "COM2 (--serial2)",
        path: path.to_path_buf(),
        source,
    })?;
    let out = stream
        .try_clone()
        .map_err(|e| Error::os("clone COM2's socket", e))?;
    out.set_write_timeout(Some(COM2_WRITE_TIMEOUT))
        .map_err(|e| Error::os("set COM2's write timeout", e))?;
    let (serial, rx_drained) = create_uart(vm, "COM2", COM2_GSI, Box::new(out))?;
    log::info!(
        "COM2 ({COM2_BASE:#x}, GSI {COM2_GSI}) is joined to {}",
        path.display()
    );
    Ok((serial, rx_drained, stream))
}

/// The UARTs by name, for `hvctl serial` and the exit report.
type Uarts = Vec<(&'static str, Arc<Mutex<SerialDevice>>)>;

/// One `serial port=...` record per UART, each ending in a newline.
fn uart_records(uarts: &Uarts) -> String {
    uarts
        .iter()
        .map(|(name, uart)| {
            let record = uart
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .record(name);
            format!("{record}\n")
        })
        .collect()
}

/// What the control socket does with a request: a line for the debug
/// console goes to its input, the UARTs' state is read here; VMBus
/// requests go to the VMBus thread.
fn api_handler(
    vmbus: Option<Arc<Vmbus>>,
    debugcon: Option<DebugconInput>,
    uarts: Uarts,
) -> Arc<api::Handler> {
    Arc::new(move |request| match (request, &vmbus, &debugcon) {
        (Request::Serial, _, _) => Ok(uart_records(&uarts).trim_end().to_string()),
        (Request::Debugcon(line), _, Some(input)) => input
            .push_line(&line)
            .map(|()| "queued".into())
            .map_err(|e| e.to_string()),
        (Request::Debugcon(_), _, None) => {
            Err("there is no debug console (--debug-console)".into())
        }
        (Request::DiskAdd(spec), Some(v), _) => v.attach_disk(&spec),
        (request, Some(v), _) => v.control(request),
        (_, None, _) => Err("VMBus is off (--no-vmbus)".into()),
    })
}

/// The VMBus settings from the command line.
fn vmbus_config(config: &VmConfig) -> VmbusConfig {
    let mut faults = Faults::default();
    for f in &config.vmbus_faults {
        match f {
            VmbusFault::MalformedOffer => faults.malformed_offer = true,
            VmbusFault::BogusGpadlReply => faults.bogus_gpadl_reply = true,
            VmbusFault::CorruptRing => faults.corrupt_ring = true,
        }
    }
    VmbusConfig {
        versions: config.vmbus_versions.0.clone(),
        shared_interrupts: config.vmbus_shared_interrupts,
        shutdown_after: config.shutdown_after.map(std::time::Duration::from_secs),
        faults,
        perf: config.vmbus_perf,
        disks: config.disks.clone(),
        vsock: config.vsock.clone(),
        ..VmbusConfig::default()
    }
}

fn spawn_vcpu(
    vcpu: Vcpu,
    index: u8,
    control: Arc<VmControl>,
    activity: Arc<VcpuActivity>,
) -> Result<VcpuThread> {
    let handle = thread::Builder::new()
        .name(format!("vcpu{index}"))
        .spawn(move || {
            activity.enter_vcpu_thread(index.into());
            seccomp::enter_or_exit(ThreadClass::Vcpu);
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || vcpu.run())) {
                Ok(stats) => stats,
                Err(_) => {
                    control.request_exit(VmExitReason::VcpuFailed {
                        vcpu: index,
                        message: "the vCPU thread panicked".to_string(),
                    });
                    ExitStats::default()
                }
            }
        })
        .map_err(|source| Error::SpawnVcpu {
            vcpu: index,
            source,
        })?;
    Ok(VcpuThread { index, handle })
}

/// Builds the VM described by `config`, runs it until it ends, and returns why it ended.
/// Logs one line of exit counters per vCPU on the way out.
pub fn run(config: &VmConfig) -> Result<VmExitReason> {
    let user = match &config.user {
        Some(spec) => {
            User::check_root()?;
            Some(User::resolve(spec)?)
        }
        None => None,
    };
    // Before the first thread: each enters its filter as it starts.
    seccomp::init(config.seccomp, user.as_ref().map(|u| (u.uid, u.gid)))?;
    let layout = MemoryLayout::new(config.memory_mib)?;
    // Created now, written at exit: by then hvhost may be a user who cannot create it.
    let report_file = match &config.report {
        Some(path) => Some(create_output("report", path, false)?),
        None => None,
    };
    let serial_out: SerialOutput = match &config.serial {
        SerialTarget::Stdio => Box::new(io::stdout()),
        SerialTarget::File(path) => Box::new(create_output("serial", path, false)?),
    };
    let debugcon_out = match &config.debug_console {
        Some(path) => Some(create_output("debug console", path, true)?),
        None => None,
    };

    let memory = Arc::new(layout.create_guest_memory()?);
    let entry = load_guest(config, &layout, &memory)?;

    let vm = Vm::new(memory.clone())?;
    if usize::from(config.vcpus) > vm.max_vcpus() {
        return Err(Error::TooManyVcpus {
            requested: config.vcpus,
            max: vm.max_vcpus(),
        });
    }
    vm.route_synthetic_msrs_to_user_space()?;
    let control = Arc::new(VmControl::new(eventfd("create the VM exit eventfd")?));

    let mut vcpu_fds = Vec::with_capacity(config.vcpus.into());
    for index in 0..config.vcpus {
        vcpu_fds.push(vm.create_vcpu(index)?);
    }
    match crate::vstate::tsc::check_rate(&vcpu_fds) {
        TscRate::Sound | TscRate::Unknown => {}
        TscRate::Repaired { stale, measured } => log::warn!(
            "KVM's default guest TSC rate ({stale} kHz) is stale: the host's TSC runs at \
             {measured} kHz, which the vCPUs now use (a KVM that kept its start-up rate would \
             stop the guest's TSC-deadline timer)"
        ),
        TscRate::Broken { stale, measured } => log::error!(
            "KVM refuses its own guest TSC rate ({stale} kHz), and the host's rate could not be \
             set in its place ({measured} kHz measured): the guest's TSC-deadline timer may \
             never fire; give the host kernel its TSC rate (tsc_early_khz=)"
        ),
    }
    let activity = Arc::new(VcpuActivity::new(vcpu_fds.len()));
    let tsc_khz = vcpu_fds
        .first()
        .and_then(|fd| fd.get_tsc_khz().ok())
        .map(u64::from)
        .filter(|k| *k > 0);
    if tsc_khz.is_none() {
        log::warn!("KVM_GET_TSC_KHZ failed: no reference TSC page, no TSC_FREQUENCY");
    }
    let guest_memory: Arc<dyn crate::hyperv::guest_mem::GuestPages> = memory.clone();
    // Before the first thread (the timer thread, VMBus, the vCPUs): every thread inherits
    // the mask, so a termination signal can only reach the event loop's signalfd. A thread
    // that did not block it would take the signal's default action: the process dies.
    let signals = SignalFd::block_and_open(&TERMINATION_SIGNALS)?;
    let partition = Partition::new(config.vcpus.into(), guest_memory, vm.msi_sink(), tsc_khz)
        .map_err(|e| Error::os("start the synthetic timer thread", e))?;
    let devices = create_devices(config, &vm, &control, &partition, serial_out, debugcon_out)?;
    let vmbus = if config.vmbus {
        Some(Arc::new(Vmbus::start(
            &partition,
            vmbus_config(config),
            Some(activity.clone()),
        )?))
    } else {
        None
    };
    let mut uarts: Uarts = vec![("com1", devices.serial.clone())];
    if let Some((com2, _, _)) = &devices.com2 {
        uarts.push(("com2", com2.clone()));
    }
    let api = match &config.api_socket {
        Some(path) => Some(ApiServer::start(
            path,
            api_handler(vmbus.clone(), devices.debugcon.clone(), uarts.clone()),
        )?),
        None => None,
    };

    let caps = cpuid::HostCpuidCaps {
        xsave: !config.no_xsave,
        ..vm.cpuid_caps()
    };
    let template = cpuid::vm_template(&vm.supported_cpuid()?, caps);
    let ctx = VcpuContext {
        pio: Arc::new(devices.pio),
        mmio: Arc::new(devices.mmio),
        control: control.clone(),
        memory: memory.clone(),
    };
    let mut vcpus = Vec::with_capacity(config.vcpus.into());
    for (index, fd) in (0u8..).zip(vcpu_fds) {
        let hv = VpHv::new(index.into(), partition.clone());
        let vcpu = Vcpu::new(index, fd, ctx.clone(), hv);
        let boot = (index == 0).then_some(BootEntry { entry });
        let mut entries = cpuid::vcpu_entries(&template, index, config.vcpus);
        cpuid::add_hyperv_leaves(&mut entries, config.vcpus);
        vcpu.configure(&entries, boot)?;
        if index == 0 {
            let (tsc, _) = vcpu.tsc()?;
            partition.clock().calibrate(tsc, std::time::Instant::now());
        }
        vcpus.push(vcpu);
    }

    vstate::install_kick_handler()?;
    let stdin_input = config.serial == SerialTarget::Stdio && io::stdin().is_terminal();
    let raw_terminal = if stdin_input {
        Some(RawTerminal::enter()?)
    } else {
        None
    };

    // Everything is open: the guest runs as the user from here.
    if let Some(user) = &user {
        user.switch()?;
    }
    log::info!(
        "booting {} with {} vCPU(s) and {} MiB",
        config.kernel.display(),
        config.vcpus,
        config.memory_mib
    );
    let mut threads = Vec::with_capacity(vcpus.len());
    let mut spawn_error = None;
    for (index, vcpu) in (0u8..).zip(vcpus) {
        match spawn_vcpu(vcpu, index, control.clone(), activity.clone()) {
            Ok(t) => threads.push(t),
            Err(e) => {
                spawn_error = Some(e);
                control.request_exit(VmExitReason::HostError(
                    "a vCPU thread did not start".into(),
                ));
                break;
            }
        }
    }

    let mut inputs = Vec::new();
    if stdin_input {
        inputs.push(SerialInput {
            serial: devices.serial.clone(),
            rx_drained: devices.rx_drained,
            source: InputSource::Stdin,
        });
    }
    if let Some((serial, rx_drained, stream)) = devices.com2 {
        inputs.push(SerialInput {
            serial,
            rx_drained,
            source: InputSource::Stream(stream),
        });
    }
    let ask_guest = || vmbus.as_ref().is_some_and(|v| v.request_shutdown());
    let graceful: Option<event_loop::GracefulShutdown<'_>> = Some(&ask_guest);
    seccomp::enter(ThreadClass::Main)?;
    let reason = event_loop::run(&control, &signals, inputs, graceful);

    // The exit report (--report): records, one per line, `key=value`
    // fields, for scripts; the log says the same for people.
    let mut report = String::new();
    for (index, stats) in vstate::stop_vcpus(threads) {
        match stats {
            Some(stats) => {
                log::info!("vcpu{index} exits: {stats}");
                report.push_str(&format!("vcpu index={index} {stats}\n"));
            }
            None => {
                log::warn!("vcpu{index} exits: unknown (the thread did not finish)");
                report.push_str(&format!("vcpu index={index} finished=0\n"));
            }
        }
    }
    // The control socket goes first: it holds a reference to VMBus.
    drop(api);
    let vmbus = vmbus.and_then(|v| {
        let only = Arc::into_inner(v);
        if only.is_none() {
            log::error!("vmbus: still in use at exit; its thread is not stopped");
        }
        only
    });
    if let Some(vmbus) = vmbus {
        let heartbeats = vmbus.heartbeats();
        if let Some((s, records)) = vmbus.stop() {
            report.push_str(&records);
            log::info!(
                "vmbus: {} messages ({} dropped), {} channel signals, {} notifications, {} channel \
                 faults, {heartbeats} heartbeats answered",
                s.messages,
                s.dropped,
                s.signals,
                s.notifications,
                s.faults
            );
        }
    }
    report.push_str(&uart_records(&uarts));
    partition.shutdown();
    let hypercalls = partition.stats.hypercalls.load(Ordering::Relaxed);
    let refused = partition.stats.hypercalls_refused.load(Ordering::Relaxed);
    let msr_accesses = partition.stats.msr_accesses.load(Ordering::Relaxed);
    let msr_gp = partition.stats.msr_gp.load(Ordering::Relaxed);
    report.push_str(&format!(
        "hyperv hypercalls={hypercalls} hypercalls_refused={refused} msr_accesses={msr_accesses} \
         msr_gp={msr_gp}\n"
    ));
    log::info!(
        "hyper-v: {hypercalls} hypercalls ({refused} refused), {msr_accesses} synthetic MSR \
         accesses ({msr_gp} #GP)"
    );
    log::debug!(
        "unclaimed accesses: port reads={} writes={}, MMIO reads={} writes={}",
        ctx.pio.unclaimed().reads(),
        ctx.pio.unclaimed().writes(),
        ctx.mmio.unclaimed().reads(),
        ctx.mmio.unclaimed().writes()
    );
    drop(raw_terminal);
    if let (Some(path), Some(mut file)) = (&config.report, report_file) {
        let (errors, warnings) = crate::logger::counts();
        report.push_str(&format!(
            "exit status={} clean={} errors={errors} warnings={warnings}\n",
            reason.exit_code(),
            u8::from(spawn_error.is_none() && reason.is_clean()),
        ));
        if let Err(e) = io::Write::write_all(&mut file, report.as_bytes()) {
            log::error!("cannot write the report to {}: {e}", path.display());
        }
    }
    match spawn_error {
        Some(e) => Err(e),
        None => Ok(reason),
    }
}
