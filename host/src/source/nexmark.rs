//! `format = "nexmark"`: the Nexmark benchmark's event stream — people registering, auctions
//! opening, bids arriving, in the standard 1 : 3 : 46 proportion — generated straight into
//! Arrow builders.
//!
//! The generator follows the reference one (Beam's and Flink's Nexmark, also ported as the
//! `nexmark` crate): the event type comes from the event number modulo 50; person and auction
//! ids grow with the event number; a bid goes to a "hot" auction (a multiple of 100 among the
//! latest ones) half the time and to a hot bidder three times in four; the seller of an
//! auction is hot three times in four; prices follow the reference's log-uniform draw;
//! `extra` pads events to the reference's average sizes (person 200, auction 500, bid 100
//! bytes). Every field comes from a small random generator seeded with the event's id, and
//! the event time from its number and `eventsPerSecond`, so any range of events is the same on
//! every run and replay. (The random draws are not bit-identical to the Java generator's: the
//! distributions are the same, the values are not.) Written here rather than taken from the
//! `nexmark` crate because that one allocates a `String` per field per event, which would
//! make the generator the benchmark's bottleneck.
//!
//! Columns, as Flink's Nexmark `datagen` table: `event_type` (0 person, 1 auction, 2 bid),
//! `person`, `auction` and `bid` structs (the one matching the type is set, the others null),
//! and `date_time`, the event time. Offsets are event numbers.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::builder::{Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, Int32Array, RecordBatch, StructArray};
use arrow_buffer::NullBufferBuilder;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use serde_json::json;

use super::{Offset, ReadLimit, Source, offset_u64};
use crate::error::{Error, Result};
use crate::schema::{UTC, timestamp_type};

/// Which events a `nexmark` source emits (`table`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NexmarkTable {
    /// Every event, in Flink's `datagen` shape (`event_type`, three structs, `date_time`).
    All,
    /// Only bids, as flat columns (RisingWave's `nexmark.table.type = 'Bid'`).
    Bid,
    /// Only auctions, as flat columns.
    Auction,
    /// Only people, as flat columns.
    Person,
}

/// Options of the `nexmark` source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NexmarkSpec {
    /// `table`: all events, or one kind as flat columns. Offsets count every event either way.
    pub table: NexmarkTable,
    /// `events`: how many events in all (`None`: unbounded).
    pub events: Option<u64>,
    /// `eventsPerSecond`: the event-time rate (event n happens at `firstEventTime + n / rate`).
    pub events_per_second: u64,
    /// `throttle`: release events in wall-clock time at `eventsPerSecond` rather than all at once.
    pub throttle: bool,
    /// `firstEventTime`, ms since the epoch.
    pub first_event_time_ms: i64,
    /// `maxEventsPerTrigger`.
    pub max_events_per_trigger: u64,
}

const PERSON_PROPORTION: u64 = 1;
const AUCTION_PROPORTION: u64 = 3;
const PROPORTION_DENOMINATOR: u64 = 50;
const FIRST_PERSON_ID: u64 = 1000;
const FIRST_AUCTION_ID: u64 = 1000;
const FIRST_CATEGORY_ID: u64 = 10;
const NUM_CATEGORIES: u64 = 5;
const ACTIVE_PEOPLE: u64 = 1000;
const IN_FLIGHT_AUCTIONS: u64 = 100;
const PERSON_ID_LEAD: u64 = 10;
const AUCTION_ID_LEAD: u64 = 10;
const HOT_SELLER_RATIO: u64 = 4;
const HOT_AUCTION_RATIO: u64 = 2;
const HOT_BIDDER_RATIO: u64 = 4;
const HOT_CHANNEL_RATIO: u64 = 2;
/// Hot ids are multiples of this among the latest ones.
const HOT_ID_STRIDE: u64 = 100;
const AVG_PERSON_BYTES: usize = 200;
const AVG_AUCTION_BYTES: usize = 500;
const AVG_BID_BYTES: usize = 100;
const US_STATES: [&str; 6] = ["az", "ca", "id", "or", "wa", "wy"];
const US_CITIES: [&str; 10] = [
    "phoenix",
    "los angeles",
    "san francisco",
    "boise",
    "portland",
    "bend",
    "redmond",
    "seattle",
    "kent",
    "cheyenne",
];
const FIRST_NAMES: [&str; 11] = [
    "peter", "paul", "luke", "john", "saul", "vicky", "kate", "julie", "sarah", "deiter", "walter",
];
const LAST_NAMES: [&str; 9] = [
    "shultz", "abrams", "spencer", "white", "bartels", "walton", "smith", "jones", "noris",
];
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
/// Channels beyond the hot ones.
const CHANNELS: u64 = 10_000;

