//! The module registry: Wasm components stored by content, named by `name@version` tags.
//!
//! ```text
//! <root>/blobs/<sha256>.wasm     the component, exactly as uploaded
//! <root>/meta/<sha256>.json      what validation found: worlds, WIT package, size, wasmtime
//! <root>/tags/<name>/<version>   a JSON tag: name, version, digest, when it was uploaded
//! ```
//!
//! An upload is validated before anything is stored (a component, one of our worlds at a
//! compatible version, under the size cap) and compiled into the runtime's compile cache, so
//! the first batch that uses it does not pay for compilation. Tags are created exclusively (a
//! hard link of a complete temporary file), so two uploads of the same `name@version` cannot
//! both win; an identical re-upload is accepted as a no-op.
//!
//! Pipelines name modules as `name@1.2.0` (exact), `name@^1.2` (the highest matching
//! version) or `sha256:<digest>`; [`Registry::resolve`] turns a reference into the blob's
//! path, whose file name is the digest, so a checkpoint can record exactly which code ran.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::wasm;

/// Default upload size cap: 64 MiB.
pub const DEFAULT_MAX_MODULE_BYTES: u64 = 64 * 1024 * 1024;

/// The wasmtime release modules are precompiled with (checked against Cargo.lock by a test).
pub const WASMTIME_VERSION: &str = "48.0.8";

pub mod error;

pub use error::RegistryError;

type Result<T> = std::result::Result<T, RegistryError>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |cause| RegistryError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

/// A stored module version, as `module list` and `module inspect` show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModuleInfo {
    /// The module's name.
    pub name: String,
    /// Its semver version.
    pub version: String,
    /// `sha256:<hex>` of the component bytes.
    pub digest: String,
    /// The worlds it implements, e.g. `sluice:pipeline/transformer`.
    pub worlds: Vec<String>,
    /// The WIT package version its exports name, e.g. `sluice:pipeline@0.1.0`.
    pub package: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// The wasmtime release it was precompiled with.
    pub wasmtime: String,
    /// The language it was written in, as its toolchain left it in the component
    /// (`rust`, `python`, `javascript`; `unknown` otherwise).
    pub language: String,
    /// Upload time, RFC 3339.
    pub uploaded_at: String,
}

/// What validation found in a component (recorded per digest in `meta/`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComponentInfo {
    /// The worlds it implements, e.g. `sluice:pipeline/transformer`.
    pub worlds: Vec<String>,
    /// The WIT package version its exports name.
    pub package: String,
    /// Size in bytes.
    pub size: u64,
    /// The wasmtime release that compiled it.
    pub wasmtime: String,
    /// The language it was written in (see [`guest_language`]); absent in modules stored
    /// before it was recorded.
    #[serde(default = "unknown_language")]
    pub language: String,
}

fn unknown_language() -> String {
    "unknown".to_owned()
}

/// The language a component was written in, from what its toolchain leaves in it:
/// componentize-py and ComponentizeJS (StarlingMonkey) name themselves in the component,
/// rustc in each core module's `producers` section. A guess for display, never a check.
pub fn guest_language(bytes: &[u8]) -> &'static str {
    let has = |needle: &[u8]| memchr::memmem::find(bytes, needle).is_some();
    if has(b"componentize-py") {
        "python"
    } else if has(b"ComponentizeJS") || has(b"StarlingMonkey") {
        "javascript"
    } else if has(b"\x05rustc") {
        "rust"
    } else {
        "unknown"
    }
}

/// A tag file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tag {
    name: String,
    version: String,
    digest: String,
    uploaded_at: String,
}

/// A module reference resolved to a stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModule {
    /// The blob's path (its file name is the hex digest).
    pub path: PathBuf,
    /// `sha256:<hex>`.
    pub digest: String,
    /// `name@version` when resolved through a tag.
    pub tag: Option<String>,
}

/// A registry directory.
#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
    max_bytes: u64,
}

/// Whether a pipeline's `module = "..."` names a registry module rather than a file:
/// `name@version-or-requirement` or `sha256:<hex>` (file paths have a `/` or end in `.wasm`).
pub fn is_reference(text: &str) -> bool {
    !text.contains('/')
        && !text.ends_with(".wasm")
        && (text.contains('@') || text.starts_with("sha256:"))
}

