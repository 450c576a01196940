//! A TOML document as a tree whose every key and value remembers where it was written.
//!
//! `toml` gives byte spans through [`toml::Spanned`], but only for fields that serde
//! deserialises directly; Sluice's option tables depend on a `format` key, which rules out
//! derive-based parsing with good locations. So we read the document into this small tree once
//! and walk it by hand ([`TableReader`]), which lets every diagnostic name the query, the key
//! path and the line, and lets us report *all* problems in one pass.

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

use super::GuestWorld;
use super::diagnostics::Diagnostic;

/// One TOML value with spans on every nested key and value.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Array(Vec<Spanned<Node>>),
    Table(Vec<(Spanned<String>, Spanned<Node>)>),
}

impl Node {
    /// The noun used in "expected X, found Y" messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Node::Str(_) => "a string",
            Node::Int(_) => "an integer",
            Node::Float(_) => "a float",
            Node::Bool(_) => "a boolean",
            Node::Array(_) => "an array",
            Node::Table(_) => "a table",
        }
    }
}

impl Node {
    /// The value as JSON (how a step's `config` table reaches its guest).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Node::Str(s) => s.clone().into(),
            Node::Int(i) => (*i).into(),
            Node::Float(f) => {
                serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into)
            }
            Node::Bool(b) => (*b).into(),
            Node::Array(items) => items.iter().map(|i| i.get_ref().to_json()).collect(),
            Node::Table(entries) => entries
                .iter()
                .map(|(k, v)| (k.get_ref().clone(), v.get_ref().to_json()))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a TOML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Node, E> {
        i64::try_from(v)
            .map(Node::Int)
            .map_err(|_| E::custom("integer too large"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<Spanned<Node>>()?;
            entries.push((key, value));
        }
        Ok(Node::Table(entries))
    }
}

/// Where the value at a dotted key path (`aggregate.aggs[1].column`) was written inside
/// `node`: the deepest part of the path that exists, so a problem with a missing key points at
/// the table that should hold it.
pub(crate) fn offset_of(node: &Spanned<Node>, path: &str) -> usize {
    let mut at = node;
    for part in path.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let Node::Table(entries) = at.get_ref() else {
            break;
        };
        let Some((_, value)) = entries
            .iter()
            .find(|(k, _)| k.get_ref().eq_ignore_ascii_case(key))
        else {
            break;
        };
        at = value;
        if let (Some(i), Node::Array(items)) = (index, at.get_ref()) {
            match items.get(i) {
                Some(item) => at = item,
                None => break,
            }
        }
    }
    at.span().start
}

/// Turns a registry reference (`name@^1.2`, `sha256:<hex>`) into the component file it names;
/// the module registry implements it, a floor above the pipeline's words.
pub trait ModuleResolver {
    /// The blob's path, or why the reference matches nothing (with what there is).
    fn resolve_module(&self, reference: &str) -> Result<PathBuf, String>;
}

/// A relative path in a pipeline, anchored at `base` (the pipeline file's folder); an
/// object-store URL (`s3://bucket/prefix`) is kept as written.
pub fn resolve(base: &Path, p: &str) -> PathBuf {
    if crate::storage::is_url(p) {
        return PathBuf::from(p);
    }
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// A component a pipeline names, with where it is named. The parser only resolves the path;
/// loading the component is the caller's (`Pipeline::check_modules`), as Wasm sits on a
/// higher floor than the words of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRef {
    /// 1-based line of the `module = ...` value.
    pub line: usize,
    /// The query whose step names it.
    pub query: Option<String>,
    /// Dotted key path, e.g. `transform[0].module`.
    pub key: String,
    /// The component file (a registry reference is already resolved to its blob).
    pub path: PathBuf,
    /// The world the step needs.
    pub world: GuestWorld,
}

/// Shared state while walking one pipeline file: the text (for line numbers) and the
/// diagnostics found so far.
pub(crate) struct Ctx<'t> {
    text: &'t str,
    diags: RefCell<Vec<Diagnostic>>,
    modules: RefCell<Vec<ModuleRef>>,
    /// Where `module = "name@version"` references are looked up.
    pub(crate) registry: Option<&'t dyn ModuleResolver>,
}

