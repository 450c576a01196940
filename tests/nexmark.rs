//! The Nexmark pipelines of `examples/nexmark/` (TOML and Wasm) and `examples/nexmark-sql/`
//! (the same queries in SQL), each form checked alike, run through the CLI as shipped except for a
//! smaller stream (20,000 events at 1,000 a second of event time: 20 seconds) and a JSON file
//! sink instead of the blackhole. q0's output (every bid) is the reference the others are
//! checked against, computed here independently.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;

/// Runs `examples/<form>/<query>.toml` (`form`: `nexmark`, the TOML queries, or
/// `nexmark-sql`) on a small stream (every input) and returns the rows it wrote.
fn run_query(form: &str, query: &str) -> Vec<Value> {
    run_query_over(form, query, 20_000)
}

/// Runs `examples/<form>/<query>.toml` over `events` events at 1,000 a second.
fn run_query_over(form: &str, query: &str, events: u64) -> Vec<Value> {
    run_query_in_batches(form, query, events, None)
}

/// As [`run_query_over`], reading at most `per_batch` events of each input per batch.
fn run_query_in_batches(
    form: &str,
    query: &str,
    events: u64,
    per_batch: Option<u64>,
) -> Vec<Value> {
    let modules = guests();
    let limit = per_batch.map_or_else(String::new, |n| format!("\nmaxEventsPerTrigger = {n}"));
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join(format!("examples/{form}/{query}.toml")))
        .unwrap()
        .replace(
            "events = 10000000",
            &format!("events = {events}\neventsPerSecond = 1000{limit}"),
        )
        .replace("\"../modules/", &format!("\"{}/", modules.display()))
        // Auctions last up to 3.3 s of event time at 1,000 events a second.
        .replace("upper = \"400 milliseconds\"", "upper = \"4 seconds\"")
        .replace("INTERVAL '400' MILLISECOND", "INTERVAL '4' SECOND")
        .replace(
            "format = \"blackhole\"",
            "format = \"json\"\npath = \"out\"",
        )
        // q10's partitioned files, as JSON in the test's directory.
        .replace(
            "format = \"parquet\"\npath = \"out/nexmark-q10\"",
            "format = \"json\"\npath = \"out\"",
        )
        .replace("checkpointLocation = \"out/checkpoints/nexmark-q10\"\n", "")
        .replace(
            &format!("name = \"nexmark-{query}\""),
            &format!("name = \"nexmark-{query}\"\ncheckpointLocation = \"ckpt\""),
        );
    let file = pipeline(dir.path(), &text);
    let out = sluice().arg("run").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{query}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    committed_json(&dir.path().join("out"))
}

/// Event time in ms since the epoch, from the JSON sink's timestamp text.
fn ms(v: &Value) -> i64 {
    let text = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(&format!("{}Z", text.replace(' ', "T"))))
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .timestamp_millis()
}

struct Bid {
    auction: i64,
    bidder: i64,
    price: i64,
    time: i64,
    channel: String,
    url: String,
    extra: String,
}

fn bids() -> Vec<Bid> {
    bids_of(20_000)
}

/// The bids among the first `events` events.
fn bids_of(events: u64) -> Vec<Bid> {
    run_query_over("nexmark", "q0", events)
        .iter()
        .map(|r| Bid {
            auction: r["auction"].as_i64().unwrap(),
            bidder: r["bidder"].as_i64().unwrap(),
            price: r["price"].as_i64().unwrap(),
            time: ms(&r["date_time"]),
            channel: r["channel"].as_str().unwrap().to_owned(),
            url: r["url"].as_str().unwrap().to_owned(),
            extra: r["extra"].as_str().unwrap().to_owned(),
        })
        .collect()
}

fn q0_passes_every_bid_through_in(form: &str) {
    let rows = run_query(form, "q0");
    // 46 of every 50 events are bids.
    assert_eq!(rows.len(), 18_400);
    for key in [
        "auction",
        "bidder",
        "price",
        "channel",
        "url",
        "date_time",
        "extra",
    ] {
        assert!(
            rows.iter().all(|r| !r[key].is_null()),
            "{key} is always set"
        );
    }
}

