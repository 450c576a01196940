//! Faults of the machine under a running query: the checkpoint's filesystem fills up or
//! turns read-only mid-run, a state file is truncated or deleted while the query is stopped,
//! and a second `sluice serve` is started on a data directory already in use.
//!
//! The filesystem faults are real: the checkpoint sits on a small tmpfs the test mounts
//! (which needs root, as CI runs), filled with a ballast file or remounted read-only.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const FILES: u64 = 8;
const ROWS_PER_FILE: u64 = 2000;

/// A tmpfs mounted over a folder for the life of the value.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, bytes: u64) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(path)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs at {} failed (this test needs root, as CI runs): {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }

    /// Remounts with `mode` (`ro`, `rw`). A remount to read-only is refused while a file is
    /// open for writing, so it is retried until the query is between two writes.
    fn remount(&self, mode: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new("mount")
                .args(["-o", &format!("remount,{mode}")])
                .arg(&self.path)
                .output()
                .unwrap();
            if out.status.success() {
                return;
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("busy") && Instant::now() < deadline,
                "remounting {} {mode}: {stderr}",
                self.path.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Free bytes, as the filesystem reports them.
    fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Input files of distinct ids, oldest first.
fn write_inputs(dir: &Path, files: std::ops::Range<u64>) {
    for i in files {
        let f = drop_file(
            &dir.join("in"),
            &format!("f{i}.json"),
            event_lines(i * ROWS_PER_FILE..(i + 1) * ROWS_PER_FILE),
        );
        set_mtime(&f, 1000 - i);
    }
}

/// A deduplication over the ids (its state grows by every batch's keys) into a json file sink
/// outside the checkpoint.
fn dedup_pipeline(dir: &Path, trigger: &str) -> PathBuf {
    pipeline(
        dir,
        &format!(
            r#"[[query]]
name = "dedup"
checkpointLocation = "ckpt"
trigger = {trigger}

[query.source]
format = "json"
path = "in/*.json"
schema = "id BIGINT, city STRING, amount BIGINT"
maxFilesPerTrigger = 1

[query.dropDuplicates]
columns = ["id"]

[query.sink]
format = "json"
path = "out"
"#
        ),
    )
}

/// Bytes the files under `dir` take, each rounded up to whole pages as tmpfs counts them.
fn pages_used(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            pages_used(&entry.path())
        } else {
            meta.len().div_ceil(4096) * 4096
        };
    }
    total
}

fn all_ids() -> Vec<u64> {
    (0..FILES * ROWS_PER_FILE).collect()
}

#[test]
fn a_full_checkpoint_disk_fails_the_batch_naming_path_and_space_and_a_restart_after_freeing_it_is_exact()
 {
    // A clean run first: how much checkpoint the whole job writes.
    let clean = tempfile::tempdir().unwrap();
    write_inputs(clean.path(), 0..FILES);
    let (code, _, stderr) = run_logged(&dedup_pipeline(clean.path(), "\"availableNow\""));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        sorted_ids(&committed_json(&clean.path().join("out"))),
        all_ids()
    );
    let needed = pages_used(&clean.path().join("ckpt"));

    // The same job with its checkpoint on a tmpfs that has room for about half of that.
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path(), 0..FILES);
    let fs = Tmpfs::mount(&dir.path().join("ckpt"), 4 * needed + (1 << 20));
    let ballast = dir.path().join("ckpt/ballast");
    std::fs::write(&ballast, vec![7u8; (fs.free() - needed / 2) as usize]).unwrap();
    let file = dedup_pipeline(dir.path(), "\"availableNow\"");
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(
        code,
        Some(1),
        "the query fails when the disk fills: {stderr}"
    );
    let ckpt = dir.path().join("ckpt").display().to_string();
    let error = query_error(&stderr, "dedup");
    assert!(
        error.contains(&ckpt)
            && error.contains("the filesystem holding it is full (")
            && error.contains("bytes are free"),
        "the error names the path and the space: {error}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let before: Vec<u64> = sorted_ids(&committed_json(&dir.path().join("out")));
    assert!(
        !before.is_empty() && before.len() < all_ids().len(),
        "it failed mid-job ({} rows committed)",
        before.len()
    );
    assert!(
        before.iter().zip(before.iter().skip(1)).all(|(a, b)| a < b),
        "no row committed twice"
    );

    // Space freed: the restart re-runs the failed batch and ends with the clean run's output.
    std::fs::remove_file(&ballast).unwrap();
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        sorted_ids(&committed_json(&dir.path().join("out"))),
        all_ids(),
        "after space was freed every row is in the output once"
    );
}

