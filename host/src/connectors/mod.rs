//! Connectors: one folder per external system, holding its options (parsed and checked
//! where the pipeline file is read), its source and its sink — as Arroyo's
//! `arroyo-connectors/src/<name>/`. [`CONNECTORS`] is the one list of them: the format names
//! each serves as a source, a sink and a join table. The pipeline's parsers find a format's
//! connector there (and make their "use …" advice from it), so adding a connector touches its
//! folder, its line in the list, and the arms that call its parser (`pipeline::sources`,
//! `pipeline::sinks`) and open it (`query::connect`) — a test checks every listed format reaches
//! its connector.
//!
//! | connector | source | sink |
//! |---|---|---|
//! | [`file`] (json, csv, parquet, text) | [`file::source`] | [`file::sink`] |
//! | [`kafka`] | [`kafka::source`] | [`kafka::sink`] |
//! | [`rate`] (rate, rate-micro-batch) | [`rate::source`] | — |
//! | [`socket`] | [`socket::source`] | — |
//! | [`nexmark`] | [`nexmark::source`] | — |
//! | [`console`] | — | [`console::sink`] |
//! | [`memory`] | — | [`memory::sink`] |
//! | [`postgres`] | — (a join table: [`postgres::table`]) | [`postgres::sink`] |
//! | [`cassandra`] (and ScyllaDB) | — (a join table: [`cassandra::table`]) | [`cassandra::sink`] |
//! | [`elasticsearch`] (and OpenSearch) | — | [`elasticsearch::sink`] |

pub mod cassandra;
pub mod console;
pub mod elasticsearch;
pub mod file;
pub mod kafka;
pub mod memory;
pub mod nexmark;
pub mod postgres;
pub mod rate;
pub mod socket;

/// One connector: the `format` names (matched without regard to case) it serves as a source, a
/// sink and a join table, the first of each being the one the docs use.
#[derive(Debug)]
pub struct Connector {
    /// Its folder under `connectors/`.
    pub name: &'static str,
    /// Formats it reads a stream from.
    pub sources: &'static [&'static str],
    /// Formats it writes to.
    pub sinks: &'static [&'static str],
    /// Formats a join reads a static table from.
    pub tables: &'static [&'static str],
    /// Other spellings of its formats, each with the format it means.
    pub aliases: &'static [(&'static str, &'static str)],
}

/// Every connector, in the order advice lists them.
pub const CONNECTORS: &[Connector] = &[
    Connector {
        name: "file",
        sources: &["json", "csv", "parquet", "text"],
        sinks: &["json", "csv", "parquet"],
        tables: &["json", "csv", "parquet", "text"],
        aliases: &[],
    },
    Connector {
        name: "kafka",
        sources: &["kafka"],
        sinks: &["kafka"],
        tables: &[],
        aliases: &[],
    },
    Connector {
        name: "rate",
        sources: &["rate", "rate-micro-batch"],
        sinks: &[],
        tables: &[],
        aliases: &[],
    },
    Connector {
        name: "socket",
        sources: &["socket"],
        sinks: &[],
        tables: &[],
        aliases: &[],
    },
    Connector {
        name: "nexmark",
        sources: &["nexmark"],
        sinks: &[],
        tables: &[],
        aliases: &[],
    },
    Connector {
        name: "console",
        sources: &[],
        sinks: &["console"],
        tables: &[],
        aliases: &[],
    },
    Connector {
        name: "memory",
        sources: &[],
        sinks: &["memory"],
        tables: &[],
        aliases: &[],
    },
    Connector {
        name: "postgres",
        sources: &[],
        sinks: &["postgres"],
        tables: &["postgres"],
        aliases: &[("postgresql", "postgres")],
    },
    Connector {
        name: "cassandra",
        sources: &[],
        sinks: &["cassandra"],
        tables: &["cassandra"],
        aliases: &[("scylladb", "cassandra")],
    },
    Connector {
        name: "elasticsearch",
        sources: &[],
        sinks: &["elasticsearch", "opensearch"],
        tables: &[],
        aliases: &[],
    },
];

/// What a format is used as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A stream's source.
    Source,
    /// A sink or a named output.
    Sink,
    /// A join's static table.
    Table,
}

impl Connector {
    /// Its formats for `role`.
    pub fn formats(&self, role: Role) -> &'static [&'static str] {
        match role {
            Role::Source => self.sources,
            Role::Sink => self.sinks,
            Role::Table => self.tables,
        }
    }
}

/// The connector serving `format` (or an alias of one) as `role`, and the format as the list
/// spells it.
pub fn find(format: &str, role: Role) -> Option<(&'static Connector, &'static str)> {
    CONNECTORS.iter().find_map(|c| {
        let canonical = c
            .aliases
            .iter()
            .find(|(alias, _)| alias.eq_ignore_ascii_case(format))
            .map_or(format, |(_, f)| *f);
        c.formats(role)
            .iter()
            .find(|f| f.eq_ignore_ascii_case(canonical))
            .map(|f| (c, *f))
    })
}

/// Every format for `role`, in the list's order, each once (for advice: "use json, csv, …").
pub fn formats(role: Role) -> Vec<&'static str> {
    let mut formats: Vec<&'static str> = Vec::new();
    for f in CONNECTORS.iter().flat_map(|c| c.formats(role)) {
        if !formats.contains(f) {
            formats.push(f);
        }
    }
    formats
}

/// `a, b, c or d`, for advice.
pub fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}
