// SPDX-License-Identifier: GPL-2.0

//! The device model of the VMBus client: every offered channel is an
//! auxiliary device, `hv_guest.<class>.<relid>` under the faux device
//! `hv_guest_vmbus`, and a driver binds to it by class through the
//! auxiliary bus (`/sys/bus/auxiliary/devices`, `.../drivers`).
//!
//! The device carries its channel as registration data ([`ChannelRef`]),
//! with a debugfs directory of its own,
//! `/sys/kernel/debug/hv_guest/vmbus/devices/<class>.<relid>/`, for what
//! its driver shows; a driver's probe gets both from it ([`channel_of`],
//! [`debugfs_of`]) and opens the channel, and its bound
//! data ([`Binding`]) closes the channel when the driver is unbound: the
//! device is deleted (rescind, unload), the driver unregistered, or an
//! `unbind` written in sysfs. A channel never outlives its bus, so no
//! driver is ever left with a ring whose pages are gone.

use kernel::auxiliary;
use kernel::debugfs::Dir;
use kernel::device::{self, Bound};
use kernel::faux;
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::Arc;
use kernel::types::CovariantForLt;

use super::channel::Channel;

/// This module's name: the prefix of every device and driver name.
pub(crate) const MODULE_NAME: &CStr = c"hv_guest";

/// What a channel's auxiliary device carries: the channel and the
/// device's debugfs directory (removed when the device and every file its
/// driver made in it are gone).
pub(crate) struct ChannelRef {
    channel: Arc<Channel>,
    debugfs: Dir,
}

/// The registration data type of channel devices.
pub(crate) type ChannelData = CovariantForLt!(ChannelRef);

/// The parent of every channel device of one bus, and the debugfs
/// directory their directories go in.
pub(crate) struct BusDevice {
    faux: faux::Registration,
    debugfs: Dir,
}

impl BusDevice {
    /// The bus device; channel devices get their debugfs directories in
    /// `debugfs`.
    pub(crate) fn new(debugfs: Dir) -> Result<Self> {
        Ok(Self {
            faux: faux::Registration::new(c"hv_guest_vmbus", None)?,
            debugfs,
        })
    }

    fn device(&self) -> &device::Device<Bound> {
        let faux: &faux::Device<Bound> = self.faux.as_ref();
        faux.as_ref()
    }
}

/// A channel's auxiliary device; dropping it deletes the device, which
/// first unbinds its driver.
pub(crate) struct ChannelDevice {
    _reg: auxiliary::Registration<'static, ChannelData>,
}

impl ChannelDevice {
    /// Adds the device `hv_guest.<name>.<relid>` for `ch` under its bus's
    /// faux device; a registered driver for `name` probes it before this
    /// returns.
    pub(crate) fn new(name: &'static CStr, ch: &Arc<Channel>) -> Result<Self> {
        // SAFETY: the parent is owned by `ch`'s bus. The registration data
        // holds `ch`, which holds an `Arc` to that bus, so the bus and its
        // bound faux device live until the registration is dropped (its
        // data is dropped after the device is deleted): the parent
        // outlives the device as `'static` claims for its lifetime.
        let parent: &'static device::Device<Bound> =
            unsafe { &*core::ptr::from_ref(ch.bus().parent.device()) };
        let dir_name = CString::try_from_fmt(fmt!("{}.{}", name.to_str()?, ch.relid()))?;
        let debugfs = ch.bus().parent.debugfs.subdir(&dir_name);
        let reg = auxiliary::Registration::new(
            parent,
            name,
            ch.relid(),
            MODULE_NAME,
            Ok::<_, Error>(ChannelRef {
                channel: ch.clone(),
                debugfs,
            }),
        )?;
        Ok(Self { _reg: reg })
    }
}

/// The channel of an auxiliary device this module created; `ENODEV` for
/// any other device.
pub(crate) fn channel_of(adev: &auxiliary::Device<Bound>) -> Result<Arc<Channel>> {
    let data = adev
        .registration_data::<ChannelData>()
        .map_err(|_| ENODEV)?;
    Ok(data.channel.clone())
}

/// The debugfs directory of an auxiliary device this module created, for
/// its driver's files; `ENODEV` for any other device.
pub(crate) fn debugfs_of(adev: &auxiliary::Device<Bound>) -> Result<Dir> {
    let data = adev
        .registration_data::<ChannelData>()
        .map_err(|_| ENODEV)?;
    Ok(data.debugfs.clone())
}

/// A driver bound to a channel: the channel is open while this lives and
/// closed when the driver is unbound.
pub(crate) struct Binding {
    ch: Arc<Channel>,
}

impl Binding {
    /// Binds `driver` to `ch` (already opened by the driver's probe).
    pub(crate) fn new(ch: Arc<Channel>, driver: &'static str) -> Self {
        ch.set_driver(Some(driver));
        Self { ch }
    }
}

impl Drop for Binding {
    fn drop(&mut self) {
        self.ch.close();
        self.ch.set_driver(None);
    }
}
