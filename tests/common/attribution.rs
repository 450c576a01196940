//! The seeds' attribution data (impressions and clicks of ads, an ads table) as files, the
//! pipelines over them, and what they must produce, computed by brute force: shared by the
//! join tests and the crash tests of plans with several joins.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use super::{drop_file, set_mtime};

/// (ad, minutes after 12:00) of each impression; clicks are derived from them.
pub fn impressions() -> Vec<(i64, i64)> {
    (0..5)
        .flat_map(|i| (0..10).map(move |j| (10 * i + j, 20 * i + j)))
        .collect()
}

/// Clicks of impression file `i`: even ads clicked 7·j minutes after the impression (within
/// the hour), ad 4 of each file a second time after 75 minutes (too late to count).
pub fn clicks(i: i64) -> Vec<(i64, i64)> {
    let mut c: Vec<(i64, i64)> = (0..10)
        .filter(|j| j % 2 == 0)
        .map(|j| (10 * i + j, 20 * i + j + 7 * j))
        .collect();
    c.push((10 * i + 4, 20 * i + 4 + 75));
    c
}

pub fn ts(minutes: i64) -> String {
    let total = 12 * 60 + minutes;
    format!(
        "2026-11-{:02}T{:02}:{:02}:00Z",
        21 + total / (24 * 60),
        total % (24 * 60) / 60,
        total % 60
    )
}

/// Minutes after 2026-11-21T12:00Z of a timestamp the json sink wrote.
pub fn minutes(text: &str) -> i64 {
    let t = chrono::DateTime::parse_from_rfc3339(text)
        .or_else(|_| chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    let base = chrono::DateTime::parse_from_rfc3339("2026-11-21T12:00:00Z").unwrap();
    (t - base).num_minutes()
}

/// Writes six files per side: five of data, one that moves both watermarks a day on.
pub fn write_attribution(d: &Path) {
    for i in 0..6 {
        // (ad, minute) rows of each side.
        type Rows = Vec<(i64, i64)>;
        let (imp, clk): (Rows, Rows) = if i < 5 {
            (
                impressions()
                    .into_iter()
                    .filter(|(ad, _)| ad / 10 == i)
                    .collect(),
                clicks(i),
            )
        } else {
            (vec![(999, 24 * 60)], vec![(998, 24 * 60)])
        };
        let text = |rows: &[(i64, i64)], time: &str| -> String {
            rows.iter()
                .map(|(ad, m)| format!("{{\"ad_id\":{ad},\"{time}\":\"{}\"}}\n", ts(*m)))
                .collect()
        };
        let f = drop_file(
            &d.join("imp"),
            &format!("{i}.json"),
            text(&imp, "impression_time"),
        );
        set_mtime(&f, 100 - i as u64);
        let f = drop_file(
            &d.join("clk"),
            &format!("{i}.json"),
            text(&clk, "click_time"),
        );
        set_mtime(&f, 100 - i as u64);
    }
}

/// The attribution pipeline over files (the Kafka version is in tests/kafka.rs).
pub const ATTRIBUTION: &str = r#"[[query]]
name = "attribution"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.inputs.impressions]
format = "json"
path = "imp/*.json"
schema = "ad_id BIGINT, impression_time TIMESTAMP"
mode = "FAILFAST"
maxFilesPerTrigger = 1
watermark = { column = "impression_time", delay = "10 minutes" }

[query.inputs.clicks]
format = "json"
path = "clk/*.json"
schema = "ad_id BIGINT, click_time TIMESTAMP"
mode = "FAILFAST"
maxFilesPerTrigger = 1
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

/// Impressions ⋈ clicks left outer within an hour, computed by brute force: (ad, impression
/// minute, click minute).
pub fn expected_attribution() -> Vec<(i64, i64, Option<i64>)> {
    let all_clicks: Vec<(i64, i64)> = (0..5).flat_map(clicks).collect();
    let mut out = Vec::new();
    for (ad, it) in impressions() {
        let matched: Vec<_> = all_clicks
            .iter()
            .filter(|(cad, ct)| *cad == ad && (0..=60).contains(&(ct - it)))
            .collect();
        if matched.is_empty() {
            out.push((ad, it, None));
        }
        for (_, ct) in matched {
            out.push((ad, it, Some(*ct)));
        }
    }
    out.sort();
    out
}

