//! Lines from a TCP socket (for demos; not replayable).

pub mod source;

use crate::config::reader::TableReader;

/// Options of the `socket` source.
#[derive(Debug, Clone)]
pub struct SocketSpec {
    /// Host to connect to.
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    /// Add a `timestamp` column with the time each line arrived.
    pub include_timestamp: bool,
}

/// `format = "socket"` options.
pub(crate) fn parse_source(mut s: TableReader) -> Option<SocketSpec> {
    let host = s.required_string("host", "e.g. host = \"localhost\"");
    let port = match s.get("port") {
        None => {
            s.error_here(
                "port",
                "missing required option; e.g. port = 9999".to_owned(),
            );
            None
        }
        Some(node) => match s.u64("port").map(u16::try_from) {
            Some(Ok(p)) if p > 0 => Some(p),
            Some(_) => {
                s.error_at(
                    node.span().start,
                    "port",
                    "must be between 1 and 65535".to_owned(),
                );
                None
            }
            None => None,
        },
    };
    let include_timestamp = s.bool("includeTimestamp").unwrap_or(false);
    s.finish(&["format", "host", "port", "includeTimestamp"]);
    Some(SocketSpec {
        host: host?,
        port: port?,
        include_timestamp,
    })
}
