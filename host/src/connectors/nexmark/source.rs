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

use crate::error::{Error, Result};
use crate::schema::{UTC, timestamp_type};
use crate::source::{Offset, ReadLimit, Source, offset_u64};

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
    // The reference's formula; with one person per epoch the offset is always 0.
    let in_epoch = id % PROPORTION_DENOMINATOR;
    let offset = if in_epoch < PERSON_PROPORTION {
        in_epoch
    } else {
        PERSON_PROPORTION - 1
    };
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
    /// How many of a batch's 64 Ki-event splits are generated at once.
    parallelism: usize,
    started: Instant,
    available_now_end: Option<u64>,
}

impl NexmarkSource {
    /// A generator with `spec`'s options.
    pub fn new(spec: NexmarkSpec, parallelism: usize) -> NexmarkSource {
        let mut rng = Rng(0x006e_6578_6d61_726b);
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
            parallelism: parallelism.max(1),
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
        let all = self.spec.table == NexmarkTable::All;
        // With `table = "all"` every struct has a row per event (null where the kind differs).
        let sized = |kind_rows: usize| if all { rows } else { kind_rows };
        let people = rows / PROPORTION_DENOMINATOR as usize + 1;
        let mut event_type = Vec::with_capacity(if all { rows } else { 0 });
        let mut date_time = TimestampMicrosecondBuilder::with_capacity(if all { rows } else { 0 })
            .with_timezone(UTC);
        let mut person = PersonBuilder::new(sized(people), people);
        let mut auction = AuctionBuilder::new(
            sized(people * AUCTION_PROPORTION as usize),
            people * AUCTION_PROPORTION as usize,
        );
        let mut bid = BidBuilder::new(rows);
        for n in from..to {
            let id = n; // first_event_id = 0: the id is the event number
            let kind = match id % PROPORTION_DENOMINATOR {
                k if k < PERSON_PROPORTION => NexmarkTable::Person,
                k if k < PERSON_PROPORTION + AUCTION_PROPORTION => NexmarkTable::Auction,
                _ => NexmarkTable::Bid,
            };
            if !all && kind != self.spec.table {
                continue;
            }
            let time = self.event_time_us(n);
            let mut rng = Rng(id.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x5851_f42d_4c95_7f2d);
            if all {
                date_time.append_value(time);
                event_type.push(match kind {
                    NexmarkTable::Person => 0,
                    NexmarkTable::Auction => 1,
                    _ => 2,
                });
                if kind != NexmarkTable::Person {
                    person.append_null();
                }
                if kind != NexmarkTable::Auction {
                    auction.append_null();
                }
                if kind != NexmarkTable::Bid {
                    bid.append_null();
                }
            }
            match kind {
                NexmarkTable::Person => person.append(id, time, &mut rng, &self.pool),
                NexmarkTable::Auction => {
                    let horizon = self.event_time_us(n + EVENTS_FOR_AUCTIONS) - time;
                    auction.append(id, time, horizon, &mut rng, &self.pool)
                }
                _ => bid.append(id, time, &mut rng, &self.pool, &self.channels),
            }
        }
        let err = |e| Error::data("building Nexmark events", e);
        let flat = |a: StructArray| {
            let (_, columns, _) = a.into_parts();
            RecordBatch::try_new(self.schema.clone(), columns).map_err(err)
        };
        match self.spec.table {
            NexmarkTable::Bid => flat(bid.finish().map_err(err)?),
            NexmarkTable::Auction => flat(auction.finish().map_err(err)?),
            NexmarkTable::Person => flat(person.finish().map_err(err)?),
            NexmarkTable::All => RecordBatch::try_new(
                self.schema.clone(),
                vec![
                    Arc::new(Int32Array::from(event_type)),
                    Arc::new(person.finish().map_err(err)?),
                    Arc::new(auction.finish().map_err(err)?),
                    Arc::new(bid.finish().map_err(err)?),
                    Arc::new(date_time.finish()),
                ],
            )
            .map_err(err),
        }
    }
}

