//! `sluice module check FILE` and `sluice module build [DIR]`: the checks an upload makes,
//! run locally, so a guest author learns before pushing that the component fits our worlds.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::registry::{ComponentInfo, validate_component};

/// Validates a component file exactly as `sluice module push` / the server would, and
/// prints what it implements.
pub fn check(file: &Path) -> Result<ComponentInfo> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let label = file.display().to_string();
    let info = validate_component(&label, &bytes)?;
    println!(
        "{}: ok, implements {} ({}, {} bytes, {})",
        file.display(),
        info.worlds.join(", "),
        info.package,
        info.size,
        info.language
    );
    Ok(info)
}

/// Builds the guest crate in `dir` for `wasm32-wasip2` in release mode, checks each
/// component it produced, and copies it into `dir` (as `<crate>.wasm`, where the scaffold's
/// pipeline names it). Returns the copies' paths.
pub fn build(dir: &Path) -> Result<Vec<PathBuf>> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.exists() {
        bail!(
            "{} has no Cargo.toml; run this in a guest crate (made with `sluice new`) or give its directory",
            dir.display()
        );
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // JSON messages name the artifacts wherever the target directory is (CARGO_TARGET_DIR,
    // a workspace's); diagnostics are still rendered for the user on stderr.
    let mut child = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&manifest)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (is Rust installed? rustup.rs)",
                Path::new(&cargo).display()
            )
        })?;
    let stdout = child.stdout.take().context("reading cargo's output")?;
    let mut components = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line.context("reading cargo's output")?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let is_cdylib = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "cdylib"));
        if !is_cdylib {
            continue;
        }
        for f in msg["filenames"].as_array().into_iter().flatten() {
            if let Some(f) = f.as_str().filter(|f| f.ends_with(".wasm")) {
                components.push(PathBuf::from(f));
            }
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!(
            "cargo build --release --target wasm32-wasip2 failed in {} (if the target is missing: rustup target add wasm32-wasip2)",
            dir.display()
        );
    }
    if components.is_empty() {
        bail!(
            "cargo built no component in {}: the crate needs [lib] crate-type = [\"cdylib\"]",
            dir.display()
        );
    }
    // Next to the crate, where its pipeline names it, wherever the target directory is.
    let mut written = Vec::new();
    for c in &components {
        check(c)?;
        let to = dir.join(c.file_name().unwrap_or_default());
        std::fs::copy(c, &to)
            .with_context(|| format!("copying {} to {}", c.display(), to.display()))?;
        println!("wrote {}", to.display());
        written.push(to);
    }
    Ok(written)
}
