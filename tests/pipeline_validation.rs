//! Bad pipeline files: each wrong input must produce its error text (with the query, key path
//! and line), exit code 2, and nothing may run.

mod common;

use common::{guests, pipeline, run_ok, sluice};

/// A valid query; each case breaks one thing in it.
const GOOD: &str = r#"[[query]]
name = "events"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.source]
format = "json"
path = "in/*.json"
schema = "id BIGINT, city STRING, amount BIGINT"
maxFilesPerTrigger = 1

[query.sink]
format = "json"
path = "out"
"#;

struct Case {
    what: &'static str,
    from: &'static str,
    to: &'static str,
    /// Every fragment must appear in the error output.
    expect: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        what: "a Kafka password written into the pipeline",
        from: "format = \"json\"\npath = \"out\"",
        to: "format = \"kafka\"\n\"kafka.bootstrap.servers\" = \"localhost:9092\"\ntopic = \"t\"\n\"kafka.sasl.password\" = \"hunter2\"",
        expect: &[
            "sink.kafka.sasl.password: a secret written into the pipeline is refused; write it as { env = \"NAME\" }",
        ],
    },
    Case {
        what: "a Kafka secret table of the wrong shape",
        from: "format = \"json\"\npath = \"out\"",
        to: "format = \"kafka\"\n\"kafka.bootstrap.servers\" = \"localhost:9092\"\ntopic = \"t\"\n\"kafka.ssl.key.password\" = { vault = \"x\" }",
        expect: &[
            "sink.kafka.ssl.key.password.vault: a secret written into the pipeline is refused",
        ],
    },
    Case {
        what: "a PostgreSQL password in the url",
        from: "format = \"json\"\npath = \"out\"",
        to: "format = \"postgres\"\nurl = \"host=db user=u password=hunter2\"\ntable = \"t\"",
        expect: &["sink.url: holds a password; give it as password = { env = \"NAME\" }"],
    },
    Case {
        what: "misspelt option",
        from: "maxFilesPerTrigger = 1",
        to: "maxFilesPerTriger = 1",
        expect: &[
            "pipeline.toml:10: query 'events': source.maxFilesPerTriger: unknown key; did you mean 'maxFilesPerTrigger'?",
        ],
    },
    Case {
        what: "wrong type",
        from: "maxFilesPerTrigger = 1",
        to: "maxFilesPerTrigger = \"ten\"",
        expect: &[
            "pipeline.toml:10: query 'events': source.maxFilesPerTrigger: expected a non-negative integer, found a string",
        ],
    },
    Case {
        what: "zero limit",
        from: "maxFilesPerTrigger = 1",
        to: "maxFilesPerTrigger = 0",
        expect: &["source.maxFilesPerTrigger: must be greater than 0"],
    },
    Case {
        what: "missing path",
        from: "path = \"in/*.json\"",
        to: "",
        expect: &["pipeline.toml:6: query 'events': source.path: missing required option"],
    },
    Case {
        what: "no schema",
        from: "schema = \"id BIGINT, city STRING, amount BIGINT\"",
        to: "",
        expect: &[
            "source.schema: a streaming file source needs a schema",
            "inferSchema = true",
        ],
    },
    Case {
        what: "bad schema type",
        from: "amount BIGINT",
        to: "amount MONEY",
        expect: &[
            "pipeline.toml:9:",
            "source.schema: unknown type 'MONEY' for column 'amount'",
        ],
    },
    Case {
        what: "nested type in a csv source",
        from: "format = \"json\"\npath = \"in/*.json\"\nschema = \"id BIGINT, city STRING, amount BIGINT\"",
        to: "format = \"csv\"\npath = \"in/*.csv\"\nschema = \"id BIGINT, tags ARRAY<STRING>\"",
        expect: &[
            "pipeline.toml:9:",
            "source.schema: column 'tags' is array<string>, which a CSV cell cannot hold",
        ],
    },
    Case {
        what: "unclosed nested type",
        from: "amount BIGINT",
        to: "amount MAP<STRING, BIGINT",
        expect: &["source.schema: '<' at position 35 is never closed"],
    },
    Case {
        what: "unknown trigger",
        from: "trigger = \"availableNow\"",
        to: "trigger = \"sometimes\"",
        expect: &["pipeline.toml:4: query 'events': trigger: 'sometimes' is not a trigger"],
    },
    Case {
        what: "bad interval",
        from: "trigger = \"availableNow\"",
        to: "trigger = { processingTime = \"10 fortnights\" }",
        expect: &["trigger: unknown time unit 'fortnights'"],
    },
    Case {
        what: "complete without aggregation",
        from: "trigger = \"availableNow\"",
        to: "trigger = \"availableNow\"\noutputMode = \"complete\"",
        expect: &["outputMode: complete mode needs a streaming aggregation"],
    },
    Case {
        what: "unknown output mode",
        from: "trigger = \"availableNow\"",
        to: "trigger = \"availableNow\"\noutputMode = \"upsert\"",
        expect: &["outputMode: 'upsert' is not an output mode"],
    },
    Case {
        what: "file sink without checkpoint",
        from: "checkpointLocation = \"ckpt\"",
        to: "",
        expect: &[
            "checkpointLocation: a FileSink[",
            "needs a checkpointLocation",
        ],
    },
    Case {
        what: "unknown source format",
        from: "format = \"json\"\npath = \"in",
        to: "format = \"kafak\"\npath = \"in",
        expect: &["source.format: unknown source format 'kafak'"],
    },
    Case {
        what: "unknown sink format",
        from: "format = \"json\"\npath = \"out\"",
        to: "format = \"jsn\"\npath = \"out\"",
        expect: &["sink.format: unknown sink format 'jsn'"],
    },
    Case {
        what: "invalid TOML",
        from: "name = \"events\"",
        to: "name = \"events",
        expect: &["pipeline.toml:2:", "not valid TOML"],
    },
    Case {
        what: "archive without a directory",
        from: "maxFilesPerTrigger = 1",
        to: "cleanSource = \"archive\"",
        expect: &["source.sourceArchiveDir: cleanSource = \"archive\" needs sourceArchiveDir"],
    },
    Case {
        what: "archive inside the source",
        from: "maxFilesPerTrigger = 1",
        to: "cleanSource = \"archive\"\nsourceArchiveDir = \"in/old\"",
        expect: &["is inside the source path", "would be read again"],
    },
    Case {
        what: "partition column not in schema",
        from: "path = \"out\"",
        to: "path = \"out\"\npartitionBy = [\"country\"]",
        expect: &["sink.partitionBy: column 'country' is not in the source schema"],
    },
    Case {
        what: "mode",
        from: "maxFilesPerTrigger = 1",
        to: "mode = \"LENIENT\"",
        expect: &[
            "source.mode: 'LENIENT' is not a mode; use \"PERMISSIVE\", \"DROPMALFORMED\" or \"FAILFAST\"",
        ],
    },
    Case {
        what: "csv option on json",
        from: "maxFilesPerTrigger = 1",
        to: "header = true",
        expect: &["source.header: only applies to csv, not json"],
    },
    Case {
        what: "unknown query key",
        from: "trigger = \"availableNow\"",
        to: "trigger = \"availableNow\"\ncheckpointDir = \"x\"",
        expect: &["query 'events': checkpointDir: unknown key; did you mean 'checkpointLocation'?"],
    },
];