/// splitmix64: a small, fast generator; seeded per event so events are independent of the
/// order they are generated in.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }

    /// The reference's price: `round(10^(random * 6) * 100)` cents.
    fn price(&mut self) -> i64 {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (10f64.powf(unit * 6.0) * 100.0).round() as i64
    }
}

fn person_last_id(id: u64) -> u64 {
    let epoch = id / PROPORTION_DENOMINATOR;
    let offset = (id % PROPORTION_DENOMINATOR).min(PERSON_PROPORTION - 1);
    epoch * PERSON_PROPORTION + offset
}

fn person_next_id(id: u64, rng: &mut Rng) -> u64 {
    let people = person_last_id(id) + 1;
    let active = people.min(ACTIVE_PEOPLE);
    people - active + rng.below(active + PERSON_ID_LEAD)
}

fn auction_last_id(id: u64) -> u64 {
    let epoch = id / PROPORTION_DENOMINATOR;
    let offset = id % PROPORTION_DENOMINATOR;
    if offset < PERSON_PROPORTION {
        // Before the first auction of this epoch: the last one of the previous epoch.
        (epoch * AUCTION_PROPORTION).saturating_sub(1)
    } else if offset >= PERSON_PROPORTION + AUCTION_PROPORTION {
        epoch * AUCTION_PROPORTION + AUCTION_PROPORTION - 1
    } else {
        epoch * AUCTION_PROPORTION + offset - PERSON_PROPORTION
    }
}

fn auction_next_id(id: u64, rng: &mut Rng) -> u64 {
    let max = auction_last_id(id);
    let min = max.saturating_sub(IN_FLIGHT_AUCTIONS);
    min + rng.below(max - min + 1 + AUCTION_ID_LEAD)
}

/// Appends `len` pseudo-random lower-case letters (a slice of `pool`) to the value being built.
fn append_letters(b: &mut StringBuilder, pool: &str, rng: &mut Rng, len: usize) {
    let len = len.min(pool.len());
    let start = rng.below((pool.len() - len + 1) as u64) as usize;
    let _ = b.write_str(&pool[start..start + len]);
}

/// `extra`: padding towards the reference's average event size.
fn append_extra(b: &mut StringBuilder, pool: &str, rng: &mut Rng, current: usize, avg: usize) {
    if current >= avg {
        b.append_value("");
        return;
    }
    let wanted = avg - current;
    let len = (wanted * 9 / 10 + rng.below((wanted / 5 + 1) as u64) as usize).min(pool.len());
    append_letters(b, pool, rng, len);
    b.append_value("");
}

/// Builders of one struct column, with its validity.
struct StructColumns {
    fields: Fields,
    valid: NullBufferBuilder,
}

fn ts_field(name: &str) -> Field {
    Field::new(name, timestamp_type(), true)
}

fn person_fields() -> Fields {
    Fields::from(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("email_address", DataType::Utf8, true),
        Field::new("credit_card", DataType::Utf8, true),
        Field::new("city", DataType::Utf8, true),
        Field::new("state", DataType::Utf8, true),
        ts_field("date_time"),
        Field::new("extra", DataType::Utf8, true),
    ])
}

fn auction_fields() -> Fields {
    Fields::from(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("item_name", DataType::Utf8, true),
        Field::new("description", DataType::Utf8, true),
        Field::new("initial_bid", DataType::Int64, true),
        Field::new("reserve", DataType::Int64, true),
        ts_field("date_time"),
        ts_field("expires"),
        Field::new("seller", DataType::Int64, true),
        Field::new("category", DataType::Int64, true),
        Field::new("extra", DataType::Utf8, true),
    ])
}

fn bid_fields() -> Fields {
    Fields::from(vec![
        Field::new("auction", DataType::Int64, true),
        Field::new("bidder", DataType::Int64, true),
        Field::new("price", DataType::Int64, true),
        Field::new("channel", DataType::Utf8, true),
        Field::new("url", DataType::Utf8, true),
        ts_field("date_time"),
        Field::new("extra", DataType::Utf8, true),
    ])
}