/// Events between an auction's start and the time its expiry is drawn around.
const EVENTS_FOR_AUCTIONS: u64 = IN_FLIGHT_AUCTIONS * PROPORTION_DENOMINATOR / AUCTION_PROPORTION;

fn timestamps(capacity: usize) -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone(UTC)
}

/// The `person` columns being built.
struct PersonBuilder {
    valid: NullBufferBuilder,
    id: Int64Builder,
    name: StringBuilder,
    email: StringBuilder,
    card: StringBuilder,
    city: StringBuilder,
    state: StringBuilder,
    time: TimestampMicrosecondBuilder,
    extra: StringBuilder,
}

impl PersonBuilder {
    /// Room for `rows` rows, `people` of them set.
    fn new(rows: usize, people: usize) -> Self {
        PersonBuilder {
            valid: NullBufferBuilder::new(rows),
            id: Int64Builder::with_capacity(rows),
            name: StringBuilder::with_capacity(rows, people * 16),
            email: StringBuilder::with_capacity(rows, people * 20),
            card: StringBuilder::with_capacity(rows, people * 19),
            city: StringBuilder::with_capacity(rows, people * 10),
            state: StringBuilder::with_capacity(rows, people * 2),
            time: timestamps(rows),
            extra: StringBuilder::with_capacity(rows, people * 140),
        }
    }

    fn append(&mut self, id: u64, time: i64, rng: &mut Rng, pool: &str) {
        self.valid.append_non_null();
        self.id
            .append_value((person_last_id(id) + FIRST_PERSON_ID) as i64);
        let first = FIRST_NAMES[rng.below(FIRST_NAMES.len() as u64) as usize];
        let last = LAST_NAMES[rng.below(LAST_NAMES.len() as u64) as usize];
        let _ = write!(self.name, "{first} {last}");
        self.name.append_value("");
        append_letters(&mut self.email, pool, rng, 7);
        let _ = self.email.write_char('@');
        append_letters(&mut self.email, pool, rng, 5);
        self.email.append_value(".com");
        let _ = write!(
            self.card,
            "{:04} {:04} {:04} {:04}",
            rng.below(10_000),
            rng.below(10_000),
            rng.below(10_000),
            rng.below(10_000)
        );
        self.card.append_value("");
        let city = US_CITIES[rng.below(US_CITIES.len() as u64) as usize];
        let state = US_STATES[rng.below(US_STATES.len() as u64) as usize];
        self.city.append_value(city);
        self.state.append_value(state);
        self.time.append_value(time);
        let size = 8 + first.len() + last.len() + 1 + 17 + 19 + city.len() + 2;
        append_extra(&mut self.extra, pool, rng, size, AVG_PERSON_BYTES);
    }

    fn append_null(&mut self) {
        self.valid.append_null();
        self.id.append_null();
        self.name.append_null();
        self.email.append_null();
        self.card.append_null();
        self.city.append_null();
        self.state.append_null();
        self.time.append_null();
        self.extra.append_null();
    }

    fn finish(mut self) -> std::result::Result<StructArray, arrow_schema::ArrowError> {
        StructArray::try_new(
            person_fields(),
            vec![
                Arc::new(self.id.finish()) as ArrayRef,
                Arc::new(self.name.finish()),
                Arc::new(self.email.finish()),
                Arc::new(self.card.finish()),
                Arc::new(self.city.finish()),
                Arc::new(self.state.finish()),
                Arc::new(self.time.finish()),
                Arc::new(self.extra.finish()),
            ],
            self.valid.finish(),
        )
    }
}

/// The `auction` columns being built.
struct AuctionBuilder {
    valid: NullBufferBuilder,
    id: Int64Builder,
    item: StringBuilder,
    description: StringBuilder,
    initial_bid: Int64Builder,
    reserve: Int64Builder,
    time: TimestampMicrosecondBuilder,
    expires: TimestampMicrosecondBuilder,
    seller: Int64Builder,
    category: Int64Builder,
    extra: StringBuilder,
}