fn q1_converts_every_price_to_euros_in(form: &str) {
    let mut expected: Vec<(i64, i64, i64, String)> = bids()
        .iter()
        .map(|b| {
            (
                b.auction,
                b.bidder,
                b.time,
                format!("{:.3}", b.price as f64 * 0.908),
            )
        })
        .collect();
    let mut got: Vec<(i64, i64, i64, String)> = run_query(form, "q1")
        .iter()
        .map(|r| {
            (
                r["auction"].as_i64().unwrap(),
                r["bidder"].as_i64().unwrap(),
                ms(&r["date_time"]),
                format!("{:.3}", r["price"].as_f64().unwrap()),
            )
        })
        .collect();
    expected.sort();
    got.sort();
    // Every bid once: 46 of every 50 events.
    assert_eq!(expected.len(), 18_400);
    assert_eq!(got, expected);
}

fn q2_selects_the_bids_of_every_123rd_auction_in(form: &str) {
    let mut expected: Vec<(i64, i64)> = bids()
        .iter()
        .filter(|b| b.auction % 123 == 0)
        .map(|b| (b.auction, b.price))
        .collect();
    expected.sort();
    assert!(!expected.is_empty(), "the stream has such bids");
    let mut got: Vec<(i64, i64)> = run_query(form, "q2")
        .iter()
        .map(|r| (r["auction"].as_i64().unwrap(), r["price"].as_i64().unwrap()))
        .collect();
    got.sort();
    assert_eq!(got, expected);
}

/// Window starts (ms) of hopping windows of `size` every `slide` containing `t`.
fn windows(t: i64, size: i64, slide: i64) -> impl Iterator<Item = i64> {
    let last = t - t.rem_euclid(slide);
    (0..size / slide).map(move |i| last - i * slide)
}

fn q5_finds_the_hot_auction_of_every_hopping_window_with_a_wasm_aggregate_in(form: &str) {
    // Reference: per window, bids per auction; the most bids wins, the lowest id on a tie.
    let mut counts: BTreeMap<i64, BTreeMap<i64, i64>> = BTreeMap::new();
    // 92,000 bids: several chunks of the two-phase aggregation, merged per window.
    for b in bids_of(100_000) {
        for w in windows(b.time, 10_000, 2_000) {
            *counts.entry(w).or_default().entry(b.auction).or_default() += 1;
        }
    }
    let expected: BTreeMap<i64, (i64, i64, i64)> = counts
        .iter()
        .map(|(w, per_auction)| {
            let (auction, most) =
                per_auction.iter().fold(
                    (0, 0),
                    |best, (a, c)| if *c > best.1 { (*a, *c) } else { best },
                );
            (*w, (auction, most, per_auction.values().sum()))
        })
        .collect();
    let rows = run_query_over(form, "q5", 100_000);
    // Append mode emits a window once the watermark passes its end: all but the last few.
    assert!(
        rows.len() + 5 >= expected.len() && !rows.is_empty(),
        "{} of {}",
        rows.len(),
        expected.len()
    );
    for r in &rows {
        let start = ms(&r["window"]["start"]);
        assert_eq!(ms(&r["window"]["end"]) - start, 10_000);
        let got = (
            r["hot"]["auction"].as_i64().unwrap(),
            r["hot"]["bids"].as_i64().unwrap(),
            r["bids"].as_i64().unwrap(),
        );
        assert_eq!(
            Some(&got),
            expected.get(&start),
            "window starting at {start}"
        );
    }
}

fn q7_finds_the_highest_bid_of_every_tumbling_window_in(form: &str) {
    let mut expected: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for b in bids_of(100_000) {
        let e = expected
            .entry(b.time - b.time.rem_euclid(10_000))
            .or_insert((i64::MIN, 0));
        e.0 = e.0.max(b.price);
        e.1 += 1;
    }
    let rows = run_query_over(form, "q7", 100_000);
    assert!(!rows.is_empty());
    for r in &rows {
        let start = ms(&r["window"]["start"]);
        let got = (
            r["max_price"].as_i64().unwrap(),
            r["bids"].as_i64().unwrap(),
        );
        assert_eq!(
            Some(&got),
            expected.get(&start),
            "window starting at {start}"
        );
    }
}

/// Every event of one kind the generator makes, as JSON rows (a pipeline of its own, no Wasm).
fn table(kind: &str) -> Vec<Value> {
    table_of(kind, 20_000)
}

