//! The engine driven as a user drives it: `sluice run` on pipeline files over real files in
//! temporary directories, checking what lands in the sinks, the progress records and the
//! checkpoint.

mod common;

use std::fs;
use std::path::Path;

use common::*;

const SCHEMA: &str = "id BIGINT, city STRING, amount BIGINT";

fn json_pipeline(
    dir: &Path,
    trigger: &str,
    extra_source: &str,
    extra_sink: &str,
) -> std::path::PathBuf {
    pipeline(
        dir,
        &format!(
            r#"[[query]]
name = "events"
checkpointLocation = "ckpt"
{trigger}

[query.source]
format = "json"
path = "in"
schema = "{SCHEMA}"
{extra_source}

[query.sink]
format = "json"
path = "out"
{extra_sink}
"#
        ),
    )
}

#[test]
fn available_now_honours_max_files_per_trigger_then_stops() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (i, age) in [(0u64, 30u64), (1, 20), (2, 10)] {
        let f = drop_file(
            &d.join("in"),
            &format!("f{i}.json"),
            event_lines(i * 10..i * 10 + 10),
        );
        set_mtime(&f, age);
    }
    let file = json_pipeline(
        d,
        "trigger = \"availableNow\"",
        "maxFilesPerTrigger = 1",
        "",
    );
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    let p = progress(&d.join("progress.jsonl"));
    assert_eq!(
        p.iter().map(|p| p.batch_id).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert!(
        p.iter()
            .all(|p| p.num_input_rows == 10 && p.sink.num_output_rows == 10)
    );
    // Oldest file first: batch 0 read ids 0..10.
    assert_eq!(
        p[0].sources[0].end_offset,
        serde_json::json!({"logOffset": 0})
    );
    assert_eq!(
        sorted_ids(&committed_json(&d.join("out"))),
        (0..30).collect::<Vec<_>>()
    );
    for phase in [
        "latestOffset",
        "walCommit",
        "getBatch",
        "addBatch",
        "commitOffsets",
        "triggerExecution",
    ] {
        assert!(p[0].duration_ms.contains_key(phase), "missing {phase}");
    }
    // A second run finds nothing new and writes nothing.
    let (code, _, _) = run_logged(&file);
    assert_eq!(code, Some(0));
    assert_eq!(progress(&d.join("progress.jsonl")).len(), 3);
}

#[test]
fn latest_first_reads_the_newest_file_first() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (i, age) in [(0u64, 30u64), (1, 20), (2, 10)] {
        let f = drop_file(
            &d.join("in"),
            &format!("f{i}.json"),
            event_lines(i * 10..i * 10 + 10),
        );
        set_mtime(&f, age);
    }
    let file = json_pipeline(
        d,
        "trigger = \"availableNow\"",
        "maxFilesPerTrigger = 1\nlatestFirst = true",
        "",
    );
    assert_eq!(run_logged(&file).0, Some(0));
    let first = sluice::connectors::file::sink::committed_files(&d.join("out")).unwrap()[0].clone();
    let rows: Vec<serde_json::Value> = fs::read_to_string(first)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(sorted_ids(&rows), (20..30).collect::<Vec<_>>());
}

#[test]
fn once_reads_everything_in_one_batch_ignoring_limits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for i in 0..3u64 {
        drop_file(
            &d.join("in"),
            &format!("f{i}.json"),
            event_lines(i * 10..i * 10 + 10),
        );
    }
    let file = json_pipeline(d, "trigger = \"once\"", "maxFilesPerTrigger = 1", "");
    assert_eq!(run_logged(&file).0, Some(0));
    let p = progress(&d.join("progress.jsonl"));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].num_input_rows, 30);
}

#[test]
fn hidden_files_are_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    drop_file(&d.join("in"), "a.json", event_lines(0..5));
    fs::write(d.join("in/.partial.json"), "{\"id\": 99").unwrap();
    fs::write(d.join("in/_SUCCESS"), "").unwrap();
    let file = json_pipeline(d, "trigger = \"availableNow\"", "mode = \"FAILFAST\"", "");
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        sorted_ids(&committed_json(&d.join("out"))),
        (0..5).collect::<Vec<_>>()
    );
}

