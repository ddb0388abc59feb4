// SPDX-License-Identifier: GPL-2.0

//! The connection table: where HvPostMessage and HvSignalEvent go.
//!
//! A device registers a handler for a connection ID; the hypercall path
//! looks the ID up and calls the handler on the calling vCPU's thread.
//! Message and event connections are separate namespaces (as in QEMU's
//! `hyperv.c`), so one ID may name both. The table is behind a `RwLock`:
//! calls only read it (and clone the handler's `Arc` before calling, so a
//! handler may itself register or unregister connections); devices write it
//! rarely. VMBus registers its message connections (1 and 4) and one event
//! connection per open channel here.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use hvcall::hypercall::HvStatus;

/// Receives messages posted to a message connection.
pub trait MessageHandler: Send + Sync {
    /// The guest's VP `from_vp` posted a message; the returned status is the
    /// hypercall's (e.g. INSUFFICIENT_BUFFERS when the handler's queue is full).
    fn post_message(&self, from_vp: u32, message_type: u32, payload: &[u8])
        -> Result<(), HvStatus>;
}

/// Receives signals sent to an event connection.
pub trait EventHandler: Send + Sync {
    /// The guest's VP `from_vp` signalled `flag_number`.
    fn signal_event(&self, from_vp: u32, flag_number: u16) -> Result<(), HvStatus>;
}

/// Why a registration failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// The ID is already registered in that namespace.
    #[error("connection {0:#x} is already registered")]
    InUse(u32),
    /// The ID does not fit in 24 bits.
    #[error("connection ID {0:#x} does not fit in 24 bits")]
    OutOfRange(u32),
}

/// Message and event connections of one partition.
#[derive(Default)]
pub struct Connections {
    messages: RwLock<HashMap<u32, Arc<dyn MessageHandler>>>,
    events: RwLock<HashMap<u32, Arc<dyn EventHandler>>>,
}

fn check_id(id: u32) -> Result<(), ConnectionError> {
    if id & !hvcall::hypercall::CONNECTION_ID_MASK != 0 {
        Err(ConnectionError::OutOfRange(id))
    } else {
        Ok(())
    }
}

impl Connections {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes HvPostMessage to connection `id` to `handler`.
    pub fn register_message(
        &self,
        id: u32,
        handler: Arc<dyn MessageHandler>,
    ) -> Result<(), ConnectionError> {
        check_id(id)?;
        let mut map = self
            .messages
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if map.contains_key(&id) {
            return Err(ConnectionError::InUse(id));
        }
        map.insert(id, handler);
        Ok(())
    }

    /// Routes HvSignalEvent to connection `id` to `handler`.
    pub fn register_event(
        &self,
        id: u32,
        handler: Arc<dyn EventHandler>,
    ) -> Result<(), ConnectionError> {
        check_id(id)?;
        let mut map = self.events.write().unwrap_or_else(PoisonError::into_inner);
        if map.contains_key(&id) {
            return Err(ConnectionError::InUse(id));
        }
        map.insert(id, handler);
        Ok(())
    }

    /// Removes message connection `id`; whether it existed.
    pub fn unregister_message(&self, id: u32) -> bool {
        self.messages
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id)
            .is_some()
    }

    /// Removes event connection `id`; whether it existed.
    pub fn unregister_event(&self, id: u32) -> bool {
        self.events
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id)
            .is_some()
    }

    /// Delivers a posted message. Unknown connection: INVALID_CONNECTION_ID.
    pub fn post_message(
        &self,
        id: u32,
        from_vp: u32,
        message_type: u32,
        payload: &[u8],
    ) -> HvStatus {
        let handler = self
            .messages
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned();
        match handler {
            Some(h) => h
                .post_message(from_vp, message_type, payload)
                .err()
                .unwrap_or(HvStatus::SUCCESS),
            None => HvStatus::INVALID_CONNECTION_ID,
        }
    }

    /// Delivers a signal. Unknown connection: INVALID_CONNECTION_ID, as the
    /// TLFS says (KVM's in-kernel path answers INVALID_PORT_ID instead).
    pub fn signal_event(&self, id: u32, from_vp: u32, flag_number: u16) -> HvStatus {
        let handler = self
            .events
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned();
        match handler {
            Some(h) => h
                .signal_event(from_vp, flag_number)
                .err()
                .unwrap_or(HvStatus::SUCCESS),
            None => HvStatus::INVALID_CONNECTION_ID,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Sink(Mutex<Vec<(u32, u32, Vec<u8>)>>);

    impl MessageHandler for Sink {
        fn post_message(
            &self,
            from_vp: u32,
            message_type: u32,
            payload: &[u8],
        ) -> Result<(), HvStatus> {
            self.0
                .lock()
                .expect("lock")
                .push((from_vp, message_type, payload.to_vec()));
            Ok(())
        }
    }

    impl EventHandler for Sink {
        fn signal_event(&self, from_vp: u32, flag: u16) -> Result<(), HvStatus> {
            if flag > 10 {
                return Err(HvStatus::INVALID_PARAMETER);
            }
            self.0
                .lock()
                .expect("lock")
                .push((from_vp, u32::from(flag), vec![]));
            Ok(())
        }
    }

    #[test]
    fn routes_by_id_and_namespace() {
        let table = Connections::new();
        let sink = Arc::new(Sink::default());
        table.register_message(1, sink.clone()).expect("register");
        table
            .register_event(1, sink.clone())
            .expect("same id, other namespace");
        assert_eq!(
            table.register_message(1, sink.clone()),
            Err(ConnectionError::InUse(1))
        );
        assert_eq!(
            table.register_event(1 << 24, sink.clone()),
            Err(ConnectionError::OutOfRange(1 << 24))
        );
        assert_eq!(table.post_message(1, 0, 7, b"x"), HvStatus::SUCCESS);
        assert_eq!(
            table.post_message(2, 0, 7, b"x"),
            HvStatus::INVALID_CONNECTION_ID
        );
        assert_eq!(table.signal_event(1, 1, 3), HvStatus::SUCCESS);
        assert_eq!(table.signal_event(1, 1, 11), HvStatus::INVALID_PARAMETER);
        assert_eq!(table.signal_event(9, 1, 3), HvStatus::INVALID_CONNECTION_ID);
        assert!(table.unregister_message(1));
        assert!(!table.unregister_message(1));
        assert_eq!(
            table.post_message(1, 0, 7, b"x"),
            HvStatus::INVALID_CONNECTION_ID
        );
        assert_eq!(sink.0.lock().expect("lock").len(), 2);
    }
}