/// Every event of one kind among the first `events`.
fn table_of(kind: &str, events: u64) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let file = pipeline(
        dir.path(),
        &format!(
            "[[query]]\nname = \"{kind}s\"\ncheckpointLocation = \"ckpt\"\ntrigger = \"availableNow\"\n[query.source]\nformat = \"nexmark\"\ntable = \"{kind}\"\nevents = {events}\neventsPerSecond = 1000\n[query.sink]\nformat = \"json\"\npath = \"out\"\n"
        ),
    );
    run_ok(sluice().arg("run").arg(&file));
    committed_json(&dir.path().join("out"))
}

fn q3_joins_category_10_auctions_with_their_sellers_in_three_states_in(form: &str) {
    // Reference: the generator's people and auctions, filtered and joined here.
    let people: BTreeMap<i64, (String, String, String)> = table("person")
        .iter()
        .filter(|p| matches!(p["state"].as_str(), Some("or" | "id" | "ca")))
        .map(|p| {
            let s = |k: &str| p[k].as_str().unwrap().to_owned();
            (
                p["id"].as_i64().unwrap(),
                (s("name"), s("city"), s("state")),
            )
        })
        .collect();
    let mut expected: Vec<(i64, String, String, String)> = table("auction")
        .iter()
        .filter(|a| a["category"].as_i64() == Some(10))
        .filter_map(|a| {
            let (name, city, state) = people.get(&a["seller"].as_i64().unwrap())?.clone();
            Some((a["id"].as_i64().unwrap(), name, city, state))
        })
        .collect();
    expected.sort();
    let mut got: Vec<(i64, String, String, String)> = run_query(form, "q3")
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_owned();
            assert_eq!(r["seller"], r["person_id"]);
            (r["id"].as_i64().unwrap(), s("name"), s("city"), s("state"))
        })
        .collect();
    got.sort();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
}

fn q8_finds_people_who_created_an_auction_in_their_registration_window_in(form: &str) {
    let window = |t: i64| t - t.rem_euclid(10_000);
    let people: BTreeMap<i64, (String, i64)> = table("person")
        .iter()
        .map(|p| {
            (
                p["id"].as_i64().unwrap(),
                (p["name"].as_str().unwrap().to_owned(), ms(&p["date_time"])),
            )
        })
        .collect();
    // One row per auction whose seller registered in the auction's window.
    let mut expected: Vec<(i64, String, i64)> = table("auction")
        .iter()
        .filter_map(|a| {
            let seller = a["seller"].as_i64().unwrap();
            let (name, registered) = people.get(&seller)?;
            (window(*registered) == window(ms(&a["date_time"])))
                .then(|| (seller, name.clone(), window(*registered)))
        })
        .collect();
    expected.sort();
    let mut got: Vec<(i64, String, i64)> = run_query(form, "q8")
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap(),
                r["name"].as_str().unwrap().to_owned(),
                ms(&r["starttime"]),
            )
        })
        .collect();
    got.sort();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
}

/// Each auction's closing price among the first `events` events: its highest bid placed
/// between its start and its expiry, as (category, start ms, price, expiry ms); auctions
/// without such a bid have none.
fn closing_prices(events: u64) -> BTreeMap<i64, (i64, i64, i64, i64)> {
    let auctions: BTreeMap<i64, (i64, i64, i64)> = table_of("auction", events)
        .iter()
        .map(|a| {
            (
                a["id"].as_i64().unwrap(),
                (
                    a["category"].as_i64().unwrap(),
                    ms(&a["date_time"]),
                    ms(&a["expires"]),
                ),
            )
        })
        .collect();
    let mut closing: BTreeMap<i64, (i64, i64, i64, i64)> = BTreeMap::new();
    for b in bids_of(events) {
        let Some(&(category, start, expires)) = auctions.get(&b.auction) else {
            continue;
        };
        if (start..=expires).contains(&b.time) {
            let e = closing
                .entry(b.auction)
                .or_insert((category, start, i64::MIN, expires));
            e.2 = e.2.max(b.price);
        }
    }
    closing
}