impl AuctionBuilder {
    /// Room for `rows` rows, `auctions` of them set.
    fn new(rows: usize, auctions: usize) -> Self {
        AuctionBuilder {
            valid: NullBufferBuilder::new(rows),
            id: Int64Builder::with_capacity(rows),
            item: StringBuilder::with_capacity(rows, auctions * 20),
            description: StringBuilder::with_capacity(rows, auctions * 100),
            initial_bid: Int64Builder::with_capacity(rows),
            reserve: Int64Builder::with_capacity(rows),
            time: timestamps(rows),
            expires: timestamps(rows),
            seller: Int64Builder::with_capacity(rows),
            category: Int64Builder::with_capacity(rows),
            extra: StringBuilder::with_capacity(rows, auctions * 340),
        }
    }

    /// `horizon`: µs from this auction to the one `EVENTS_FOR_AUCTIONS` events later.
    fn append(&mut self, id: u64, time: i64, horizon: i64, rng: &mut Rng, pool: &str) {
        self.valid.append_non_null();
        self.id
            .append_value((auction_last_id(id) + FIRST_AUCTION_ID) as i64);
        append_letters(&mut self.item, pool, rng, 20);
        self.item.append_value("");
        append_letters(&mut self.description, pool, rng, 100);
        self.description.append_value("");
        let initial = rng.price();
        self.initial_bid.append_value(initial);
        self.reserve.append_value(initial + rng.price());
        self.time.append_value(time);
        self.expires
            .append_value(time + 1 + rng.below(horizon.max(1) as u64 * 2) as i64);
        let seller = if rng.below(HOT_SELLER_RATIO) > 0 {
            (person_last_id(id) / HOT_ID_STRIDE) * HOT_ID_STRIDE
        } else {
            person_next_id(id, rng)
        };
        self.seller.append_value((seller + FIRST_PERSON_ID) as i64);
        self.category
            .append_value((FIRST_CATEGORY_ID + rng.below(NUM_CATEGORIES)) as i64);
        append_extra(
            &mut self.extra,
            pool,
            rng,
            8 + 20 + 100 + 40,
            AVG_AUCTION_BYTES,
        );
    }

    fn append_null(&mut self) {
        self.valid.append_null();
        self.id.append_null();
        self.item.append_null();
        self.description.append_null();
        self.initial_bid.append_null();
        self.reserve.append_null();
        self.time.append_null();
        self.expires.append_null();
        self.seller.append_null();
        self.category.append_null();
        self.extra.append_null();
    }

    fn finish(mut self) -> std::result::Result<StructArray, arrow_schema::ArrowError> {
        StructArray::try_new(
            auction_fields(),
            vec![
                Arc::new(self.id.finish()) as ArrayRef,
                Arc::new(self.item.finish()),
                Arc::new(self.description.finish()),
                Arc::new(self.initial_bid.finish()),
                Arc::new(self.reserve.finish()),
                Arc::new(self.time.finish()),
                Arc::new(self.expires.finish()),
                Arc::new(self.seller.finish()),
                Arc::new(self.category.finish()),
                Arc::new(self.extra.finish()),
            ],
            self.valid.finish(),
        )
    }
}

/// The `bid` columns being built.
struct BidBuilder {
    valid: NullBufferBuilder,
    auction: Int64Builder,
    bidder: Int64Builder,
    price: Int64Builder,
    channel: StringBuilder,
    url: StringBuilder,
    time: TimestampMicrosecondBuilder,
    extra: StringBuilder,
}

