//! Qualified column names over a SQL join's output (`o.amount`, `p.id`): each becomes the
//! field it names (see [`crate::qualifier`]) before DataFusion plans the expression, which
//! sees one flat, unqualified schema. An unqualified name that both sides have is refused as
//! Spark refuses it (AMBIGUOUS_REFERENCE), never silently read from one side.

use std::ops::ControlFlow;

use arrow_schema::Schema;
use datafusion_sql::sqlparser::ast::{self, Ident, visit_expressions_mut};

use crate::qualifier;

/// A column name that could not be resolved, at its 1-based column in the expression.
pub(super) struct Unresolved {
    pub position: usize,
    pub message: String,
}

/// Rewrites `expr`'s qualified columns into the fields of `schema` they name.
pub(super) fn resolve(expr: &mut ast::Expr, schema: &Schema) -> Result<(), Unresolved> {
    if !schema
        .fields()
        .iter()
        .any(|f| qualifier::of(f).next().is_some())
    {
        return Ok(());
    }
    let mut failure = None;
    let _ = visit_expressions_mut(expr, |e| {
        let outcome = match e {
            ast::Expr::CompoundIdentifier(ids) => resolve_compound(ids, schema),
            ast::Expr::Identifier(id) => check_unqualified(id, schema).map(|()| None),
            _ => Ok(None),
        };
        match outcome {
            Ok(Some(resolved)) => {
                *e = resolved;
                ControlFlow::Continue(())
            }
            Ok(None) => ControlFlow::Continue(()),
            Err(u) => {
                failure = Some(u);
                ControlFlow::Break(())
            }
        }
    });
    failure.map_or(Ok(()), Err)
}

/// The field a qualifier and column name give (and any struct fields after them), or
/// `None` when the first part is a column itself (struct access).
fn resolve_compound(ids: &[Ident], schema: &Schema) -> Result<Option<ast::Expr>, Unresolved> {
    let [first, column, rest @ ..] = ids else {
        return Ok(None);
    };
    if schema.index_of(&first.value).is_ok() || !qualifier::is_qualifier(schema, &first.value) {
        return Ok(None);
    }
    let Some(i) = qualifier::find(schema, &first.value, &column.value) else {
        let columns: Vec<&str> = schema
            .fields()
            .iter()
            .filter(|f| qualifier::of(f).any(|q| q == first.value))
            .map(|f| qualifier::original_name(f))
            .collect();
        let close = crate::config::reader::closest(&column.value, columns.iter().copied())
            .map(|c| format!(" (did you mean '{}.{c}'?)", first.value))
            .unwrap_or_default();
        return Err(Unresolved {
            position: first.span.start.column as usize,
            message: format!(
                "unknown column '{}.{}'{close}; '{}' has {}",
                first.value,
                column.value,
                first.value,
                columns.join(", ")
            ),
        });
    };
    let field = Ident::with_quote('`', schema.field(i).name());
    Ok(Some(if rest.is_empty() {
        ast::Expr::Identifier(field)
    } else {
        let mut parts = vec![field];
        parts.extend(rest.iter().cloned());
        ast::Expr::CompoundIdentifier(parts)
    }))
}

fn check_unqualified(id: &Ident, schema: &Schema) -> Result<(), Unresolved> {
    // A quoted name is the field's own (what the SQL planner writes for columns it made).
    if id.quote_style.is_some() {
        return Ok(());
    }
    match qualifier::ambiguity(schema, &id.value) {
        Some(candidates) => Err(Unresolved {
            position: id.span.start.column as usize,
            message: format!(
                "'{}' is ambiguous: both sides of the join have it; write {}",
                id.value,
                candidates.join(" or ")
            ),
        }),
        None => Ok(()),
    }
}

/// The fields `qualifier.*` selects: the indices of the columns of that side.
pub(super) fn wildcard(schema: &Schema, qualifier: &str) -> Option<Vec<usize>> {
    if schema.index_of(qualifier).is_ok() || !qualifier::is_qualifier(schema, qualifier) {
        return None;
    }
    Some(
        schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| qualifier::of(f).any(|q| q == qualifier))
            .map(|(i, _)| i)
            .collect(),
    )
}