fn q4_averages_the_closing_price_per_category_through_two_chained_aggregations_in(form: &str) {
    let events = 60_000;
    // Per (category, 10-second window of the auctions' start): the closing prices' sum and
    // how many auctions.
    let mut expected: BTreeMap<(i64, i64), (i64, i64)> = BTreeMap::new();
    for (category, start, price, _) in closing_prices(events).into_values() {
        let e = expected
            .entry((category, start - start.rem_euclid(10_000)))
            .or_default();
        e.0 += price;
        e.1 += 1;
    }
    // Many batches, so the watermark moves through the join and both aggregations by steps.
    let rows = run_query_in_batches(form, "q4", events, Some(2_000));
    let mut got: BTreeMap<(i64, i64), (f64, i64)> = BTreeMap::new();
    for r in &rows {
        let key = (r["category"].as_i64().unwrap(), ms(&r["window"]["start"]));
        let v = (
            r["avg_final"].as_f64().unwrap(),
            r["auctions"].as_i64().unwrap(),
        );
        assert!(got.insert(key, v).is_none(), "{key:?} emitted twice");
    }
    // The stream's last 10 s of event time are never final (append mode emits a window once
    // the watermark passes it); every earlier window is emitted, each exactly as computed.
    let last = expected.keys().map(|k| k.1).max().unwrap();
    let first_window = expected.keys().map(|k| k.1).min().unwrap();
    assert!(last - first_window >= 40_000);
    for (key, (sum, n)) in &expected {
        match got.get(key) {
            Some((avg, count)) => {
                assert_eq!(count, n, "{key:?}");
                let want = *sum as f64 / *n as f64;
                assert!(
                    (avg - want).abs() <= want.abs() * 1e-9,
                    "{key:?}: {avg} vs {want}"
                );
            }
            None => assert!(
                key.1 >= last - 10_000,
                "window {key:?} was never emitted though the watermark passed it"
            ),
        }
    }
    assert!(got.keys().all(|k| expected.contains_key(k)), "{got:?}");
}

fn q9_finds_the_winning_bid_of_every_auction_through_a_view_read_twice_in(form: &str) {
    let events = 60_000;
    let closing = closing_prices(events);
    // Every valid bid at its auction's winning price: (auction, bidder, price, time).
    let mut expected: Vec<(i64, i64, i64, i64)> = bids_of(events)
        .into_iter()
        .filter(|b| {
            closing
                .get(&b.auction)
                .is_some_and(|&(_, start, price, expires)| {
                    b.price == price && (start..=expires).contains(&b.time)
                })
        })
        .map(|b| (b.auction, b.bidder, b.price, b.time))
        .collect();
    expected.sort();
    let rows = run_query_in_batches(form, "q9", events, Some(2_000));
    let mut got: Vec<(i64, i64, i64, i64)> = rows
        .iter()
        .map(|r| {
            assert_eq!(r["final"], r["price"], "{r}");
            (
                r["id"].as_i64().unwrap(),
                r["bidder"].as_i64().unwrap(),
                r["price"].as_i64().unwrap(),
                ms(&r["bid_date_time"]),
            )
        })
        .collect();
    got.sort();
    // Auctions that start in the stream's last seconds are not closed when it ends; every
    // other auction's winning bid is emitted, once.
    let end_ms = closing.values().map(|c| c.1).max().unwrap();
    let settled: Vec<_> = expected
        .iter()
        .filter(|w| closing[&w.0].1 < end_ms - 5_000)
        .cloned()
        .collect();
    assert!(settled.len() > 1_000, "{}", settled.len());
    for w in &settled {
        assert!(got.binary_search(w).is_ok(), "winning bid {w:?} missing");
    }
    for g in &got {
        assert!(
            expected.binary_search(g).is_ok(),
            "{g:?} is not a winning bid"
        );
    }
    let mut distinct = got.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), got.len(), "a winning bid emitted twice");
}

#[test]
fn q0_passes_every_bid_through() {
    q0_passes_every_bid_through_in("nexmark");
}

#[test]
fn q0_passes_every_bid_through_in_sql() {
    q0_passes_every_bid_through_in("nexmark-sql");
}

#[test]
fn q1_converts_every_price_to_euros() {
    q1_converts_every_price_to_euros_in("nexmark");
}

#[test]
fn q1_converts_every_price_to_euros_in_sql() {
    q1_converts_every_price_to_euros_in("nexmark-sql");
}

#[test]
fn q2_selects_the_bids_of_every_123rd_auction() {
    q2_selects_the_bids_of_every_123rd_auction_in("nexmark");
}