/// The default registry directory of `sluice run` and `sluice serve`: `$SLUICE_HOME/modules`,
/// else `$XDG_DATA_HOME/sluice/modules`, else `~/.local/share/sluice/modules`.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SLUICE_HOME") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(d).join("sluice");
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".local/share/sluice"))
        .unwrap_or_else(|| PathBuf::from(".sluice"))
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!(
            "module name '{name}' is not valid: use 1 to 64 lower-case letters, digits, '-', '_' or '.', starting with a letter or digit"
        )))
    }
}

fn parse_version(version: &str) -> Result<semver::Version> {
    semver::Version::parse(version).map_err(|e| {
        RegistryError::Invalid(format!(
            "version '{version}' is not a semantic version like 1.2.0: {e}"
        ))
    })
}

fn hex_digest(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

use crate::progress::now_rfc3339;

impl Registry {
    /// Opens (creating if needed) the registry at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Registry> {
        let root = root.into();
        for sub in ["blobs", "meta", "tags"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        Ok(Registry {
            root,
            max_bytes: DEFAULT_MAX_MODULE_BYTES,
        })
    }

    /// Sets the upload size cap.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Registry {
        self.max_bytes = max_bytes;
        self
    }

    /// The upload size cap.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The registry's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob of a hex digest lives.
    pub fn blob_path(&self, hex: &str) -> PathBuf {
        self.root.join("blobs").join(format!("{hex}.wasm"))
    }

    /// Validates `bytes`, precompiles them and stores them as `name@version`.
    pub fn push(&self, name: &str, version: &str, bytes: &[u8]) -> Result<ModuleInfo> {
        check_name(name)?;
        let parsed = parse_version(version)?;
        let version = parsed.to_string();
        if bytes.len() as u64 > self.max_bytes {
            return Err(RegistryError::TooLarge {
                size: bytes.len() as u64,
                limit: self.max_bytes,
            });
        }
        let hex = hex_digest(bytes);
        let label = format!("{name}@{version}");
        let meta = validate_component(&label, bytes)?;
        // Content first (idempotent: same digest, same bytes), then the tag that names it.
        let blob = self.blob_path(&hex);
        if !blob.exists() {
            write_unique(&blob, bytes)?;
        }
        // Queries that load the blob later find the compiled component without hashing it.
        if let Ok(runtime) = wasm::runtime(false) {
            runtime.remember_file(&blob, &hex);
        }
        let meta_path = self.root.join("meta").join(format!("{hex}.json"));
        write_unique(
            &meta_path,
            &serde_json::to_vec_pretty(&meta).unwrap_or_default(),
        )?;
        let tag = Tag {
            name: name.to_owned(),
            version: version.clone(),
            digest: format!("sha256:{hex}"),
            uploaded_at: now_rfc3339(),
        };
        self.create_tag(&tag)?;
        self.inspect(name, &version)
    }

    fn tag_path(&self, name: &str, version: &str) -> PathBuf {
        self.root.join("tags").join(name).join(version)
    }

    fn create_tag(&self, tag: &Tag) -> Result<()> {
        let path = self.tag_path(&tag.name, &tag.version);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            tag.version,
            uuid::Uuid::new_v4().simple()
        ));
        let json = serde_json::to_vec_pretty(tag).unwrap_or_default();
        std::fs::write(&tmp, &json).map_err(io(&tmp))?;
        // A hard link fails if the tag exists: of two concurrent uploads only one creates it.
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let existing = self.read_tag(&tag.name, &tag.version)?;
                if existing.digest == tag.digest {
                    Ok(())
                } else {
                    Err(RegistryError::Conflict(format!(
                        "{}@{} already exists with digest {}; versions are immutable, push a new version",
                        tag.name, tag.version, existing.digest
                    )))
                }
            }
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn read_tag(&self, name: &str, version: &str) -> Result<Tag> {
        let path = self.tag_path(name, version);
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                RegistryError::NotFound(format!("no module {name}@{version}"))
            }
            _ => io(&path)(e),
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::Invalid(format!("tag {}: {e}", path.display())))
    }

    fn read_meta(&self, hex: &str) -> Result<ComponentInfo> {
        let path = self.root.join("meta").join(format!("{hex}.json"));
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::Invalid(format!("{}: {e}", path.display())))
    }

    /// One stored version.
    pub fn inspect(&self, name: &str, version: &str) -> Result<ModuleInfo> {
        check_name(name)?;
        let tag = self.read_tag(name, version)?;
        let hex = tag.digest.trim_start_matches("sha256:");
        let meta = self.read_meta(hex)?;
        Ok(ModuleInfo {
            name: tag.name,
            version: tag.version,
            digest: tag.digest,
            worlds: meta.worlds,
            package: meta.package,
            size: meta.size,
            wasmtime: meta.wasmtime,
            language: meta.language,
            uploaded_at: tag.uploaded_at,
        })
    }

    /// The versions of `name`, lowest first.
    fn versions(&self, name: &str) -> Result<Vec<semver::Version>> {
        let dir = self.root.join("tags").join(name);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&dir)(e)),
        };
        let mut out: Vec<semver::Version> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| semver::Version::parse(&e.file_name().to_string_lossy()).ok())
            .collect();
        out.sort();
        Ok(out)
    }

    /// Every stored version of every module, by name then version.
    pub fn list(&self) -> Result<Vec<ModuleInfo>> {
        let dir = self.root.join("tags");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            for v in self.versions(&name)? {
                out.push(self.inspect(&name, &v.to_string())?);
            }
        }
        Ok(out)
    }

    /// Removes `name@version`. `in_use` answers, for a digest, which running query uses it;
    /// a version in use is refused with that query's name. The blob goes when no tag names it.
    pub fn remove(
        &self,
        name: &str,
        version: &str,
        in_use: impl Fn(&str) -> Option<String>,
    ) -> Result<ModuleInfo> {
        let info = self.inspect(name, version)?;
        if let Some(query) = in_use(&info.digest) {
            return Err(RegistryError::Conflict(format!(
                "{name}@{version} is used by the running query '{query}'; stop the query or swap it to another version first"
            )));
        }
        let path = self.tag_path(name, version);
        std::fs::remove_file(&path).map_err(io(&path))?;
        let still_named = self.list()?.iter().any(|m| m.digest == info.digest);
        if !still_named {
            let hex = info.digest.trim_start_matches("sha256:");
            let _ = std::fs::remove_file(self.blob_path(hex));
            let _ = std::fs::remove_file(self.root.join("meta").join(format!("{hex}.json")));
        }
        Ok(info)
    }

    /// Resolves `name@1.2.0`, `name@^1.2` (highest match) or `sha256:<hex>` to a blob.
    pub fn resolve(&self, reference: &str) -> Result<ResolvedModule> {
        if let Some(hex) = reference.strip_prefix("sha256:") {
            let path = self.blob_path(hex);
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) || !path.exists() {
                return Err(RegistryError::NotFound(format!(
                    "no module with digest {reference} in {}",
                    self.root.display()
                )));
            }
            return Ok(ResolvedModule {
                path,
                digest: reference.to_owned(),
                tag: None,
            });
        }
        let (name, want) = reference.split_once('@').ok_or_else(|| {
            RegistryError::Invalid(format!(
                "'{reference}' is not a module reference: use name@1.2.0, name@^1.2 or sha256:<digest>"
            ))
        })?;
        check_name(name)?;
        let versions = self.versions(name)?;
        if versions.is_empty() {
            return Err(RegistryError::NotFound(format!(
                "no module named '{name}' in {} (push it with `sluice module push`)",
                self.root.display()
            )));
        }
        let chosen = match semver::Version::parse(want) {
            Ok(exact) => versions.iter().find(|v| **v == exact),
            Err(_) => {
                let req = semver::VersionReq::parse(want).map_err(|e| {
                    RegistryError::Invalid(format!(
                        "'{want}' in '{reference}' is neither a version nor a requirement like ^1.2: {e}"
                    ))
                })?;
                versions.iter().rev().find(|v| req.matches(v))
            }
        };
        let Some(v) = chosen else {
            return Err(RegistryError::NotFound(format!(
                "no version of '{name}' matches '{want}'; the registry has {}",
                versions
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let tag = self.read_tag(name, &v.to_string())?;
        let hex = tag.digest.trim_start_matches("sha256:").to_owned();
        Ok(ResolvedModule {
            path: self.blob_path(&hex),
            digest: tag.digest,
            tag: Some(format!("{name}@{v}")),
        })
    }
}

/// Writes `bytes` to `path` through a temporary file of its own and a rename, so concurrent
/// writers of the same content (two uploads of one component) never see a partial file or
/// trip over each other's temporary file.
fn write_unique(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        use std::io::Write;
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(path)(e));
    }
    Ok(())
}