/// Waits until `path` exists.
fn await_file(path: &Path, running: &mut Running) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(
            running.child.try_wait().unwrap().is_none(),
            "the query ended before {} was written: {:?}",
            path.display(),
            running.seen
        );
        assert!(Instant::now() < deadline, "{} never came", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_checkpoint_turned_read_only_mid_run_fails_naming_the_file_and_a_restart_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path(), 0..3);
    let fs = Tmpfs::mount(&dir.path().join("ckpt"), 64 << 20);
    let mut running = Running::start(
        &dedup_pipeline(dir.path(), "{ processingTime = \"100 milliseconds\" }"),
        &[],
        &[],
    );
    await_file(&dir.path().join("ckpt/commits/2"), &mut running);
    fs.remount("ro");
    write_inputs(dir.path(), 3..FILES);
    let (code, stderr) = running.wait();
    assert_eq!(code, Some(1), "{stderr}");
    let error = query_error(&stderr, "dedup");
    let ckpt = dir.path().join("ckpt").display().to_string();
    assert!(
        error.contains(&ckpt) && error.contains("Read-only file system"),
        "the error names the file and why: {error}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    fs.remount("rw");
    let (code, _, stderr) = run_logged(&dedup_pipeline(dir.path(), "\"availableNow\""));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        sorted_ids(&committed_json(&dir.path().join("out"))),
        all_ids()
    );
}

/// The newest state delta of the dedup operator's partitions.
fn newest_delta(ckpt: &Path) -> PathBuf {
    let mut deltas: Vec<(u64, PathBuf)> = Vec::new();
    let mut stack = vec![ckpt.join("state")];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(v) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".delta"))
                .and_then(|v| v.parse().ok())
            {
                deltas.push((v, path));
            }
        }
    }
    deltas.sort();
    deltas.pop().expect("the query wrote state deltas").1
}

#[test]
fn a_state_file_truncated_or_deleted_while_stopped_is_named_at_restart() {
    for fault in ["truncated", "deleted"] {
        let dir = tempfile::tempdir().unwrap();
        write_inputs(dir.path(), 0..3);
        let file = dedup_pipeline(dir.path(), "\"availableNow\"");
        let (code, _, stderr) = run_logged(&file);
        assert_eq!(code, Some(0), "{stderr}");
        let committed = sorted_ids(&committed_json(&dir.path().join("out")));

        let delta = newest_delta(&dir.path().join("ckpt"));
        if fault == "truncated" {
            let len = std::fs::metadata(&delta).unwrap().len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&delta)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
        } else {
            std::fs::remove_file(&delta).unwrap();
        }
        write_inputs(dir.path(), 3..4);
        let (code, _, stderr) = run_logged(&file);
        assert_eq!(code, Some(1), "{fault}: {stderr}");
        let error = query_error(&stderr, "dedup");
        let expected = if fault == "truncated" {
            "truncated or corrupt"
        } else {
            "is missing"
        };
        assert!(
            error.contains(&delta.display().to_string()) && error.contains(expected),
            "{fault}: the error names the file: {error}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(
            sorted_ids(&committed_json(&dir.path().join("out"))),
            committed,
            "{fault}: nothing was written from a state that could not be read"
        );
    }
}

#[test]
fn a_second_server_on_one_data_directory_is_refused_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut first, url, _) = start_serve(&data, &[]);
    let out = sluice()
        .arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .args(["--addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    let _ = first.kill();
    let _ = first.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second server was refused");
    assert!(
        stderr.contains(&format!("pid {}", first.id()))
            && stderr.contains(&format!("listening on {url}"))
            && stderr.contains(&data.display().to_string()),
        "the refusal names the first server and the directory: {stderr}"
    );
    // Once the first is gone, the directory is free again.
    let (mut again, _, _) = start_serve(&data, &[]);
    let _ = again.kill();
    let _ = again.wait();
}