impl BidBuilder {
    fn new(rows: usize) -> Self {
        BidBuilder {
            valid: NullBufferBuilder::new(rows),
            auction: Int64Builder::with_capacity(rows),
            bidder: Int64Builder::with_capacity(rows),
            price: Int64Builder::with_capacity(rows),
            channel: StringBuilder::with_capacity(rows, rows * 10),
            url: StringBuilder::with_capacity(rows, rows * 50),
            time: timestamps(rows),
            extra: StringBuilder::with_capacity(rows, rows * 70),
        }
    }

    fn append(
        &mut self,
        id: u64,
        time: i64,
        rng: &mut Rng,
        pool: &str,
        channels: &[(String, String)],
    ) {
        self.valid.append_non_null();
        let auction = if rng.below(HOT_AUCTION_RATIO) > 0 {
            (auction_last_id(id) / HOT_ID_STRIDE) * HOT_ID_STRIDE
        } else {
            auction_next_id(id, rng)
        };
        let bidder = if rng.below(HOT_BIDDER_RATIO) > 0 {
            (person_last_id(id) / HOT_ID_STRIDE) * HOT_ID_STRIDE + 1
        } else {
            person_next_id(id, rng)
        };
        self.auction
            .append_value((auction + FIRST_AUCTION_ID) as i64);
        self.bidder.append_value((bidder + FIRST_PERSON_ID) as i64);
        self.price.append_value(rng.price());
        let channel = if rng.below(HOT_CHANNEL_RATIO) > 0 {
            rng.below(HOT_CHANNELS.len() as u64) as usize
        } else {
            HOT_CHANNELS.len() + rng.below(CHANNELS) as usize
        };
        let (name, url) = &channels[channel];
        self.channel.append_value(name);
        self.url.append_value(url);
        self.time.append_value(time);
        append_extra(&mut self.extra, pool, rng, 32, AVG_BID_BYTES);
    }

    fn append_null(&mut self) {
        self.valid.append_null();
        self.auction.append_null();
        self.bidder.append_null();
        self.price.append_null();
        self.channel.append_null();
        self.url.append_null();
        self.time.append_null();
        self.extra.append_null();
    }

    fn finish(mut self) -> std::result::Result<StructArray, arrow_schema::ArrowError> {
        StructArray::try_new(
            bid_fields(),
            vec![
                Arc::new(self.auction.finish()) as ArrayRef,
                Arc::new(self.bidder.finish()),
                Arc::new(self.price.finish()),
                Arc::new(self.channel.finish()),
                Arc::new(self.url.finish()),
                Arc::new(self.time.finish()),
                Arc::new(self.extra.finish()),
            ],
            self.valid.finish(),
        )
    }
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
        // enough for the caches; as many as a multiple of the workers, of near-equal size, so
        // each worker gets the same share. Event i is a function of i alone, so the batches
        // are generated at once on the worker pool, in order.
        let workers = self.parallelism.max(1) as u64;
        let count = (to - from).div_ceil(65_536).div_ceil(workers) * workers;
        let size = (to - from).div_ceil(count.max(1)).max(1);
        let mut ranges = Vec::new();
        let mut at = from;
        while at < to {
            let next = (at + size).min(to);
            ranges.push((at, next));
            at = next;
        }
        crate::parallel::try_map(ranges, self.parallelism, |(a, b)| self.generate(a, b))
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
        let s = NexmarkSource::new(spec(), 2);
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
        let s = NexmarkSource::new(spec(), 2);
        let whole = s.generate(0, 1000).unwrap();
        let part = s.generate(400, 600).unwrap();
        assert_eq!(whole.slice(400, 200), part);
        assert_eq!(
            NexmarkSource::new(spec(), 2).generate(0, 1000).unwrap(),
            whole
        );
    }

    #[test]
    fn a_bid_table_is_the_bids_of_the_same_events_as_flat_columns() {
        let all = NexmarkSource::new(spec(), 2).generate(0, 1000).unwrap();
        let bids = NexmarkSource::new(
            NexmarkSpec {
                table: NexmarkTable::Bid,
                ..spec()
            },
            2,
        )
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
        let s = NexmarkSource::new(spec(), 2);
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
