//! What a new user meets first, driven through the CLI as they would: a pipeline in its own
//! folder naming its input with `..`, a module that is missing or of the wrong kind, a secret
//! in a step's config, `sluice new --help`, and output shaped as Spark shapes it.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// A pipeline reading json lines from `path` (as written, relative to the pipeline's folder)
/// into a json sink at `out`, every file present at start.
fn copy_json(path: &str, out: &str) -> String {
    format!(
        r#"[[query]]
name = "copy"
checkpointLocation = "{out}-ckpt"
trigger = "availableNow"

[query.source]
format = "json"
path = "{path}"
schema = "id BIGINT, city STRING, amount BIGINT"

[query.sink]
format = "json"
path = "{out}"
"#
    )
}

/// `sluice run FILE` started in `cwd`; panics with stderr unless it exits 0. Returns stderr.
fn run_in(cwd: &Path, file: &str) -> String {
    let out = run_ok(
        sluice()
            .current_dir(cwd)
            .arg("run")
            .arg(file)
            .env("RUST_LOG", "info"),
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_relative_path_reads_every_row_wherever_sluice_is_started() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    drop_file(&d.join("data/pos"), "a.jsonl", event_lines(0..40));
    drop_file(&d.join("data/pos"), "b.jsonl", event_lines(40..100));
    // A root that itself holds a dot-directory, as ~/.cache/x does.
    drop_file(&d.join(".cache/x"), "c.json", event_lines(100..130));
    std::os::unix::fs::symlink(d.join("data"), d.join("linked")).unwrap();
    let p = d.join("p");
    std::fs::create_dir_all(&p).unwrap();
    let all: Vec<u64> = (0..100).collect();
    let cases: [(&str, &[u64]); 5] = [
        ("../data/pos/*.jsonl", &all),
        ("../data/pos", &all),
        ("../linked/pos/*.jsonl", &all),
        ("./../data/./pos/../pos/*.jsonl", &all),
        ("../.cache/x/*.json", &(100..130).collect::<Vec<u64>>()),
    ];
    for (i, (path, expected)) in cases.into_iter().enumerate() {
        // From the pipeline's own folder, from its parent, and from elsewhere (absolute).
        let file = p.join(format!("p{i}.toml"));
        let starts = [
            (p.clone(), format!("p{i}.toml"), "here"),
            (d.to_path_buf(), format!("p/p{i}.toml"), "parent"),
            (
                std::path::PathBuf::from("/"),
                file.display().to_string(),
                "root",
            ),
        ];
        for (cwd, arg, from) in starts {
            let out = format!("out-{i}-{from}");
            std::fs::write(&file, copy_json(path, &out)).unwrap();
            let stderr = run_in(&cwd, &arg);
            let rows = committed_json(&p.join(&out));
            assert_eq!(
                sorted_ids(&rows),
                *expected,
                "{path} run from {}: {stderr}",
                cwd.display()
            );
            assert!(!stderr.contains("no files match"), "{stderr}");
        }
    }
}

#[test]
fn a_path_that_matches_no_file_says_so_with_the_absolute_glob() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = d.join("p");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("pipeline.toml"),
        copy_json("../data/nowhere/*.jsonl", "out"),
    )
    .unwrap();
    let stderr = run_in(&p, "pipeline.toml");
    let glob = d.join("data/nowhere/*.jsonl");
    assert!(
        stderr.contains(&format!("no files match {}", glob.display())),
        "{stderr}"
    );
}