/// A valid stateful query: what a declared schema tells about its event-time and stateful
/// options is checked by `validate`, before anything starts.
const STATEFUL_GOOD: &str = r#"[[query]]
name = "orders"
checkpointLocation = "ckpt"
trigger = "availableNow"
outputMode = "update"

[query.source]
format = "json"
path = "in/*.json"
schema = "id BIGINT, city STRING, amount BIGINT, ts TIMESTAMP"
watermark = { column = "ts", delay = "1 minute" }

[query.dropDuplicates]
columns = ["id"]

[query.aggregate]
groupBy = ["city"]
window = { column = "ts", duration = "5 minutes", slide = "1 minute" }
aggs = [{ fn = "sum", column = "amount", as = "revenue" }]

[query.sink]
format = "console"
"#;

const STATEFUL_CASES: &[Case] = &[
    Case {
        what: "sum over a string column",
        from: "fn = \"sum\", column = \"amount\"",
        to: "fn = \"sum\", column = \"city\"",
        expect: &[
            "pipeline.toml:19: query 'orders': aggregate.aggs[0].column: sum of column 'city' (Utf8) is not supported; it needs a numeric column",
        ],
    },
    Case {
        what: "aggregate over a missing column",
        from: "fn = \"sum\", column = \"amount\"",
        to: "fn = \"max\", column = \"price\"",
        expect: &[
            "pipeline.toml:19: query 'orders': aggregate.aggs[0].column: column 'price' is not among the columns reaching the aggregation (id, city, amount, ts",
        ],
    },
    Case {
        what: "group-by column that does not exist",
        from: "groupBy = [\"city\"]",
        to: "groupBy = [\"country\"]",
        expect: &[
            "pipeline.toml:17: query 'orders': aggregate.groupBy[0]: column 'country' is not among the columns reaching the aggregation",
        ],
    },
    Case {
        what: "watermark on a string column",
        from: "watermark = { column = \"ts\"",
        to: "watermark = { column = \"city\"",
        expect: &[
            "pipeline.toml:11: query 'orders': source.watermark.column: watermark column 'city': is Utf8, not a TIMESTAMP",
        ],
    },
    Case {
        what: "window column that is not a timestamp",
        from: "window = { column = \"ts\"",
        to: "window = { column = \"amount\"",
        expect: &[
            "pipeline.toml:18: query 'orders': aggregate.window.column: window column 'amount': is Int64, not a TIMESTAMP",
        ],
    },
    Case {
        what: "too many sliding windows per row",
        from: "slide = \"1 minute\"",
        to: "slide = \"1 millisecond\"",
        expect: &[
            "query 'orders': aggregate.window.slide:",
            "puts each row into 300000 windows; at most 1000 are allowed",
        ],
    },
    Case {
        what: "dedup column that does not exist",
        from: "columns = [\"id\"]",
        to: "columns = [\"order_id\"]",
        expect: &[
            "pipeline.toml:14: query 'orders': dropDuplicates.columns[0]: column 'order_id' is not among the query's columns",
        ],
    },
];

