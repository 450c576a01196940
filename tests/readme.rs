//! The README's set-up commands, run exactly as written: a newcomer's first step must work.
//!
//! The first command (the main job on the embedded default) is taken from the README's first
//! `sh` block and run through bash from the repository root, as a user pastes it. It runs
//! until stopped, so the test waits for a printed batch, sends SIGINT as Ctrl-C would, and
//! checks the graceful exit. The second command (the test suite) is what `.ci/run` runs, so
//! it is checked to be that command rather than run again from inside itself.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use common::repo;

/// The commands of the README's first ```sh block, without comments.
fn setup_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the README starts with a ```sh block of set-up commands");
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_readme_has_two_setup_commands_and_ci_runs_the_second() {
    let commands = setup_commands();
    assert_eq!(commands.len(), 2, "{commands:?}");
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(
        ci.lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains(&commands[1])),
        ".ci/run must run the README's test command {:?}:\n{ci}",
        commands[1]
    );
}

#[test]
fn the_readme_main_job_runs_as_written_and_stops_on_ctrl_c() {
    let command = setup_commands().remove(0);
    assert!(
        command.contains("run examples/rate-to-console.toml"),
        "{command}"
    );
    // Its own process group, so Ctrl-C reaches cargo and the job as it would in a terminal.
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new("bash")
            .arg("-c")
            .arg(&command)
            .current_dir(repo())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let errors = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // The first run of the suite may build the release binary: allow for a cold build.
    let deadline = Instant::now() + Duration::from_secs(40 * 60);
    let mut seen = Vec::new();
    let mut batches = 0;
    while batches < 2 {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                if line.starts_with("Batch: ") {
                    batches += 1;
                }
                seen.push(line);
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "no two printed batches from {command:?}; stdout:\n{}\nstderr:\n{}",
                    seen.join("\n"),
                    errors.join().unwrap_or_default()
                );
            }
        }
    }
    // `--` first: without it procps' kill reads "-<pgid>" as more options, not a group.
    let status = Command::new("kill")
        .args(["-s", "INT", "--", &format!("-{}", child.id())])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let stderr = errors.join().unwrap_or_default();
    assert_eq!(exit.code(), Some(0), "stderr:\n{stderr}");
    let printed = seen.join("\n");
    assert!(printed.contains("timestamp|value|"), "{printed}");
    assert!(printed.contains("Batch: 1"), "{printed}");
}