impl<'t> Ctx<'t> {
    pub(crate) fn new(text: &'t str, registry: Option<&'t dyn ModuleResolver>) -> Self {
        Ctx {
            text,
            diags: RefCell::new(Vec::new()),
            modules: RefCell::new(Vec::new()),
            registry,
        }
    }

    /// The pipeline's text.
    pub(crate) fn text(&self) -> &'t str {
        self.text
    }

    /// 1-based line of a byte offset.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    pub(crate) fn report(&self, offset: usize, query: Option<&str>, key: &str, message: String) {
        self.diags.borrow_mut().push(Diagnostic {
            line: self.line_of(offset),
            query: query.map(str::to_owned),
            key: key.to_owned(),
            message,
        });
    }

    /// The components named so far.
    pub(crate) fn take_modules(&self) -> Vec<ModuleRef> {
        std::mem::take(&mut self.modules.borrow_mut())
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.diags.borrow().is_empty()
    }

    pub(crate) fn into_diagnostics(self) -> Vec<Diagnostic> {
        let mut d = self.diags.into_inner();
        d.sort_by_key(|d| d.line);
        d
    }
}

/// Walks one TOML table, handing out typed options and remembering which keys were used, so
/// that [`TableReader::finish`] can report the unknown ones.
///
/// Keys match case-insensitively, as Spark's options do (`maxfilespertrigger` works).
pub(crate) struct TableReader<'a, 't> {
    ctx: &'a Ctx<'t>,
    query: Option<&'a str>,
    prefix: String,
    table_offset: usize,
    entries: Vec<(&'a Spanned<String>, &'a Spanned<Node>, bool)>,
}

impl<'a, 't> TableReader<'a, 't> {
    /// Starts reading `node`, which must be a table; `prefix` is its key path ("" at the top).
    pub(crate) fn new(
        ctx: &'a Ctx<'t>,
        query: Option<&'a str>,
        prefix: &str,
        node: &'a Spanned<Node>,
    ) -> Option<Self> {
        match node.get_ref() {
            Node::Table(entries) => Some(TableReader {
                ctx,
                query,
                prefix: prefix.to_owned(),
                table_offset: node.span().start,
                entries: entries.iter().map(|(k, v)| (k, v, false)).collect(),
            }),
            other => {
                ctx.report(
                    node.span().start,
                    query,
                    prefix,
                    format!("expected a table, found {}", other.kind()),
                );
                None
            }
        }
    }

    /// Full key path of a key in this table.
    pub(crate) fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    /// Reports a problem at a value of this table.
    pub(crate) fn error_at(&self, offset: usize, key: &str, message: String) {
        self.ctx
            .report(offset, self.query, &self.path(key), message);
    }

    /// Reports a problem about the table as a whole (e.g. a missing key).
    pub(crate) fn error_here(&self, key: &str, message: String) {
        self.error_at(self.table_offset, key, message);
    }

    /// Records the component `key`'s value names, for [`Ctx::take_modules`].
    pub(crate) fn module_named(
        &self,
        offset: usize,
        key: &str,
        path: std::path::PathBuf,
        world: GuestWorld,
    ) {
        self.ctx.modules.borrow_mut().push(ModuleRef {
            line: self.ctx.line_of(offset),
            query: self.query.map(str::to_owned),
            key: self.path(key),
            path,
            world,
        });
    }