/// A valid query with a keyed processor (`validate` does not load modules).
const PROCESSOR_GOOD: &str = r#"[[query]]
name = "profiles"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.source]
format = "json"
path = "in/*.json"
schema = "user_id STRING, event STRING, ts TIMESTAMP"
watermark = { column = "ts", delay = "10 minutes" }

[query.processor]
module = "user_profile.wasm"
key = ["user_id"]
timeMode = "eventTime"
maxStateBytesPerKey = "64 KiB"

[query.sink]
format = "json"
path = "out"
"#;

const PROCESSOR_CASES: &[Case] = &[
    Case {
        what: "processor without a key",
        from: "key = [\"user_id\"]\n",
        to: "",
        expect: &[
            "pipeline.toml:12: query 'profiles': processor.key: missing required option; the columns that group rows, e.g. key = [\"user_id\"]",
        ],
    },
    Case {
        what: "key column that does not exist",
        from: "key = [\"user_id\"]",
        to: "key = [\"user\"]",
        expect: &[
            "pipeline.toml:14: query 'profiles': processor.key[0]: column 'user' is not among the query's columns (user_id, event, ts",
        ],
    },
    Case {
        what: "unknown time mode",
        from: "timeMode = \"eventTime\"",
        to: "timeMode = \"wallClock\"",
        expect: &[
            "pipeline.toml:15: query 'profiles': processor.timeMode: 'wallClock' is not a time mode; use \"none\", \"processingTime\" or \"eventTime\"",
        ],
    },
    Case {
        what: "event time without a watermark",
        from: "watermark = { column = \"ts\", delay = \"10 minutes\" }\n",
        to: "",
        expect: &["query 'profiles': processor.timeMode: \"eventTime\" needs a watermark"],
    },
    Case {
        what: "complete mode",
        from: "trigger = \"availableNow\"",
        to: "trigger = \"availableNow\"\noutputMode = \"complete\"",
        expect: &["query 'profiles': outputMode: a processor emits the rows its module hands out"],
    },
    Case {
        what: "processor and aggregation in one query",
        from: "[query.sink]",
        to: "[query.aggregate]\ngroupBy = [\"user_id\"]\naggs = [{ fn = \"count\" }]\n\n[query.sink]",
        expect: &[
            "query 'profiles': processor: a query has either [query.aggregate] or [query.processor], not both",
        ],
    },
    Case {
        what: "misspelt processor option",
        from: "maxStateBytesPerKey",
        to: "maxStateBytePerKey",
        expect: &[
            "query 'profiles': processor.maxStateBytePerKey: unknown key; did you mean 'maxStateBytesPerKey'?",
        ],
    },
];

