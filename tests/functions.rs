//! Wasm scalar functions in expressions, through the CLI: a pipeline declares a component
//! under `[functions]` and calls it by name in `selectExpr` and `where`; guests that answer
//! wrongly or never are stopped with the function and its module named; `sluice validate`
//! refuses what cannot work before anything runs.

mod common;

use common::*;

/// The example `to_krw` over the event files, in a projection and a filter.
fn to_krw_pipeline(modules: &std::path::Path) -> String {
    format!(
        r#"[functions]
to_krw = {{ module = "{m}/to_krw.wasm", config = {{ rate = 1000 }} }}

[[query]]
name = "krw"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.source]
format = "json"
path = "in/*.json"
schema = "id BIGINT, city STRING, amount BIGINT"
mode = "FAILFAST"

[[query.transform]]
where = "TO_KRW(amount) > 500000"

[[query.transform]]
selectExpr = ["id", "city", "to_krw(amount) AS krw", "to_krw(amount * 2) - to_krw(amount) AS again"]

[query.sink]
format = "json"
path = "out"
"#,
        m = modules.display()
    )
}

#[test]
fn a_wasm_function_computes_columns_and_filters_rows() {
    let modules = guests();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for i in 0..4u64 {
        let f = drop_file(
            &d.join("in"),
            &format!("{i}.json"),
            event_lines(i * 50..(i + 1) * 50),
        );
        set_mtime(&f, 100 - i);
    }
    let file = pipeline(d, &to_krw_pipeline(&modules));
    run_ok(sluice().arg("validate").arg(&file));
    run_ok(sluice().arg("run").arg(&file));
    let mut got: Vec<(u64, f64, f64)> = committed_json(&d.join("out"))
        .iter()
        .map(|r| {
            (
                r["id"].as_u64().unwrap(),
                r["krw"].as_f64().unwrap(),
                r["again"].as_f64().unwrap(),
            )
        })
        .collect();
    got.sort_by_key(|r| r.0);
    // amount = id * 10; krw = amount * 1000; kept when krw > 500,000, i.e. id > 50.
    let expected: Vec<(u64, f64, f64)> = (51..200u64)
        .map(|id| (id, (id * 10_000) as f64, (id * 10_000) as f64))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn hostile_functions_are_stopped_with_the_function_and_module_named() {
    let modules = guests();
    let module = modules.join("hostile_function.wasm");
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("[functions]\n");
    let cases = [
        ("short", "gave 7 values for 8 rows"),
        ("wrong-type", "does not match its output schema"),
        ("loop", "ran past its deadline"),
    ];
    for (behavior, _) in cases {
        let name = behavior.replace('-', "_");
        text.push_str(&format!(
            "h_{name} = {{ module = \"{}\", config = {{ behavior = \"{behavior}\" }}, timeout = \"1s\" }}\n",
            module.display()
        ));
    }
    for (behavior, _) in cases {
        let name = behavior.replace('-', "_");
        text.push_str(&format!(
            r#"
[[query]]
name = "{name}"
checkpointLocation = "ckpt-{name}"
trigger = "availableNow"
[query.source]
format = "rate-micro-batch"
rowsPerBatch = 8
[[query.transform]]
selectExpr = ["h_{name}(value) AS v"]
[query.sink]
format = "json"
path = "out-{name}"
"#
        ));
    }
    let file = pipeline(dir.path(), &text);
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(1), "{stderr}");
    for (behavior, why) in cases {
        let name = behavior.replace('-', "_");
        let error = query_error(&stderr, &name);
        assert!(
            error.contains(&format!("function 'h_{name}'"))
                && error.contains("hostile_function.wasm")
                && error.contains(why),
            "query {name}: {error}"
        );
        // Nothing reached the sink of a batch that failed.
        assert!(committed_json(&dir.path().join(format!("out-{name}"))).is_empty());
    }
    // A function that refuses its arguments stops the query before it starts, naming the
    // expression.
    let refuse = format!(
        r#"[functions]
h_refuse = {{ module = "{}", config = {{ behavior = "refuse" }} }}

[[query]]
name = "refuse"
checkpointLocation = "ckpt-refuse"
trigger = "availableNow"
[query.source]
format = "rate-micro-batch"
rowsPerBatch = 8
[[query.transform]]
selectExpr = ["value AS a", "h_refuse(value) AS v"]
[query.sink]
format = "json"
path = "out-refuse"
"#,
        module.display()
    );
    let file = pipeline(dir.path(), &refuse);
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("query 'refuse'")
            && stderr.contains("selectExpr[1]")
            && stderr.contains("function 'h_refuse'")
            && stderr.contains("hostile refuses every argument"),
        "{stderr}"
    );
}

#[test]
fn validate_refuses_functions_that_cannot_work() {
    let modules = guests();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = to_krw_pipeline(&modules);
    // A name taken by a built-in.
    let shadow = good.replace("[functions]\n", "[functions]\nupper = \"x.wasm\"\n");
    let (code, out) = validate(d, "shadow.toml", &shadow);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("shadow.toml:2") && out.contains("'upper' is a built-in function"),
        "{out}"
    );
    // A misspelt call: the declared name is suggested.
    let typo = good.replace("TO_KRW(amount)", "to_krv(amount)");
    let (code, out) = validate(d, "typo.toml", &typo);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("unknown function 'to_krv'") && out.contains("did you mean 'to_krw'"),
        "{out}"
    );
    // A component of another world.
    let wrong = good.replace("to_krw.wasm", "pass_through.wasm");
    let (code, out) = validate(d, "wrong.toml", &wrong);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("wrong.toml:2") && out.contains("sluice:pipeline/function"),
        "{out}"
    );
}

/// `sluice validate` on `text` written as `name`: its exit code and what it printed.
fn validate(dir: &std::path::Path, name: &str, text: &str) -> (Option<i32>, String) {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    let out = sluice().arg("validate").arg(&file).output().unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