/// `sluice validate FILE`: (exit code, stdout, stderr).
fn validate(file: &Path) -> (Option<i32>, String, String) {
    let out = sluice().arg("validate").arg(file).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_and_run_check_every_module_a_pipeline_names() {
    let modules = guests();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("not-a-component.wasm"), b"\0asm but not really").unwrap();
    let from_json = modules.join("from_json.wasm");
    let two_sinks = modules.join("two_sinks.wasm");
    let text = format!(
        r#"[[query]]
name = "q"
trigger = "once"

[query.source]
format = "text"
path = "in"

[[query.transform]]
module = "does/not/exist.wasm"

[[query.transform]]
module = "not-a-component.wasm"

[[query.transform]]
module = "{two_sinks}"

[[query.transform]]
module = "{from_json}"
config = {{ schema = "id BIGINT" }}

[query.sink]
format = "foreachBatch"
module = "{from_json}"
"#,
        two_sinks = two_sinks.display(),
        from_json = from_json.display()
    );
    let file = pipeline(d, &text);
    let (code, stdout, stderr) = validate(&file);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("pipeline.toml:"))
        .collect();
    let at = |line: usize, key: &str| {
        problems
            .iter()
            .find(|p| p.contains(&format!("pipeline.toml:{line}: query 'q': {key}: ")))
            .unwrap_or_else(|| panic!("no problem at line {line} ({key}):\n{stderr}"))
            .to_string()
    };
    let missing = at(10, "transform[0].module");
    assert!(
        missing.contains(&format!(
            "no module file {}",
            d.join("does/not/exist.wasm").display()
        )),
        "{missing}"
    );
    let not_component = at(13, "transform[1].module");
    assert!(
        not_component.contains("not-a-component.wasm"),
        "{not_component}"
    );
    let handler_as_step = at(16, "transform[2].module");
    assert!(
        handler_as_step.contains("implements sluice:pipeline/handler")
            && handler_as_step.contains("not the sluice:pipeline/transformer world"),
        "{handler_as_step}"
    );
    let step_as_handler = at(24, "sink.module");
    assert!(
        step_as_handler.contains("not the sluice:pipeline/handler world"),
        "{step_as_handler}"
    );
    // The good step (line 19) is not among the problems, and each cause is said once.
    assert_eq!(problems.len(), 4, "{stderr}");
    assert!(!stderr.contains("os error"), "{stderr}");

    // `run` refuses the same pipeline before starting anything, with the same words.
    let out = sluice().arg("run").arg(&file).output().unwrap();
    let run_stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{run_stderr}");
    assert!(run_stderr.contains(&missing), "{run_stderr}");
    assert!(!run_stderr.contains("starting query"), "{run_stderr}");
}

#[test]
fn a_secret_in_a_module_config_is_read_at_start_and_shown_nowhere() {
    let modules = guests();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    drop_file(&d.join("in"), "a.txt", event_lines(0..20));
    // The schema comes from the environment: the rows prove it was read. The token is never
    // used by the step; it must not appear in anything sluice writes.
    const TOKEN: &str = "tok-91f3c6d8e2";
    const SCHEMA: &str = "id BIGINT, city STRING";
    std::fs::write(d.join("token"), format!("{TOKEN}\n")).unwrap();
    let text = format!(
        r#"[[query]]
name = "parse"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.source]
format = "text"
path = "in"

[[query.transform]]
module = "{}"
config = {{ schema = {{ env = "SLUICE_TEST_SCHEMA" }}, auth = {{ api_token = {{ file = "token" }} }} }}

[query.sink]
format = "json"
path = "out"
"#,
        modules.join("from_json.wasm").display()
    );
    let file = pipeline(d, &text);
    let validated = sluice()
        .arg("validate")
        .arg(&file)
        .env("SLUICE_TEST_SCHEMA", SCHEMA)
        .output()
        .unwrap();
    assert!(validated.status.success());
    let out = sluice()
        .arg("run")
        .arg(&file)
        .arg("--progress-log")
        .arg(d.join("progress.jsonl"))
        .env("SLUICE_TEST_SCHEMA", SCHEMA)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rows = committed_json(&d.join("out"));
    assert_eq!(sorted_ids(&rows), (0..20).collect::<Vec<u64>>());
    assert_eq!(rows[0].as_object().unwrap().len(), 2, "{:?}", rows[0]);
    let progress = std::fs::read_to_string(d.join("progress.jsonl")).unwrap();
    for (what, text) in [
        (
            "validate's stdout",
            String::from_utf8_lossy(&validated.stdout),
        ),
        (
            "validate's stderr",
            String::from_utf8_lossy(&validated.stderr),
        ),
        ("run's stdout", String::from_utf8_lossy(&out.stdout)),
        ("run's stderr", stderr.clone()),
        ("the progress log", progress.into()),
    ] {
        assert!(!text.contains(TOKEN), "{what} shows the secret:\n{text}");
    }
    // Without the variable the run stops at start, naming the field, not a value.
    let unset = sluice().arg("run").arg(&file).output().unwrap();
    let unset_err = String::from_utf8_lossy(&unset.stderr);
    assert!(!unset.status.success());
    assert!(
        unset_err.contains("SLUICE_TEST_SCHEMA") && unset_err.contains("config.schema"),
        "{unset_err}"
    );

    // A credential written out is refused at its line.
    let written = text.replace(
        "auth = { api_token = { file = \"token\" } }",
        &format!("auth = {{ api_token = \"{TOKEN}\" }}"),
    );
    assert_ne!(written, text);
    let file = pipeline(d, &written);
    let (code, _, stderr) = validate(&file);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("pipeline.toml:12: query 'parse': transform[0].config.auth.api_token: a secret written into the pipeline is refused"),
        "{stderr}"
    );
    assert!(!stderr.contains(TOKEN), "{stderr}");
}

