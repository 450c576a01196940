//! `[functions]`: the pipeline's own scalar functions, Wasm components every query's
//! expressions may call by name.
//!
//! ```toml
//! [functions]
//! to_krw = "modules/to_krw.wasm"                           # a file, or "to-krw@^1" (registry)
//! fx = { module = "fx.wasm", config = { rate = 1300 }, timeout = "2s" }
//! ```

use super::*;
use crate::wasm::function::FunctionSpec;

/// The functions `[functions]` declares, in file order.
pub(super) fn parse_functions(ctx: &Ctx, node: &Spanned<Node>, base: &Path) -> Vec<FunctionSpec> {
    let Some(mut table) = TableReader::new(ctx, None, "functions", node) else {
        return Vec::new();
    };
    let Node::Table(entries) = node.get_ref() else {
        return Vec::new();
    };
    let mut functions = Vec::new();
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
        if let Some(f) = parse_function(ctx, &name, value, base) {
            functions.push(f);
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
