//! The console sink: each batch printed as a table under a `Batch: N` header, like Spark's
//! `format("console")` with `numRows` and `truncate`.
//!
//! The table is drawn here rather than with arrow's pretty printer because Spark users expect
//! `show()`'s exact layout: right-aligned cells cut to 20 characters, `null`, and an
//! "only showing top N rows" footer.

use std::io::Write;

use arrow_array::RecordBatch;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::SchemaRef;

use crate::error::{Error, Result};
use crate::sink::Sink;

/// Prints batches to a writer (stdout in a pipeline).
pub struct ConsoleSink<W: Write + Send> {
    out: W,
    num_rows: usize,
    truncate: bool,
}

impl ConsoleSink<std::io::Stdout> {
    /// A console sink on the process's stdout.
    pub fn stdout(num_rows: usize, truncate: bool) -> Self {
        ConsoleSink::new(std::io::stdout(), num_rows, truncate)
    }
}

impl<W: Write + Send> ConsoleSink<W> {
    /// A console sink on any writer.
    pub fn new(out: W, num_rows: usize, truncate: bool) -> Self {
        ConsoleSink {
            out,
            num_rows,
            truncate,
        }
    }

    /// The writer, for tests that capture output.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Renders up to `num_rows` rows as Spark's `show()` does.
pub fn render_table(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    num_rows: usize,
    truncate: bool,
) -> Result<String> {
    let options = FormatOptions::default().with_null("null");
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut total = 0usize;
    for batch in batches {
        total += batch.num_rows();
        if rows.len() >= num_rows {
            continue;
        }
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::data("formatting a batch for the console", e))?;
        for row in 0..batch.num_rows().min(num_rows - rows.len()) {
            rows.push(
                formatters
                    .iter()
                    .zip(batch.columns())
                    .map(|(f, column)| {
                        let text = spark_binary(column.as_ref(), row)
                            .unwrap_or_else(|| f.value(row).to_string());
                        cut(text, truncate)
                    })
                    .collect(),
            );
        }
    }
    let header: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| cut(f.name().clone(), truncate))
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count(), 3])
                .max()
                .unwrap_or(3)
        })
        .collect();
    let rule: String = widths.iter().fold(String::from("+"), |mut s, w| {
        s.push_str(&"-".repeat(*w));
        s.push('+');
        s
    });
    let line = |cells: &[String]| {
        let mut s = String::from("|");
        for (cell, w) in cells.iter().zip(&widths) {
            let pad = " ".repeat(w - cell.chars().count());
            if truncate {
                s.push_str(&pad);
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.push_str(&pad);
            }
            s.push('|');
        }
        s
    };
    let mut out = format!("{rule}\n{}\n{rule}\n", line(&header));
    for r in &rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    out.push_str(&rule);
    out.push('\n');
    if total > rows.len() {
        out.push_str(&format!("only showing top {} rows\n", rows.len()));
    }
    Ok(out)
}

/// A non-null BINARY cell as Spark's `show()` prints it: upper-case hex bytes, space
/// separated, in brackets (`[48 69]`); `None` for other columns and nulls.
fn spark_binary(column: &dyn arrow_array::Array, row: usize) -> Option<String> {
    use arrow_array::cast::AsArray;
    use std::fmt::Write as _;
    if column.is_null(row) {
        return None;
    }
    let bytes = match column.data_type() {
        arrow_schema::DataType::Binary => column.as_binary::<i32>().value(row),
        arrow_schema::DataType::LargeBinary => column.as_binary::<i64>().value(row),
        _ => return None,
    };
    let mut text = String::with_capacity(2 + 3 * bytes.len());
    text.push('[');
    for (i, b) in bytes.iter().enumerate() {
        let sep = if i == 0 { "" } else { " " };
        let _ = write!(text, "{sep}{b:02X}");
    }
    text.push(']');
    Some(text)
}

fn cut(s: String, truncate: bool) -> String {
    if truncate && s.chars().count() > 20 {
        let mut t: String = s.chars().take(17).collect();
        t.push_str("...");
        t
    } else {
        s
    }
}

impl<W: Write + Send> Sink for ConsoleSink<W> {
    fn description(&self) -> String {
        "ConsoleSink".to_owned()
    }

    fn add_batch(
        &mut self,
        batch_id: u64,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<u64> {
        let table = render_table(schema, batches, self.num_rows, self.truncate)?;
        let rule = "-------------------------------------------";
        write!(self.out, "{rule}\nBatch: {batch_id}\n{rule}\n{table}\n")
            .and_then(|_| self.out.flush())
            .map_err(|e| Error::Sink {
                sink: "ConsoleSink".into(),
                message: format!("writing batch {batch_id}: {e}"),
            })?;
        Ok(batches.iter().map(|b| b.num_rows() as u64).sum())
    }

    fn add_continuous(
        &mut self,
        epoch: u64,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<u64> {
        // Each arrival printed at once, under the epoch it belongs to.
        let table = render_table(schema, batches, self.num_rows, self.truncate)?;
        write!(self.out, "Epoch: {epoch}\n{table}\n")
            .and_then(|_| self.out.flush())
            .map_err(|e| Error::Sink {
                sink: "ConsoleSink".into(),
                message: format!("writing epoch {epoch}: {e}"),
            })?;
        Ok(batches.iter().map(|b| b.num_rows() as u64).sum())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn batch() -> (SchemaRef, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("word", DataType::Utf8, true),
            Field::new("count", DataType::Int64, true),
        ]));
        let words = StringArray::from(vec![
            Some("spark"),
            None,
            Some("a-very-long-word-that-goes-on"),
        ]);
        let counts = Int64Array::from(vec![1, 22, 333]);
        let b =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(words), Arc::new(counts)]).unwrap();
        (schema, b)
    }

    #[test]
    fn binary_cells_print_as_spark_shows_them() {
        let schema = Arc::new(Schema::new(vec![Field::new("b", DataType::Binary, true)]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(arrow_array::BinaryArray::from_opt_vec(vec![
                Some(b"Hi\n"),
                None,
            ]))],
        )
        .unwrap();
        let table = render_table(&schema, &[b], 20, true).unwrap();
        assert!(table.contains("|[48 69 0A]|"), "{table}");
        assert!(table.contains("|      null|"), "{table}");
    }

    #[test]
    fn prints_like_spark_show() {
        let (schema, b) = batch();
        let mut sink = ConsoleSink::new(Vec::new(), 2, true);
        assert_eq!(sink.add_batch(7, &schema, &[b]).unwrap(), 3);
        let text = String::from_utf8(sink.into_inner()).unwrap();
        let expected = "-------------------------------------------\nBatch: 7\n-------------------------------------------\n\
+-----+-----+\n| word|count|\n+-----+-----+\n|spark|    1|\n| null|   22|\n+-----+-----+\nonly showing top 2 rows\n\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn truncates_long_cells_unless_asked_not_to() {
        let (schema, b) = batch();
        let cut = render_table(&schema, std::slice::from_ref(&b), 20, true).unwrap();
        assert!(cut.contains("|a-very-long-word-...|"), "{cut}");
        let full = render_table(&schema, &[b], 20, false).unwrap();
        assert!(full.contains("|a-very-long-word-that-goes-on|"), "{full}");
    }
}