/// The schema of a `nexmark` source emitting `table`.
pub fn nexmark_schema(table: NexmarkTable) -> SchemaRef {
    Arc::new(match table {
        NexmarkTable::All => Schema::new(vec![
            Field::new("event_type", DataType::Int32, false),
            Field::new("person", DataType::Struct(person_fields()), true),
            Field::new("auction", DataType::Struct(auction_fields()), true),
            Field::new("bid", DataType::Struct(bid_fields()), true),
            Field::new("date_time", timestamp_type(), false),
        ]),
        NexmarkTable::Bid => Schema::new(bid_fields()),
        NexmarkTable::Auction => Schema::new(auction_fields()),
        NexmarkTable::Person => Schema::new(person_fields()),
    })
}

/// Generates Nexmark events by number.
pub struct NexmarkSource {
    spec: NexmarkSpec,
    schema: SchemaRef,
    /// Random letters that names, descriptions and `extra` are cut from.
    pool: String,
    /// Channel names and URLs beyond the hot ones, made once.
    channels: Vec<(String, String)>,
    started: Instant,
    available_now_end: Option<u64>,
}

impl NexmarkSource {
    /// A generator with `spec`'s options.
    pub fn new(spec: NexmarkSpec) -> NexmarkSource {
        let mut rng = Rng(0x6e65_786d_6172_6b);
        let pool: String = (0..4096)
            .map(|_| (b'a' + rng.below(26) as u8) as char)
            .collect();
        let hot_urls: Vec<String> = (0..HOT_CHANNELS.len())
            .map(|i| format!("https://www.nexmark.com/hot/{i}/item.htm?query=1"))
            .collect();
        let mut channels: Vec<(String, String)> = HOT_CHANNELS
            .iter()
            .zip(hot_urls)
            .map(|(c, u)| (c.to_string(), u))
            .collect();
        for i in 0..CHANNELS {
            let word = &pool[(i as usize * 7) % 4000..(i as usize * 7) % 4000 + 5];
            channels.push((
                format!("channel-{i}"),
                format!("https://www.nexmark.com/{word}/item.htm?query=1&channel_id={i}"),
            ));
        }
        NexmarkSource {
            spec,
            schema: nexmark_schema(spec.table),
            pool,
            channels,
            started: Instant::now(),
            available_now_end: None,
        }
    }

    /// Event time of event `n`, µs since the epoch.
    fn event_time_us(&self, n: u64) -> i64 {
        self.spec.first_event_time_ms * 1000
            + (n as u128 * 1_000_000 / self.spec.events_per_second as u128) as i64
    }

    /// Events generated so far by the clock (throttled) or all of them (unthrottled).
    fn available(&self) -> u64 {
        let by_clock = if self.spec.throttle {
            (self.started.elapsed().as_secs_f64() * self.spec.events_per_second as f64) as u64
        } else {
            u64::MAX
        };
        let bounded = self.spec.events.map_or(by_clock, |e| e.min(by_clock));
        self.available_now_end
            .map_or(bounded, |end| end.min(bounded))
    }