#[test]
fn a_restart_continues_after_the_committed_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    drop_file(&d.join("in"), "a.json", event_lines(0..10));
    let file = json_pipeline(d, "trigger = \"availableNow\"", "", "");
    assert_eq!(run_logged(&file).0, Some(0));
    drop_file(&d.join("in"), "b.json", event_lines(10..20));
    assert_eq!(run_logged(&file).0, Some(0));
    let p = progress(&d.join("progress.jsonl"));
    assert_eq!(
        p.iter()
            .map(|p| (p.batch_id, p.num_input_rows))
            .collect::<Vec<_>>(),
        vec![(0, 10), (1, 10)]
    );
    assert_eq!(p[0].id, p[1].id, "the query id survives restarts");
    assert_ne!(p[0].run_id, p[1].run_id, "each start has a new run id");
    assert_eq!(
        p[1].sources[0].start_offset,
        Some(serde_json::json!({"logOffset": 0}))
    );
    assert_eq!(
        sorted_ids(&committed_json(&d.join("out"))),
        (0..20).collect::<Vec<_>>()
    );
}

#[test]
fn clean_source_deletes_or_archives_committed_files() {
    for (option, archived) in [
        ("cleanSource = \"delete\"", false),
        (
            "cleanSource = \"archive\"\nsourceArchiveDir = \"archive\"",
            true,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let a = drop_file(&d.join("in"), "a.json", event_lines(0..3));
        let file = json_pipeline(d, "trigger = \"availableNow\"", option, "");
        let (code, _, stderr) = run_logged(&file);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(!a.exists(), "{option}: source file still there");
        let archived_at = d.join("archive").join(a.strip_prefix("/").unwrap());
        assert_eq!(
            archived_at.exists(),
            archived,
            "{option}: {}",
            archived_at.display()
        );
        assert_eq!(committed_json(&d.join("out")).len(), 3);
    }
}

/// With `cleanSource`, the source log forgets the files it has cleaned: however many batches
/// run, `sources/0` holds the last committed entry only, and the ids go on from it (found by
/// the soak: a file source's log grew one entry a batch for as long as the query ran).
#[test]
fn clean_source_keeps_the_source_log_to_its_last_entry() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (i, name) in ["a.json", "b.json", "c.json"].iter().enumerate() {
        let first = i as u64 * 3;
        drop_file(&d.join("in"), name, event_lines(first..first + 3));
    }
    let file = json_pipeline(
        d,
        "trigger = \"availableNow\"",
        "cleanSource = \"delete\"\nmaxFilesPerTrigger = 1",
        "",
    );
    let entries = |d: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(d.join("ckpt/sources/0"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(entries(d), ["2"], "three batches, one entry kept");
    assert_eq!(
        sorted_ids(&committed_json(&d.join("out"))),
        (0..9).collect::<Vec<_>>()
    );

    // A restart reads only the new file, under the next id.
    drop_file(&d.join("in"), "d.json", event_lines(9..12));
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(entries(d), ["3"]);
    assert_eq!(
        sorted_ids(&committed_json(&d.join("out"))),
        (0..12).collect::<Vec<_>>()
    );
}

#[test]
fn inferred_schemas_come_from_the_first_file_and_stay() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    drop_file(
        &d.join("in"),
        "a.csv",
        "id,city,amount\n1,Seoul,10\n2,Busan,20\n",
    );
    let file = pipeline(
        d,
        r#"[[query]]
name = "csv"
checkpointLocation = "ckpt"
trigger = "availableNow"
[query.source]
format = "csv"
path = "in/*.csv"
header = true
inferSchema = true
[query.sink]
format = "json"
path = "out"
"#,
    );
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("inferred source schema"), "{stderr}");
    let rows = committed_json(&d.join("out"));
    assert_eq!(
        rows[0],
        serde_json::json!({"id": 1, "city": "Seoul", "amount": 10})
    );
    // The inferred schema is kept in the checkpoint: a later file with a text id is malformed
    // for it (PERMISSIVE: a corrupt record), not a reason to change the schema.
    drop_file(&d.join("in"), "b.csv", "id,city,amount\nx,Daegu,30\n");
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    let rows = committed_json(&d.join("out"));
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2]["_corrupt_record"], "x,Daegu,30");
}

