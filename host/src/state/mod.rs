//! The state store: what stateful operators remember between batches, versioned by batch id
//! and kept in the checkpoint so a restart resumes with exactly the state of the last
//! committed batch.
//!
//! Layout, per operator and partition (Spark's `state/<operator>/<partition>/`):
//!
//! ```text
//! state/<operator>/0/<N>.delta      keys put and removed by batch N
//! state/<operator>/0/<N>.snapshot   the whole state after batch N (every `snapshot_interval`)
//! ```
//!
//! Version N is the state after batch N. Loading version N takes the newest snapshot at or
//! below N and applies the deltas after it. A batch that is re-run after a crash loads
//! version N−1 and rewrites its delta N; a half-written or orphaned file of a later version is
//! never read because versions above the last committed batch are not asked for.
//!
//! Keys and values are opaque bytes (the operators encode Arrow rows and accumulators in a
//! compact binary form); files are length-prefixed records, written atomically.

pub mod layout;
pub mod row_keys;
pub mod shuffle;

use std::collections::HashMap;
use std::io::Write;

use crate::error::{Error, Result};
use crate::storage::Location;

const MAGIC: &[u8; 6] = b"SLST1\n";
const PUT: u8 = 1;
const DEL: u8 = 2;

/// Versioned persistence of one operator partition's key/value state.
#[derive(Debug)]
pub struct StateStore {
    dir: Location,
    snapshot_interval: u64,
}

/// Which versions of a partition have which files.
#[derive(Default)]
struct Versions {
    snapshots: std::collections::BTreeSet<u64>,
    deltas: std::collections::BTreeSet<u64>,
}

/// A state map as stored: key bytes to value bytes.
pub type StateMap = HashMap<Box<[u8]>, Box<[u8]>>;

/// One key and its value, as stored.
pub type StateEntry = (Box<[u8]>, Box<[u8]>);

impl StateStore {
    /// Opens (creating) the store of `operator` under the checkpoint directory (its only
    /// partition, 0).
    pub fn open(checkpoint: &Location, operator: &str, snapshot_interval: u64) -> Result<Self> {
        Self::open_partition(checkpoint, operator, 0, snapshot_interval)
    }

    /// Opens (creating) partition `partition` of `operator`'s store.
    pub fn open_partition(
        checkpoint: &Location,
        operator: &str,
        partition: usize,
        snapshot_interval: u64,
    ) -> Result<Self> {
        let dir = checkpoint
            .join("state")
            .join(operator)
            .join(partition.to_string());
        dir.create_dir_all()?;
        Ok(StateStore {
            dir,
            snapshot_interval: snapshot_interval.max(1),
        })
    }

    fn file(&self, version: u64, kind: &str) -> Location {
        self.dir.join(format!("{version}.{kind}"))
    }