#[test]
fn q2_selects_the_bids_of_every_123rd_auction_in_sql() {
    q2_selects_the_bids_of_every_123rd_auction_in("nexmark-sql");
}

#[test]
fn q5_finds_the_hot_auction_of_every_hopping_window_with_a_wasm_aggregate() {
    q5_finds_the_hot_auction_of_every_hopping_window_with_a_wasm_aggregate_in("nexmark");
}

#[test]
fn q5_finds_the_hot_auction_of_every_hopping_window_with_a_wasm_aggregate_in_sql() {
    q5_finds_the_hot_auction_of_every_hopping_window_with_a_wasm_aggregate_in("nexmark-sql");
}

#[test]
fn q7_finds_the_highest_bid_of_every_tumbling_window() {
    q7_finds_the_highest_bid_of_every_tumbling_window_in("nexmark");
}

#[test]
fn q7_finds_the_highest_bid_of_every_tumbling_window_in_sql() {
    q7_finds_the_highest_bid_of_every_tumbling_window_in("nexmark-sql");
}

#[test]
fn q3_joins_category_10_auctions_with_their_sellers_in_three_states() {
    q3_joins_category_10_auctions_with_their_sellers_in_three_states_in("nexmark");
}

#[test]
fn q3_joins_category_10_auctions_with_their_sellers_in_three_states_in_sql() {
    q3_joins_category_10_auctions_with_their_sellers_in_three_states_in("nexmark-sql");
}

#[test]
fn q8_finds_people_who_created_an_auction_in_their_registration_window() {
    q8_finds_people_who_created_an_auction_in_their_registration_window_in("nexmark");
}

#[test]
fn q8_finds_people_who_created_an_auction_in_their_registration_window_in_sql() {
    q8_finds_people_who_created_an_auction_in_their_registration_window_in("nexmark-sql");
}

#[test]
fn q4_averages_the_closing_price_per_category_through_two_chained_aggregations() {
    q4_averages_the_closing_price_per_category_through_two_chained_aggregations_in("nexmark");
}

#[test]
fn q4_averages_the_closing_price_per_category_through_two_chained_aggregations_in_sql() {
    q4_averages_the_closing_price_per_category_through_two_chained_aggregations_in("nexmark-sql");
}

#[test]
fn q9_finds_the_winning_bid_of_every_auction_through_a_view_read_twice() {
    q9_finds_the_winning_bid_of_every_auction_through_a_view_read_twice_in("nexmark");
}

#[test]
fn q9_finds_the_winning_bid_of_every_auction_through_a_view_read_twice_in_sql() {
    q9_finds_the_winning_bid_of_every_auction_through_a_view_read_twice_in("nexmark-sql");
}

// Nexmark q10-q22 in SQL (no TOML form): each checked against the generator's bids.

#[test]
fn q10_logs_every_bid_into_day_and_minute_partitions_in_sql() {
    let rows = run_query("nexmark-sql", "q10");
    let mut got: Vec<(i64, i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["auction"].as_i64().unwrap(),
                r["bidder"].as_i64().unwrap(),
                ms(&r["date_time"]),
            )
        })
        .collect();
    let mut expected: Vec<(i64, i64, i64)> = bids()
        .iter()
        .map(|b| (b.auction, b.bidder, b.time))
        .collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
}

/// Each bidder's sessions (bids at most `gap` ms apart): (bidder, start, end, bids), the end
/// being the last bid plus the gap, as Spark's session windows.
fn sessions(bids: &[Bid], gap: i64) -> Vec<(i64, i64, i64, i64)> {
    let mut by_bidder: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for b in bids {
        by_bidder.entry(b.bidder).or_default().push(b.time);
    }
    let mut out = Vec::new();
    for (bidder, mut times) in by_bidder {
        times.sort();
        let (mut start, mut last, mut n) = (times[0], times[0], 0);
        for t in times {
            if t - last >= gap {
                out.push((bidder, start, last + gap, n));
                (start, n) = (t, 0);
            }
            last = t;
            n += 1;
        }
        out.push((bidder, start, last + gap, n));
    }
    out.sort();
    out
}

