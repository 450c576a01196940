//! Per-key state in Wasm (`[query.processor]`, Spark's `transformWithState`), driven as a
//! user would: example pipelines through the CLI, `sluice state show` on their checkpoints,
//! restarts, a long-running query with processing-time timers, and hostile modules.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use common::*;
use serde_json::{Value, json};

/// An example pipeline copied into `dir`, its console sink replaced by a json file sink at
/// `out` (so the test reads committed rows).
fn example_to_json(name: &str, dir: &Path) -> std::path::PathBuf {
    let file = example(name, dir);
    let text = std::fs::read_to_string(&file).unwrap();
    let sink = text.find("[query.sink]").expect("a sink");
    let text = format!(
        "{}[query.sink]\nformat = \"json\"\npath = \"out\"\n",
        &text[..sink]
    );
    std::fs::write(&file, text).unwrap();
    file
}

fn state_show(checkpoint: &Path, args: &[&str]) -> Vec<Value> {
    let out = run_ok(sluice().arg("state").arg("show").arg(checkpoint).args(args));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ms(ts: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts)
        .unwrap()
        .timestamp_millis()
}

/// The example's click files, each a batch: (user, event, ts ms) rows.
fn clicks(dir: &Path, files: &[&str]) -> Vec<Vec<(String, String, i64)>> {
    files
        .iter()
        .map(|f| {
            std::fs::read_to_string(dir.join("data/clicks").join(f))
                .unwrap()
                .lines()
                .map(|l| {
                    let v: Value = serde_json::from_str(l).unwrap();
                    (
                        v["user_id"].as_str().unwrap().to_owned(),
                        v["event"].as_str().unwrap().to_owned(),
                        ms(v["ts"].as_str().unwrap()),
                    )
                })
                .collect()
        })
        .collect()
}

/// The user-profile semantics computed directly: per batch, each user with rows gets their
/// newest 3 events by event time and their total since the profile began; a profile whose
/// TTL (1 h from the later of the watermark and the user's newest event at its last change)
/// the watermark passed starts afresh. Watermark = newest event of earlier batches − 10 min.
/// A user's profile in the model: last events (name, ms), total, TTL expiry (ms).
type Profile = (Vec<(String, i64)>, i64, i64);

fn expected_profiles(
    batches: &[Vec<(String, String, i64)>],
    mut wm: i64,
    profiles: &mut BTreeMap<String, Profile>,
) -> Vec<Value> {
    const TTL: i64 = 3_600_000;
    const DELAY: i64 = 600_000;
    let mut max_seen = wm + DELAY;
    let mut out = Vec::new();
    for rows in batches {
        profiles.retain(|_, (_, _, expiry)| *expiry > wm);
        let mut order: Vec<String> = Vec::new();
        let mut by_user: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
        for (u, e, t) in rows {
            if *t <= wm {
                continue;
            }
            if !by_user.contains_key(u) {
                order.push(u.clone());
            }
            by_user.entry(u.clone()).or_default().push((e.clone(), *t));
        }
        for u in order {
            let new = &by_user[&u];
            let (events, total, expiry) = profiles.entry(u.clone()).or_default();
            events.extend(new.iter().cloned());
            events.sort_by_key(|e| e.1);
            let keep = events.split_off(events.len().saturating_sub(3));
            *events = keep;
            *total += new.len() as i64;
            let newest = new.iter().map(|e| e.1).max().unwrap();
            *expiry = wm.max(newest) + TTL;
            out.push(json!({
                "user_id": u,
                "last_events": events.iter().map(|(e, t)| json!({"event": e, "ts": t})).collect::<Vec<_>>(),
                "total": total,
            }));
        }
        max_seen = max_seen.max(rows.iter().map(|r| r.2).max().unwrap_or(i64::MIN));
        wm = wm.max(max_seen - DELAY);
    }
    out
}

fn profile_rows(dir: &Path) -> Vec<Value> {
    let mut rows: Vec<Value> = committed_json(&dir.join("out"))
        .into_iter()
        .map(|mut r| {
            let events: Value = serde_json::from_str(r["last_events"].as_str().unwrap()).unwrap();
            r["last_events"] = events;
            r
        })
        .collect();
    rows.sort_by_key(|r| r.to_string());
    rows
}

fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(|r| r.to_string());
    v
}

