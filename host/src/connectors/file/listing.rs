//! Where a file source finds its files: a glob on local disk, or a listing of an object store
//! prefix matched against the same glob (`s3://bucket/in/*.json`).
//!
//! A file is named by its path, or for an object by its URL (`s3://bucket/in/a.json`); that
//! name is what the source log records. Names starting with `.` or `_` below the root are
//! hidden, as in Spark (files still being written, `_spark_metadata`).
//!
//! A local path is made absolute and freed of `.` and `..` once, here ([`normalize`]): the
//! names recorded do not depend on the directory `sluice` was started in, and the root the
//! user wrote (`../data`, `~/.cache/x`) never counts as hidden.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use tracing::warn;

use super::glob_root;
use crate::error::{Error, Result};
use crate::storage::Location;
use crate::storage::object::ObjectPath;

/// A file the listing found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListedFile {
    /// Its path or URL.
    pub path: PathBuf,
    /// When it was last written.
    pub modified: SystemTime,
    /// Its size in bytes.
    pub size: u64,
}

/// How the files of a source path are found and read.
#[derive(Debug)]
pub enum FileListing {
    /// `glob::glob` over the local filesystem.
    Local {
        /// The glob (a directory `d` becomes `d/*`).
        glob: String,
        /// The part of the path without wildcards.
        root: PathBuf,
    },
    /// One LIST request under the root prefix, keys matched against the glob.
    Object {
        /// The URL glob.
        pattern: glob::Pattern,
        /// The prefix before the first wildcard.
        root: ObjectPath,
    },
}

/// `*` stays within one directory level, as it does for a local glob.
const MATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