    /// The registry module references resolve against, if any.
    pub(crate) fn registry(&self) -> Option<&'t dyn ModuleResolver> {
        self.ctx.registry
    }

    /// The raw value of `key`, marking it used.
    pub(crate) fn get(&mut self, key: &str) -> Option<&'a Spanned<Node>> {
        let entry = self
            .entries
            .iter_mut()
            .find(|(k, _, _)| k.get_ref().eq_ignore_ascii_case(key))?;
        entry.2 = true;
        Some(entry.1)
    }

    fn typed<T>(
        &mut self,
        key: &str,
        expected: &str,
        f: impl FnOnce(&Node) -> Option<T>,
    ) -> Option<T> {
        let node = self.get(key)?;
        match f(node.get_ref()) {
            Some(v) => Some(v),
            None => {
                self.error_at(
                    node.span().start,
                    key,
                    format!("expected {expected}, found {}", node.get_ref().kind()),
                );
                None
            }
        }
    }

    /// An optional string option.
    pub(crate) fn string(&mut self, key: &str) -> Option<String> {
        self.typed(key, "a string", |n| match n {
            Node::Str(s) => Some(s.clone()),
            _ => None,
        })
    }

    /// A secret: `{ env = "NAME" }` or `{ file = "path" }` (relative to `base`). A plain
    /// string is refused: a pipeline file is echoed, stored and listed, so it must not hold
    /// the value.
    pub(crate) fn secret(
        &mut self,
        key: &str,
        base: &std::path::Path,
    ) -> Option<crate::secret::SecretSource> {
        use crate::secret::SecretSource;
        let node = self.get(key)?;
        let hint = crate::secret::HOW_TO_WRITE;
        match node.get_ref() {
            Node::Table(entries) if entries.len() == 1 => {
                let (k, v) = &entries[0];
                match (k.get_ref().to_ascii_lowercase().as_str(), v.get_ref()) {
                    ("env", Node::Str(name)) if !name.is_empty() => {
                        Some(SecretSource::Env(name.clone()))
                    }
                    ("file", Node::Str(path)) if !path.is_empty() => {
                        Some(SecretSource::File(base.join(path)))
                    }
                    _ => {
                        self.error_at(node.span().start, key, hint.to_owned());
                        None
                    }
                }
            }
            Node::Str(_) => {
                self.error_at(
                    node.span().start,
                    key,
                    format!("a secret written into the pipeline is refused; {hint}"),
                );
                None
            }
            _ => {
                self.error_at(node.span().start, key, hint.to_owned());
                None
            }
        }
    }

    /// A guest's `config` table (any TOML; empty when absent). A value written as
    /// `{ env = "NAME" }` or `{ file = "path" }` (relative to `base`) is a secret read at
    /// start; a plain string under a key that names a credential (`password`, `apiKey`, ...)
    /// is refused at its line.
    pub(crate) fn guest_config(
        &mut self,
        key: &str,
        base: &std::path::Path,
    ) -> crate::secret::GuestConfig {
        let Some(node) = self.get(key) else {
            return crate::secret::GuestConfig::default();
        };
        let mut secrets = Vec::new();
        let value = self.config_value(node, &self.path(key), "", base, &mut secrets);
        crate::secret::GuestConfig::with_secrets(value, secrets)
    }

    fn config_value(
        &self,
        node: &Spanned<Node>,
        field: &str,
        pointer: &str,
        base: &std::path::Path,
        secrets: &mut Vec<(String, crate::secret::SecretSource)>,
    ) -> serde_json::Value {
        use crate::secret::SecretSource;
        match node.get_ref() {
            Node::Table(entries) => {
                if let [(k, v)] = entries.as_slice()
                    && let Node::Str(text) = v.get_ref()
                {
                    let source = match k.get_ref().to_ascii_lowercase().as_str() {
                        "env" => Some(SecretSource::Env(text.clone())),
                        "file" => Some(SecretSource::File(base.join(text))),
                        _ => None,
                    };
                    if let Some(source) = source {
                        secrets.push((pointer.to_owned(), source));
                        return node.get_ref().to_json();
                    }
                }
                entries
                    .iter()
                    .map(|(k, v)| {
                        let name = k.get_ref();
                        if let Node::Str(text) = v.get_ref()
                            && !text.is_empty()
                            && crate::secret::looks_like_secret(name)
                        {
                            self.ctx.report(
                                v.span().start,
                                self.query,
                                &format!("{field}.{name}"),
                                format!(
                                    "a secret written into the pipeline is refused; {}",
                                    crate::secret::HOW_TO_WRITE
                                ),
                            );
                        }
                        let escaped = name.replace('~', "~0").replace('/', "~1");
                        let value = self.config_value(
                            v,
                            &format!("{field}.{name}"),
                            &format!("{pointer}/{escaped}"),
                            base,
                            secrets,
                        );
                        (name.clone(), value)
                    })
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            }
            Node::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    self.config_value(
                        v,
                        &format!("{field}[{i}]"),
                        &format!("{pointer}/{i}"),
                        base,
                        secrets,
                    )
                })
                .collect(),
            other => other.to_json(),
        }
    }

    /// A string option that must be present.
    pub(crate) fn required_string(&mut self, key: &str, hint: &str) -> Option<String> {
        if self.get(key).is_none() {
            self.error_here(key, format!("missing required option; {hint}"));
            return None;
        }
        self.string(key)
    }

    /// An optional boolean; Spark users also write "true"/"false" strings, which we accept.
    pub(crate) fn bool(&mut self, key: &str) -> Option<bool> {
        self.typed(key, "a boolean", |n| match n {
            Node::Bool(b) => Some(*b),
            Node::Str(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Node::Str(s) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        })
    }

    /// An optional non-negative integer (strings of digits accepted, as Spark options are strings).
    pub(crate) fn u64(&mut self, key: &str) -> Option<u64> {
        self.typed(key, "a non-negative integer", |n| match n {
            Node::Int(i) if *i >= 0 => Some(*i as u64),
            Node::Str(s) => s.trim().parse().ok(),
            _ => None,
        })
    }

    /// An optional positive integer.
    pub(crate) fn positive(&mut self, key: &str) -> Option<u64> {
        let node = self.get(key)?;
        match self.u64(key) {
            Some(0) => {
                self.error_at(node.span().start, key, "must be greater than 0".to_owned());
                None
            }
            v => v,
        }
    }

    /// An optional integer (negative allowed).
    pub(crate) fn i64(&mut self, key: &str) -> Option<i64> {
        self.typed(key, "an integer", |n| match n {
            Node::Int(i) => Some(*i),
            Node::Str(s) => s.trim().parse().ok(),
            _ => None,
        })
    }

    /// An optional duration: `"10 seconds"`, `"500ms"`, `"5 minutes"`, or an integer of
    /// milliseconds, as Spark accepts for intervals.
    pub(crate) fn duration(&mut self, key: &str) -> Option<Duration> {
        let node = self.get(key)?;
        let parsed = match node.get_ref() {
            Node::Int(ms) if *ms >= 0 => Ok(Duration::from_millis(*ms as u64)),
            Node::Str(s) => parse_duration(s),
            other => Err(format!(
                "expected a duration like \"10 seconds\", found {}",
                other.kind()
            )),
        };
        match parsed {
            Ok(d) => Some(d),
            Err(msg) => {
                self.error_at(node.span().start, key, msg);
                None
            }
        }
    }

    /// An optional size in bytes: `"256 MiB"`, `"1 GiB"`, `"512KB"` or an integer of bytes.
    pub(crate) fn bytes(&mut self, key: &str) -> Option<u64> {
        let node = self.get(key)?;
        let parsed = match node.get_ref() {
            Node::Int(b) if *b > 0 => Ok(*b as u64),
            Node::Str(s) => parse_bytes(s),
            other => Err(format!(
                "expected a size like \"256 MiB\", found {}",
                other.kind()
            )),
        };
        match parsed {
            Ok(b) => Some(b),
            Err(msg) => {
                self.error_at(node.span().start, key, msg);
                None
            }
        }
    }

    /// An optional list of strings (a single string is taken as a one-element list).
    pub(crate) fn string_list(&mut self, key: &str) -> Option<Vec<String>> {
        self.typed(key, "an array of strings", |n| match n {
            Node::Str(s) => Some(vec![s.clone()]),
            Node::Array(items) => items
                .iter()
                .map(|i| match i.get_ref() {
                    Node::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            _ => None,
        })
    }

    /// Every entry whose key starts with `prefix` (case-insensitively), marking them used;
    /// nested tables are flattened into dotted keys (`kafka.bootstrap.servers = ..` written
    /// unquoted is a nested table in TOML).
    pub(crate) fn with_prefix(&mut self, prefix: &str) -> Vec<(String, &'a Spanned<Node>)> {
        fn flatten<'n>(
            key: String,
            node: &'n Spanned<Node>,
            out: &mut Vec<(String, &'n Spanned<Node>)>,
        ) {
            match node.get_ref() {
                Node::Table(entries) => {
                    for (k, v) in entries {
                        flatten(format!("{key}.{}", k.get_ref()), v, out);
                    }
                }
                _ => out.push((key, node)),
            }
        }
        let mut out = Vec::new();
        for (key, value, used) in &mut self.entries {
            let k = key.get_ref();
            if k.to_ascii_lowercase()
                .starts_with(&prefix.to_ascii_lowercase())
            {
                *used = true;
                flatten(k.clone(), value, &mut out);
            }
        }
        out
    }

    /// Reports every key that no getter asked for, suggesting the closest known one.
    pub(crate) fn finish(self, known: &[&str]) {
        for (key, _, used) in &self.entries {
            if *used {
                continue;
            }
            let k = key.get_ref();
            let suggestion = closest(k, known.iter().copied())
                .map(|c| format!("; did you mean '{c}'?"))
                .unwrap_or_else(|| {
                    if known.is_empty() {
                        String::new()
                    } else {
                        format!("; known keys here: {}", known.join(", "))
                    }
                });
            self.error_at(key.span().start, k, format!("unknown key{suggestion}"));
        }
    }
}

/// The one of `known` closest to `name` (ignoring case), if any is close enough to be what
/// was meant: what "did you mean" suggestions name.
pub fn closest<'k>(name: &str, known: impl Iterator<Item = &'k str>) -> Option<&'k str> {
    let name = name.to_ascii_lowercase();
    known
        .map(|k| (strsim::jaro_winkler(&name, &k.to_ascii_lowercase()), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// Parses a Spark-style interval: a number and a unit (`ms`, `s`, `min`, `h`, `d` and their
/// long forms), e.g. `"10 seconds"`, `"1 minute"`, `"250ms"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let t = t.strip_prefix("interval ").unwrap_or(t).trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| {
        format!("'{text}' is not a duration; write a number and a unit, like \"10 seconds\"")
    })?;
    let unit_ms = match unit.trim().to_ascii_lowercase().as_str() {
        "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1.0,
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1_000.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000.0,
        "h" | "hour" | "hours" => 3_600_000.0,
        "d" | "day" | "days" => 86_400_000.0,
        other => {
            return Err(format!(
                "unknown time unit '{other}' in '{text}'; use ms, seconds, minutes, hours or days"
            ));
        }
    };
    Ok(Duration::from_micros(
        (value * unit_ms * 1000.0).round() as u64
    ))
}

/// Parses a size: a number and a unit (B, KB, KiB, MB, MiB, GB, GiB).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| {
        format!("'{text}' is not a size; write a number and a unit, like \"256 MiB\"")
    })?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 1.0,
        "kb" => 1e3,
        "kib" | "k" => 1024.0,
        "mb" => 1e6,
        "mib" | "m" => 1024.0 * 1024.0,
        "gb" => 1e9,
        "gib" | "g" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown size unit '{other}' in '{text}'; use B, KiB, MiB or GiB"
            ));
        }
    };
    Ok((value * scale) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_spark_intervals() {
        assert_eq!(parse_duration("10 seconds"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1 minute"), Ok(Duration::from_secs(60)));
        assert_eq!(
            parse_duration("interval 2 hours"),
            Ok(Duration::from_secs(7200))
        );
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("ten seconds").is_err());
        assert!(parse_duration("10 fortnights").is_err());
    }

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_bytes("256 MiB"), Ok(256 << 20));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("10 MB"), Ok(10_000_000));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("3 parsecs").is_err());
    }
}