#[test]
fn the_user_profile_example_keeps_the_last_events_per_user_and_expires_idle_users() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = example_to_json("user-profile", d);
    // First the morning: u5 is active only in the first file, then idle past its TTL.
    let last = d.join("data/clicks/clicks-4.jsonl");
    let held_back = std::fs::read_to_string(&last).unwrap();
    std::fs::remove_file(&last).unwrap();
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    let morning = clicks(d, &["clicks-1.jsonl", "clicks-2.jsonl", "clicks-3.jsonl"]);
    let mut profiles = BTreeMap::new();
    let expected = expected_profiles(&morning, 0, &mut profiles);
    assert_eq!(profile_rows(d), sorted(expected.clone()));
    assert_eq!(expected.len(), 5 + 4 + 4, "u5 only in the first batch");

    // The TTL evicted u5 (both of its variables) in the no-data batch the watermark ran.
    let progress = progress(&d.join("progress.jsonl"));
    let totals: Vec<u64> = progress
        .iter()
        .map(|p| p.state_operators[0]["numRowsTotal"].as_u64().unwrap())
        .collect();
    assert_eq!(totals.first(), Some(&5), "{totals:?}");
    assert_eq!(totals.last(), Some(&4), "{totals:?}");
    let evicted: u64 = progress
        .iter()
        .map(|p| {
            p.state_operators[0]["customMetrics"]["numValuesRemovedByTtl"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(evicted, 2);
    let ckpt = d.join("out/checkpoints/user-profiles");
    let state = state_show(&ckpt, &[]);
    let users: Vec<&str> = state
        .iter()
        .map(|r| r["key"]["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["u1", "u2", "u3", "u4"]);
    let u1 = state_show(&ckpt, &["--key", "user_id=u1"]);
    assert_eq!(u1.len(), 1);
    assert_eq!(u1[0]["state"]["total"], json!(12));
    assert_eq!(
        u1[0]["state"]["events"],
        profiles["u1"]
            .0
            .iter()
            .map(|(e, t)| json!({"event": e, "ts": t}))
            .collect::<Value>()
    );
    assert!(u1[0]["expiresAtMs"]["events"].as_i64().unwrap() > 0);

    // The afternoon, on the same checkpoint: u5 comes back and starts afresh.
    drop_file(&d.join("data/clicks"), "clicks-4.jsonl", &held_back);
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    let wm = progress
        .last()
        .and_then(|p| p.event_time.get("watermark").map(|w| ms(w)))
        .unwrap();
    let mut all = expected;
    let afternoon = clicks(d, &["clicks-4.jsonl"]);
    all.extend(expected_profiles(&afternoon, wm, &mut profiles));
    assert_eq!(profile_rows(d), sorted(all));
    let u5 = state_show(&ckpt, &["--key", "user_id=u5"]);
    assert_eq!(u5[0]["state"]["total"], json!(4), "{u5:?}");
}

/// Six files of clicks: 40 users, half an hour of event time per file, events of a user in
/// order across files but shuffled within one, gaps around the 10-minute session gap.
fn write_session_clicks(dir: &Path, files: std::ops::Range<u64>) {
    let base = ms("2024-05-01T09:00:00Z");
    let mut seed: u64 = 42;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    for f in 0..6u64 {
        let mut lines = Vec::new();
        for u in 0..40u64 {
            let mut t = base + (f * 30 * 60_000) as i64;
            let end = t + 30 * 60_000 - 60_000;
            loop {
                // Gaps of 0.5 to 16 minutes: some sessions span files, some close inside one.
                t += 30_000 + (next() % (15 * 60_000 + 30_000)) as i64;
                if t >= end {
                    break;
                }
                let ts = chrono::DateTime::from_timestamp_millis(t).unwrap();
                lines.push(format!(
                    "{{\"user_id\":\"user-{u}\",\"event\":\"view\",\"ts\":\"{}\"}}",
                    ts.format("%Y-%m-%dT%H:%M:%S%.3fZ")
                ));
            }
        }
        for i in (1..lines.len()).rev() {
            lines.swap(i, (next() as usize) % (i + 1));
        }
        if files.contains(&f) {
            let path = drop_file(
                &dir.join("in"),
                &format!("clicks-{f}.json"),
                &(lines.join("\n") + "\n"),
            );
            set_mtime(&path, 100 - f);
        }
    }
}

const SESSIONS_BY_PROCESSOR: &str = r#"[[query]]
name = "sessions"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.source]
format = "json"
path = "in"
schema = "user_id STRING, event STRING, ts TIMESTAMP"
maxFilesPerTrigger = 1
watermark = { column = "ts", delay = "10 minutes" }

[query.processor]
module = "MODULE"
key = ["user_id"]
timeMode = "eventTime"
config = { gapMs = 600000 }

[query.sink]
format = "json"
path = "out"
"#;

fn sessions_pipeline(dir: &Path) -> std::path::PathBuf {
    let module = guests().join("sessionize.wasm");
    pipeline(
        dir,
        &SESSIONS_BY_PROCESSOR.replace("MODULE", &module.display().to_string()),
    )
}

fn session_rows(dir: &Path) -> Vec<Value> {
    sorted(committed_json(&dir.join("out")))
}

#[test]
fn sessionization_by_an_event_time_timer_gives_the_built_in_session_windows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_session_clicks(d, 0..6);
    run_ok(sluice().arg("run").arg(sessions_pipeline(d)));
    let by_processor = session_rows(d);

    let builtin = tempfile::tempdir().unwrap();
    write_session_clicks(builtin.path(), 0..6);
    let text = SESSIONS_BY_PROCESSOR.replace(
        "[query.processor]\nmodule = \"MODULE\"\nkey = [\"user_id\"]\ntimeMode = \"eventTime\"\nconfig = { gapMs = 600000 }",
        "[query.aggregate]\ngroupBy = [\"user_id\"]\nwindow = { column = \"ts\", gap = \"10 minutes\" }\naggs = [{ fn = \"count\", as = \"events\" }]",
    );
    assert!(text.contains("[query.aggregate]"));
    run_ok(sluice().arg("run").arg(pipeline(builtin.path(), &text)));
    let by_window = session_rows(builtin.path());
    assert!(by_window.len() > 150, "{} sessions", by_window.len());
    assert_eq!(by_processor, by_window);
}

#[test]
fn a_processor_declared_in_functions_is_a_table_function_of_sql() {
    let dir = tempfile::tempdir().unwrap();
    write_session_clicks(dir.path(), 0..6);
    run_ok(sluice().arg("run").arg(sessions_pipeline(dir.path())));
    let by_toml = session_rows(dir.path());

    let sql = tempfile::tempdir().unwrap();
    write_session_clicks(sql.path(), 0..6);
    let module = guests().join("sessionize.wasm");
    let text = format!(
        r#"[functions]
sessions = {{ processor = "{}", timeMode = "eventTime", config = {{ gapMs = 600000 }} }}

[[query]]
name = "sessions"
checkpointLocation = "ckpt"
trigger = "availableNow"
sql = "SELECT * FROM sessions(clicks, user_id) s"

[query.inputs.clicks]
format = "json"
path = "in"
schema = "user_id STRING, event STRING, ts TIMESTAMP"
maxFilesPerTrigger = 1
watermark = {{ column = "ts", delay = "10 minutes" }}

[query.sink]
format = "json"
path = "out"
"#,
        module.display()
    );
    let file = pipeline(sql.path(), &text);
    let explain = run_ok(sluice().arg("explain").arg(&file));
    let explain = String::from_utf8_lossy(&explain.stdout);
    assert!(
        explain.contains("View 's'") && explain.contains("user_id"),
        "{explain}"
    );
    run_ok(sluice().arg("run").arg(&file));
    let by_sql = session_rows(sql.path());
    assert!(by_sql.len() > 150, "{} sessions", by_sql.len());
    assert_eq!(by_sql, by_toml);
    // Without its key, the call says what it needs.
    let text = text.replace("sessions(clicks, user_id)", "sessions(clicks)");
    let out = sluice()
        .arg("validate")
        .arg(pipeline(sql.path(), &text))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("sessions(clicks, ...) needs the key columns"),
        "{stderr}"
    );
}

#[test]
fn timers_registered_before_a_restart_fire_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_session_clicks(d, 0..3);
    let file = sessions_pipeline(d);
    run_ok(sluice().arg("run").arg(&file));
    // Every user has an open session whose timer waits for a watermark beyond this input.
    let state = state_show(&d.join("ckpt"), &["--operator", "processor"]);
    let pending: Vec<(String, i64, i64)> = state
        .iter()
        .filter_map(|r| {
            let open = &r["state"]["open"];
            Some((
                r["key"]["user_id"].as_str()?.to_owned(),
                open["start"].as_i64()?,
                open["end"].as_i64()?,
            ))
        })
        .collect();
    assert_eq!(pending.len(), 40, "{state:?}");
    for (user, _, end) in &pending {
        let row = state
            .iter()
            .find(|r| r["key"]["user_id"] == *user.as_str())
            .unwrap();
        assert!(
            row["timers"].as_array().unwrap().contains(&json!(end)),
            "{row}"
        );
    }
    let before = session_rows(d);

    // A new process with the rest of the input: each of those sessions is closed by its
    // timer (the one registered before the restart, or a later one if new events extended
    // the session), so it appears in the output with the start it had.
    write_session_clicks(d, 3..6);
    run_ok(sluice().arg("run").arg(&file));
    let after = session_rows(d);
    assert!(after.len() > before.len());
    let emitted: Vec<(String, i64, i64)> = after
        .iter()
        .map(|r| {
            (
                r["user_id"].as_str().unwrap().to_owned(),
                ms(r["window"]["start"].as_str().unwrap()),
                ms(r["window"]["end"].as_str().unwrap()),
            )
        })
        .collect();
    let mut fired_unchanged = 0;
    for (user, start, end) in &pending {
        let closed = emitted
            .iter()
            .find(|(u, s, _)| u == user && s == start)
            .unwrap_or_else(|| panic!("{user}'s session from {start} was never closed"));
        if closed.2 == *end {
            fired_unchanged += 1;
        }
    }
    assert!(
        fired_unchanged > 0,
        "no timer from before the restart fired as registered"
    );
    // And the two runs together wrote exactly what one run over all the input writes.
    let clean = tempfile::tempdir().unwrap();
    write_session_clicks(clean.path(), 0..6);
    run_ok(sluice().arg("run").arg(sessions_pipeline(clean.path())));
    assert_eq!(after, session_rows(clean.path()));
}