/// The digest a module file runs as: the file name of a registry blob, else the sha256 of
/// the file's bytes (`None` if it cannot be read).
pub fn digest_of(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_string_lossy();
    if stem.len() == 64 && stem.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(format!("sha256:{stem}"));
    }
    std::fs::read(path)
        .ok()
        .map(|b| format!("sha256:{}", hex_digest(&b)))
}

/// Checks that `bytes` is a component implementing one of our worlds at a compatible
/// package version, exactly as an upload is checked, and compiles it into the runtime's
/// cache. `label` names the module in errors. `sluice module check` calls it on a file.
pub fn validate_component(label: &str, bytes: &[u8]) -> Result<ComponentInfo> {
    let runtime = wasm::runtime(false).map_err(|e| RegistryError::Invalid(e.to_string()))?;
    // `load_bytes` refuses core modules and random bytes with a message that says so,
    // and stores the compiled form in the cache that queries load from.
    let component = runtime
        .load_bytes(label, bytes)
        .map_err(|e| RegistryError::Invalid(e.to_string()))?;
    let packages = wasm::package_versions(runtime.engine(), &component);
    wasm::check_package(runtime.engine(), &component)
        .map_err(|e| RegistryError::Invalid(format!("module {label}: {e}")))?;
    let (worlds, why_not) = wasm::worlds_of(runtime.engine(), &component);
    if worlds.is_empty() {
        return Err(RegistryError::Invalid(format!(
            "module {label} implements none of the sluice:pipeline worlds:\n  {}",
            why_not.join("\n  ")
        )));
    }
    Ok(ComponentInfo {
        worlds: worlds.iter().map(|w| w.to_string()).collect(),
        package: packages
            .first()
            .cloned()
            .unwrap_or_else(|| wasm::WIT_PACKAGE.to_owned()),
        size: bytes.len() as u64,
        wasmtime: WASMTIME_VERSION.to_owned(),
        language: guest_language(bytes).to_owned(),
    })
}