    /// Events `from..to` as one batch.
    fn generate(&self, from: u64, to: u64) -> Result<RecordBatch> {
        let rows = (to - from) as usize;
        let pool = self.pool.as_str();
        let mut event_type = Vec::with_capacity(rows);
        let mut date_time = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone(UTC);
        // Person columns.
        let mut p = StructColumns {
            fields: person_fields(),
            valid: NullBufferBuilder::new(rows),
        };
        let persons = rows / PROPORTION_DENOMINATOR as usize + 1;
        let mut p_id = Int64Builder::with_capacity(rows);
        let mut p_name = StringBuilder::with_capacity(rows, persons * 16);
        let mut p_email = StringBuilder::with_capacity(rows, persons * 20);
        let mut p_card = StringBuilder::with_capacity(rows, persons * 19);
        let mut p_city = StringBuilder::with_capacity(rows, persons * 10);
        let mut p_state = StringBuilder::with_capacity(rows, persons * 2);
        let mut p_time = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone(UTC);
        let mut p_extra = StringBuilder::with_capacity(rows, persons * 140);
        // Auction columns.
        let mut a = StructColumns {
            fields: auction_fields(),
            valid: NullBufferBuilder::new(rows),
        };
        let auctions = persons * AUCTION_PROPORTION as usize;
        let mut a_id = Int64Builder::with_capacity(rows);
        let mut a_item = StringBuilder::with_capacity(rows, auctions * 20);
        let mut a_desc = StringBuilder::with_capacity(rows, auctions * 100);
        let mut a_initial = Int64Builder::with_capacity(rows);
        let mut a_reserve = Int64Builder::with_capacity(rows);
        let mut a_time = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone(UTC);
        let mut a_expires = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone(UTC);
        let mut a_seller = Int64Builder::with_capacity(rows);
        let mut a_category = Int64Builder::with_capacity(rows);
        let mut a_extra = StringBuilder::with_capacity(rows, auctions * 340);
        // Bid columns.
        let mut b = StructColumns {
            fields: bid_fields(),
            valid: NullBufferBuilder::new(rows),
        };
        let mut b_auction = Int64Builder::with_capacity(rows);
        let mut b_bidder = Int64Builder::with_capacity(rows);
        let mut b_price = Int64Builder::with_capacity(rows);
        let mut b_channel = StringBuilder::with_capacity(rows, rows * 10);
        let mut b_url = StringBuilder::with_capacity(rows, rows * 50);
        let mut b_time = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone(UTC);
        let mut b_extra = StringBuilder::with_capacity(rows, rows * 70);

        let events_for_auctions = IN_FLIGHT_AUCTIONS * PROPORTION_DENOMINATOR / AUCTION_PROPORTION;
        for n in from..to {
            let id = n; // first_event_id = 0: the id is the event number
            let time = self.event_time_us(n);
            let mut rng = Rng(id.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x5851_f42d_4c95_7f2d);
            let kind = id % PROPORTION_DENOMINATOR;
            let all = self.spec.table == NexmarkTable::All;
            let wanted = match self.spec.table {
                NexmarkTable::All => true,
                NexmarkTable::Person => kind < PERSON_PROPORTION,
                NexmarkTable::Auction => {
                    (PERSON_PROPORTION..PERSON_PROPORTION + AUCTION_PROPORTION).contains(&kind)
                }
                NexmarkTable::Bid => kind >= PERSON_PROPORTION + AUCTION_PROPORTION,
            };
            if !wanted {
                continue;
            }
            if all {
                date_time.append_value(time);
            }
            if kind < PERSON_PROPORTION {
                event_type.push(0);
                p.valid.append_non_null();
                a.valid.append_null();
                b.valid.append_null();
                p_id.append_value((person_last_id(id) + FIRST_PERSON_ID) as i64);
                let first = FIRST_NAMES[rng.below(FIRST_NAMES.len() as u64) as usize];
                let last = LAST_NAMES[rng.below(LAST_NAMES.len() as u64) as usize];
                let _ = write!(p_name, "{first} {last}");
                p_name.append_value("");
                append_letters(&mut p_email, pool, &mut rng, 7);
                let _ = p_email.write_char('@');
                append_letters(&mut p_email, pool, &mut rng, 5);
                p_email.append_value(".com");
                let _ = write!(
                    p_card,
                    "{:04} {:04} {:04} {:04}",
                    rng.below(10_000),
                    rng.below(10_000),
                    rng.below(10_000),
                    rng.below(10_000)
                );
                p_card.append_value("");
                let city = US_CITIES[rng.below(US_CITIES.len() as u64) as usize];
                let state = US_STATES[rng.below(US_STATES.len() as u64) as usize];
                p_city.append_value(city);
                p_state.append_value(state);
                p_time.append_value(time);
                let size = 8 + first.len() + last.len() + 1 + 17 + 19 + city.len() + 2;
                append_extra(&mut p_extra, pool, &mut rng, size, AVG_PERSON_BYTES);
                append_nulls_auction(
                    &mut a_id,
                    &mut a_item,
                    &mut a_desc,
                    &mut a_initial,
                    &mut a_reserve,
                    &mut a_time,
                    &mut a_expires,
                    &mut a_seller,
                    &mut a_category,
                    &mut a_extra,
                );
                append_nulls_bid(
                    &mut b_auction,
                    &mut b_bidder,
                    &mut b_price,
                    &mut b_channel,
                    &mut b_url,
                    &mut b_time,
                    &mut b_extra,
                );
            } else if kind < PERSON_PROPORTION + AUCTION_PROPORTION {
                event_type.push(1);
                p.valid.append_null();
                a.valid.append_non_null();
                b.valid.append_null();
                append_nulls_person(
                    &mut p_id,
                    &mut p_name,
                    &mut p_email,
                    &mut p_card,
                    &mut p_city,
                    &mut p_state,
                    &mut p_time,
                    &mut p_extra,
                );
                a_id.append_value((auction_last_id(id) + FIRST_AUCTION_ID) as i64);
                append_letters(&mut a_item, pool, &mut rng, 20);
                a_item.append_value("");
                append_letters(&mut a_desc, pool, &mut rng, 100);
                a_desc.append_value("");
                let initial = rng.price();
                a_initial.append_value(initial);
                a_reserve.append_value(initial + rng.price());
                a_time.append_value(time);
                let horizon = (self.event_time_us(n + events_for_auctions) - time).max(1) as u64;
                a_expires.append_value(time + 1 + rng.below(horizon * 2) as i64);
                let seller = if rng.below(HOT_SELLER_RATIO) > 0 {
                    (person_last_id(id) / HOT_ID_STRIDE) * HOT_ID_STRIDE
                } else {
                    person_next_id(id, &mut rng)
                };
                a_seller.append_value((seller + FIRST_PERSON_ID) as i64);
                a_category.append_value((FIRST_CATEGORY_ID + rng.below(NUM_CATEGORIES)) as i64);
                append_extra(
                    &mut a_extra,
                    pool,
                    &mut rng,
                    8 + 20 + 100 + 40,
                    AVG_AUCTION_BYTES,
                );
                append_nulls_bid(
                    &mut b_auction,
                    &mut b_bidder,
                    &mut b_price,
                    &mut b_channel,
                    &mut b_url,
                    &mut b_time,
                    &mut b_extra,
                );
            } else {
                event_type.push(2);
                p.valid.append_null();
                a.valid.append_null();
                b.valid.append_non_null();
                append_nulls_person(
                    &mut p_id,
                    &mut p_name,
                    &mut p_email,
                    &mut p_card,
                    &mut p_city,
                    &mut p_state,
                    &mut p_time,
                    &mut p_extra,
                );
                append_nulls_auction(
                    &mut a_id,
                    &mut a_item,
                    &mut a_desc,
                    &mut a_initial,
                    &mut a_reserve,
                    &mut a_time,
                    &mut a_expires,
                    &mut a_seller,
                    &mut a_category,
                    &mut a_extra,
                );
                let auction = if rng.below(HOT_AUCTION_RATIO) > 0 {
                    (auction_last_id(id) / HOT_ID_STRIDE) * HOT_ID_STRIDE
                } else {
                    auction_next_id(id, &mut rng)
                };
                let bidder = if rng.below(HOT_BIDDER_RATIO) > 0 {
                    (person_last_id(id) / HOT_ID_STRIDE) * HOT_ID_STRIDE + 1
                } else {
                    person_next_id(id, &mut rng)
                };
                b_auction.append_value((auction + FIRST_AUCTION_ID) as i64);
                b_bidder.append_value((bidder + FIRST_PERSON_ID) as i64);
                b_price.append_value(rng.price());
                let channel = if rng.below(HOT_CHANNEL_RATIO) > 0 {
                    rng.below(HOT_CHANNELS.len() as u64) as usize
                } else {
                    HOT_CHANNELS.len() + rng.below(CHANNELS) as usize
                };
                let (name, url) = &self.channels[channel];
                b_channel.append_value(name);
                b_url.append_value(url);
                b_time.append_value(time);
                append_extra(&mut b_extra, pool, &mut rng, 32, AVG_BID_BYTES);
            }
        }
        let person = StructArray::try_new(
            p.fields,
            vec![
                Arc::new(p_id.finish()) as ArrayRef,
                Arc::new(p_name.finish()),
                Arc::new(p_email.finish()),
                Arc::new(p_card.finish()),
                Arc::new(p_city.finish()),
                Arc::new(p_state.finish()),
                Arc::new(p_time.finish()),
                Arc::new(p_extra.finish()),
            ],
            p.valid.finish(),
        );
        let auction = StructArray::try_new(
            a.fields,
            vec![
                Arc::new(a_id.finish()) as ArrayRef,
                Arc::new(a_item.finish()),
                Arc::new(a_desc.finish()),
                Arc::new(a_initial.finish()),
                Arc::new(a_reserve.finish()),
                Arc::new(a_time.finish()),
                Arc::new(a_expires.finish()),
                Arc::new(a_seller.finish()),
                Arc::new(a_category.finish()),
                Arc::new(a_extra.finish()),
            ],
            a.valid.finish(),
        );
        let bid = StructArray::try_new(
            b.fields,
            vec![
                Arc::new(b_auction.finish()) as ArrayRef,
                Arc::new(b_bidder.finish()),
                Arc::new(b_price.finish()),
                Arc::new(b_channel.finish()),
                Arc::new(b_url.finish()),
                Arc::new(b_time.finish()),
                Arc::new(b_extra.finish()),
            ],
            b.valid.finish(),
        );
        let err = |e| Error::data("building Nexmark events", e);
        let flat = |a: std::result::Result<StructArray, arrow_schema::ArrowError>| {
            let (_, columns, _) = a.map_err(err)?.into_parts();
            RecordBatch::try_new(self.schema.clone(), columns).map_err(err)
        };
        match self.spec.table {
            NexmarkTable::All => {}
            NexmarkTable::Bid => return flat(bid),
            NexmarkTable::Auction => return flat(auction),
            NexmarkTable::Person => return flat(person),
        }
        let (person, auction, bid) = match (person, auction, bid) {
            (Ok(p), Ok(a), Ok(b)) => (p, a, b),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Err(err(e)),
        };
        RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(Int32Array::from(event_type)),
                Arc::new(person),
                Arc::new(auction),
                Arc::new(bid),
                Arc::new(date_time.finish()),
            ],
        )
        .map_err(|e| Error::data("building Nexmark events", e))
    }
}