#[test]
fn bad_processor_pipelines_get_their_errors() {
    check_cases(PROCESSOR_GOOD, PROCESSOR_CASES);
}

#[test]
fn the_good_processor_pipeline_validates() {
    let dir = tempfile::tempdir().unwrap();
    // validate loads the module and checks it is a keyed processor: give it the real one.
    let module = guests().join("user_profile.wasm");
    let file = pipeline(
        dir.path(),
        &PROCESSOR_GOOD.replace(
            "\"user_profile.wasm\"",
            &format!("\"{}\"", module.display()),
        ),
    );
    let out = run_ok(sluice().arg("validate").arg(&file));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok, 1 query"));
}

/// A valid query with two named inputs combined by a union.
const UNION_GOOD: &str = r#"[[query]]
name = "events"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.inputs.web]
format = "json"
path = "web/*.json"
schema = "id BIGINT, ts TIMESTAMP"
watermark = { column = "ts", delay = "1 minute" }

[query.inputs.app]
format = "json"
path = "app/*.json"
schema = "id BIGINT, ts TIMESTAMP"
watermark = { column = "ts", delay = "1 minute" }

[query.union]
inputs = ["web", "app"]

[query.sink]
format = "json"
path = "out"
"#;

const UNION_CASES: &[Case] = &[
    Case {
        what: "several inputs and no union",
        from: "[query.union]\ninputs = [\"web\", \"app\"]\n",
        to: "",
        expect: &[
            "query 'events': union: 2 inputs must be combined: add [query.union] inputs = [\"web\", \"app\"]",
        ],
    },
    Case {
        what: "a union naming an input that does not exist",
        from: "inputs = [\"web\", \"app\"]",
        to: "inputs = [\"web\", \"mobile\"]",
        expect: &[
            "pipeline.toml:18: query 'events': union.inputs: must name every input exactly once",
        ],
    },
    Case {
        what: "a source and named inputs",
        from: "[query.union]",
        to: "[query.source]\nformat = \"rate\"\n\n[query.union]",
        expect: &[
            "inputs: give either one [query.source] or named [query.inputs.NAME] tables, not both",
        ],
    },
    Case {
        what: "watermarks on different columns",
        from: "schema = \"id BIGINT, ts TIMESTAMP\"\nwatermark = { column = \"ts\", delay = \"1 minute\" }\n\n[query.union]",
        to: "schema = \"id BIGINT, ts TIMESTAMP, t2 TIMESTAMP\"\nwatermark = { column = \"t2\", delay = \"1 minute\" }\n\n[query.union]",
        expect: &["union: the inputs' watermarks name different event-time columns (ts, t2)"],
    },
    Case {
        what: "an unknown key in a named input",
        from: "path = \"web/*.json\"",
        to: "path = \"web/*.json\"\nmaxFilesPerTriger = 1",
        expect: &["pipeline.toml:9: query 'events': inputs.web.maxFilesPerTriger: unknown key"],
    },
];

/// A valid stream–stream join; each case breaks one of Spark's rules for it.
const JOIN_GOOD: &str = r#"[[query]]
name = "attribution"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.inputs.impressions]
format = "json"
path = "imp/*.json"
schema = "ad_id BIGINT, impression_time TIMESTAMP"
watermark = { column = "impression_time", delay = "10 minutes" }

[query.inputs.clicks]
format = "json"
path = "clk/*.json"
schema = "ad_id BIGINT, click_time TIMESTAMP"
watermark = { column = "click_time", delay = "10 minutes" }

