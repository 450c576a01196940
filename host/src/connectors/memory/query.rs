//! Batch SQL over the memory tables — Spark's `spark.sql("SELECT * FROM my_device_table")`
//! after `writeStream.format("memory").queryName("my_device_table")` — answered by
//! DataFusion's engine over a snapshot of every table, in Spark's SQL dialect.
//!
//! The SQL comes from a client of `sluice serve` or `sluice run --ui`, so what it may cost is
//! bounded: one statement, a query only (no DDL, DML or `SET`), a memory pool the plan may not
//! outgrow, a time limit, and at most `max_rows` rows in the answer.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};

/// What one query may use.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Rows in the answer (more are cut, and the answer says so).
    pub max_rows: usize,
    /// Memory the plan's operators may hold (sorts, joins, aggregations), bytes.
    pub memory_bytes: usize,
    /// Wall time.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_rows: 10_000,
            memory_bytes: 256 << 20,
            timeout: Duration::from_secs(30),
        }
    }
}

/// A query's answer.
#[derive(Debug)]
pub struct Answer {
    /// The result's columns.
    pub schema: SchemaRef,
    /// At most `max_rows` rows.
    pub rows: Vec<RecordBatch>,
    /// Whether rows beyond `max_rows` were left out.
    pub truncated: bool,
}

/// Why a query got no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The SQL is wrong (a parse error, an unknown table or column, a statement that is not
    /// a query).
    #[error("{0}")]
    Sql(String),
    /// It needed more memory or time than a query may take.
    #[error("{0}")]
    Limit(String),
}

/// Runs `sql` over the memory tables as they are now.
pub async fn run(sql: &str, limits: Limits) -> Result<Answer, QueryError> {
    let pool = Arc::new(GreedyMemoryPool::new(limits.memory_bytes));
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(pool)
        .build_arc()
        .map_err(|e| QueryError::Limit(e.to_string()))?;
    let mut config = SessionConfig::new().with_target_partitions(1);
    // Spark's syntax (backticks, RLIKE, ...), as the streaming queries are written.
    config.options_mut().sql_parser.dialect = datafusion::common::config::Dialect::Databricks;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    let tables = super::sink::snapshot();
    let names: Vec<String> = tables.iter().map(|(n, _, _)| n.clone()).collect();
    for (name, schema, rows) in tables {
        let table = MemTable::try_new(schema, vec![rows]).map_err(|e| sql_error(e, &names))?;
        // Quoted: the table's name as the query that wrote it spelled it.
        ctx.register_table(
            format!("\"{}\"", name.replace('"', "\"\"")),
            Arc::new(table),
        )
        .map_err(|e| sql_error(e, &names))?;
    }
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let work = async {
        let frame = ctx
            .sql_with_options(sql, options)
            .await
            .map_err(|e| sql_error(e, &names))?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let frame = frame
            .limit(0, Some(limits.max_rows.saturating_add(1)))
            .map_err(|e| sql_error(e, &names))?;
        let batches = frame.collect().await.map_err(|e| sql_error(e, &names))?;
        Ok::<_, QueryError>((schema, batches))
    };
    let (schema, batches) = tokio::time::timeout(limits.timeout, work)
        .await
        .map_err(|_| {
            QueryError::Limit(format!(
                "the query ran past its time limit ({} s)",
                limits.timeout.as_secs()
            ))
        })??;
    let mut rows = Vec::new();
    let mut kept = 0usize;
    let mut truncated = false;
    for batch in batches {
        let room = limits.max_rows - kept;
        if batch.num_rows() > room {
            truncated = true;
            if room > 0 {
                rows.push(batch.slice(0, room));
            }
            break;
        }
        kept += batch.num_rows();
        rows.push(batch);
    }
    Ok(Answer {
        schema,
        rows,
        truncated,
    })
}

/// DataFusion's message without its internal prefixes; an unknown table names the ones there
/// are.
fn sql_error(e: datafusion::error::DataFusionError, tables: &[String]) -> QueryError {
    let text = e.strip_backtrace();
    if let datafusion::error::DataFusionError::ResourcesExhausted(_) = e.find_root() {
        return QueryError::Limit(format!(
            "the query needs more memory than a query over the memory tables may use: {text}"
        ));
    }
    let mut message = text
        .trim_start_matches("Error during planning: ")
        .trim_start_matches("SQL error: ")
        .to_owned();
    if message.contains("table") && message.contains("not found") {
        message = format!(
            "{message}; the memory tables are: {}",
            if tables.is_empty() {
                "none yet (a memory sink's table appears with its first batch)".to_owned()
            } else {
                tables.join(", ")
            }
        );
    }
    QueryError::Sql(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OutputMode;
    use crate::sink::Sink;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    fn fill(name: &str) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("gt", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["sit", "walk", "sit"])),
                Arc::new(Int64Array::from(vec![1, 2, 3])),
            ],
        )
        .unwrap();
        let mut sink = super::super::sink::MemorySink::new(name, OutputMode::Append);
        sink.add_batch(0, &schema, &[batch]).unwrap();
    }

    #[tokio::test]
    async fn a_select_over_a_memory_table_groups_orders_and_is_cut_to_max_rows() {
        fill("query_test_activity");
        let answer = run(
            "SELECT gt, sum(n) AS total FROM query_test_activity GROUP BY gt ORDER BY gt",
            Limits::default(),
        )
        .await
        .unwrap();
        let text =
            crate::connectors::console::sink::render_table(&answer.schema, &answer.rows, 20, false)
                .unwrap();
        assert!(text.contains("|sit |4    |"), "{text}");
        assert!(!answer.truncated);
        let limits = Limits {
            max_rows: 2,
            ..Limits::default()
        };
        let answer = run("SELECT * FROM query_test_activity", limits)
            .await
            .unwrap();
        assert!(answer.truncated);
        assert_eq!(answer.rows.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    }

    #[tokio::test]
    async fn statements_other_than_queries_and_unknown_tables_are_refused() {
        fill("query_test_refused");
        for sql in [
            "CREATE TABLE t (a INT)",
            "DROP TABLE query_test_refused",
            "SET datafusion.execution.batch_size = 1",
        ] {
            assert!(
                matches!(run(sql, Limits::default()).await, Err(QueryError::Sql(_))),
                "{sql}"
            );
        }
        let Err(QueryError::Sql(message)) = run("SELECT * FROM nope", Limits::default()).await
        else {
            panic!()
        };
        assert!(message.contains("query_test_refused"), "{message}");
    }
}
