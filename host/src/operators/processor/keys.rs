//! The processor's keys in memory: each key's row-format bytes and stored state in one
//! allocation, in a slab addressed by index, found through a hash table of indices.
//!
//! Why not a `HashMap<Box<[u8]>, ...>`: a million keys would cost a table of 48-byte slots
//! (doubling to two million of them), a key allocation and a state allocation each. Here a
//! key costs one 4-byte table slot, one 40-byte slab slot and one allocation for its bytes —
//! and a batch finds each touched key once, then works with its index.

use foldhash::fast::FixedState;
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// Deadline of something that never comes.
pub const NEVER: i64 = i64::MAX;

/// One key: `data` is its row-format bytes then its stored state.
struct Slot {
    data: Box<[u8]>,
    key_len: u32,
    dirty: bool,
    /// The earliest TTL expiry of its variables.
    expiry: i64,
    /// Its first timer.
    timer: i64,
}

impl Slot {
    fn key(&self) -> &[u8] {
        &self.data[..self.key_len as usize]
    }
    fn blob(&self) -> &[u8] {
        &self.data[self.key_len as usize..]
    }
    fn is_free(&self) -> bool {
        self.data.is_empty()
    }
}

/// A key's place in [`Keys`].
pub type KeyId = u32;

/// Every key with state, and what changed since the last commit.
#[derive(Default)]
pub struct Keys {
    table: HashTable<KeyId>,
    slots: Vec<Slot>,
    free: Vec<KeyId>,
    hasher: FixedState,
    /// Keys changed since the last commit (each once).
    dirty: Vec<KeyId>,
    /// Keys removed since the last commit, as their bytes.
    removed: Vec<Box<[u8]>>,
    live: usize,
    data_bytes: usize,
}

impl Keys {
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// How many keys have state.
    pub fn len(&self) -> usize {
        self.live
    }

    /// One past the largest id in use (for arrays indexed by id).
    pub fn id_bound(&self) -> usize {
        self.slots.len()
    }

    /// Whether no key has state.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Memory held, roughly: the allocations (16-byte chunks) and the slots.
    pub fn memory_bytes(&self) -> usize {
        self.data_bytes
            + self.live * 16
            + self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.table.capacity() * (std::mem::size_of::<KeyId>() + 1)
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        *self = Keys::default();
    }

    /// The key's id, if it has state.
    pub fn find(&self, key: &[u8]) -> Option<KeyId> {
        let slots = &self.slots;
        self.table
            .find(self.hash(key), |&i| slots[i as usize].key() == key)
            .copied()
    }

    /// The key's stored state.
    pub fn blob(&self, id: KeyId) -> &[u8] {
        self.slots[id as usize].blob()
    }

    /// The key's bytes.
    pub fn key(&self, id: KeyId) -> &[u8] {
        self.slots[id as usize].key()
    }

    /// Its deadlines: earliest expiry, first timer.
    pub fn deadlines(&self, id: KeyId) -> (i64, i64) {
        let s = &self.slots[id as usize];
        (s.expiry, s.timer)
    }

    fn make_data(key: &[u8], blob: &[u8]) -> Box<[u8]> {
        let mut data = Vec::with_capacity(key.len() + blob.len());
        data.extend_from_slice(key);
        data.extend_from_slice(blob);
        data.into_boxed_slice()
    }

    fn mark(&mut self, id: KeyId) {
        let slot = &mut self.slots[id as usize];
        if !slot.dirty {
            slot.dirty = true;
            self.dirty.push(id);
        }
    }

