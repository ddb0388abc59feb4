// SPDX-License-Identifier: GPL-2.0

//! The drivers of the devices the host offers, above the bus: each is an
//! auxiliary driver matched by the class names of the contract
//! (`vmbus::guid`), so the bus names its channel devices without knowing
//! any driver, and a driver gets its channel and its debugfs directory from
//! the device it binds ([`crate::bus::device`]).
//!
//! [`Drivers`] registers all of them, in one place: the utility drivers
//! ([`ic`]), the disk driver ([`storage`]), the socket connections'
//! driver ([`vsock`], whose transport the module registers beside) and, in
//! the selftest build only, the driver of hvhost's benchmark sink (`perf`).

pub(crate) mod ic;
pub(crate) mod storage;
pub(crate) mod vsock;
#[cfg(hv_guest_selftest)]
pub(crate) mod perf;

use kernel::auxiliary;
use kernel::driver;
use kernel::prelude::*;

use ic::{heartbeat::Heartbeat, shutdown::Shutdown, timesync::Timesync, IcDriver};

/// The registered drivers; dropping this unregisters them, unbinding every
/// channel they hold (which closes it).
#[pin_data]
pub(crate) struct Drivers {
    #[pin]
    heartbeat: driver::Registration<auxiliary::Adapter<IcDriver<Heartbeat>>>,
    #[pin]
    shutdown: driver::Registration<auxiliary::Adapter<IcDriver<Shutdown>>>,
    #[pin]
    timesync: driver::Registration<auxiliary::Adapter<IcDriver<Timesync>>>,
    #[pin]
    storage: driver::Registration<auxiliary::Adapter<storage::StorageDriver>>,
    #[pin]
    hvsock: driver::Registration<auxiliary::Adapter<vsock::HvSockDriver>>,
    #[cfg(hv_guest_selftest)]
    #[pin]
    perf: driver::Registration<auxiliary::Adapter<perf::PerfDriver>>,
}

impl Drivers {
    /// Registers every driver; channel devices that already exist bind now.
    pub(crate) fn register(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        // The auxiliary core names a Rust driver "NAME.NAME" (the name is
        // also passed as the module name): hv_guest_heartbeat.hv_guest_heartbeat.
        // Matching is by the ID tables (hv_guest.heartbeat), not by this.
        try_pin_init!(Self {
            heartbeat <- driver::Registration::new(c"hv_guest_heartbeat", module),
            shutdown <- driver::Registration::new(c"hv_guest_shutdown", module),
            timesync <- driver::Registration::new(c"hv_guest_timesync", module),
            storage <- driver::Registration::new(c"hv_guest_storage", module),
            hvsock <- driver::Registration::new(c"hv_guest_hvsock", module),
            #[cfg(hv_guest_selftest)]
            perf <- driver::Registration::new(c"hv_guest_hvhost_perf", module),
        })
    }
}
