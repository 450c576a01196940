//! Column qualifiers: which side of a join a column came from, so `o.amount` and `p.amount`
//! can be told apart after `FROM orders o JOIN products p` (DataFusion's `DFSchema` keeps the
//! same knowledge as a qualifier per field).
//!
//! A join's output is one flat Arrow schema: a right column whose name the left side already
//! has is renamed `<qualifier>_<name>`. What each field was called and under which names it
//! may be qualified travel as field metadata, set by the join and read wherever an
//! expression names a column; a projection makes new fields without it, as a SQL subquery
//! gives its columns new names.

use arrow_schema::{Field, Schema};

/// Field metadata: the qualifiers a column may be named with, comma separated (`o`, or `o,u`
/// for a key both sides share).
pub const QUALIFIERS: &str = "sluice.qualifiers";
/// Field metadata: the column's name on its own side, when the join renamed it.
pub const ORIGINAL_NAME: &str = "sluice.name";

/// The qualifiers `field` may be named with.
pub fn of(field: &Field) -> impl Iterator<Item = &str> {
    field
        .metadata()
        .get(QUALIFIERS)
        .map(String::as_str)
        .unwrap_or_default()
        .split(',')
        .filter(|q| !q.is_empty())
}

/// The name `field` had on its own side of a join.
pub fn original_name(field: &Field) -> &str {
    field
        .metadata()
        .get(ORIGINAL_NAME)
        .map_or(field.name().as_str(), String::as_str)
}

/// `field` qualified by `qualifier` as well (if it is not already), named `name` now and
/// `original` on its side.
pub fn qualify(field: Field, qualifier: &str, name: &str, original: &str) -> Field {
    let mut metadata = field.metadata().clone();
    let mut names: Vec<&str> = of(&field).collect();
    if !names.contains(&qualifier) {
        names.push(qualifier);
    }
    metadata.insert(QUALIFIERS.to_owned(), names.join(","));
    if name != original {
        metadata.insert(ORIGINAL_NAME.to_owned(), original.to_owned());
    }
    field.with_name(name).with_metadata(metadata)
}

/// Whether any field of `schema` is qualified by `qualifier`.
pub fn is_qualifier(schema: &Schema, qualifier: &str) -> bool {
    schema
        .fields()
        .iter()
        .any(|f| of(f).any(|q| q == qualifier))
}

/// The index of `qualifier.name` in `schema`.
pub fn find(schema: &Schema, qualifier: &str, name: &str) -> Option<usize> {
    schema
        .fields()
        .iter()
        .position(|f| original_name(f) == name && of(f).any(|q| q == qualifier))
}

/// The index of column `name` in `schema`: a field of that name, or `q.c` for a qualified
/// one (what a SQL join's keys and later steps may name).
pub fn index_of(schema: &Schema, name: &str) -> Option<usize> {
    if let Ok(i) = schema.index_of(name) {
        return Some(i);
    }
    let (qualifier, column) = name.split_once('.')?;
    find(
        schema,
        qualifier.trim_matches('`'),
        column.trim_matches('`'),
    )
}

/// When an unqualified `name` could mean two columns of a join (the left's `name` and the
/// right's, renamed), the qualified names to choose between, as Spark's AMBIGUOUS_REFERENCE.
pub fn ambiguity(schema: &Schema, name: &str) -> Option<Vec<String>> {
    let mut candidates: Vec<String> = schema
        .fields()
        .iter()
        .filter(|f| original_name(f) == name)
        .filter_map(|f| of(f).next().map(|q| format!("{q}.{name}")))
        .collect();
    candidates.dedup();
    (candidates.len() > 1).then_some(candidates)
}

#[cfg(test)]
mod tests {
    use arrow_schema::DataType;

    use super::*;

    #[test]
    fn a_renamed_column_is_found_by_its_qualifier_and_its_own_name() {
        let schema = Schema::new(vec![
            qualify(Field::new("id", DataType::Int64, true), "o", "id", "id"),
            qualify(Field::new("id", DataType::Int64, true), "p", "p_id", "id"),
            qualify(
                qualify(Field::new("k", DataType::Int64, true), "o", "k", "k"),
                "p",
                "k",
                "k",
            ),
        ]);
        assert_eq!(index_of(&schema, "o.id"), Some(0));
        assert_eq!(index_of(&schema, "p.id"), Some(1));
        assert_eq!(index_of(&schema, "p_id"), Some(1));
        assert_eq!(index_of(&schema, "p.k"), Some(2));
        assert_eq!(index_of(&schema, "o.k"), Some(2));
        assert_eq!(index_of(&schema, "q.id"), None);
        assert_eq!(
            ambiguity(&schema, "id"),
            Some(vec!["o.id".to_owned(), "p.id".to_owned()])
        );
        assert_eq!(ambiguity(&schema, "k"), None);
    }
}
