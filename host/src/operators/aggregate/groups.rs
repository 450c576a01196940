//! The groups of an aggregation in memory: a slab of entries and a hash table of slab
//! indices.

use std::hash::BuildHasher;

use foldhash::fast::FixedState;
use hashbrown::HashTable;

use super::acc::Acc;

/// A group's state: its key (group row bytes, then the window start), its window end (µs;
/// `i64::MAX` without a window) and accumulators.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) key: Box<[u8]>,
    pub(super) end: i64,
    /// The batch that last changed it (to list each changed group once).
    pub(super) touched: u64,
    pub(super) accs: Box<[Acc]>,
}

/// The groups: a slab of entries and a hash table of slab indices, so a row costs one hash
/// of its key bytes and no allocation unless its group is new, and "changed this batch" is a
/// list of small indices, not of copied keys.
#[derive(Debug, Default)]
pub(super) struct Groups {
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
    table: HashTable<u32>,
    hasher: FixedState,
    /// Bytes of all live keys, kept as groups come and go (for the state's memory figure).
    pub(super) key_bytes: usize,
}

impl Groups {
    pub(super) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(super) fn entry(&self, i: u32) -> &Entry {
        self.entries[i as usize].as_ref().expect("live group index")
    }

    pub(super) fn entry_mut(&mut self, i: u32) -> &mut Entry {
        self.entries[i as usize].as_mut().expect("live group index")
    }

    pub(super) fn is_live(&self, i: u32) -> bool {
        matches!(self.entries.get(i as usize), Some(Some(_)))
    }

    pub(super) fn find(&self, key: &[u8]) -> Option<u32> {
        let entries = &self.entries;
        self.table
            .find(self.hash(key), |&i| {
                entries[i as usize].as_ref().is_some_and(|e| &*e.key == key)
            })
            .copied()
    }

    pub(super) fn insert(&mut self, entry: Entry) -> u32 {
        let hash = self.hash(&entry.key);
        self.key_bytes += entry.key.len();
        let i = match self.free.pop() {
            Some(i) => {
                self.entries[i as usize] = Some(entry);
                i
            }
            None => {
                self.entries.push(Some(entry));
                (self.entries.len() - 1) as u32
            }
        };
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.table.insert_unique(hash, i, |&j| {
            hasher.hash_one(&entries[j as usize].as_ref().expect("live group index").key)
        });
        i
    }

    pub(super) fn remove(&mut self, i: u32) -> Option<Entry> {
        let hash = self.hash(&self.entries.get(i as usize)?.as_ref()?.key);
        if let Ok(found) = self.table.find_entry(hash, |&j| j == i) {
            found.remove();
        }
        self.free.push(i);
        let entry = self.entries[i as usize].take();
        self.key_bytes -= entry.as_ref().map_or(0, |e| e.key.len());
        entry
    }

    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, &Entry)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (i as u32, e)))
    }

    /// The live entries in slab order: the order they were inserted in, when none was
    /// removed (a partial aggregation's groups).
    pub(super) fn into_entries(self) -> impl Iterator<Item = Entry> {
        self.entries.into_iter().flatten()
    }

    pub(super) fn clear(&mut self) {
        *self = Groups::default();
    }
}
