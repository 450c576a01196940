//! `[functions]`: the pipeline's own functions, Wasm components every query may call by
//! name — scalar functions in any expression, aggregates in a SQL query's SELECT.
//!
//! ```toml
//! [functions]
//! to_krw = "modules/to_krw.wasm"                           # a file, or "to-krw@^1" (registry)
//! fx = { module = "fx.wasm", config = { rate = 1300 }, timeout = "2s" }
//! top_k = { aggregate = "modules/top_k.wasm", config = { k = 3 } }   # an aggregate
//! sessions = { processor = "modules/sessionize.wasm", timeMode = "eventTime" }
//! ```
//!
//! A processor is a table function of SQL: `SELECT * FROM sessions(events, user_id)` runs it
//! over `events` keyed by `user_id`.

use super::*;
use crate::wasm::function::FunctionSpec;

/// What `[functions]` declares, each list in file order.
#[derive(Debug, Default)]
pub(super) struct Declared {
    /// Scalar functions (`module = ...`).
    pub scalar: Vec<FunctionSpec>,
    /// Aggregates (`aggregate = ...`), by name.
    pub aggregate: Vec<(String, UdafSpec)>,
    /// Keyed processors (`processor = ...`), by name, their key given where SQL calls them.
    pub processor: Vec<(String, ProcessorSpec)>,
}

/// The functions `[functions]` declares.
pub(super) fn parse_functions(ctx: &Ctx, node: &Spanned<Node>, base: &Path) -> Declared {
    let mut functions = Declared::default();
    let Some(mut table) = TableReader::new(ctx, None, "functions", node) else {
        return functions;
    };
    let Node::Table(entries) = node.get_ref() else {
        return functions;
    };
    for (key, value) in entries {
        let name = key.get_ref().clone();
        table.get(&name);
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            table.error_at(
                key.span().start,
                &name,
                format!("'{name}' cannot be called in an expression; name a function with letters, digits and _"),
            );
            continue;
        }
        if crate::expr::is_builtin(&name) {
            table.error_at(
                key.span().start,
                &name,
                format!("'{name}' is a built-in function; give yours another name"),
            );
            continue;
        }
        let has = |key: &str| {
            matches!(value.get_ref(), Node::Table(entries)
                if entries.iter().any(|(k, _)| k.get_ref() == key))
        };
        if has("processor") {
            let spec = TableReader::new(ctx, None, &format!("functions.{name}"), value)
                .and_then(|r| read_processor(r, base, "processor", false));
            if let Some(p) = spec {
                functions.processor.push((name, p));
            }
        } else if has("aggregate") {
            if let Some(a) = parse_aggregate_function(ctx, &name, value, base) {
                functions.aggregate.push((name, a));
            }
        } else if let Some(f) = parse_function(ctx, &name, value, base) {
            functions.scalar.push(f);
        }
    }
    functions
}

/// One function: `name = "module"` or `name = { module = "...", config = {...}, limits }`.
fn parse_function(
    ctx: &Ctx,
    name: &str,
    node: &Spanned<Node>,
    base: &Path,
) -> Option<FunctionSpec> {
    // The short form is the module alone: read it as a table of one key.
    let wrapped;
    let table = match node.get_ref() {
        Node::Str(_) => {
            wrapped = Spanned::new(
                node.span(),
                Node::Table(vec![(
                    Spanned::new(node.span(), "module".to_owned()),
                    node.clone(),
                )]),
            );
            &wrapped
        }
        _ => node,
    };
    let mut f = TableReader::new(ctx, None, &format!("functions.{name}"), table)?;
    let module = f.required_string(
        "module",
        "give the component: module = \"my_function.wasm\"",
    )?;
    let module = module_path(&mut f, "module", base, &module, GuestWorld::Function)?;
    let spec = FunctionSpec {
        name: name.to_owned(),
        module,
        config: f.guest_config("config", base),
        limits: parse_limits(&mut f),
    };
    let mut known = vec!["module", "config"];
    known.extend(LIMIT_KEYS);
    f.finish(&known);
    Some(spec)
}

/// `name = { aggregate = "top_k.wasm", config = {...}, limits }`: a Wasm aggregate (the
/// aggregator world) that SQL calls as `name(column)`.
fn parse_aggregate_function(
    ctx: &Ctx,
    name: &str,
    node: &Spanned<Node>,
    base: &Path,
) -> Option<UdafSpec> {
    let mut f = TableReader::new(ctx, None, &format!("functions.{name}"), node)?;
    let module = f.required_string("aggregate", "the aggregate's component")?;
    let module = module_path(&mut f, "aggregate", base, &module, GuestWorld::Aggregator)?;
    let spec = UdafSpec {
        module,
        config: f.guest_config("config", base),
        limits: parse_limits(&mut f),
    };
    let mut known = vec!["aggregate", "config"];
    known.extend(LIMIT_KEYS);
    f.finish(&known);
    Some(spec)
}