#[test]
fn q11_counts_each_bidder_s_bids_per_session_in_sql() {
    // 100 seconds of event time, so that many sessions end before the stream does.
    let bids = bids_of(100_000);
    let expected = sessions(&bids, 10_000);
    let end = bids.iter().map(|b| b.time).max().unwrap();
    let mut got: Vec<(i64, i64, i64, i64)> = run_query_over("nexmark-sql", "q11", 100_000)
        .iter()
        .map(|r| {
            (
                r["bidder"].as_i64().unwrap(),
                ms(&r["starttime"]),
                ms(&r["endtime"]),
                r["bid_count"].as_i64().unwrap(),
            )
        })
        .collect();
    got.sort();
    // Append mode: every session is emitted once the watermark passes its end, so all but
    // those still open when the stream ends.
    let closed: Vec<_> = expected.iter().filter(|s| s.2 <= end).cloned().collect();
    assert!(closed.len() > 100, "{}", closed.len());
    assert_eq!(got, closed);
}

#[test]
fn q14_computes_euros_time_of_day_and_c_counts_over_middle_prices_in_sql() {
    let kind = |t: i64| {
        let hour = (t / 3_600_000).rem_euclid(24);
        if (8..=18).contains(&hour) {
            "dayTime"
        } else if hour <= 6 || hour >= 20 {
            "nightTime"
        } else {
            "otherTime"
        }
    };
    let mut expected: Vec<(i64, i64, String, String, i64)> = bids()
        .iter()
        .filter(|b| {
            let euros = 0.908 * b.price as f64;
            euros > 1_000_000.0 && euros < 50_000_000.0
        })
        .map(|b| {
            (
                b.auction,
                b.time,
                format!("{:.3}", 0.908 * b.price as f64),
                kind(b.time).to_owned(),
                b.extra.matches('c').count() as i64,
            )
        })
        .collect();
    assert!(!expected.is_empty());
    let mut got: Vec<(i64, i64, String, String, i64)> = run_query("nexmark-sql", "q14")
        .iter()
        .map(|r| {
            (
                r["auction"].as_i64().unwrap(),
                ms(&r["date_time"]),
                format!(
                    "{:.3}",
                    r["price"].as_f64().unwrap_or_else(|| r["price"]
                        .as_str()
                        .unwrap()
                        .parse()
                        .unwrap())
                ),
                r["bidTimeType"].as_str().unwrap().to_owned(),
                r["c_counts"].as_i64().unwrap(),
            )
        })
        .collect();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
}

