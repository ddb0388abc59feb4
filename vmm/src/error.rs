// SPDX-License-Identifier: GPL-2.0

//! Errors that stop hvhost before or while it builds a VM.
//!
//! Every message reads as a sentence fragment that can follow "hvhost: error: " and names the
//! thing that failed (a file, an ioctl, a guest address) so that the user can act on it
//! without a backtrace. Errors that end a *running* VM are not here: they are
//! [`crate::control::VmExitReason`]s, because the guest, not the host, caused them.

use std::io;
use std::path::PathBuf;

/// Result type of hvhost's setup code.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can stop hvhost from building or starting a VM.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `/dev/kvm` could not be opened.
    #[error("cannot open /dev/kvm (is KVM enabled and accessible?): {0}")]
    OpenKvm(#[source] kvm_ioctls::Error),

    /// A KVM ioctl failed.
    #[error("KVM could not {what}: {source}")]
    Kvm {
        /// What hvhost asked KVM to do, as a verb phrase.
        what: &'static str,
        /// The errno KVM returned.
        #[source]
        source: kvm_ioctls::Error,
    },

    /// A KVM ioctl on one vCPU failed.
    #[error("KVM could not {what} for vCPU {vcpu}: {source}")]
    KvmVcpu {
        /// What hvhost asked KVM to do, as a verb phrase.
        what: &'static str,
        /// Index of the vCPU.
        vcpu: u8,
        /// The errno KVM returned.
        #[source]
        source: kvm_ioctls::Error,
    },

    /// VMBus could not start.
    #[error("{0}")]
    Vmbus(#[from] crate::vmbus::worker::VmbusError),

    /// The control socket could not be served.
    #[error("{0}")]
    Api(#[from] crate::api::ApiError),

    /// The host's KVM lacks a capability hvhost depends on.
    #[error("this KVM lacks the {0} capability, which hvhost needs")]
    MissingCapability(&'static str),

    /// More vCPUs were asked for than KVM allows.
    #[error("{requested} vCPUs were requested but this KVM supports at most {max}")]
    TooManyVcpus {
        /// `--cpus`.
        requested: u8,
        /// KVM_CAP_MAX_VCPUS (or NR_VCPUS).
        max: usize,
    },

    /// Guest memory could not be laid out or mapped.
    #[error("{0}")]
    Memory(#[from] crate::memory::MemoryError),

    /// Writing a boot structure into guest RAM failed.
    #[error("cannot write the {what} into guest memory: {source}")]
    GuestMemoryWrite {
        /// The structure, e.g. "page tables".
        what: &'static str,
        /// What vm-memory reported.
        #[source]
        source: vm_memory::GuestMemoryError,
    },

    /// A file named on the command line could not be opened or read.
    #[error("cannot read {what} {}: {source}", path.display())]
    File {
        /// What the file is for, e.g. "kernel image".
        what: &'static str,
        /// The path as given.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
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

    /// The kernel file is neither a bzImage nor an ELF vmlinux.
    #[error(
        "{} is not a kernel image hvhost can boot: it is not a bzImage ({bzimage}) \
         and not an ELF vmlinux ({elf})", path.display()
    )]
    NotAKernel {
        /// The kernel path.
        path: PathBuf,
        /// Why the bzImage loader refused it.
        bzimage: linux_loader::loader::Error,
        /// Why the ELF loader refused it.
        elf: linux_loader::loader::Error,
    },

    /// The kernel was recognised but could not be loaded.
    #[error("cannot load kernel {}: {source}", path.display())]
    KernelLoad {
        /// The kernel path.
        path: PathBuf,
        /// What linux-loader reported.
        #[source]
        source: linux_loader::loader::Error,
    },

    /// The bzImage does not offer the 64-bit boot protocol entry.
    #[error(
        "kernel {} has no 64-bit entry point (boot protocol {major}.{minor:02}, \
         XLF_KERNEL_64 not set); hvhost boots 64-bit kernels only", path.display()
    )]
    No64BitEntry {
        /// The kernel path.
        path: PathBuf,
        /// Boot protocol major version.
        major: u16,
        /// Boot protocol minor version.
        minor: u16,
    },

    /// The initramfs does not fit between the kernel and the top of low memory.
    #[error(
        "initrd {} ({size} bytes) does not fit in guest memory: {room} bytes are free \
         between the kernel and the top of low memory", path.display()
    )]
    InitrdTooLarge {
        /// The initrd path.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// Bytes available for it.
        room: u64,
    },

    /// The command line is not usable.
    #[error("the kernel command line is not usable: {0}")]
    Cmdline(String),

    /// The boot structures cannot describe this configuration.
    #[error("cannot set up the boot parameters: {0}")]
    BootSetup(&'static str),

    /// Writing boot_params failed.
    #[error("cannot write the Linux boot parameters: {0}")]
    BootParams(#[source] linux_loader::configurator::Error),

    /// Building the ACPI tables failed.
    #[error("cannot build the ACPI tables: {0}")]
    Acpi(#[from] crate::acpi::AcpiError),

    /// A KVM_GET_SUPPORTED_CPUID result could not be turned back into a CPUID list.
    #[error("cannot build the CPUID table for vCPU {vcpu}: {reason}")]
    Cpuid {
        /// Index of the vCPU.
        vcpu: u8,
        /// What went wrong.
        reason: String,
    },

    /// Two devices claim the same port or MMIO range.
    #[error("cannot map a device: {0}")]
    Bus(#[from] crate::devices::BusError),

    /// A host OS call failed.
    #[error("cannot {what}: {source}")]
    Os {
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
}

impl Error {
    /// Shorthand for [`Error::Os`].
    pub fn os(what: &'static str, source: io::Error) -> Self {
        Error::Os { what, source }
    }

    /// Shorthand for [`Error::Kvm`].
    pub fn kvm(what: &'static str, source: kvm_ioctls::Error) -> Self {
        Error::Kvm { what, source }
    }
}