/// The kinds in a clap message's `[possible values: a, b, c]`.
fn possible_values(text: &str) -> Vec<String> {
    let start = text.find("[possible values: ").expect(text) + "[possible values: ".len();
    let end = start + text[start..].find(']').unwrap();
    text[start..end].split(", ").map(str::to_owned).collect()
}

#[test]
fn new_s_help_lists_every_kind_it_accepts() {
    let help = run_ok(sluice().args(["new", "--help"])).stdout;
    let help = String::from_utf8_lossy(&help);
    // What `new` accepts: the values it names when refusing one it does not.
    let refused = sluice()
        .args(["new", "no-such-kind", "x"])
        .output()
        .unwrap();
    let accepted = possible_values(&String::from_utf8_lossy(&refused.stderr));
    assert_eq!(
        accepted,
        ["transform", "handler", "aggregate", "processor", "function"],
        "one kind per world of wit/"
    );
    let dir = tempfile::tempdir().unwrap();
    for kind in &accepted {
        assert!(
            help.contains(&format!("- {kind}:")),
            "{kind} not in:\n{help}"
        );
        // Each one it lists, it makes.
        run_ok(
            Command::new(env!("CARGO_BIN_EXE_sluice"))
                .args(["new", kind, &format!("my-{kind}")])
                .arg("--dir")
                .arg(dir.path().join(kind)),
        );
        assert!(dir.path().join(kind).join("Cargo.toml").exists());
    }
    let short = run_ok(sluice().args(["new", "-h"])).stdout;
    assert_eq!(possible_values(&String::from_utf8_lossy(&short)), accepted);
}

#[test]
fn a_windowed_aggregation_writes_window_first_as_spark_does() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lines: String = (0..12)
        .map(|i| {
            format!(
                "{{\"city\":\"{}\",\"at\":\"2026-01-01T00:0{}:00Z\"}}\n",
                ["Seoul", "Busan"][i % 2],
                i % 3
            )
        })
        .collect();
    drop_file(&d.join("in"), "a.json", &lines);
    let text = r#"[[query]]
name = "per-minute"
checkpointLocation = "ckpt"
trigger = "availableNow"
outputMode = "complete"

[query.source]
format = "json"
path = "in"
schema = "city STRING, at TIMESTAMP"

[query.aggregate]
groupBy = ["city"]
window = { column = "at", duration = "1 minute" }
aggs = [{ fn = "count", as = "n" }]

[query.sink]
format = "console"
"#;
    let file = pipeline(d, text);
    let out = run_ok(sluice().arg("run").arg(&file));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let header = stdout
        .lines()
        .find(|l| l.contains("city") && l.starts_with('|'))
        .expect("a table header");
    let columns: Vec<&str> = header
        .split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(columns, ["window", "city", "n"], "{stdout}");
    let table = last_console_table(&stdout);
    assert_eq!(table.len(), 6, "{stdout}");
}