/// Polls `f` until it gives a value (a file or log to appear), failing after the timeout.
fn await_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_processing_time_timer_resets_the_burst_alert_count() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let module = guests().join("burst_alert.wasm");
    let file = pipeline(
        d,
        &format!(
            r#"[[query]]
name = "bursts"
checkpointLocation = "ckpt"
trigger = {{ processingTime = "100 ms" }}

[query.source]
format = "json"
path = "in"
schema = "user_id STRING"

[query.processor]
module = "{}"
key = ["user_id"]
timeMode = "processingTime"
config = {{ k = 3, windowMs = 1500 }}

[query.sink]
format = "json"
path = "out"
"#,
            module.display()
        ),
    );
    let lines = |users: &[&str]| -> String {
        users
            .iter()
            .map(|u| format!("{{\"user_id\":\"{u}\"}}\n"))
            .collect()
    };
    let progress_log = d.join("progress.jsonl");
    let run = Running::start(
        &file,
        &["--progress-log", progress_log.to_str().unwrap()],
        &[],
    );
    // u1 passes k = 3 within the window; u2 does not.
    drop_file(
        &d.join("in"),
        "a.json",
        lines(&["u1", "u2", "u1", "u1", "u2", "u1", "u2"]),
    );
    let first = await_until("the first alert", || {
        let rows = committed_json(&d.join("out"));
        (!rows.is_empty()).then_some(rows)
    });
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0]["user_id"], "u1");
    assert_eq!(first[0]["events"], 4);
    // The window's timers fire in a batch of their own (no new data): both keys reset.
    await_until("the timers to fire", || {
        progress(&progress_log)
            .iter()
            .any(|p| {
                p.num_input_rows == 0
                    && p.state_operators[0]["customMetrics"]["numExpiredTimers"] == 2
            })
            .then_some(())
    });
    let after_reset = progress(&progress_log)
        .iter()
        .find(|p| p.state_operators[0]["customMetrics"]["numExpiredTimers"] == 2)
        .map(|p| p.state_operators[0]["numRowsTotal"].clone());
    assert_eq!(after_reset, Some(json!(0)), "the keys left the state store");
    // A new window: u1 needs four more events again, u2's count restarted too.
    drop_file(
        &d.join("in"),
        "b.json",
        lines(&["u1", "u2", "u1", "u1", "u1"]),
    );
    let rows = await_until("the second alert", || {
        let rows = committed_json(&d.join("out"));
        (rows.len() == 2).then_some(rows)
    });
    assert_eq!(rows[1]["user_id"], "u1");
    assert_eq!(rows[1]["events"], 4, "the count was reset by the timer");
    assert!(
        rows[1]["window_start"].as_i64().unwrap()
            >= rows[0]["window_start"].as_i64().unwrap() + 1500
    );
    run.signal(2);
    let (code, log) = run.wait();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(committed_json(&d.join("out")).len(), 2);
}

