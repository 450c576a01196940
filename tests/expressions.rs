//! Expression steps through the CLI on real files: `selectExpr`, `where`, `withColumn`,
//! `withColumnRenamed` and `drop` with no Wasm module, checked against a computation in the
//! test; `sluice validate` placing an expression's mistakes at their line and character.

mod common;

use common::*;

const PIPELINE: &str = r#"[[query]]
name = "orders"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.source]
format = "json"
path = "in/*.json"
schema = "id BIGINT, city STRING, amount BIGINT"
mode = "FAILFAST"
maxFilesPerTrigger = 1

[[query.transform]]
where = "amount > 500 AND city <> 'Daegu'"

[[query.transform]]
withColumn = { name = "city", expr = "lower(city)" }

[[query.transform]]
name = "shape"
selectExpr = ["id", "city", "amount * 2 AS doubled", "CAST(amount AS STRING) AS amount_text", "upper(substr(city, 1, 2)) AS code"]

[[query.transform]]
withColumnRenamed = { existing = "amount_text", new = "amount_str" }

[[query.transform]]
drop = ["code"]

[query.sink]
format = "json"
path = "out"
"#;

#[test]
fn expression_steps_shape_rows_with_no_module() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for i in 0..4u64 {
        let f = drop_file(
            &d.join("in"),
            &format!("{i}.json"),
            event_lines(i * 25..(i + 1) * 25),
        );
        set_mtime(&f, 100 - i);
    }
    let file = pipeline(d, PIPELINE);
    run_ok(sluice().arg("validate").arg(&file));
    run_ok(sluice().arg("run").arg(&file));
    let mut got: Vec<(u64, String, u64, String)> = committed_json(&d.join("out"))
        .iter()
        .map(|r| {
            assert!(r.get("code").is_none() && r.get("amount").is_none(), "{r}");
            (
                r["id"].as_u64().unwrap(),
                r["city"].as_str().unwrap().to_owned(),
                r["doubled"].as_u64().unwrap(),
                r["amount_str"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    const CITIES: [&str; 4] = ["Seoul", "Busan", "Incheon", "Daegu"];
    let expected: Vec<(u64, String, u64, String)> = (0..100u64)
        .map(|i| (i, CITIES[(i % 4) as usize], i * 10))
        .filter(|(_, city, amount)| *amount > 500 && *city != "Daegu")
        .map(|(i, city, amount)| (i, city.to_lowercase(), amount * 2, amount.to_string()))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
    // `sluice explain` shows each expression step as written.
    let out = run_ok(sluice().arg("explain").arg(&file));
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        tree.contains("Expression 'shape' (selectExpr id, city, amount * 2 AS doubled"),
        "{tree}"
    );
    assert!(
        tree.contains("(where amount > 500 AND city <> 'Daegu')"),
        "{tree}"
    );
}

/// Spark's `/` of two integers is a DOUBLE, also under a comparison or more arithmetic (the
/// planner coerced those for integers before the division became a DOUBLE, and `a / b > 1`
/// failed its batch comparing a DOUBLE with a BIGINT).
#[test]
fn an_integer_division_is_a_double_under_comparisons_and_arithmetic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    drop_file(
        &d.join("in"),
        "a.json",
        "{\"a\":7,\"b\":2}\n{\"a\":1,\"b\":4}\n",
    );
    let file = pipeline(
        d,
        r#"[[query]]
name = "q"
checkpointLocation = "ckpt"
trigger = "availableNow"
[query.source]
format = "json"
path = "in"
schema = "a BIGINT, b BIGINT"
[[query.transform]]
where = "a / b > 1"
[[query.transform]]
selectExpr = ["a", "a / b + 1 AS c", "(a / b) % 2 AS m", "a / b = 3.5 AS eq"]
[query.sink]
format = "json"
path = "out"
"#,
    );
    run_ok(sluice().arg("run").arg(&file));
    assert_eq!(
        committed_json(&d.join("out")),
        [serde_json::json!({"a": 7, "c": 4.5, "m": 1.5, "eq": true})]
    );
}

#[test]
fn validate_places_an_expressions_mistakes_at_their_line_and_character() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for (from, to, says) in [
        (
            "\"amount * 2 AS doubled\"",
            "\"amont * 2 AS doubled\"",
            vec!["selectExpr[2]", "amont", "(at character 1)"],
        ),
        (
            "expr = \"lower(city)\"",
            "expr = \"lowr(city)\"",
            vec![
                "withColumn.expr",
                "unknown function 'lowr'",
                "did you mean 'lower'",
            ],
        ),
        (
            "where = \"amount > 500 AND city <> 'Daegu'\"",
            "where = \"amount > 500 AND\"",
            vec!["transform[0].where", "(at character 17)"],
        ),
        (
            "where = \"amount > 500 AND city <> 'Daegu'\"",
            "where = \"amount + 1\"",
            vec!["not a condition"],
        ),
        // Spark's `/` is a DOUBLE, and `&` takes integers only (DataFusion's kernel panicked
        // on the DOUBLE; found by the `expression` fuzz target).
        (
            "\"amount * 2 AS doubled\"",
            "\"amount & (amount / 2) AS masked\"",
            vec!["selectExpr[2]", "needs integer operands, not Float64"],
        ),
        (
            "drop = [\"code\"]",
            "drop = [\"cod\"]",
            vec![
                "transform[4].drop[0]",
                "no column 'cod'",
                "did you mean 'code'",
            ],
        ),
    ] {
        let text = PIPELINE.replace(from, to);
        assert_ne!(text, PIPELINE);
        let file = pipeline(d, &text);
        let out = sluice().arg("validate").arg(&file).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{to}: {stderr}");
        let line = line_of(&text, to);
        assert!(
            stderr.contains(&format!("pipeline.toml:{line}:")),
            "{to} at line {line}: {stderr}"
        );
        for s in says {
            assert!(stderr.contains(s), "{to}: '{s}' in {stderr}");
        }
    }
    // A step that is both a module and an expression is refused.
    let text = PIPELINE.replace(
        "withColumn = { name = \"city\", expr = \"lower(city)\" }",
        "withColumn = { name = \"city\", expr = \"lower(city)\" }\nmodule = \"x.wasm\"",
    );
    let out = sluice()
        .arg("validate")
        .arg(pipeline(d, &text))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("a step does one thing"), "{stderr}");
}