impl crate::config::ModuleResolver for Registry {
    fn resolve_module(&self, reference: &str) -> std::result::Result<PathBuf, String> {
        self.resolve(reference)
            .map(|m| m.path)
            .map_err(|e| e.to_string())
    }
}

/// Checks the component file a pipeline step names as an upload is checked (a component of
/// a compatible `sluice:pipeline` package) and that it implements `world`, the one the step
/// needs. The message says what is wrong; the caller says where the file is named.
pub fn check_module_file(
    path: &Path,
    world: crate::config::GuestWorld,
) -> std::result::Result<(), String> {
    if !path.is_file() {
        return Err(format!(
            "no module file {}{}",
            std::path::absolute(path)
                .unwrap_or_else(|_| path.to_path_buf())
                .display(),
            if path.exists() { " (a directory)" } else { "" }
        ));
    }
    let runtime = wasm::runtime(false).map_err(|e| e.to_string())?;
    // Compiled once and cached: the query that runs it next loads the same component.
    let component = runtime.load(path).map_err(|e| e.to_string())?;
    let label = path.display();
    wasm::check_package(runtime.engine(), &component).map_err(|e| format!("{label}: {e}"))?;
    let (worlds, why_not) = wasm::worlds_of(runtime.engine(), &component);
    if worlds.contains(&world.wit_name()) {
        return Ok(());
    }
    // Why it does not fit the world needed: the import or export that is missing, and the
    // guest SDK feature that provides it.
    let why = why_not
        .iter()
        .find_map(|w| w.strip_prefix(&format!("{}: ", world.wit_name())))
        .map_or(String::new(), |w| format!(": {w}"));
    Err(if worlds.is_empty() {
        format!("{label} implements none of the sluice:pipeline worlds{why}")
    } else {
        format!(
            "{label} implements {}, not the {} world this step needs{why}",
            worlds.join(", "),
            world.wit_name()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_told_apart_from_paths() {
        assert!(is_reference("word-count@1.2.0"));
        assert!(is_reference("word-count@^1.2"));
        assert!(is_reference(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_reference("modules/word_count.wasm"));
        assert!(!is_reference("word_count.wasm"));
        assert!(!is_reference("dir@2/word_count.wasm"));
    }

    #[test]
    fn names_and_versions_are_checked() {
        assert!(check_name("word-count").is_ok());
        assert!(check_name("Word").is_err());
        assert!(check_name("-x").is_err());
        assert!(check_name("").is_err());
        assert!(parse_version("1.2.0").is_ok());
        assert!(parse_version("1.2").is_err());
        assert!(parse_version("v1").is_err());
    }

    #[test]
    fn the_recorded_wasmtime_version_is_the_one_in_cargo_lock() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
            .expect("Cargo.lock");
        let expected = format!("name = \"wasmtime\"\nversion = \"{WASMTIME_VERSION}\"");
        assert!(lock.contains(&expected), "update WASMTIME_VERSION");
    }
}