/// A CSV header is not a row, also when every declared column is text and the header line
/// would parse as one (the whole-file decoder read it as data before; found while writing
/// the fuzz targets).
#[test]
fn a_csv_header_is_skipped_when_it_would_parse_as_a_row() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    drop_file(
        &d.join("in"),
        "a.csv",
        "city,code\nSeoul,KR-11\nBusan,KR-26\n",
    );
    let file = pipeline(
        d,
        r#"[[query]]
name = "csv"
checkpointLocation = "ckpt"
trigger = "availableNow"
[query.source]
format = "csv"
path = "in/*.csv"
header = true
schema = "city STRING, code STRING"
[query.sink]
format = "json"
path = "out"
"#,
    );
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    let cities: Vec<_> = committed_json(&d.join("out"))
        .iter()
        .map(|r| r["city"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(cities, ["Seoul", "Busan"]);
}

/// A line that is not UTF-8 is malformed in CSV and JSON alike, also when its bytes become
/// UTF-8 once the delimiter between two fields is taken out: `2\xcc` and `\x81umnt` are
/// each half of one character. arrow-csv checked only the joined text and built a string
/// column that was not UTF-8 (found by the `decode` fuzz target).
#[test]
fn a_line_that_is_not_utf8_is_malformed_even_when_its_fields_join_into_utf8() {
    for (format, file) in [
        ("csv", b"2,Seoul\n2\xcc,\x81umnt\n3,Busan\n".as_slice()),
        (
            "json",
            b"{\"id\":\"2\",\"city\":\"Seoul\"}\n{\"id\":\"2\xcc\",\"city\":\"\x81umnt\"}\n{\"id\":\"3\",\"city\":\"Busan\"}\n"
                .as_slice(),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        drop_file(&d.join("in"), &format!("a.{format}"), file);
        let query = |mode: &str| {
            format!(
                r#"[[query]]
name = "halves"
checkpointLocation = "ckpt-{mode}"
trigger = "availableNow"
[query.source]
format = "{format}"
path = "in/*.{format}"
schema = "id STRING, city STRING"
mode = "{mode}"
[query.sink]
format = "json"
path = "out-{mode}"
"#
            )
        };
        // DROPMALFORMED: the line is dropped and counted, the others kept.
        let (code, _, stderr) = run_logged(&pipeline(d, &query("DROPMALFORMED")));
        assert_eq!(code, Some(0), "{format}: {stderr}");
        let cities: Vec<_> = committed_json(&d.join("out-DROPMALFORMED"))
            .iter()
            .map(|r| r["city"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(cities, ["Seoul", "Busan"], "{format}");
        assert_eq!(
            progress(&d.join("progress.jsonl"))[0].sources[0].metrics["numMalformedRows"],
            1,
            "{format}"
        );

        // FAILFAST: the query stops naming the file, the line and why.
        let (code, _, stderr) = run_logged(&pipeline(d, &query("FAILFAST")));
        assert_eq!(code, Some(1), "{format}: {stderr}");
        assert!(stderr.contains("line 2"), "{format}: {stderr}");
        assert!(stderr.contains("not valid UTF-8"), "{format}: {stderr}");
    }
}

/// A source schema in Spark's DDL with a decimal and nested types: JSON objects decode into
/// them and are written back the same (typed, not as text).
#[test]
fn a_json_source_declares_decimals_arrays_maps_and_structs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    drop_file(
        &d.join("in"),
        "a.json",
        concat!(
            r#"{"id":1,"price":12.34,"tags":["a","b"],"attrs":{"n":7},"who":{"name":"Kim","langs":["ko"]}}"#,
            "\n",
            r#"{"id":2,"price":0.5,"tags":[],"attrs":{},"who":null}"#,
            "\n",
        ),
    );
    let file = pipeline(
        d,
        r#"[[query]]
name = "nested"
checkpointLocation = "ckpt"
trigger = "availableNow"
[query.source]
format = "json"
path = "in/*.json"
schema = "id BIGINT, price DECIMAL(10,2), tags ARRAY<STRING>, attrs MAP<STRING, BIGINT>, who STRUCT<name: STRING, langs: ARRAY<STRING>>"
[query.sink]
format = "json"
path = "out"
"#,
    );
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    let mut rows = committed_json(&d.join("out"));
    rows.sort_by_key(|r| r["id"].as_i64());
    assert_eq!(
        rows,
        [
            serde_json::json!({"id":1,"price":12.34,"tags":["a","b"],"attrs":{"n":7},"who":{"name":"Kim","langs":["ko"]}}),
            serde_json::json!({"id":2,"price":0.5,"tags":[],"attrs":{}}),
        ]
    );
}

#[test]
fn malformed_rows_follow_the_mode() {
    let input = "{\"id\":1,\"city\":\"Seoul\",\"amount\":10}\n{\"id\":2,\"city\":\n{\"id\":\"three\",\"city\":\"Busan\",\"amount\":30}\n{\"id\":4,\"city\":\"Daegu\",\"amount\":40}\n";
    // PERMISSIVE: every row kept, malformed ones as nulls plus the raw text.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    drop_file(&d.join("in"), "a.json", input);
    let file = json_pipeline(d, "trigger = \"availableNow\"", "mode = \"PERMISSIVE\"", "");
    assert_eq!(run_logged(&file).0, Some(0));
    let rows = committed_json(&d.join("out"));
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["id"], 1);
    assert_eq!(
        rows[1],
        serde_json::json!({"_corrupt_record": "{\"id\":2,\"city\":"})
    );
    assert_eq!(
        rows[2]["_corrupt_record"],
        "{\"id\":\"three\",\"city\":\"Busan\",\"amount\":30}"
    );
    assert_eq!(rows[3]["id"], 4);
    assert_eq!(
        progress(&d.join("progress.jsonl"))[0].sources[0].metrics["numMalformedRows"],
        2
    );

    // DROPMALFORMED: dropped and counted.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    drop_file(&d.join("in"), "a.json", input);
    let file = json_pipeline(
        d,
        "trigger = \"availableNow\"",
        "mode = \"DROPMALFORMED\"",
        "",
    );
    assert_eq!(run_logged(&file).0, Some(0));
    assert_eq!(sorted_ids(&committed_json(&d.join("out"))), vec![1, 4]);
    assert_eq!(
        progress(&d.join("progress.jsonl"))[0].sources[0].metrics["numMalformedRows"],
        2
    );

    // FAILFAST: the query stops with the file and line, nothing is committed.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = drop_file(&d.join("in"), "a.json", input);
    let file = json_pipeline(d, "trigger = \"availableNow\"", "mode = \"FAILFAST\"", "");
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(1), "{stderr}");
    let expected = format!("malformed record in {} line 2", a.display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(
        stderr.contains("query 'events' failed in batch 0"),
        "{stderr}"
    );
    assert!(committed_json(&d.join("out")).is_empty());
    assert!(!d.join("ckpt/commits/0").exists());
}

#[test]
fn parquet_and_text_sources_and_csv_and_parquet_sinks() {
    use arrow_array::{Int64Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir_all(d.join("pq")).unwrap();
    let schema = Arc::new(arrow_schema::Schema::new(vec![
        arrow_schema::Field::new("id", arrow_schema::DataType::Int64, false),
        arrow_schema::Field::new("city", arrow_schema::DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec!["Seoul", "Busan", "Seoul"])),
        ],
    )
    .unwrap();
    let tmp = d.join("pq/.a.parquet");
    let mut w = parquet::arrow::ArrowWriter::try_new(fs::File::create(&tmp).unwrap(), schema, None)
        .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    fs::rename(&tmp, d.join("pq/a.parquet")).unwrap();
    drop_file(&d.join("txt"), "a.txt", "hello world\nsecond line\n");
    let file = pipeline(
        d,
        r#"[[query]]
name = "pq"
checkpointLocation = "ckpt-pq"
trigger = "availableNow"
[query.source]
format = "parquet"
path = "pq"
schema = "id BIGINT, city STRING, missing STRING"
[query.sink]
format = "csv"
path = "out-csv"
header = true
partitionBy = ["city"]

[[query]]
name = "txt"
checkpointLocation = "ckpt-txt"
trigger = "availableNow"
[query.source]
format = "text"
path = "txt/*.txt"
[query.sink]
format = "parquet"
path = "out-pq"
"#,
    );
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    let mut csv: Vec<(String, String)> =
        sluice::connectors::file::sink::committed_files(&d.join("out-csv"))
            .unwrap()
            .into_iter()
            .map(|f| {
                let part = f
                    .parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                (part, fs::read_to_string(&f).unwrap())
            })
            .collect();
    csv.sort();
    assert_eq!(
        csv,
        vec![
            ("city=Busan".to_owned(), "id,missing\n2,\n".to_owned()),
            ("city=Seoul".to_owned(), "id,missing\n1,\n3,\n".to_owned())
        ]
    );
    let files = sluice::connectors::file::sink::committed_files(&d.join("out-pq")).unwrap();
    assert_eq!(files.len(), 1);
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        fs::File::open(&files[0]).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    let values = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(
        values.iter().collect::<Vec<_>>(),
        vec![Some("hello world"), Some("second line")]
    );
}

#[test]
fn rate_micro_batch_yields_the_same_rows_for_the_same_batch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = pipeline(
        d,
        r#"[[query]]
name = "rate"
checkpointLocation = "ckpt"
trigger = "once"
[query.source]
format = "rate-micro-batch"
rowsPerBatch = 4
startTimestamp = 1000
advanceMillisPerBatch = 500
[query.sink]
format = "json"
path = "out"
"#,
    );
    for _ in 0..2 {
        let (code, _, stderr) = run_logged(&file);
        assert_eq!(code, Some(0), "{stderr}");
    }
    let rows = committed_json(&d.join("out"));
    let values: Vec<i64> = rows.iter().map(|r| r["value"].as_i64().unwrap()).collect();
    assert_eq!(values, (0..8).collect::<Vec<_>>());
    assert_eq!(rows[0]["timestamp"], "1970-01-01T00:00:01Z");
    assert_eq!(rows[4]["timestamp"], "1970-01-01T00:00:01.500Z");
}

#[test]
fn console_sink_prints_batches_like_spark() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    drop_file(&d.join("in"), "a.json", event_lines(0..5));
    let file = pipeline(
        d,
        &format!(
            r#"[[query]]
name = "show"
trigger = "availableNow"
[query.source]
format = "json"
path = "in"
schema = "{SCHEMA}"
[query.sink]
format = "console"
numRows = 2
"#
        ),
    );
    let out = sluice().arg("run").arg(&file).output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Batch: 0\n-------------------------------------------\n+---+-----+------+---------------+\n| id| city|amount|_corrupt_record|\n+---+-----+------+---------------+\n|  0|Seoul|     0|           null|\n|  1|Busan|    10|           null|\n+---+-----+------+---------------+\nonly showing top 2 rows"), "{stdout}");
}

#[test]
fn a_checkpoint_of_another_source_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    drop_file(&d.join("in"), "a.json", event_lines(0..5));
    let file = json_pipeline(d, "trigger = \"availableNow\"", "", "");
    assert_eq!(run_logged(&file).0, Some(0));
    let other = fs::read_to_string(&file)
        .unwrap()
        .replace("path = \"in\"", "path = \"elsewhere\"");
    fs::write(&file, other).unwrap();
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("use a new checkpointLocation"), "{stderr}");
    assert!(stderr.contains("elsewhere"), "{stderr}");
}