#[test]
fn hostile_processors_fail_their_own_query_naming_module_and_batch_and_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let module = guests().join("hostile_processor.wasm");
    for f in 0..2u64 {
        let lines: String = (0..10)
            .map(|i| {
                format!(
                    "{{\"user_id\":\"u{}\",\"ts\":\"2024-05-01T10:{:02}:00Z\"}}\n",
                    i % 3,
                    f * 20 + i
                )
            })
            .collect();
        let p = drop_file(&d.join("in"), &format!("f{f}.json"), &lines);
        set_mtime(&p, 100 - f);
    }
    let mut text = String::new();
    for (name, behavior, extra) in [
        ("extra", "extra-key", ""),
        ("malformed", "malformed", ""),
        ("past", "past-timer", ""),
        ("spin", "timer-loop", "timeout = \"500 ms\""),
        ("counter", "none", ""),
    ] {
        text.push_str(&format!(
            r#"
[[query]]
name = "{name}"
checkpointLocation = "ckpt-{name}"
trigger = "availableNow"
# One state partition: the keys a call is given do not depend on the machine's cores.
shufflePartitions = 1
[query.source]
format = "json"
path = "in"
schema = "user_id STRING, ts TIMESTAMP"
maxFilesPerTrigger = 1
watermark = {{ column = "ts", delay = "1 minute" }}
[query.processor]
module = "{module}"
key = ["user_id"]
timeMode = "eventTime"
config = {{ behavior = "{behavior}" }}
{extra}
[query.sink]
format = "json"
path = "out-{name}"
"#,
            module = module.display()
        ));
    }
    let file = pipeline(d, &text);
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(1), "{stderr}");
    let error_of = |q: &str| {
        stderr
            .lines()
            .find(|l| l.starts_with(&format!("error: query '{q}' failed")))
            .unwrap_or_else(|| panic!("no error for query {q}:\n{stderr}"))
            .to_owned()
    };
    let named = |e: &str, batch: u64| {
        assert!(
            e.contains("processor (module")
                && e.contains("hostile_processor.wasm")
                && e.contains(&format!("in batch {batch}")),
            "{e}"
        );
    };
    let extra = error_of("extra");
    named(&extra, 0);
    assert!(
        extra.contains("returned state for 4 keys; it was given 3"),
        "{extra}"
    );
    let malformed = error_of("malformed");
    named(&malformed, 0);
    assert!(
        malformed.contains("state 'count' got a value that is not an 8-byte int64 (3 bytes"),
        "{malformed}"
    );
    assert!(malformed.contains("key (user_id=u0)"), "{malformed}");
    let past = error_of("past");
    named(&past, 0);
    assert!(
        past.contains(
            "registered an event-time timer at 0 ms, not after the batch's watermark 0 ms"
        ),
        "{past}"
    );
    // The timers of batch 0 fire in batch 1, where the callback spins until its deadline.
    let spin = error_of("spin");
    named(&spin, 1);
    assert!(spin.contains("ran past its deadline of 500ms"), "{spin}");
    // Nothing of a failed batch is committed; the good query ran to its end.
    assert!(!d.join("ckpt-extra/commits/0").exists());
    assert!(d.join("ckpt-spin/commits/0").exists() && !d.join("ckpt-spin/commits/1").exists());
    assert!(!stderr.contains("error: query 'counter'"), "{stderr}");
    let counts = state_show(&d.join("ckpt-counter"), &[]);
    let total: i64 = counts
        .iter()
        .map(|r| r["state"]["count"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 20, "{counts:?}");
}

#[test]
fn a_processor_module_is_recognised_and_the_wrong_world_is_refused() {
    let out = run_ok(
        sluice()
            .args(["module", "check"])
            .arg(guests().join("key_counter.wasm")),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("sluice:pipeline/keyed-processor"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    drop_file(&dir.path().join("in"), "a.json", "{\"user_id\":\"u1\"}\n");
    let file = pipeline(
        dir.path(),
        &format!(
            r#"[[query]]
name = "q"
trigger = "availableNow"
[query.source]
format = "json"
path = "in"
schema = "user_id STRING"
[query.processor]
module = "{}"
key = ["user_id"]
[query.sink]
format = "console"
"#,
            guests().join("pass_through.wasm").display()
        ),
    );
    let (code, _, stderr) = run_logged(&file);
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("does not implement the sluice:pipeline/keyed-processor world")
            && stderr.contains("`processor` feature"),
        "{stderr}"
    );
}