[query.join]
left = "impressions"
right = "clicks"
type = "leftOuter"
on = ["ad_id"]
within = { left = "impression_time", right = "click_time", lower = "0 seconds", upper = "1 hour" }

[query.sink]
format = "json"
path = "out"
"#;

const JOIN_CASES: &[Case] = &[
    Case {
        what: "an outer join without a watermark on one side",
        from: "schema = \"ad_id BIGINT, click_time TIMESTAMP\"\nwatermark = { column = \"click_time\", delay = \"10 minutes\" }",
        to: "schema = \"ad_id BIGINT, click_time TIMESTAMP\"",
        expect: &[
            "query 'attribution': join.within.right: a LeftOuter join between streams needs a watermark on both inputs: add watermark = { column = \"click_time\", delay = \"10 minutes\" } to [query.inputs.clicks]",
        ],
    },
    Case {
        what: "an outer join without a time range",
        from: "within = { left = \"impression_time\", right = \"click_time\", lower = \"0 seconds\", upper = \"1 hour\" }",
        to: "",
        expect: &["join.within: a LeftOuter join between streams needs a time range"],
    },
    Case {
        what: "a time range on a column without the watermark",
        from: "right = \"click_time\", lower",
        to: "right = \"ad_id\", lower",
        expect: &[
            "join.within.right: 'ad_id' is not input 'clicks''s watermark column ('click_time')",
        ],
    },
    Case {
        what: "a key that does not exist",
        from: "on = [\"ad_id\"]",
        to: "on = [[\"ad_id\", \"ad\"]]",
        expect: &[
            "query 'attribution': join.on: join of 'impressions' with 'clicks': key column 'ad' is not among the right side's columns (ad_id, click_time",
        ],
    },
    Case {
        what: "a right side that is not an input",
        from: "right = \"clicks\"",
        to: "right = \"views\"",
        expect: &[
            "join.right: 'views' is not another input of this query (inputs: impressions, clicks)",
        ],
    },
    Case {
        what: "an unknown join type",
        from: "type = \"leftOuter\"",
        to: "type = \"sideways\"",
        expect: &["join.type: 'sideways' is not a join type"],
    },
    Case {
        what: "a stream–stream join in update mode",
        from: "trigger = \"availableNow\"",
        to: "trigger = \"availableNow\"\noutputMode = \"update\"",
        expect: &[
            "outputMode: a stream–stream join emits each joined row once and never updates it",
        ],
    },
    Case {
        what: "left anti between streams",
        from: "type = \"leftOuter\"",
        to: "type = \"leftAnti\"",
        expect: &["join.type: leftAnti is not supported between two streams"],
    },
    Case {
        what: "a join and a union",
        from: "[query.sink]",
        to: "[query.union]\ninputs = [\"impressions\", \"clicks\"]\n\n[query.sink]",
        expect: &[
            "join: a query combines its inputs one way: give [query.union] or [query.join], not both",
        ],
    },
];

/// A valid stream–static join.
const STATIC_GOOD: &str = r#"[[query]]
name = "enrich"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.source]
format = "json"
path = "events/*.json"
schema = "user_id BIGINT, action STRING"

[query.join]
type = "leftOuter"
on = [["user_id", "id"]]

[query.join.table]
format = "parquet"
path = "users"
schema = "id BIGINT, name STRING"
refresh = "1 hour"

[query.sink]
format = "json"
path = "out"
"#;

const STATIC_CASES: &[Case] = &[
    Case {
        what: "the static side as the preserved side",
        from: "type = \"leftOuter\"",
        to: "type = \"rightOuter\"",
        expect: &["join.type: RightOuter is not supported with a static table"],
    },
    Case {
        what: "a table key that does not exist",
        from: "on = [[\"user_id\", \"id\"]]",
        to: "on = [[\"user_id\", \"uid\"]]",
        expect: &[
            "join.on: join of 'source' with 'table': key column 'uid' is not among the right side's columns (id, name)",
        ],
    },
    Case {
        what: "a table that is not files",
        from: "format = \"parquet\"",
        to: "format = \"rate\"",
        expect: &[
            "join.table.format: a join table is read from files or a database (json, csv, parquet, text, postgres or cassandra)",
        ],
    },
    Case {
        what: "an unknown table option",
        from: "refresh = \"1 hour\"",
        to: "refersh = \"1 hour\"",
        expect: &["join.table.refersh: unknown key"],
    },
];