#[allow(clippy::too_many_arguments)]
fn append_nulls_person(
    id: &mut Int64Builder,
    name: &mut StringBuilder,
    email: &mut StringBuilder,
    card: &mut StringBuilder,
    city: &mut StringBuilder,
    state: &mut StringBuilder,
    time: &mut TimestampMicrosecondBuilder,
    extra: &mut StringBuilder,
) {
    id.append_null();
    name.append_null();
    email.append_null();
    card.append_null();
    city.append_null();
    state.append_null();
    time.append_null();
    extra.append_null();
}

#[allow(clippy::too_many_arguments)]
fn append_nulls_auction(
    id: &mut Int64Builder,
    item: &mut StringBuilder,
    desc: &mut StringBuilder,
    initial: &mut Int64Builder,
    reserve: &mut Int64Builder,
    time: &mut TimestampMicrosecondBuilder,
    expires: &mut TimestampMicrosecondBuilder,
    seller: &mut Int64Builder,
    category: &mut Int64Builder,
    extra: &mut StringBuilder,
) {
    id.append_null();
    item.append_null();
    desc.append_null();
    initial.append_null();
    reserve.append_null();
    time.append_null();
    expires.append_null();
    seller.append_null();
    category.append_null();
    extra.append_null();
}

fn append_nulls_bid(
    auction: &mut Int64Builder,
    bidder: &mut Int64Builder,
    price: &mut Int64Builder,
    channel: &mut StringBuilder,
    url: &mut StringBuilder,
    time: &mut TimestampMicrosecondBuilder,
    extra: &mut StringBuilder,
) {
    auction.append_null();
    bidder.append_null();
    price.append_null();
    channel.append_null();
    url.append_null();
    time.append_null();
    extra.append_null();
}

