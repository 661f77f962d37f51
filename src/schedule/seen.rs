//! The de-duplication window of recent delivery ids.

use std::collections::HashSet;

use super::DEFAULT_DEDUP_CAPACITY;

/// The most recent delivery ids, as 64-bit hashes under a per-process
/// random key (8 bytes an id: with 100,000 remembered, a new id is taken for
/// a seen one with odds of about 5·10⁻¹⁵). Two generations of half the
/// capacity each: when the current one fills, the older is dropped, so
/// between `capacity/2` and `capacity` ids are always remembered, with no
/// per-id queue. Beyond this window a redelivery is still dropped by the
/// staleness rule (it is not newer than its booking's last change).
#[derive(Debug, Clone)]
pub(super) struct Seen {
    current: HashSet<u64, IdentityHash>,
    previous: HashSet<u64, IdentityHash>,
    half: usize,
    key: foldhash::quality::RandomState,
}

/// The keys are already uniformly random hashes: hash them as themselves.
#[derive(Debug, Clone, Copy, Default)]
struct IdentityHash;

impl std::hash::BuildHasher for IdentityHash {
    type Hasher = IdentityHasher;
    fn build_hasher(&self) -> IdentityHasher {
        IdentityHasher(0)
    }
}

#[derive(Debug, Clone, Copy)]
struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

impl Seen {
    pub(super) fn new(capacity: usize) -> Self {
        let half = capacity.div_ceil(2).max(1);
        Seen {
            current: HashSet::with_hasher(IdentityHash),
            previous: HashSet::with_hasher(IdentityHash),
            half,
            key: Default::default(),
        }
    }

    fn key(&self, id: &str) -> u64 {
        use std::hash::BuildHasher;
        self.key.hash_one(id)
    }

    pub(super) fn contains(&self, id: &str) -> bool {
        let k = self.key(id);
        self.current.contains(&k) || self.previous.contains(&k)
    }

    pub(super) fn insert(&mut self, id: &str) {
        let k = self.key(id);
        if self.current.len() >= self.half {
            // Reuse the older generation's allocation for the new one.
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
        }
        if self.current.capacity() == 0 {
            self.current.reserve(self.half);
        }
        self.current.insert(k);
    }
}

impl Default for Seen {
    fn default() -> Self {
        Seen::new(DEFAULT_DEDUP_CAPACITY)
    }
}