#[test]
fn min_batches_to_retain_purges_old_entries() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for i in 0..5u64 {
        let f = drop_file(&d.join("in"), &format!("f{i}.json"), event_lines(i..i + 1));
        set_mtime(&f, 50 - i);
    }
    let file = pipeline(
        d,
        &fs::read_to_string(json_pipeline(
            d,
            "trigger = \"availableNow\"",
            "maxFilesPerTrigger = 1",
            "",
        ))
        .unwrap()
        .replace(
            "checkpointLocation = \"ckpt\"",
            "checkpointLocation = \"ckpt\"\nminBatchesToRetain = 2",
        ),
    );
    assert_eq!(run_logged(&file).0, Some(0));
    let names = |sub: &str| {
        let mut v: Vec<String> = fs::read_dir(d.join("ckpt").join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("offsets"), vec!["3", "4"]);
    assert_eq!(names("commits"), vec!["3", "4"]);
    assert_eq!(committed_json(&d.join("out")).len(), 5);
}

#[test]
fn a_failing_query_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    drop_file(&d.join("bad"), "a.json", "not json\n");
    drop_file(&d.join("in"), "a.json", event_lines(0..7));
    let file = pipeline(
        d,
        &format!(
            r#"[[query]]
name = "bad"
checkpointLocation = "ckpt-bad"
trigger = "availableNow"
[query.source]
format = "json"
path = "bad"
schema = "{SCHEMA}"
mode = "FAILFAST"
[query.sink]
format = "json"
path = "out-bad"

[[query]]
name = "good"
checkpointLocation = "ckpt-good"
trigger = "availableNow"
[query.source]
format = "json"
path = "in"
schema = "{SCHEMA}"
[query.sink]
format = "json"
path = "out"
"#
        ),
    );
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("query 'bad' failed"), "{stderr}");
    assert_eq!(committed_json(&d.join("out")).len(), 7);
}