    /// Stores a new key (not present) with its state and deadlines. `dirty`: it is a change
    /// to commit (not a key restored from the checkpoint).
    pub fn insert(&mut self, key: &[u8], blob: &[u8], deadlines: (i64, i64), dirty: bool) -> KeyId {
        let data = Self::make_data(key, blob);
        self.data_bytes += data.len().next_multiple_of(16);
        let slot = Slot {
            data,
            key_len: key.len() as u32,
            dirty: false,
            expiry: deadlines.0,
            timer: deadlines.1,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = slot;
                id
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as KeyId
            }
        };
        let hash = self.hash(key);
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.table
            .insert_unique(hash, id, |&i| hasher.hash_one(slots[i as usize].key()));
        self.live += 1;
        if dirty {
            self.mark(id);
        }
        id
    }

    /// Replaces a key's state and deadlines.
    pub fn update(&mut self, id: KeyId, blob: &[u8], deadlines: (i64, i64)) {
        let slot = &mut self.slots[id as usize];
        let data = Self::make_data(slot.key(), blob);
        self.data_bytes = self.data_bytes + data.len().next_multiple_of(16)
            - slot.data.len().next_multiple_of(16);
        slot.data = data;
        slot.expiry = deadlines.0;
        slot.timer = deadlines.1;
        self.mark(id);
    }

    /// Removes a key (its removal is committed with the next batch).
    pub fn remove(&mut self, id: KeyId) {
        let slots = &self.slots;
        let key = slots[id as usize].key();
        if let Ok(entry) = self.table.find_entry(self.hash(key), |&i| i == id) {
            entry.remove();
        }
        let slot = &mut self.slots[id as usize];
        let data = std::mem::take(&mut slot.data);
        self.data_bytes -= data.len().next_multiple_of(16);
        self.removed.push(data[..slot.key_len as usize].into());
        slot.key_len = 0;
        slot.expiry = NEVER;
        slot.timer = NEVER;
        self.free.push(id);
        self.live -= 1;
    }

    /// Every key with state, as ids.
    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.is_free())
            .map(|(i, _)| i as KeyId)
    }

    /// The keys removed since the last commit, for the state store's delta.
    pub fn removed(&self) -> &[Box<[u8]>] {
        &self.removed
    }

    /// The keys changed since the last commit, with their state, for the delta;
    /// `take_changes` then starts the next batch.
    pub fn changed(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.dirty
            .iter()
            .map(|&i| &self.slots[i as usize])
            .filter(|s| !s.is_free())
            .map(|s| (s.key(), s.blob()))
    }

    /// Every key and its state (for a snapshot).
    pub fn all(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.slots
            .iter()
            .filter(|s| !s.is_free())
            .map(|s| (s.key(), s.blob()))
    }

    /// Forgets the changes after they were committed.
    pub fn take_changes(&mut self) {
        for &i in &self.dirty {
            self.slots[i as usize].dirty = false;
        }
        self.dirty.clear();
        self.removed.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_updated_removed_and_their_slots_reused() {
        let mut keys = Keys::default();
        let a = keys.insert(b"a", b"1", (5, NEVER), true);
        let b = keys.insert(b"bb", b"22", (NEVER, 7), false);
        assert_eq!(keys.find(b"a"), Some(a));
        assert_eq!(keys.find(b"bb"), Some(b));
        assert_eq!(keys.find(b"c"), None);
        keys.update(b, b"333", (NEVER, 9));
        assert_eq!(keys.blob(b), b"333");
        assert_eq!(keys.deadlines(b), (NEVER, 9));
        assert!(keys.removed().is_empty());
        assert_eq!(keys.changed().count(), 2);
        keys.take_changes();
        keys.remove(a);
        assert_eq!(keys.find(b"a"), None);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys.removed(), [Box::from(&b"a"[..])]);
        assert_eq!(keys.changed().count(), 0);
        let c = keys.insert(b"c", b"x", (NEVER, NEVER), true);
        assert_eq!(c, a, "the free slot is reused");
        assert_eq!(keys.find(b"c"), Some(c));
        assert_eq!(keys.ids().count(), 2);
        assert_eq!(keys.all().map(|(k, _)| k.len()).sum::<usize>(), 3);
    }
}
