//! `sluice new transform|handler|aggregate|processor|function NAME`: a guest crate that builds anywhere;
//! `sluice new transform --lang python|js NAME`: the same in Python (componentize-py) or
//! JavaScript (ComponentizeJS).
//!
//! The crate gets a small working example of its kind, a pipeline that runs it on sample
//! input, a README with the commands, and — in `vendor/` — the guest SDK and WIT contract this
//! binary was built with. Vendoring is what makes the crate build outside this repository
//! and offline from it (the SDK is not on crates.io), pinned to exactly the contract the host
//! speaks; the SDK's own dependencies come from crates.io, at the versions in the
//! `Cargo.lock` we ship with it (the ones our examples are tested with).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;

/// What kind of guest to scaffold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GuestKind {
    /// A transform step (`transformer` world): batches in, batches out.
    Transform,
    /// A foreachBatch handler (`handler` world): each batch with its id.
    Handler,
    /// A user-defined aggregate (`aggregator` world): per-group state in bytes.
    Aggregate,
    /// A keyed processor (`keyed-processor` world): per-key state with TTL and timers.
    Processor,
    /// A scalar function for expressions (`function` world): arguments in, one column out.
    Function,
}

impl GuestKind {
    fn name(self) -> &'static str {
        match self {
            GuestKind::Transform => "transform",
            GuestKind::Handler => "handler",
            GuestKind::Aggregate => "aggregate",
            GuestKind::Processor => "processor",
            GuestKind::Function => "function",
        }
    }

    /// The guest SDK feature that selects the kind's world.
    fn feature(self) -> &'static str {
        self.name()
    }

    fn what(self) -> &'static str {
        match self {
            GuestKind::Transform => {
                "keeps rows whose `amount` reaches `config.min` and upper-cases `user`."
            }
            GuestKind::Handler => {
                "sends each batch to the `copy` output and writes a summary file per batch id."
            }
            GuestKind::Aggregate => "the spread (max - min) of a BIGINT column per group.",
            GuestKind::Processor => "each user's orders and total amount, in per-key state.",
            GuestKind::Function => "`with_tax(amount, percent)`, callable in any expression.",
        }
    }

    fn lib_rs(self) -> &'static str {
        match self {
            GuestKind::Transform => include_str!("../../templates/transform/lib.rs"),
            GuestKind::Handler => include_str!("../../templates/handler/lib.rs"),
            GuestKind::Aggregate => include_str!("../../templates/aggregate/lib.rs"),
            GuestKind::Processor => include_str!("../../templates/processor/lib.rs"),
            GuestKind::Function => include_str!("../../templates/function/lib.rs"),
        }
    }

    fn pipeline(self) -> &'static str {
        match self {
            GuestKind::Transform => include_str!("../../templates/transform/pipeline.toml"),
            GuestKind::Handler => include_str!("../../templates/handler/pipeline.toml"),
            GuestKind::Aggregate => include_str!("../../templates/aggregate/pipeline.toml"),
            GuestKind::Processor => include_str!("../../templates/processor/pipeline.toml"),
            GuestKind::Function => include_str!("../../templates/function/pipeline.toml"),
        }
    }
}

/// The language a guest is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Lang {
    /// A Rust crate on the guest SDK (`guest-sdk/`).
    #[default]
    Rust,
    /// A Python module on the Python SDK (`guest-sdk/python`), built with componentize-py.
    Python,
    /// A JavaScript module on the JavaScript SDK (`guest-sdk/js`), built with ComponentizeJS.
    Js,
}

/// A Python transform's folder, as (path, contents with placeholders).
const PYTHON: &[(&str, &str)] = &[
    ("app.py", include_str!("../../templates/python/app.py")),
    ("build.sh", include_str!("../../templates/python/build.sh")),
    (
        "README.md",
        include_str!("../../templates/python/README.md"),
    ),
    (
        ".gitignore",
        include_str!("../../templates/python/gitignore"),
    ),
    (
        "pipeline.toml",
        include_str!("../../templates/transform/pipeline.toml"),
    ),
    (
        "input/orders.jsonl",
        include_str!("../../templates/common/orders.jsonl"),
    ),
    (
        "sluice_guest/__init__.py",
        include_str!("../../../guest-sdk/python/sluice_guest/__init__.py"),
    ),
    (
        "wit/pipeline.wit",
        include_str!("../../../wit/pipeline.wit"),
    ),
];

/// A JavaScript transform's folder, as (path, contents with placeholders).
const JS: &[(&str, &str)] = &[
    ("app.js", include_str!("../../templates/js/app.js")),
    ("build.sh", include_str!("../../templates/js/build.sh")),
    ("README.md", include_str!("../../templates/js/README.md")),
    (".gitignore", include_str!("../../templates/js/gitignore")),
    (
        "pipeline.toml",
        include_str!("../../templates/transform/pipeline.toml"),
    ),
    (
        "input/orders.jsonl",
        include_str!("../../templates/common/orders.jsonl"),
    ),
    (
        "sluice-guest/sluice-guest.js",
        include_str!("../../../guest-sdk/js/sluice-guest.js"),
    ),
    (
        "sluice-guest/package.json",
        include_str!("../../../guest-sdk/js/package.json"),
    ),
    (
        "sluice-guest/package-lock.json",
        include_str!("../../../guest-sdk/js/package-lock.json"),
    ),
    (
        "wit/pipeline.wit",
        include_str!("../../../wit/pipeline.wit"),
    ),
];