#[test]
fn processing_time_batches_start_on_interval_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = pipeline(
        d,
        r#"[[query]]
name = "ticks"
checkpointLocation = "ckpt"
trigger = { processingTime = "300 ms" }
[query.source]
format = "rate-micro-batch"
rowsPerBatch = 1
[query.sink]
format = "json"
path = "out"
"#,
    );
    let log = d.join("progress.jsonl");
    let mut run = Running::start(&file, &["--progress-log", log.to_str().unwrap()], &[]);
    run.await_line("batch_id=4");
    run.signal(15);
    let (code, stderr) = run.wait();
    assert_eq!(code, Some(0), "{stderr}");
    let starts: Vec<i64> = progress(&log)
        .iter()
        .map(|p| {
            chrono::DateTime::parse_from_rfc3339(&p.timestamp)
                .unwrap()
                .timestamp_millis()
        })
        .collect();
    assert!(starts.len() >= 5);
    for w in starts[1..].windows(2) {
        assert!(
            w[1] - w[0] >= 250,
            "batches closer than the interval: {starts:?}"
        );
    }
    for s in &starts[1..] {
        assert!(
            s % 300 < 100,
            "batch at {s} is not on a 300 ms boundary: {starts:?}"
        );
    }
}

#[test]
fn processing_time_runs_no_batch_without_data_and_warns_when_falling_behind() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir_all(d.join("in")).unwrap();
    let file = json_pipeline(d, "trigger = { processingTime = \"50 ms\" }", "", "");
    let log = d.join("progress.jsonl");
    let mut run = Running::start(&file, &["--progress-log", log.to_str().unwrap()], &[]);
    run.await_line("starting query");
    // A big file makes batch 0 take longer than 50 ms even in an optimised build.
    drop_file(&d.join("in"), "big.json", event_lines(0..300_000));
    run.await_line("batch_id=0");
    run.await_line("falling behind");
    drop_file(&d.join("in"), "small.json", event_lines(300_000..300_001));
    run.await_line("batch_id=1");
    run.signal(15);
    let (code, stderr) = run.wait();
    assert_eq!(code, Some(0), "{stderr}");
    // Dozens of 50 ms triggers passed with no new data: still exactly two batches.
    let p = progress(&log);
    assert_eq!(
        p.iter().map(|p| p.num_input_rows).collect::<Vec<_>>(),
        vec![300_000, 1]
    );
}