impl Source for NexmarkSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn description(&self) -> String {
        format!(
            "Nexmark[events={}, eventsPerSecond={}{}]",
            self.spec
                .events
                .map_or("unbounded".to_owned(), |e| e.to_string()),
            self.spec.events_per_second,
            if self.spec.throttle {
                ", throttled"
            } else {
                ""
            }
        )
    }

    fn prepare_for_available_now(&mut self) -> Result<()> {
        self.available_now_end = Some(self.available());
        Ok(())
    }

    fn latest_offset(
        &mut self,
        start: Option<&Offset>,
        limit: ReadLimit,
    ) -> Result<Option<Offset>> {
        let from = offset_u64(start, "event").unwrap_or(0);
        let available = self.available();
        let end = match limit {
            ReadLimit::All => available,
            ReadLimit::Configured => available.min(from + self.spec.max_events_per_trigger),
        }
        .max(from);
        if end == from {
            return Ok(start.cloned());
        }
        Ok(Some(json!({ "event": end })))
    }

    fn get_batch(&mut self, start: Option<&Offset>, end: &Offset) -> Result<Vec<RecordBatch>> {
        let from = offset_u64(start, "event").unwrap_or(0);
        let to = offset_u64(Some(end), "event").ok_or_else(|| Error::Source {
            source_name: self.description(),
            message: format!("offset {end} is not a Nexmark offset"),
        })?;
        if to < from {
            return Err(Error::Source {
                source_name: self.description(),
                message: format!("end offset {to} is before start offset {from}"),
            });
        }
        // Batches of at most 64 Ki rows: big enough to amortise every per-batch cost, small
        // enough for the caches.
        let mut out = Vec::new();
        let mut at = from;
        while at < to {
            let next = (at + 65_536).min(to);
            out.push(self.generate(at, next)?);
            at = next;
        }
        Ok(out)
    }

    fn commit(&mut self, _end: &Offset) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;

    fn spec() -> NexmarkSpec {
        NexmarkSpec {
            table: NexmarkTable::All,
            events: Some(1000),
            events_per_second: 1000,
            throttle: false,
            first_event_time_ms: 0,
            max_events_per_trigger: 1000,
        }
    }

    #[test]
    fn events_come_in_the_standard_proportion_with_event_time_from_their_number() {
        let s = NexmarkSource::new(spec());
        let batch = s.generate(0, 1000).unwrap();
        let types = batch
            .column(0)
            .as_primitive::<arrow_array::types::Int32Type>();
        let count = |t: i32| types.values().iter().filter(|v| **v == t).count();
        assert_eq!((count(0), count(1), count(2)), (20, 60, 920));
        let times = batch
            .column(4)
            .as_primitive::<arrow_array::types::TimestampMicrosecondType>();
        assert_eq!(times.value(0), 0);
        assert_eq!(
            times.value(999),
            999_000,
            "1000 events per second: 1 ms apart"
        );
        // Only the matching struct is set.
        assert!(batch.column(1).is_valid(0) && batch.column(3).is_null(0));
        assert!(batch.column(3).is_valid(10) && batch.column(1).is_null(10));
    }

    #[test]
    fn any_range_is_generated_identically() {
        let s = NexmarkSource::new(spec());
        let whole = s.generate(0, 1000).unwrap();
        let part = s.generate(400, 600).unwrap();
        assert_eq!(whole.slice(400, 200), part);
        assert_eq!(NexmarkSource::new(spec()).generate(0, 1000).unwrap(), whole);
    }

    #[test]
    fn a_bid_table_is_the_bids_of_the_same_events_as_flat_columns() {
        let all = NexmarkSource::new(spec()).generate(0, 1000).unwrap();
        let bids = NexmarkSource::new(NexmarkSpec {
            table: NexmarkTable::Bid,
            ..spec()
        })
        .generate(0, 1000)
        .unwrap();
        assert_eq!(bids.num_rows(), 920);
        assert_eq!(bids.schema().field(0).name(), "auction");
        let mask: arrow_array::BooleanArray = all
            .column(0)
            .as_primitive::<arrow_array::types::Int32Type>()
            .iter()
            .map(|t| Some(t == Some(2)))
            .collect();
        let from_all = arrow_select::filter::filter(all.column(3).as_ref(), &mask).unwrap();
        let from_all = from_all.as_struct();
        for (i, column) in bids.columns().iter().enumerate() {
            assert_eq!(column.as_ref(), from_all.column(i).as_ref(), "column {i}");
        }
    }

    #[test]
    fn bids_favour_hot_auctions_and_sizes_match_the_reference() {
        let s = NexmarkSource::new(spec());
        let batch = s.generate(0, 50_000).unwrap();
        let bid = batch.column(3).as_struct();
        let auctions = bid
            .column(0)
            .as_primitive::<arrow_array::types::Int64Type>();
        let extra = bid.column(6).as_string::<i32>();
        let (mut hot, mut bids, mut extra_bytes) = (0, 0, 0);
        for i in 0..batch.num_rows() {
            if bid.is_valid(i) {
                bids += 1;
                hot += ((auctions.value(i) - FIRST_AUCTION_ID as i64) % 100 == 0) as usize;
                extra_bytes += extra.value(i).len();
            }
        }
        assert!(
            hot * 10 > bids * 4,
            "about half the bids go to hot auctions: {hot}/{bids}"
        );
        let avg = extra_bytes as f64 / bids as f64 + 32.0;
        assert!((90.0..110.0).contains(&avg), "average bid size {avg}");
    }
}
