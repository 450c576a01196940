//! Durable file writes shared by the checkpoint and the file sink.
//!
//! A checkpoint entry or a sink's commit-log entry must either be there whole or not at all,
//! even if the process is killed mid-write or the machine loses power: write a hidden temp file
//! beside the target, fsync it, rename it over the target, then fsync the directory so the
//! rename itself is durable.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically and durably (temp file, fsync, rename, fsync dir).
///
/// The temp file's name starts with '.', which keeps readers that skip hidden files (our
/// file source, Spark) away from it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Like [`write_atomic`], but the content is streamed by `write` (for files too large to build
/// in memory first, such as state snapshots).
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut (dyn Write + Send)) -> std::io::Result<()>,
) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let file = File::create(&tmp).map_err(|e| Error::io("creating", &tmp, e))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        write(&mut out)
            .and_then(|_| out.flush())
            .map_err(|e| Error::io("writing", &tmp, e))?;
        let file = out
            .into_inner()
            .map_err(|e| Error::io("writing", &tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io("syncing", &tmp, e))?;
        drop(file);
        fs::rename(&tmp, path).map_err(|e| Error::io("renaming into place", path, e))
    })();
    if written.is_err() {
        // A full disk must not also keep the half-written temp file: it holds the space the
        // next attempt needs (and, hidden, it is never read).
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_dir(dir)
}

/// Writes `bytes` to `path` only if nothing is there yet (`Ok(false)` if something is),
/// atomically and durably: the content goes to a temp file first, which is then hard-linked
/// to the target (a link fails if the name is taken, where a rename would replace it).
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.new", std::process::id()));
    let mut file = File::create(&tmp).map_err(|e| Error::io("creating", &tmp, e))?;
    if let Err(e) = file.write_all(bytes).and_then(|_| file.sync_all()) {
        drop(file);
        let _ = fs::remove_file(&tmp);
        return Err(Error::io("writing", &tmp, e));
    }
    drop(file);
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => sync_dir(dir).map(|_| true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io("creating", path, e)),
    }
}

/// Fsyncs a directory so that renames and creations inside it survive a power loss.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let handle = File::open(dir).map_err(|e| Error::io("opening directory", dir, e))?;
    handle
        .sync_all()
        .map_err(|e| Error::io("syncing directory", dir, e))
}

/// Creates a directory and its parents, with the path in the error.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io("creating directory", dir, e))
}

/// Takes an exclusive lock on `file` (opened at `path`) without waiting; `Ok(false)` when
/// another process holds it. The lock lasts as long as the file stays open.
pub fn try_lock(file: &File, path: &Path) -> Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(fs::TryLockError::WouldBlock) => Ok(false),
        Err(fs::TryLockError::Error(e)) => Err(Error::io("locking", path, e)),
    }
}