    fn err(&self, path: &Location, message: impl Into<String>) -> Error {
        Error::Checkpoint {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// The versions that have a snapshot and those that have a delta, from one listing of
    /// the partition's folder: on an object store a request per version probed would be slow.
    fn versions(&self) -> Result<Versions> {
        let mut versions = Versions::default();
        for name in self.dir.children()? {
            let Some((v, kind)) = name.split_once('.') else {
                continue;
            };
            let Ok(v) = v.parse::<u64>() else { continue };
            match kind {
                "snapshot" => versions.snapshots.insert(v),
                "delta" => versions.deltas.insert(v),
                _ => false,
            };
        }
        Ok(versions)
    }

    /// The state after batch `version` (`None`: before the first batch, empty).
    pub fn load(&self, version: Option<u64>) -> Result<StateMap> {
        let mut map = StateMap::new();
        let Some(version) = version else {
            return Ok(map);
        };
        let Versions { snapshots, deltas } = self.versions()?;
        let snapshot = snapshots.range(..=version).next_back().copied();
        let first_delta = match snapshot {
            Some(s) => {
                self.apply(&self.file(s, "snapshot"), &mut map)?;
                s + 1
            }
            None => 0,
        };
        for v in first_delta..=version {
            let path = self.file(v, "delta");
            if !deltas.contains(&v) {
                return Err(self.err(
                    &path,
                    format!("state version {v} is missing, so the state after batch {version} cannot be rebuilt"),
                ));
            }
            self.apply(&path, &mut map)?;
        }
        Ok(map)
    }

    /// The partitions `operator` has state in, ascending.
    pub fn partitions(checkpoint: &Location, operator: &str) -> Result<Vec<usize>> {
        let dir = checkpoint.join("state").join(operator);
        let mut partitions: Vec<usize> = dir
            .children()?
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        partitions.sort_unstable();
        Ok(partitions)
    }

    /// The state of every partition of `operator` after batch `version`, sorted by key (for
    /// reading it out in a stable order).
    pub fn load_all_sorted(
        checkpoint: &Location,
        operator: &str,
        version: u64,
    ) -> Result<Vec<StateEntry>> {
        let mut entries: Vec<StateEntry> = Vec::new();
        for p in Self::partitions(checkpoint, operator)? {
            let store = StateStore::open_partition(checkpoint, operator, p, 10)?;
            entries.extend(store.load(Some(version))?);
        }
        entries.sort();
        Ok(entries)
    }

    fn apply(&self, path: &Location, map: &mut StateMap) -> Result<()> {
        let bytes = path
            .read()?
            .ok_or_else(|| self.err(path, "state file vanished while being read"))?;
        let mut rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| self.err(path, "not a Sluice state file"))?;
        let corrupt = || self.err(path, "state file is truncated or corrupt");
        let take = |rest: &mut &[u8], n: usize| -> Result<Vec<u8>> {
            if rest.len() < n {
                return Err(corrupt());
            }
            let (head, tail) = rest.split_at(n);
            *rest = tail;
            Ok(head.to_vec())
        };
        let read_len = |rest: &mut &[u8]| -> Result<usize> {
            if rest.len() < 4 {
                return Err(corrupt());
            }
            let (head, tail) = rest.split_at(4);
            *rest = tail;
            Ok(u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize)
        };
        while let Some((&op, tail)) = rest.split_first() {
            rest = tail;
            let klen = read_len(&mut rest)?;
            let key = take(&mut rest, klen)?.into_boxed_slice();
            match op {
                PUT => {
                    let vlen = read_len(&mut rest)?;
                    let value = take(&mut rest, vlen)?.into_boxed_slice();
                    map.insert(key, value);
                }
                DEL => {
                    map.remove(&key);
                }
                _ => return Err(corrupt()),
            }
        }
        Ok(())
    }

    /// Writes batch `version`'s changes (`delta` calls [`StateWriter::put`] and
    /// [`StateWriter::remove`]) and, when the snapshot interval says so, a snapshot of the whole
    /// state (`snapshot` puts every key). Both are streamed to disk, never built in memory.
    pub fn commit(
        &self,
        version: u64,
        delta: impl FnOnce(&mut StateWriter) -> std::io::Result<()>,
        snapshot: impl FnOnce(&mut StateWriter) -> std::io::Result<()>,
    ) -> Result<()> {
        self.file(version, "delta").write_with(|out| {
            out.write_all(MAGIC)?;
            delta(&mut StateWriter {
                out,
                scratch: Vec::new(),
            })
        })?;
        if (version + 1).is_multiple_of(self.snapshot_interval) {
            self.file(version, "snapshot").write_with(|out| {
                out.write_all(MAGIC)?;
                snapshot(&mut StateWriter {
                    out,
                    scratch: Vec::new(),
                })
            })?;
        }
        Ok(())
    }

    /// Removes files no longer needed to rebuild versions at or after `keep_from`.
    pub fn purge(&self, keep_from: u64) -> Result<()> {
        // The newest snapshot at or below keep_from is the base everything later needs.
        let Versions { snapshots, deltas } = self.versions()?;
        let Some(&base) = snapshots.range(..=keep_from).next_back() else {
            return Ok(());
        };
        for (kind, versions) in [("snapshot", &snapshots), ("delta", &deltas)] {
            for v in versions.range(..base) {
                // Best effort: a file left behind is purged next time.
                let _ = self.file(*v, kind).remove();
            }
        }
        Ok(())
    }
}

/// Streams state records into a delta or snapshot file.
pub struct StateWriter<'a> {
    out: &'a mut (dyn Write + Send),
    scratch: Vec<u8>,
}