#[test]
fn unspecified_trigger_runs_batches_back_to_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = pipeline(
        d,
        r#"[[query]]
name = "fast"
checkpointLocation = "ckpt"
[query.source]
format = "rate-micro-batch"
rowsPerBatch = 10
[query.sink]
format = "json"
path = "out"
"#,
    );
    let log = d.join("progress.jsonl");
    let mut run = Running::start(&file, &["--progress-log", log.to_str().unwrap()], &[]);
    run.await_line("batch_id=20");
    run.signal(15);
    let (code, stderr) = run.wait();
    assert_eq!(code, Some(0), "{stderr}");
    let values: Vec<i64> = committed_json(&d.join("out"))
        .iter()
        .map(|r| r["value"].as_i64().unwrap())
        .collect();
    assert_eq!(
        values,
        (0..values.len() as i64).collect::<Vec<_>>(),
        "rows lost or repeated"
    );
    assert!(values.len() >= 210);
}

#[test]
fn sigterm_finishes_the_batch_in_flight_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = pipeline(
        d,
        r#"[[query]]
name = "steady"
checkpointLocation = "ckpt"
trigger = { processingTime = "20 ms" }
[query.source]
format = "rate"
rowsPerSecond = 1000
[query.sink]
format = "json"
path = "out"
"#,
    );
    let mut run = Running::start(&file, &[], &[]);
    run.await_line("batch_id=3");
    run.signal(15);
    let (code, stderr) = run.wait();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("query stopped"), "{stderr}");
    let ckpt = sluice::checkpoint::Checkpoint::open(&d.join("ckpt"), &["rate".to_owned()]).unwrap();
    let last = ckpt.latest_offsets().unwrap().unwrap();
    assert_eq!(
        ckpt.latest_commit().unwrap().map(|c| c.0),
        Some(last.batch_id),
        "last batch not committed"
    );
    // The rate source's rows are contiguous: nothing lost between batches.
    let values: Vec<i64> = committed_json(&d.join("out"))
        .iter()
        .map(|r| r["value"].as_i64().unwrap())
        .collect();
    assert!(!values.is_empty());
    let mut sorted = values.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..values.len() as i64).collect::<Vec<_>>());
}