#[test]
fn q20_joins_bids_with_their_category_10_auctions_in_sql() {
    let auctions: BTreeMap<i64, (i64, i64)> = table("auction")
        .iter()
        .filter(|a| a["category"].as_i64() == Some(10))
        .map(|a| {
            (
                a["id"].as_i64().unwrap(),
                (ms(&a["date_time"]), a["seller"].as_i64().unwrap()),
            )
        })
        .collect();
    let mut expected: Vec<(i64, i64, i64, i64)> = bids()
        .iter()
        .filter_map(|b| {
            let (start, seller) = auctions.get(&b.auction)?;
            (b.time >= *start && b.time <= start + 4_000)
                .then_some((b.auction, b.bidder, b.time, *seller))
        })
        .collect();
    expected.sort();
    assert!(!expected.is_empty());
    let mut got: Vec<(i64, i64, i64, i64)> = run_query("nexmark-sql", "q20")
        .iter()
        .map(|r| {
            assert_eq!(r["category"], 10);
            (
                r["auction"].as_i64().unwrap(),
                r["bidder"].as_i64().unwrap(),
                ms(&r["date_time"]),
                r["seller"].as_i64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, expected);
}

#[test]
fn q21_and_q22_read_channel_ids_and_url_directories_in_sql() {
    let bids = bids();
    let channel_id = |b: &Bid| -> Option<String> {
        let from_url = b
            .url
            .split(['?', '&'])
            .find_map(|p| p.strip_prefix("channel_id="))
            .map(str::to_owned);
        match b.channel.to_lowercase().as_str() {
            "apple" => Some("0".into()),
            "google" => Some("1".into()),
            "facebook" => Some("2".into()),
            "baidu" => Some("3".into()),
            _ => from_url.filter(|c| !c.is_empty()),
        }
    };
    let mut expected: Vec<(i64, i64, String)> = bids
        .iter()
        .filter_map(|b| Some((b.auction, b.bidder, channel_id(b)?)))
        .collect();
    expected.sort();
    assert!(!expected.is_empty());
    let mut got: Vec<(i64, i64, String)> = run_query("nexmark-sql", "q21")
        .iter()
        .map(|r| {
            (
                r["auction"].as_i64().unwrap(),
                r["bidder"].as_i64().unwrap(),
                r["channel_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, expected);

    let mut expected: Vec<(i64, i64, Vec<Option<String>>)> = bids
        .iter()
        .map(|b| {
            let parts: Vec<&str> = b.url.split('/').collect();
            let dirs = (3..6)
                .map(|i| parts.get(i).map(|s| s.to_string()))
                .collect();
            (b.auction, b.bidder, dirs)
        })
        .collect();
    expected.sort();
    let mut got: Vec<(i64, i64, Vec<Option<String>>)> = run_query("nexmark-sql", "q22")
        .iter()
        .map(|r| {
            let dirs = ["dir1", "dir2", "dir3"]
                .iter()
                .map(|k| r[*k].as_str().map(str::to_owned))
                .collect();
            (
                r["auction"].as_i64().unwrap(),
                r["bidder"].as_i64().unwrap(),
                dirs,
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, expected);
}

/// Runs an update-mode query of `examples/nexmark-sql/` to the console and returns each
/// group's last emitted row (by the columns `key`), as cells by column name.
fn last_updates(query: &str, key: &[&str]) -> BTreeMap<Vec<String>, BTreeMap<String, String>> {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join(format!("examples/nexmark-sql/{query}.toml")))
        .unwrap()
        .replace(
            "events = 10000000",
            "events = 20000\neventsPerSecond = 1000",
        )
        .replace(
            "format = \"blackhole\"",
            "format = \"console\"\nnumRows = 100000\ntruncate = false",
        );
    let file = pipeline(dir.path(), &text);
    let out = run_ok(sluice().arg("run").arg(&file));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut last = BTreeMap::new();
    for batch in stdout.split("Batch: ").skip(1) {
        let Some(header) = batch.lines().find(|l| l.starts_with('|')) else {
            continue;
        };
        let names: Vec<String> = header
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect();
        for row in last_console_table(&format!("Batch: {batch}")) {
            let cells: BTreeMap<String, String> = names.iter().cloned().zip(row).collect();
            let k = key.iter().map(|k| cells[*k].clone()).collect();
            last.insert(k, cells);
        }
    }
    last
}

#[test]
fn q15_and_q17_keep_bid_statistics_per_day_and_per_auction_in_sql() {
    let bids = bids();
    let rank = |p: i64| match p {
        p if p < 10_000 => 0,
        p if p < 1_000_000 => 1,
        _ => 2,
    };
    // q15: one day in 20 seconds of event time.
    let days = last_updates("q15", &["day"]);
    assert_eq!(days.len(), 1, "{days:?}");
    let day = days.values().next().unwrap();
    assert_eq!(day["total_bids"], bids.len().to_string());
    for r in 0..3 {
        let n = bids.iter().filter(|b| rank(b.price) == r).count();
        assert_eq!(
            day[&format!("rank{}_bids", r + 1)],
            n.to_string(),
            "{day:?}"
        );
        let bidders: std::collections::BTreeSet<i64> = bids
            .iter()
            .filter(|b| rank(b.price) == r)
            .map(|b| b.bidder)
            .collect();
        assert_eq!(
            day[&format!("rank{}_bidders", r + 1)],
            bidders.len().to_string()
        );
    }
    let auctions: std::collections::BTreeSet<i64> = bids.iter().map(|b| b.auction).collect();
    assert_eq!(day["total_auctions"], auctions.len().to_string());
    // q17: per auction.
    let per_auction = last_updates("q17", &["auction", "day"]);
    assert_eq!(per_auction.len(), auctions.len());
    for (k, cells) in &per_auction {
        let auction: i64 = k[0].parse().unwrap();
        let prices: Vec<i64> = bids
            .iter()
            .filter(|b| b.auction == auction)
            .map(|b| b.price)
            .collect();
        assert_eq!(cells["total_bids"], prices.len().to_string(), "{cells:?}");
        assert_eq!(cells["min_price"], prices.iter().min().unwrap().to_string());
        assert_eq!(cells["max_price"], prices.iter().max().unwrap().to_string());
        assert_eq!(cells["sum_price"], prices.iter().sum::<i64>().to_string());
    }
}
