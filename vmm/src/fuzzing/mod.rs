// SPDX-License-Identifier: GPL-2.0

//! Fuzzing harnesses: every path of hvhost that reads what a guest wrote,
//! driven by a fuzzer's bytes against the real code, with a fake guest
//! memory instead of KVM.
//!
//! Each target is a `fn(&[u8])` in [`TARGETS`]. The cargo-fuzz crate
//! (`fuzz/`) has one binary per target that only calls it, and this crate's
//! tests replay the committed corpus (`fuzz/corpus/TARGET/`) through the
//! same functions, so an input that once crashed stays a regression test.
//!
//! A harness asserts what must hold whatever the guest does (a status the
//! TLFS defines, an interrupt only on a vector the guest may use, a packet
//! that fits its buffer); a panic anywhere is a finding.

pub mod codecs;
pub mod partition;
pub mod server;

/// A harness: runs one input.
pub type Harness = fn(&[u8]);

/// The targets by name.
pub const TARGETS: &[(&str, Harness)] = &[
    ("parse_message", codecs::parse_message),
    ("ring_read", codecs::ring_read),
    ("storage_request", codecs::storage_request),
    ("hvsock_data", codecs::hvsock_data),
    ("hypercall", partition::hypercall),
    ("msr_write", partition::msr_write),
    ("synic", partition::synic),
    ("vmbus_server", server::vmbus_server),
];

/// The fuzzer's bytes as a harness's choices, taken in order; once they
/// run out every choice is zero (so a harness loop ends on
/// [`Choices::is_empty`]).
pub struct Choices<'a> {
    data: &'a [u8],
}

impl<'a> Choices<'a> {
    /// Choices from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether every byte was taken.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// The next `N` bytes, zero-filled at the end.
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0; N];
        let b = self.bytes(N);
        a[..b.len()].copy_from_slice(b);
        a
    }

    /// A byte.
    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    /// A little-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    /// A little-endian u32.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    /// A little-endian u64.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// True one time in `n` (of the byte's values).
    pub fn one_in(&mut self, n: u8) -> bool {
        self.u8().is_multiple_of(n)
    }

    /// A flag.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 != 0
    }

    /// One of `items` (which is not empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[usize::from(self.u8()) % items.len()]
    }

    /// A length of at most `max`, biased to short ones.
    pub fn len(&mut self, max: usize) -> usize {
        usize::from(self.u8()).min(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Every committed input of every target runs through its harness.
    #[test]
    fn corpus_replays() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
        let mut total = 0;
        for (name, run) in TARGETS {
            let dir = root.join(name);
            let entries = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("no corpus for {name} at {}: {e}", dir.display()));
            let mut n = 0;
            for entry in entries {
                let path = entry.expect("corpus entry").path();
                let data = std::fs::read(&path).expect("corpus file");
                run(&data);
                n += 1;
            }
            assert!(n > 0, "the corpus of {name} is empty");
            total += n;
        }
        assert!(total >= TARGETS.len());
    }

    /// Writes the hand-made seeds (the harnesses' own depth tests) into
    /// `$FUZZ_SEEDS/TARGET/` for a campaign to start from: run by hand,
    /// `FUZZ_SEEDS=fuzz/corpus cargo test -p hvhost write_seeds -- --ignored`.
    #[test]
    #[ignore]
    fn write_seeds() {
        let Some(root) = std::env::var_os("FUZZ_SEEDS") else {
            return;
        };
        let root = Path::new(&root);
        let mut seeds: Vec<(&str, String, Vec<u8>)> = Vec::new();
        for relid in 1..=5u8 {
            seeds.push((
                "vmbus_server",
                format!("seed-linux-session-relid{relid}"),
                server::tests::linux_session(relid),
            ));
        }
        seeds.push((
            "vmbus_server",
            "seed-socket-session".into(),
            server::tests::socket_session(),
        ));
        for target in ["hypercall", "msr_write", "synic"] {
            seeds.push((
                target,
                "seed-driver-session".into(),
                partition::tests::driver_session(),
            ));
        }
        for (target, name, data) in seeds {
            let dir = root.join(target);
            std::fs::create_dir_all(&dir).expect("corpus directory");
            std::fs::write(dir.join(name), data).expect("seed");
        }
    }

    #[test]
    fn choices_run_dry_as_zeros() {
        let mut c = Choices::new(&[1, 2, 3]);
        assert_eq!(c.u16(), 0x0201);
        assert_eq!(c.u32(), 3);
        assert!(c.is_empty());
        assert_eq!(c.u64(), 0);
        assert_eq!(c.pick(&[7, 8]), 7);
    }
}