/// Ads 0..40 have a campaign (`c0`..`c2`); 40..50 have none.
pub fn write_ads(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("campaign", DataType::Utf8, true),
    ]));
    let ids: Vec<i64> = (0..40).collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(StringArray::from(
                ids.iter().map(|i| campaign(*i)).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(dir.join("ads.parquet")).unwrap(),
        schema,
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// The campaign of ad `id` as the ads table has it.
pub fn campaign(id: i64) -> Option<String> {
    (id < 40).then(|| format!("c{}", id % 3))
}

/// The attribution files with the impressions split between two inputs (even ads on the
/// web, odd ones in the app), each with the day-later file that moves its watermark on.
pub fn write_split_impressions(d: &Path) {
    write_attribution(d);
    for i in 0..6 {
        let text = std::fs::read_to_string(d.join("imp").join(format!("{i}.json"))).unwrap();
        for (dir, parity) in [("web", 0), ("app", 1)] {
            let rows: String = text
                .lines()
                .filter(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    let ad = v["ad_id"].as_i64().unwrap();
                    ad == 999 || ad % 2 == parity
                })
                .map(|l| format!("{l}\n"))
                .collect();
            let f = drop_file(&d.join(dir), &format!("{i}.json"), &rows);
            set_mtime(&f, 100 - i as u64);
        }
    }
}

/// Two impression inputs unioned, joined with the clicks (a stream–stream join), then each
/// row enriched with its ad's campaign from a parquet table: three operators over three
/// inputs, which the one-join form could not say.
pub const UNION_JOIN_ENRICH: &str = r#"[[query]]
name = "attribution"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.inputs.web]
format = "json"
path = "web/*.json"
schema = "ad_id BIGINT, impression_time TIMESTAMP"
mode = "FAILFAST"
maxFilesPerTrigger = 1
watermark = { column = "impression_time", delay = "10 minutes" }

[query.inputs.app]
format = "json"
path = "app/*.json"
schema = "ad_id BIGINT, impression_time TIMESTAMP"
mode = "FAILFAST"
maxFilesPerTrigger = 1
watermark = { column = "impression_time", delay = "10 minutes" }

[query.inputs.clicks]
format = "json"
path = "clk/*.json"
schema = "ad_id BIGINT, click_time TIMESTAMP"
mode = "FAILFAST"
maxFilesPerTrigger = 1
watermark = { column = "click_time", delay = "10 minutes" }

[query.views.impressions]
union = ["web", "app"]

[query.views.attributed.join]
left = "impressions"
right = "clicks"
type = "leftOuter"
on = ["ad_id"]
within = { left = "impression_time", right = "click_time", lower = "0 seconds", upper = "1 hour" }

[query.join]
left = "attributed"
type = "leftOuter"
on = [["ad_id", "id"]]

[query.join.table]
format = "parquet"
path = "ads"

[query.sink]
format = "json"
path = "out"
"#;

/// Impressions per ad per 30 minutes (append mode: each window once, when final), each
/// window's row then enriched with the ad's campaign — seed 004's windowed counts joined
/// with product metadata.
pub const AGGREGATE_ENRICH: &str = r#"[[query]]
name = "per_ad"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.source]
format = "json"
path = "imp/*.json"
schema = "ad_id BIGINT, impression_time TIMESTAMP"
mode = "FAILFAST"
maxFilesPerTrigger = 1
watermark = { column = "impression_time", delay = "10 minutes" }

[query.views.counts.aggregate]
groupBy = ["ad_id"]
window = { column = "impression_time", duration = "30 minutes" }
aggs = [{ fn = "count", as = "impressions" }]

[query.views.counts]
from = "source"

[query.join]
left = "counts"
type = "inner"
on = [["ad_id", "id"]]

[query.join.table]
format = "parquet"
path = "ads"

[query.sink]
format = "json"
path = "out"
"#;