/// Files every scaffold gets, as (path in the new crate, contents with placeholders).
const COMMON: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../templates/common/Cargo.toml"),
    ),
    (
        "README.md",
        include_str!("../../templates/common/README.md"),
    ),
    (
        ".gitignore",
        include_str!("../../templates/common/gitignore"),
    ),
    (
        ".cargo/config.toml",
        include_str!("../../templates/common/config.toml"),
    ),
    (
        "input/orders.jsonl",
        include_str!("../../templates/common/orders.jsonl"),
    ),
    // The versions the examples are built and tested with; cargo drops what this crate
    // does not use on its first build.
    ("Cargo.lock", include_str!("../../../examples/Cargo.lock")),
];

/// The guest SDK and WIT contract of this build, copied verbatim (no placeholders).
const VENDORED: &[(&str, &str)] = &[
    (
        "vendor/sluice-guest-sdk/Cargo.toml",
        include_str!("../../../guest-sdk/Cargo.toml"),
    ),
    (
        "vendor/sluice-guest-sdk/src/lib.rs",
        include_str!("../../../guest-sdk/src/lib.rs"),
    ),
    (
        "vendor/sluice-guest-sdk/src/abi.rs",
        include_str!("../../../guest-sdk/src/abi.rs"),
    ),
    (
        "vendor/sluice-guest-sdk/src/guest.rs",
        include_str!("../../../guest-sdk/src/guest.rs"),
    ),
    (
        "vendor/sluice-guest-sdk/src/guest/processor.rs",
        include_str!("../../../guest-sdk/src/guest/processor.rs"),
    ),
    // The SDK's bindings read `../wit` from its own folder.
    (
        "vendor/wit/pipeline.wit",
        include_str!("../../../wit/pipeline.wit"),
    ),
];

/// Checks that `name` can be a Cargo package name (and so a component file name).
fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok_start = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let ok_rest = chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok_start || !ok_rest || name.len() > 64 {
        bail!(
            "'{name}' cannot name a guest crate: use a letter, then letters, digits, '-' or '_' (at most 64), e.g. my-transform"
        );
    }
    Ok(())
}

/// Writes a new guest crate of `kind` named `name` into `dir` (default: `./NAME`), which
/// must not exist yet. Returns the directory.
pub fn scaffold(kind: GuestKind, lang: Lang, name: &str, dir: Option<PathBuf>) -> Result<PathBuf> {
    check_name(name)?;
    if lang != Lang::Rust && kind != GuestKind::Transform {
        bail!(
            "sluice new scaffolds Python and JavaScript guests as transforms so far (sluice new transform --lang python|js {name}); examples/python-two-sinks, python-spread, js-two-sinks and js-spread show a handler and an aggregate"
        );
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        bail!(
            "{} already exists; give a new directory (sluice new {} {name} --dir PATH)",
            dir.display(),
            kind.name()
        );
    }
    let crate_name = name.replace('-', "_");
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{kind}}", kind.name())
            .replace("{{feature}}", kind.feature())
            .replace("{{what}}", kind.what())
    };
    if lang != Lang::Rust {
        let (files, sdk) = match lang {
            Lang::Python => (PYTHON, "sluice_guest"),
            _ => (JS, "sluice-guest"),
        };
        for (path, text) in files {
            let path = dir.join(path);
            // The SDK and the contract verbatim; the rest with this guest's name.
            let vendored = path.starts_with(dir.join(sdk)) || path.starts_with(dir.join("wit"));
            let text = if vendored {
                (*text).to_owned()
            } else {
                fill(text).replace("sluice module build", "./build.sh")
            };
            write_new(&path, &text)?;
        }
        make_executable(&dir.join("build.sh"))?;
        return Ok(dir);
    }
    let mut files: Vec<(&str, String)> = COMMON.iter().map(|(p, t)| (*p, fill(t))).collect();
    files.push(("src/lib.rs", kind.lib_rs().to_owned()));
    files.push(("pipeline.toml", fill(kind.pipeline())));
    files.extend(VENDORED.iter().map(|(p, t)| (*p, (*t).to_owned())));
    for (path, contents) in &files {
        write_new(&dir.join(path), contents)?;
    }
    Ok(dir)
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> Result<()> {
    Ok(())
}

fn write_new(path: &Path, contents: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_cannot_be_crates_are_refused() {
        for bad in ["", "1abc", "a b", "a/b", "../x", "é"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "my-transform", "Top_K2"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn no_placeholder_is_left_in_a_scaffold() {
        let tmp = tempfile::tempdir().expect("temp dir");
        for kind in [
            GuestKind::Transform,
            GuestKind::Handler,
            GuestKind::Aggregate,
            GuestKind::Function,
        ] {
            let dir = scaffold(
                kind,
                Lang::Rust,
                "my-guest",
                Some(tmp.path().join(kind.name())),
            )
            .expect("scaffold");
            for (path, _) in COMMON {
                let text = std::fs::read_to_string(dir.join(path)).expect("written");
                assert!(!text.contains("{{"), "{path} of a {}: {text}", kind.name());
            }
            let pipeline = std::fs::read_to_string(dir.join("pipeline.toml")).expect("pipeline");
            assert!(pipeline.contains("my_guest.wasm"), "{pipeline}");
            assert!(dir.join("vendor/wit/pipeline.wit").exists());
        }
    }
}