impl StateWriter<'_> {
    /// Records `key` with the value `encode` writes (into a buffer reused across calls).
    pub fn put(&mut self, key: &[u8], encode: impl FnOnce(&mut Vec<u8>)) -> std::io::Result<()> {
        self.scratch.clear();
        encode(&mut self.scratch);
        self.out.write_all(&[PUT])?;
        self.out.write_all(&(key.len() as u32).to_le_bytes())?;
        self.out.write_all(key)?;
        self.out
            .write_all(&(self.scratch.len() as u32).to_le_bytes())?;
        self.out.write_all(&self.scratch)
    }

    /// Records that `key` was removed.
    pub fn remove(&mut self, key: &[u8]) -> std::io::Result<()> {
        self.out.write_all(&[DEL])?;
        self.out.write_all(&(key.len() as u32).to_le_bytes())?;
        self.out.write_all(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(
        store: &StateStore,
        version: u64,
        puts: &[(&[u8], &[u8])],
        removes: &[&[u8]],
        all: &StateMap,
    ) {
        store
            .commit(
                version,
                |w| {
                    for (k, v) in puts {
                        w.put(k, |b| b.extend_from_slice(v))?;
                    }
                    for k in removes {
                        w.remove(k)?;
                    }
                    Ok(())
                },
                |w| {
                    for (k, v) in all {
                        w.put(k, |b| b.extend_from_slice(v))?;
                    }
                    Ok(())
                },
            )
            .unwrap();
    }

    #[test]
    fn versions_rebuild_from_snapshots_and_deltas() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&Location::Local(dir.path().into()), "agg", 2).unwrap();
        let mut all = StateMap::new();
        for v in 0..5u64 {
            let key = format!("k{v}").into_bytes();
            all.insert(key.clone().into(), vec![v as u8].into());
            let removed: Vec<u8> = b"k0".to_vec();
            let removes: Vec<&[u8]> = if v == 3 { vec![&removed] } else { vec![] };
            if v == 3 {
                all.remove(removed.as_slice());
            }
            commit(&store, v, &[(&key, &[v as u8])], &removes, &all);
        }
        assert!(
            store.file(1, "snapshot").exists().unwrap()
                && store.file(3, "snapshot").exists().unwrap()
        );
        let v4 = store.load(Some(4)).unwrap();
        assert_eq!(v4, all);
        let v2 = store.load(Some(2)).unwrap();
        assert_eq!(v2.len(), 3);
        assert!(v2.contains_key(b"k0".as_slice()));
        assert!(store.load(None).unwrap().is_empty());
        store.purge(4).unwrap();
        assert!(!store.file(0, "delta").exists().unwrap());
        assert_eq!(store.load(Some(4)).unwrap(), all);
    }

    #[test]
    fn a_missing_or_corrupt_version_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&Location::Local(dir.path().into()), "agg", 100).unwrap();
        commit(&store, 0, &[(b"a", b"1")], &[], &StateMap::new());
        assert!(
            store
                .load(Some(1))
                .unwrap_err()
                .to_string()
                .contains("state version 1 is missing")
        );
        store
            .file(0, "delta")
            .write(b"SLST1\n\x01\xff".to_vec())
            .unwrap();
        assert!(
            store
                .load(Some(0))
                .unwrap_err()
                .to_string()
                .contains("truncated or corrupt")
        );
    }
}
