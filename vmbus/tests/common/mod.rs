// SPDX-License-Identifier: GPL-2.0

//! A single-threaded ring memory for tests: the data area in a `RefCell`,
//! the header fields in `Cell`s, with direct access for corrupting them.

#![allow(dead_code)]

use std::cell::{Cell, RefCell};

use vmbus::ring::{HeaderField, RingMemory};

/// A ring's memory held in plain cells.
pub struct TestMemory {
    pub data: RefCell<Vec<u8>>,
    pub fields: [Cell<u32>; 5],
    /// Counts of header stores, per field, to check who writes what.
    pub stores: [Cell<u32>; 5],
}

pub fn index(field: HeaderField) -> usize {
    match field {
        HeaderField::WriteIndex => 0,
        HeaderField::ReadIndex => 1,
        HeaderField::InterruptMask => 2,
        HeaderField::PendingSendSize => 3,
        HeaderField::FeatureBits => 4,
    }
}

impl TestMemory {
    pub fn new(data_len: usize) -> Self {
        Self { data: RefCell::new(vec![0; data_len]), fields: Default::default(), stores: Default::default() }
    }

    pub fn get(&self, field: HeaderField) -> u32 {
        self.fields[index(field)].get()
    }

    pub fn set(&self, field: HeaderField, v: u32) {
        self.fields[index(field)].set(v)
    }
}

impl RingMemory for TestMemory {
    fn data_len(&self) -> usize {
        self.data.borrow().len()
    }
    fn read_data(&self, offset: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self.data.borrow()[offset..offset + buf.len()]);
    }
    fn write_data(&self, offset: usize, data: &[u8]) {
        self.data.borrow_mut()[offset..offset + data.len()].copy_from_slice(data);
    }
    fn load_acquire(&self, field: HeaderField) -> u32 {
        self.get(field)
    }
    fn store_release(&self, field: HeaderField, value: u32) {
        let s = &self.stores[index(field)];
        s.set(s.get() + 1);
        self.set(field, value)
    }
    fn fence(&self) {}
}