fn has_wildcards(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

impl FileListing {
    /// The listing for a source `path` (a directory, a glob, or either as a URL).
    pub fn new(path: &Path) -> Result<FileListing> {
        let bad_glob = |e: glob::PatternError| Error::Source {
            source_name: format!("FileSource[{}]", path.display()),
            message: format!("path is not a valid glob: {e}"),
        };
        let text = path.to_string_lossy();
        if crate::storage::is_url(&text) && !text.starts_with("file://") {
            // An object store has no directories to tell apart: a path without wildcards
            // is a prefix whose objects are read.
            let (glob, root) = if has_wildcards(&text) {
                let cut = text.find(['*', '?', '[', '{']).unwrap_or(text.len());
                let root = text[..cut]
                    .rsplit_once('/')
                    .map_or(&text[..cut], |(r, _)| r);
                (text.to_string(), root.to_owned())
            } else {
                let root = text.trim_end_matches('/').to_owned();
                (format!("{root}/*"), root)
            };
            return Ok(FileListing::Object {
                pattern: glob::Pattern::new(&glob).map_err(bad_glob)?,
                root: ObjectPath::parse(&root)?,
            });
        }
        // A local path (`file://` URLs included).
        let local = normalize(
            &Location::parse(path)?
                .as_local()
                .map_or_else(|| path.to_path_buf(), Path::to_path_buf),
        );
        let glob = if local.is_dir() {
            local.join("*").to_string_lossy().into_owned()
        } else {
            local.to_string_lossy().into_owned()
        };
        glob::Pattern::new(&glob).map_err(bad_glob)?;
        Ok(FileListing::Local {
            root: glob_root(&local),
            glob,
        })
    }

    /// The glob files are matched against, for messages.
    pub fn glob(&self) -> String {
        match self {
            FileListing::Local { glob, .. } => glob.clone(),
            FileListing::Object { pattern, .. } => pattern.as_str().to_owned(),
        }
    }

    /// Every visible file matching the glob, unsorted.
    pub fn list(&self) -> Result<Vec<ListedFile>> {
        let mut files = Vec::new();
        match self {
            FileListing::Local { glob, root } => {
                let paths = glob::glob(glob).map_err(|e| Error::Source {
                    source_name: format!("FileSource[{glob}]"),
                    message: format!("bad glob: {e}"),
                })?;
                for entry in paths {
                    let path = match entry {
                        Ok(p) => p,
                        Err(e) => {
                            warn!(error = %e, "skipping unreadable path while listing source files");
                            continue;
                        }
                    };
                    if is_hidden(&path, root) {
                        continue;
                    }
                    let Ok(meta) = std::fs::metadata(&path) else {
                        continue;
                    };
                    if !meta.is_file() {
                        continue;
                    }
                    files.push(ListedFile {
                        path,
                        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                        size: meta.len(),
                    });
                }
            }
            FileListing::Object { pattern, root } => {
                let root_url = root.to_string();
                for f in root.list_files()? {
                    let url = f.location.to_string();
                    let below = url.strip_prefix(&root_url).unwrap_or(&url);
                    if below.split('/').any(|c| c.starts_with(['.', '_']))
                        || !pattern.matches_with(&url, MATCH)
                    {
                        continue;
                    }
                    files.push(ListedFile {
                        path: PathBuf::from(url),
                        modified: f.modified,
                        size: f.size,
                    });
                }
            }
        }
        Ok(files)
    }

    /// The bytes of a file this listing found.
    pub fn read(&self, path: &Path) -> Result<Bytes> {
        match self {
            FileListing::Local { .. } => std::fs::read(path)
                .map(Bytes::from)
                .map_err(|e| Error::io("reading source file", path, e)),
            FileListing::Object { .. } => Location::parse(path)?.read()?.ok_or_else(|| {
                Error::io(
                    "reading source file",
                    path,
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                )
            }),
        }
    }

    /// Whether files live in an object store.
    pub fn is_object_store(&self) -> bool {
        matches!(self, FileListing::Object { .. })
    }
}

/// Spark ignores files and directories whose name starts with `.` or `_` below the source
/// path. Only names below `root` count (the user chose the root, dots and all); a path not
/// under `root` is judged by its own file name alone.
pub fn is_hidden(path: &Path, root: &Path) -> bool {
    let hidden = |c: &std::ffi::OsStr| c.to_string_lossy().starts_with(['.', '_']);
    match path.strip_prefix(root) {
        Ok(below) => below.components().any(|c| hidden(c.as_os_str())),
        Err(_) => path.file_name().is_some_and(hidden),
    }
}

/// `path` made absolute (against the current directory) with `.` and `..` resolved by name,
/// as Hadoop's `Path` qualifies a source path. Lexical rather than `canonicalize`: the root
/// need not exist yet (a source waits for its directory), and the names recorded in the
/// source log must not change when it appears. Symbolic links are followed when files are
/// opened, not here.
pub fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in absolute.components() {
        match c {
            Component::CurDir => {}
            // `/..` is `/`.
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_names_below_the_root_are_ignored() {
        let root = Path::new("/data/in");
        assert!(is_hidden(Path::new("/data/in/.tmp.json"), root));
        assert!(is_hidden(Path::new("/data/in/_spark_metadata/0"), root));
        assert!(!is_hidden(Path::new("/data/in/a.json"), root));
        // A hidden component above the root does not hide everything.
        assert!(!is_hidden(
            Path::new("/data/.x/in/a.json"),
            Path::new("/data/.x/in")
        ));
        // Nor does a path that is not under the root: its own name decides.
        assert!(!is_hidden(Path::new("../in/a.json"), Path::new("/data/in")));
        assert!(is_hidden(Path::new("../in/.a.json"), Path::new("/data/in")));
    }

    #[test]
    fn paths_are_made_absolute_without_dots() {
        assert_eq!(
            normalize(Path::new("/p/../data/./pos/*.jsonl")),
            Path::new("/data/pos/*.jsonl")
        );
        assert_eq!(normalize(Path::new("/../a")), Path::new("/a"));
        let here = std::env::current_dir().unwrap();
        assert_eq!(
            normalize(Path::new("../x")),
            here.parent().unwrap_or(&here).join("x")
        );
    }

    #[test]
    fn an_object_glob_stays_within_one_level() {
        let p = glob::Pattern::new("s3://b/in/*.json").unwrap();
        assert!(p.matches_with("s3://b/in/a.json", MATCH));
        assert!(!p.matches_with("s3://b/in/sub/a.json", MATCH));
    }
}