#[test]
fn socket_lines_become_rows() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = pipeline(
        d,
        &format!(
            r#"[[query]]
name = "sock"
checkpointLocation = "ckpt"
[query.source]
format = "socket"
host = "127.0.0.1"
port = {port}
[query.sink]
format = "json"
path = "out"
"#
        ),
    );
    let mut run = Running::start(&file, &[], &[]);
    let (mut conn, _) = listener.accept().unwrap();
    conn.write_all(b"hello spark\nhello sluice\n").unwrap();
    conn.flush().unwrap();
    run.await_line("batch committed");
    run.signal(15);
    let (code, stderr) = run.wait();
    assert_eq!(code, Some(0), "{stderr}");
    let values: Vec<String> = committed_json(&d.join("out"))
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(values, vec!["hello spark", "hello sluice"]);
}

#[test]
fn memory_sink_is_a_queryable_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    drop_file(&d.join("in"), "a.json", event_lines(0..6));
    let file = pipeline(
        d,
        &format!(
            r#"[[query]]
name = "in_memory"
trigger = "availableNow"
[query.source]
format = "json"
path = "in"
schema = "{SCHEMA}"
[query.sink]
format = "memory"
"#
        ),
    );
    let p = sluice::pipeline::Pipeline::load(&file).unwrap();
    let manager = sluice::manager::QueryManager::start_pipeline(&p, None).unwrap();
    let outcomes = manager.await_all(p.on_query_failure);
    assert!(outcomes.iter().all(|(_, r)| r.is_ok()));
    let table = sluice::connectors::memory::sink::table("in_memory").unwrap();
    assert_eq!(table.iter().map(|b| b.num_rows()).sum::<usize>(), 6);
}
