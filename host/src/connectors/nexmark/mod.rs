//! The Nexmark benchmark's event generator.

pub mod source;

use self::source::{NexmarkSpec, NexmarkTable};
use crate::config::reader::TableReader;

/// `format = "nexmark"` options.
pub(crate) fn parse_source(mut s: TableReader) -> Option<NexmarkSpec> {
    let first_event_time_ms = match s.string("firstEventTime") {
        None => Some(1_436_918_400_000), // 2015-07-15T00:00:00Z, as the reference
        Some(t) => match chrono::DateTime::parse_from_rfc3339(&t) {
            Ok(d) => Some(d.timestamp_millis()),
            Err(e) => {
                s.error_here(
                    "firstEventTime",
                    format!("'{t}' is not an RFC 3339 time like 2015-07-15T00:00:00Z: {e}"),
                );
                None
            }
        },
    };
    let table = match s.string("table").map(|t| t.to_ascii_lowercase()).as_deref() {
        None | Some("all") => NexmarkTable::All,
        Some("bid") => NexmarkTable::Bid,
        Some("auction") => NexmarkTable::Auction,
        Some("person") => NexmarkTable::Person,
        Some(other) => {
            s.error_here(
                    "table",
                    format!("'{other}' is not a Nexmark table; use \"all\", \"bid\", \"auction\" or \"person\""),
                );
            NexmarkTable::All
        }
    };
    let spec = NexmarkSpec {
        table,
        events: s.positive("events"),
        events_per_second: s.positive("eventsPerSecond").unwrap_or(10_000),
        throttle: s.bool("throttle").unwrap_or(false),
        first_event_time_ms: first_event_time_ms.unwrap_or(0),
        max_events_per_trigger: s.positive("maxEventsPerTrigger").unwrap_or(200_000),
    };
    s.finish(&[
        "format",
        "table",
        "events",
        "eventsPerSecond",
        "throttle",
        "firstEventTime",
        "maxEventsPerTrigger",
    ]);
    first_event_time_ms.map(|_| spec)
}
