//! Where Sluice keeps what must survive a restart — checkpoints, state, source logs — and
//! where file sources read and file sinks write: a local directory, or a prefix in an object
//! store (`s3://bucket/prefix`, `gs://…`, `az://…`).
//!
//! A [`Location`] is a path in one of them. Its operations are the few a log-structured
//! checkpoint needs, each with the guarantee the engine relies on:
//!
//! | operation | local directory | object store |
//! |---|---|---|
//! | [`Location::write`] | temp file, fsync, rename, fsync dir | one PUT (objects appear whole) |
//! | [`Location::create`] | temp file, hard link (fails if taken) | PUT with `If-None-Match: *` |
//! | [`Location::read`] | read | GET |
//! | [`Location::children`] | read_dir | LIST with a delimiter |
//!
//! Object stores have no rename and no lock, so the checkpoint's write-ahead entries
//! (`offsets/N`, `commits/N`) are written with [`Location::create`]: of two processes that
//! both try to start batch N, one wins and the other is told another query owns the
//! checkpoint. Transient failures (5xx, timeouts, refused connections) are retried with
//! back-off by the object store client ([`object`]); what still fails names the bucket and key.

pub mod object;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::fsutil;

/// A file or directory: on local disk, or a key (prefix) in an object store.
#[derive(Clone, Debug)]
pub enum Location {
    /// A local path.
    Local(PathBuf),
    /// A key in a bucket.
    Object(object::ObjectPath),
}

/// A file found by [`object::ObjectPath::list_files`].
#[derive(Clone, Debug)]
pub struct FileEntry {
    /// Where the file is.
    pub location: Location,
    /// When it was last written.
    pub modified: SystemTime,
    /// Its size in bytes.
    pub size: u64,
}

/// Whether `path` is written as a URL (`scheme://…`) rather than a local path.
pub fn is_url(path: &str) -> bool {
    path.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-')
    })
}

impl Location {
    /// The location a pipeline names: `s3://bucket/key` (also `s3a://`, `gs://`, `az://`,
    /// `abfs://`) or a local path. `file://` URLs are local paths.
    pub fn parse(path: &Path) -> Result<Location> {
        let text = path.to_string_lossy();
        if let Some(local) = text.strip_prefix("file://") {
            return Ok(Location::Local(PathBuf::from(local)));
        }
        if is_url(&text) {
            return object::ObjectPath::parse(&text).map(Location::Object);
        }
        Ok(Location::Local(path.to_path_buf()))
    }

    /// The location `name` inside this one (`name` may contain `/`).
    pub fn join(&self, name: impl AsRef<str>) -> Location {
        match self {
            Location::Local(p) => Location::Local(p.join(name.as_ref())),
            Location::Object(o) => Location::Object(o.join(name.as_ref())),
        }
    }

    /// The local path, if this is one.
    pub fn as_local(&self) -> Option<&Path> {
        match self {
            Location::Local(p) => Some(p),
            Location::Object(_) => None,
        }
    }

    /// The location as a path for error messages (`s3://bucket/key` stays a URL).
    pub fn to_path_buf(&self) -> PathBuf {
        match self {
            Location::Local(p) => p.clone(),
            Location::Object(o) => PathBuf::from(o.to_string()),
        }
    }

    /// Makes the directory (and its parents) exist; object stores have no directories.
    pub fn create_dir_all(&self) -> Result<()> {
        match self {
            Location::Local(p) => fsutil::create_dir_all(p),
            Location::Object(_) => Ok(()),
        }
    }

    /// The file's bytes, or `None` if there is no such file.
    pub fn read(&self) -> Result<Option<Bytes>> {
        match self {
            Location::Local(p) => match std::fs::read(p) {
                Ok(bytes) => Ok(Some(Bytes::from(bytes))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io("reading", p, e)),
            },
            Location::Object(o) => o.read(),
        }
    }