#[test]
fn bad_join_pipelines_get_their_errors() {
    check_cases(JOIN_GOOD, JOIN_CASES);
    check_cases(STATIC_GOOD, STATIC_CASES);
}

#[test]
fn the_good_join_pipelines_validate() {
    for good in [JOIN_GOOD, STATIC_GOOD] {
        let dir = tempfile::tempdir().unwrap();
        let file = pipeline(dir.path(), good);
        run_ok(sluice().arg("validate").arg(&file));
    }
}

#[test]
fn bad_multi_input_pipelines_get_their_errors() {
    check_cases(UNION_GOOD, UNION_CASES);
}

#[test]
fn the_good_union_pipeline_validates() {
    let dir = tempfile::tempdir().unwrap();
    let file = pipeline(dir.path(), UNION_GOOD);
    let out = run_ok(sluice().arg("validate").arg(&file));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FileSource["), "{stdout}");
    assert!(stdout.contains(" + FileSource["), "{stdout}");
}

#[test]
fn each_bad_pipeline_gets_its_error_and_nothing_runs() {
    check_cases(GOOD, CASES);
}

#[test]
fn what_a_declared_schema_tells_is_checked_before_anything_runs() {
    check_cases(STATEFUL_GOOD, STATEFUL_CASES);
}

#[test]
fn the_good_stateful_pipeline_validates() {
    let dir = tempfile::tempdir().unwrap();
    let file = pipeline(dir.path(), STATEFUL_GOOD);
    let out = run_ok(sluice().arg("validate").arg(&file));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok, 1 query"));
}

/// `sluice explain FILE` run in `dir`, its stdout with `dir` written as `<dir>`.
fn explain(dir: &std::path::Path, text: &str) -> String {
    let file = pipeline(dir, text);
    let out = run_ok(sluice().arg("explain").arg(&file));
    String::from_utf8_lossy(&out.stdout).replace(&dir.display().to_string(), "<dir>")
}

#[test]
fn explain_draws_each_query_s_plan_with_its_state_and_watermarks() {
    let dir = tempfile::tempdir().unwrap();
    let single = explain(
        dir.path(),
        &STATEFUL_GOOD.replace(
            "outputMode = \"update\"",
            "outputMode = \"update\"\nshufflePartitions = 2",
        ),
    );
    assert_eq!(single, EXPLAIN_SINGLE, "{single}");
    let union = explain(dir.path(), UNION_GOOD);
    assert_eq!(union, EXPLAIN_UNION, "{union}");
    let join = explain(
        dir.path(),
        &JOIN_GOOD.replace(
            "trigger = \"availableNow\"",
            "trigger = \"availableNow\"\nshufflePartitions = 2",
        ),
    );
    assert_eq!(join, EXPLAIN_JOIN, "{join}");
    // --query picks one; a query that is not there is named with the ones that are.
    let file = pipeline(dir.path(), JOIN_GOOD);
    let out = sluice()
        .args(["explain", "--query", "nope"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the file has: attribution"));
}

const EXPLAIN_SINGLE: &str = "== Query 'orders' ==
Sink ConsoleSink (outputMode update, trigger availableNow)
+- Aggregate groupBy [city], 300s window every 60s on ts, aggs [revenue]; state <dir>/ckpt/state/aggregate, 2 partitions; watermark ts - 60s from input 'source'
   +- DropDuplicates [id]; state <dir>/ckpt/state/dedup, 2 partitions; watermark ts - 60s from input 'source'
      +- Input 'source': FileSource[<dir>/in/*.json], watermark ts - 60s
";

const EXPLAIN_UNION: &str = "== Query 'events' ==
Sink FileSink[<dir>/out] (outputMode append, trigger availableNow)
+- Union
   :- Input 'web': FileSource[<dir>/web/*.json], watermark ts - 60s
   +- Input 'app': FileSource[<dir>/app/*.json], watermark ts - 60s
";

const EXPLAIN_JOIN: &str = "== Query 'attribution' ==
Sink FileSink[<dir>/out] (outputMode append, trigger availableNow)
+- StreamStreamJoin LeftOuter on [ad_id = ad_id]; state <dir>/ckpt/state/join, 2 partitions; watermark the min over inputs 'impressions', 'clicks'
   :- Input 'impressions': FileSource[<dir>/imp/*.json], watermark impression_time - 600s
   +- Input 'clicks': FileSource[<dir>/clk/*.json], watermark click_time - 600s
";

/// Applies each case to `good`, runs `validate` and `run` on it, and checks the errors.
fn check_cases(good: &str, cases: &[Case]) {
    let mut failures = Vec::new();
    for case in cases {
        assert!(
            good.contains(case.from),
            "case '{}' does not apply",
            case.what
        );
        let dir = tempfile::tempdir().unwrap();
        let file = pipeline(dir.path(), &good.replacen(case.from, case.to, 1));
        for command in ["validate", "run"] {
            let out = sluice().arg(command).arg(&file).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.code() != Some(2) {
                failures.push(format!(
                    "{} ({command}): exit {:?}, stderr:\n{stderr}",
                    case.what,
                    out.status.code()
                ));
            }
            for fragment in case.expect {
                if !stderr.contains(fragment) {
                    failures.push(format!(
                        "{} ({command}): missing {fragment:?} in:\n{stderr}",
                        case.what
                    ));
                }
            }
        }
        assert!(
            !dir.path().join("out").exists(),
            "{}: the query ran",
            case.what
        );
        assert!(
            !dir.path().join("ckpt").exists(),
            "{}: the query ran",
            case.what
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn secrets_from_the_environment_validate_and_never_show() {
    let dir = tempfile::tempdir().unwrap();
    let text = GOOD.replacen(
        "format = \"json\"\npath = \"out\"",
        "format = \"kafka\"\n\"kafka.bootstrap.servers\" = \"localhost:9092\"\ntopic = \"t\"\n\
         \"kafka.sasl.password\" = { env = \"SLUICE_TEST_KAFKA_PASSWORD\" }\n\
         \"kafka.sasl.username\" = { file = \"kafka-user\" }",
        1,
    );
    let file = pipeline(dir.path(), &text);
    let out = sluice()
        .arg("validate")
        .arg(&file)
        .env("SLUICE_TEST_KAFKA_PASSWORD", "hunter2")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("ok, 1 query"), "{stdout}");
    assert!(!stdout.contains("hunter2") && !stderr.contains("hunter2"));
    // At start the secrets are read: a missing file is named, the value never printed.
    let out = sluice()
        .arg("run")
        .arg(&file)
        .env("SLUICE_TEST_KAFKA_PASSWORD", "hunter2")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("kafka.sasl.username"), "{stderr}");
    assert!(stderr.contains("kafka-user"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn the_good_pipeline_validates() {
    let dir = tempfile::tempdir().unwrap();
    let file = pipeline(dir.path(), GOOD);
    let out = run_ok(sluice().arg("validate").arg(&file));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("query 'events': FileSource["), "{stdout}");
    assert!(stdout.contains("ok, 1 query"), "{stdout}");
}

#[test]
fn several_problems_are_reported_together_with_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let text = GOOD
        .replacen("maxFilesPerTrigger = 1", "maxFilesPerTrigger = -3", 1)
        .replacen("trigger = \"availableNow\"", "trigger = \"never\"", 1)
        + "\n[[query]]\nname = \"events\"\n[query.source]\nformat = \"rate\"\n[query.sink]\nformat = \"console\"\n";
    let file = pipeline(dir.path(), &text);
    let out = sluice().arg("validate").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("has 3 problems"), "{stderr}");
    assert!(
        stderr.contains("pipeline.toml:4: query 'events': trigger:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("pipeline.toml:10: query 'events': source.maxFilesPerTrigger:"),
        "{stderr}"
    );
    assert!(stderr.contains("names must be unique"), "{stderr}");
}

#[test]
fn an_empty_file_says_to_add_a_query() {
    let dir = tempfile::tempdir().unwrap();
    let file = pipeline(dir.path(), "# nothing yet\n");
    let out = sluice().arg("validate").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no queries: add at least one [[query]] table")
    );
}