#[test]
fn the_seeds_json_pipeline_in_expressions_writes_what_the_wasm_example_does() {
    let expressions = example_values("expr-json-events");
    assert_eq!(expressions.len(), 4, "{expressions:?}");
    assert_eq!(expressions, example_values("json-events"));
}

#[test]
fn a_cast_that_fails_sends_its_row_to_the_dead_letter_output_and_the_rest_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lines: String = (0..20)
        .map(|i| {
            let n = if i % 7 == 3 {
                format!("n{i}")
            } else {
                i.to_string()
            };
            format!("{{\"id\":{i},\"n\":\"{n}\"}}\n")
        })
        .collect();
    drop_file(&d.join("in"), "0.json", &lines);
    let text = r#"[[query]]
name = "casts"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.source]
format = "json"
path = "in/*.json"
schema = "id BIGINT, n STRING"

[[query.transform]]
name = "to-int"
selectExpr = ["id", "CAST(n AS INT) AS n"]
onError = "deadLetter"
deadLetter = "bad"

[query.outputs.bad]
format = "json"
path = "bad"

[query.sink]
format = "json"
path = "out"
"#;
    let file = pipeline(d, text);
    run_ok(sluice().arg("validate").arg(&file));
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    let mut good: Vec<(i64, i64)> = committed_json(&d.join("out"))
        .iter()
        .map(|r| (r["id"].as_i64().unwrap(), r["n"].as_i64().unwrap()))
        .collect();
    good.sort();
    let expected: Vec<(i64, i64)> = (0..20).filter(|i| i % 7 != 3).map(|i| (i, i)).collect();
    assert_eq!(good, expected);
    let mut bad: Vec<(i64, String, String)> = committed_json(&d.join("bad"))
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap(),
                r["n"].as_str().unwrap().to_owned(),
                r["_error"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    bad.sort();
    assert_eq!(
        bad.iter().map(|b| b.0).collect::<Vec<_>>(),
        [3, 10, 17],
        "{bad:?}"
    );
    for (id, n, why) in &bad {
        assert_eq!(n, &format!("n{id}"));
        assert!(
            why.contains("step 'to-int'") && why.contains("(batch 0)"),
            "{why}"
        );
    }
    // With the default policy the same rows stop the query, naming the step and the batch.
    let fail = text.replace("onError = \"deadLetter\"\ndeadLetter = \"bad\"\n", "");
    let d2 = tempfile::tempdir().unwrap();
    drop_file(&d2.path().join("in"), "0.json", &lines);
    let out = sluice()
        .arg("run")
        .arg(pipeline(d2.path(), &fail))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("step 'to-int'") && stderr.contains("batch 0"),
        "{stderr}"
    );
}

#[test]
fn current_timestamp_is_each_batch_s_recorded_time_and_a_re_run_sees_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for i in 0..3u64 {
        let f = drop_file(
            &d.join("in"),
            &format!("{i}.json"),
            event_lines(i * 10..(i + 1) * 10),
        );
        set_mtime(&f, 100 - i);
    }
    let file = pipeline(
        d,
        r#"[[query]]
name = "stamped"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.source]
format = "json"
path = "in/*.json"
schema = "id BIGINT, city STRING, amount BIGINT"
mode = "FAILFAST"
maxFilesPerTrigger = 1

[[query.transform]]
selectExpr = ["id", "current_timestamp() AS seen", "current_date() AS day"]

[query.sink]
format = "json"
path = "out"
"#,
    );
    // Batch 1 dies after its rows reached the sink, before its commit: the re-run writes
    // them again, with the time batch 1 was planned at, not the time of the re-run.
    let mut run = Running::start(&file, &[], &[("SLUICE_FAILPOINTS", "after-sink:1")]);
    run.await_line("sluice-failpoint: after-sink batch 1");
    run.signal(9);
    let _ = run.wait();
    run_ok(sluice().arg("run").arg(&file));
    let planned = |n: u64| -> i64 {
        let text = std::fs::read_to_string(d.join(format!("ckpt/offsets/{n}"))).unwrap();
        let json = text.lines().find(|l| l.starts_with('{')).unwrap();
        serde_json::from_str::<serde_json::Value>(json).unwrap()["batchTimestampMs"]
            .as_i64()
            .unwrap()
    };
    let rows = committed_json(&d.join("out"));
    assert_eq!(rows.len(), 30);
    for r in &rows {
        let batch = r["id"].as_u64().unwrap() / 10;
        let seen = chrono::DateTime::parse_from_rfc3339(r["seen"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("row {r}: {e}"));
        assert_eq!(seen.timestamp_millis(), planned(batch), "row {r}");
        let day = chrono::DateTime::from_timestamp_millis(planned(batch))
            .unwrap()
            .format("%Y-%m-%d")
            .to_string();
        assert_eq!(r["day"].as_str(), Some(day.as_str()), "row {r}");
    }
}