    /// Whether the file exists.
    pub fn exists(&self) -> Result<bool> {
        match self {
            Location::Local(p) => Ok(p.exists()),
            Location::Object(o) => o.exists(),
        }
    }

    /// Replaces the file with `bytes` atomically: readers see the old or the new content, and
    /// after a crash one of them is there whole.
    pub fn write(&self, bytes: Vec<u8>) -> Result<()> {
        match self {
            Location::Local(p) => fsutil::write_atomic(p, &bytes),
            Location::Object(o) => o.write(bytes.into()),
        }
    }

    /// Like [`Location::write`], with the content streamed by `write` (a local file is never
    /// built in memory; an object is, since it is sent in one request).
    pub fn write_with(
        &self,
        write: impl FnOnce(&mut (dyn Write + Send)) -> std::io::Result<()>,
    ) -> Result<()> {
        match self {
            Location::Local(p) => fsutil::write_atomic_with(p, write),
            Location::Object(o) => {
                let mut buf = Vec::new();
                write(&mut buf).map_err(|e| Error::io("encoding", self.to_path_buf(), e))?;
                o.write(buf.into())
            }
        }
    }

    /// Writes the file only if it does not exist yet: `Ok(true)` if this call created it,
    /// `Ok(false)` if another writer had (with other content). Two processes racing for the
    /// same name never both get `true`.
    pub fn create(&self, bytes: Vec<u8>) -> Result<bool> {
        match self {
            Location::Local(p) => fsutil::write_new(p, &bytes),
            Location::Object(o) => o.create(bytes.into()),
        }
    }

    /// Removes the file; one already gone is not an error.
    pub fn remove(&self) -> Result<()> {
        match self {
            Location::Local(p) => match std::fs::remove_file(p) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io("removing", p, e)),
            },
            Location::Object(o) => o.remove(),
        }
    }

    /// The names directly inside this directory (files and directories), unsorted. A missing
    /// directory has none.
    pub fn children(&self) -> Result<Vec<String>> {
        match self {
            Location::Local(p) => {
                let read = match std::fs::read_dir(p) {
                    Ok(r) => r,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(Error::io("listing", p, e)),
                };
                let mut names = Vec::new();
                for entry in read {
                    let entry = entry.map_err(|e| Error::io("listing", p, e))?;
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
                Ok(names)
            }
            Location::Object(o) => o.children(),
        }
    }

    /// The entries of a log directory whose names are batch numbers, ascending (temp files,
    /// `.lock` and the like are ignored).
    pub fn numbered_entries(&self) -> Result<Vec<u64>> {
        let mut ids: Vec<u64> = self
            .children()?
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Object(o) => write!(f, "{o}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_paths() {
        assert!(is_url("s3://bucket/key"));
        assert!(is_url("gs://b"));
        assert!(!is_url("output/events"));
        assert!(!is_url("/tmp/x"));
        assert!(!is_url("://x"));
        assert!(!is_url("a b://x"));
    }

    #[test]
    fn a_local_directory_keeps_a_numbered_log_and_refuses_a_second_create() {
        let dir = tempfile::tempdir().unwrap();
        let log = Location::parse(&dir.path().join("log")).unwrap();
        log.create_dir_all().unwrap();
        assert!(log.join("1").create(b"one".to_vec()).unwrap());
        assert!(!log.join("1").create(b"other".to_vec()).unwrap());
        log.join("0").write(b"zero".to_vec()).unwrap();
        log.join(".tmp").write(b"x".to_vec()).unwrap();
        assert_eq!(log.numbered_entries().unwrap(), vec![0, 1]);
        assert_eq!(log.join("1").read().unwrap().unwrap().as_ref(), b"one");
        log.join("1").remove().unwrap();
        log.join("1").remove().unwrap();
        assert!(log.join("1").read().unwrap().is_none());
        assert!(
            Location::parse(Path::new("file:///tmp/x"))
                .unwrap()
                .as_local()
                .is_some()
        );
    }
}
