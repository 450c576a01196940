//! An expression step planned against the schema that reaches it, and run over batches.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use datafusion_common::{DFSchema, DataFusionError};
use datafusion_expr::Expr;
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::simplify::SimplifyContext;
use datafusion_optimizer::simplify_expressions::ExprSimplifier;
use datafusion_physical_expr::expressions::Column;
use datafusion_physical_expr::{PhysicalExpr, create_physical_expr};
use datafusion_sql::planner::{ParserOptions, PlannerContext, SqlToRel};
use datafusion_sql::sqlparser::ast::{self, SelectItem, SelectItemQualifiedWildcardKind};
use datafusion_sql::sqlparser::parser::{Parser, ParserError};
use datafusion_sql::sqlparser::tokenizer::Token;

use super::parse_guard::Refused;

use super::functions::Functions;
use super::{ExprError, ExprStepKind, ExprStepSpec};
use crate::error::{Error, Result};

/// `explode(array)` / `explode_outer(array)` in a `selectExpr` (Spark's `Generate`): each
/// element of the array becomes a row, the other columns repeated beside it. `explode` gives
/// no row for a null or empty array; `explode_outer` gives one, with a null element.
#[derive(Debug, Clone, Copy)]
struct Generator {
    /// Which output column holds the array.
    column: usize,
    outer: bool,
}

/// An expression step, planned: its output schema is fixed, and each batch runs its physical
/// expressions.
pub struct CompiledStep {
    name: String,
    output: SchemaRef,
    op: Op,
    /// The batch time its `current_timestamp()` and kin read.
    clock: super::BatchClock,
}

enum Op {
    /// One expression per output column; with a generator, one of them is an array whose
    /// elements each become a row.
    Project(Vec<Arc<dyn PhysicalExpr>>, Option<Generator>),
    /// The rows a predicate holds for.
    Filter(Arc<dyn PhysicalExpr>),
    /// Input columns by index (a rename, a drop).
    Columns(Vec<usize>),
}

impl std::fmt::Debug for CompiledStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledStep")
            .field("name", &self.name)
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}

/// How a query plans its expressions.
#[derive(Debug, Clone)]
pub struct PlanOptions<'a> {
    /// The pipeline's own functions (`[functions]`), by name.
    pub functions: &'a [Arc<datafusion_expr::ScalarUDF>],
    /// Spark 4's ANSI mode (`spark.sql.ansi.enabled`, on by default): a cast that cannot
    /// convert, or a division by zero, is an error. Off (a query's `ansiEnabled = false`),
    /// they are null, as in Spark 3's default.
    pub ansi: bool,
}

impl Default for PlanOptions<'_> {
    fn default() -> Self {
        PlanOptions {
            functions: &[],
            ansi: true,
        }
    }
}

impl CompiledStep {
    /// Parses, type-checks and plans `spec` against `input`, with Spark 4's defaults.
    pub fn new(spec: &ExprStepSpec, input: &SchemaRef) -> std::result::Result<Self, ExprError> {
        CompiledStep::with_options(spec, input, &PlanOptions::default())
    }

    /// [`CompiledStep::new`] with the query's options: the pipeline's own functions (Wasm
    /// scalar functions) callable by name beside the built-in ones, and ANSI mode.
    pub fn with_options(
        spec: &ExprStepSpec,
        input: &SchemaRef,
        options: &PlanOptions,
    ) -> std::result::Result<Self, ExprError> {
        let key = spec.kind.key();
        let clock = super::BatchClock::default();
        let functions = Functions::for_step(&clock, options.functions);
        let planner = Planner::new(input, key, &functions, options.ansi)?;
        let (fields, op): (Vec<Field>, Op) = match &spec.kind {
            ExprStepKind::SelectExpr(items) => {
                let mut fields = Vec::new();
                let mut exprs = Vec::new();
                let mut generator: Option<Generator> = None;
                for (i, text) in items.iter().enumerate() {
                    let at = planner.at(&format!("{key}[{i}]"));
                    let (outputs, outer) = at.select_item(text)?;
                    if let Some(outer) = outer {
                        if generator.is_some() {
                            return Err(at.error(
                                None,
                                "only one explode per selectExpr (as in Spark); explode again \
                                 in a later step"
                                    .to_owned(),
                            ));
                        }
                        generator = Some(Generator {
                            column: fields.len(),
                            outer,
                        });
                    }
                    for (field, expr) in outputs {
                        fields.push(field);
                        exprs.push(expr);
                    }
                }
                (fields, Op::Project(exprs, generator))
            }
            ExprStepKind::Where(text) => {
                let (field, expr) = planner.expression(text, None)?;
                if !matches!(field.data_type(), DataType::Boolean | DataType::Null) {
                    return Err(planner.error(
                        None,
                        format!(
                            "'{text}' is a {}, not a condition (a BOOLEAN)",
                            field.data_type()
                        ),
                    ));
                }
                (
                    input.fields().iter().map(|f| f.as_ref().clone()).collect(),
                    Op::Filter(expr),
                )
            }
            ExprStepKind::WithColumn { name, expr } => {
                let (field, value) = planner
                    .at(&format!("{key}.expr"))
                    .expression(expr, Some(name))?;
                let mut fields = Vec::new();
                let mut exprs = Vec::new();
                for (i, f) in input.fields().iter().enumerate() {
                    if f.name() == name {
                        fields.push(field.clone());
                        exprs.push(value.clone());
                    } else {
                        fields.push(f.as_ref().clone());
                        exprs.push(Arc::new(Column::new(f.name(), i)) as Arc<dyn PhysicalExpr>);
                    }
                }
                if input.index_of(name).is_err() {
                    fields.push(field);
                    exprs.push(value);
                }
                (fields, Op::Project(exprs, None))
            }
            ExprStepKind::WithColumnRenamed { existing, new } => {
                let index = planner.column(existing, &format!("{key}.existing"))?;
                let fields = input
                    .fields()
                    .iter()
                    .enumerate()
                    .map(|(i, f)| match i == index {
                        true => f.as_ref().clone().with_name(new),
                        false => f.as_ref().clone(),
                    })
                    .collect();
                (fields, Op::Columns((0..input.fields().len()).collect()))
            }
            ExprStepKind::Drop(names) => {
                let mut dropped = Vec::new();
                for (i, name) in names.iter().enumerate() {
                    dropped.push(planner.column(name, &format!("{key}[{i}]"))?);
                }
                let kept: Vec<usize> = (0..input.fields().len())
                    .filter(|i| !dropped.contains(i))
                    .collect();
                (
                    kept.iter().map(|&i| input.field(i).clone()).collect(),
                    Op::Columns(kept),
                )
            }
        };
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = fields.iter().find(|f| !seen.insert(f.name().clone())) {
            return Err(planner.error(
                None,
                format!(
                    "two output columns are named '{}'; give one another name with AS",
                    dup.name()
                ),
            ));
        }
        Ok(CompiledStep {
            name: spec.name.clone(),
            output: Arc::new(Schema::new(fields)),
            op,
            clock,
        })
    }

    /// Sets the time of the batch about to run (ms since the epoch, as `offsets/N` records
    /// it): what `current_timestamp()`, `now()` and `current_date()` return.
    pub fn set_batch_time(&self, ms: i64) {
        self.clock.set(ms);
    }

    /// The schema of what it emits.
    pub fn schema(&self) -> SchemaRef {
        self.output.clone()
    }

    /// Runs the step over one batch. A value that fails (an ANSI cast of text that is not a
    /// number, say) fails the batch, naming the step.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let fail = |e: DataFusionError| {
            let message = e.strip_backtrace();
            Error::Data {
                context: format!("step '{}'", self.name),
                message: message
                    .strip_prefix("Execution error: ")
                    .map_or(message.clone(), str::to_owned),
            }
        };
        let rows = batch.num_rows();
        let columns: Vec<ArrayRef> = match &self.op {
            Op::Project(exprs, generator) => {
                let columns: Vec<ArrayRef> = exprs
                    .iter()
                    .map(|e| e.evaluate(batch).and_then(|v| v.into_array(rows)))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(fail)?;
                if let Some(g) = generator {
                    return self.generate(*g, columns);
                }
                columns
            }
            Op::Columns(indices) => indices.iter().map(|&i| batch.column(i).clone()).collect(),
            Op::Filter(predicate) => {
                let mask = predicate
                    .evaluate(batch)
                    .and_then(|v| v.into_array(rows))
                    .map_err(fail)?;
                let mask = match mask.as_any().downcast_ref::<BooleanArray>() {
                    Some(m) => m.clone(),
                    // A NULL literal predicate: no row holds.
                    None => BooleanArray::new_null(rows),
                };
                let mask = match mask.null_count() {
                    0 => mask,
                    _ => arrow_select::filter::prep_null_mask_filter(&mask),
                };
                return arrow_select::filter::filter_record_batch(batch, &mask)
                    .map_err(|e| Error::data(format!("step '{}'", self.name), e));
            }
        };
        RecordBatch::try_new_with_options(
            self.output.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| Error::data(format!("step '{}'", self.name), e))
    }
}

impl CompiledStep {
    /// A row per element of the generator's array, the other columns repeated beside it.
    fn generate(&self, g: Generator, mut columns: Vec<ArrayRef>) -> Result<RecordBatch> {
        let failed = |e: arrow_schema::ArrowError| Error::data(format!("step '{}'", self.name), e);
        let list = columns[g.column]
            .as_any()
            .downcast_ref::<arrow_array::ListArray>()
            .ok_or_else(|| {
                Error::data(
                    format!("step '{}'", self.name),
                    "explode's argument is not an array",
                )
            })?;
        // Per output row: the input row it repeats, and the element (None: a null element,
        // for explode_outer's null or empty array).
        let mut repeat: Vec<u32> = Vec::with_capacity(list.values().len());
        let mut elements: Vec<Option<u32>> = Vec::with_capacity(list.values().len());
        let offsets = list.value_offsets();
        for row in 0..list.len() {
            let (start, end) = (offsets[row] as u32, offsets[row + 1] as u32);
            if list.is_valid(row) && end > start {
                for e in start..end {
                    repeat.push(row as u32);
                    elements.push(Some(e));
                }
            } else if g.outer {
                repeat.push(row as u32);
                elements.push(None);
            }
        }
        let repeat = arrow_array::UInt32Array::from(repeat);
        let elements = arrow_array::UInt32Array::from(elements);
        let exploded =
            arrow_select::take::take(list.values().as_ref(), &elements, None).map_err(failed)?;
        for (i, column) in columns.iter_mut().enumerate() {
            *column = if i == g.column {
                exploded.clone()
            } else {
                arrow_select::take::take(column.as_ref(), &repeat, None).map_err(failed)?
            };
        }
        RecordBatch::try_new_with_options(
            self.output.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(repeat.len())),
        )
        .map_err(failed)
    }
}

/// An output column and the expression that computes it.
type Output = (Field, Arc<dyn PhysicalExpr>);

/// Plans one step's expressions against its input.
struct Planner<'a> {
    input: &'a SchemaRef,
    functions: &'a Functions,
    /// Spark's `spark.sql.ansi.enabled`.
    ansi: bool,
    schema: DFSchema,
    /// The field errors name (`selectExpr[2]`, `where`).
    field: String,
}

impl<'a> Planner<'a> {
    fn new(
        input: &'a SchemaRef,
        field: &str,
        functions: &'a Functions,
        ansi: bool,
    ) -> std::result::Result<Self, ExprError> {
        let schema = DFSchema::try_from(input.as_ref().clone()).map_err(|e| ExprError {
            field: field.to_owned(),
            position: None,
            message: e.strip_backtrace(),
        })?;
        Ok(Planner {
            input,
            functions,
            ansi,
            schema,
            field: field.to_owned(),
        })
    }

    /// The same planner, its errors naming `field`.
    fn at(&self, field: &str) -> Planner<'a> {
        Planner {
            input: self.input,
            functions: self.functions,
            ansi: self.ansi,
            schema: self.schema.clone(),
            field: field.to_owned(),
        }
    }

    fn error(&self, position: Option<usize>, message: String) -> ExprError {
        ExprError {
            field: self.field.clone(),
            position,
            message,
        }
    }

    /// The index of input column `name`, or an error naming the closest ones.
    fn column(&self, name: &str, field: &str) -> std::result::Result<usize, ExprError> {
        self.input.index_of(name).map_err(|_| ExprError {
            field: field.to_owned(),
            position: None,
            message: format!(
                "no column '{name}'{}; the columns are {}",
                suggest(name, self.input.fields().iter().map(|f| f.name().as_str())),
                crate::schema::column_names(self.input)
            ),
        })
    }

    /// Parses `text` with `parse`, which must take all of it.
    fn parse<T>(
        &self,
        text: &str,
        parse: impl FnOnce(&mut Parser<'_>) -> std::result::Result<T, ParserError>,
    ) -> std::result::Result<T, ExprError> {
        let dialect = super::spark_names::SparkDialect::default();
        let mut parser = match super::parse_guard::checked_parser(&dialect, text) {
            Ok(parser) => parser,
            Err(Refused::Parse(e)) => return Err(self.parse_error(e, text)),
            Err(Refused::Shape(u)) => {
                return Err(self.error(Some(u.column as usize), u.message));
            }
        };
        let parsed = parse(&mut parser).map_err(|e| self.parse_error(e, text))?;
        let next = parser.peek_token();
        if next.token != Token::EOF {
            return Err(self.error(
                Some(next.span.start.column as usize),
                format!("unexpected '{}' after the expression", next.token),
            ));
        }
        Ok(parsed)
    }

    fn parse_error(&self, e: ParserError, expression: &str) -> ExprError {
        let failure = super::parse_guard::parse_failure(&e);
        // sqlparser places its error, or it found the end.
        let position = failure
            .position
            .map(|(_, column)| column as usize)
            .or_else(|| {
                failure
                    .message
                    .contains("found: EOF")
                    .then(|| expression.chars().count() + 1)
            });
        self.error(position, failure.message)
    }

    /// A DataFusion planning error, with its position when DataFusion knows it.
    fn plan_error(&self, e: DataFusionError) -> ExprError {
        let position = e
            .diagnostic()
            .and_then(|d| d.span)
            .map(|s| s.start.column as usize)
            .filter(|c| *c > 0);
        let mut message = e.strip_backtrace();
        // DataFusion's invitation to report its own bugs is not the user's business.
        if let Some((first, _)) = message.split_once("\nThis issue was likely caused") {
            message = first.trim_end_matches('.').to_owned();
        }
        for prefix in [
            "Schema error: ",
            "Error during planning: ",
            "Internal error: ",
            "Execution error: ",
        ] {
            if let Some(rest) = message.strip_prefix(prefix) {
                message = rest.to_owned();
            }
        }
        // An unknown column: DataFusion lists every field; name the closest, as for keys.
        if let Some(name) = message
            .strip_prefix("No field named ")
            .and_then(|r| r.split(['.', '\n']).next())
        {
            let name = name.trim_matches(['"', '`']).to_owned();
            let columns = self.input.fields().iter().map(|f| f.name().as_str());
            message = format!("unknown column '{name}'{}", suggest(&name, columns));
        }
        // An unknown function: DataFusion names it; add the closest ones.
        if let Some(name) = message
            .strip_prefix("Invalid function '")
            .and_then(|r| r.split('\'').next())
        {
            message = match name.to_ascii_lowercase().as_str() {
                "explode" | "explode_outer" => format!(
                    "{name}(array) makes rows, so it must be a whole selectExpr item \
                     (`{name}(x) AS name`), as in Spark; it cannot sit inside another expression"
                ),
                _ => format!(
                    "unknown function '{name}'{}",
                    suggest(name, self.functions.names())
                ),
            };
        }
        self.error(position, message)
    }

    /// Plans a parsed expression: resolved against the input's columns, types coerced.
    fn plan(&self, mut sql: ast::Expr) -> std::result::Result<Expr, ExprError> {
        super::qualified::resolve(&mut sql, self.input)
            .map_err(|u| self.error(Some(u.position), u.message))?;
        super::spark_names::rewrite(&mut sql).map_err(|e| self.parse_error(e, ""))?;
        let options = ParserOptions {
            map_string_types_to_utf8view: false,
            enable_ident_normalization: false,
            collect_spans: true,
            ..ParserOptions::default()
        };
        let planner = SqlToRel::new_with_options(self.functions, options);
        let expr = planner
            .sql_to_expr(sql, &self.schema, &mut PlannerContext::new())
            .map_err(|e| self.plan_error(e))?;
        let context = SimplifyContext::builder()
            .with_schema(Arc::new(self.schema.clone()))
            .build();
        let simplifier = ExprSimplifier::new(context);
        let expr = simplifier
            .coerce(expr, &self.schema)
            .map_err(|e| self.plan_error(e))?;
        let expr = super::spark_types::rewrite(expr, &self.schema, self.ansi)
            .map_err(|e| self.plan_error(e))?;
        // Coerced again: the rewrite changes types under its parents (`a / b` of integers
        // becomes a DOUBLE), which were coerced for the old ones (`a / b > 1` compared a
        // DOUBLE with a BIGINT and failed the batch).
        let expr = simplifier
            .coerce(expr, &self.schema)
            .map_err(|e| self.plan_error(e))?;
        // Simplified as DataFusion's optimizer would: some functions (coalesce, nvl, nvl2)
        // exist only to be rewritten here (into CASE) and cannot run as they are.
        simplifier.simplify(expr).map_err(|e| self.plan_error(e))
    }

    /// The output column of `expr`, named `name` (or its alias, or after its text as Spark
    /// names it), and its physical expression.
    fn output(&self, expr: Expr, name: Option<&str>) -> std::result::Result<Output, ExprError> {
        let name = match (name, &expr) {
            (Some(n), _) => n.to_owned(),
            (None, Expr::Alias(a)) => a.name.clone(),
            (None, e) => e.schema_name().to_string(),
        };
        let physical = create_physical_expr(
            &expr,
            &self.schema,
            &ExecutionProps::new(),
            &PhysicalPlanningContext::default(),
        )
        .map_err(|e| self.plan_error(e))?;
        let data_type = physical
            .data_type(self.input)
            .map_err(|e| self.plan_error(e))?;
        let nullable = physical.nullable(self.input).unwrap_or(true);
        Ok((Field::new(name, data_type, nullable), physical))
    }

    /// One expression, named `name` if given.
    fn expression(&self, text: &str, name: Option<&str>) -> std::result::Result<Output, ExprError> {
        let sql = self.parse(text, |p| p.parse_expr())?;
        let expr = self.plan(sql)?;
        self.output(expr, name)
    }

    /// One `selectExpr` item: `*`, `s.*` (a struct's fields), `expr` or `expr AS name`, or
    /// `explode[_outer](array) [AS name]` (then `Some(outer)`: its one output is the array,
    /// each element of which becomes a row).
    fn select_item(
        &self,
        text: &str,
    ) -> std::result::Result<(Vec<Output>, Option<bool>), ExprError> {
        let item = self.parse(text, |p| p.parse_select_item())?;
        let (expr, alias) = match &item {
            SelectItem::UnnamedExpr(e) => (Some(e), None),
            SelectItem::ExprWithAlias { expr, alias } => (Some(expr), Some(alias.value.as_str())),
            _ => (None, None),
        };
        if let Some(e) = expr.filter(|e| is_call(e, "json_tuple")) {
            return Ok((self.json_tuple(e.clone(), alias)?, None));
        }
        if let Some((argument, outer)) = expr.and_then(generator_argument) {
            let array = self.plan(argument)?;
            // Spark names explode's column `col`.
            let (field, physical) = self.output(array, Some(alias.unwrap_or("col")))?;
            let element = match field.data_type() {
                DataType::List(element) => element.as_ref().clone(),
                other => {
                    return Err(self.error(
                        None,
                        format!("explode takes an array (e.g. split(value, ' ')), not a {other}"),
                    ));
                }
            };
            let field = element.with_name(field.name()).with_nullable(true);
            return Ok((vec![(field, physical)], Some(outer)));
        }
        Ok((self.select_output(item)?, None))
    }

    /// `json_tuple(text, 'a', 'b')`: a column per field (`c0`, `c1`, ... as Spark names them,
    /// or the alias when there is one field).
    fn json_tuple(
        &self,
        call: ast::Expr,
        alias: Option<&str>,
    ) -> std::result::Result<Vec<Output>, ExprError> {
        let tuple = self.plan(call)?;
        let (field, _) = self.output(tuple.clone(), Some("json_tuple"))?;
        let DataType::Struct(fields) = field.data_type() else {
            return Err(self.error(None, "json_tuple gave no struct".into()));
        };
        if alias.is_some() && fields.len() != 1 {
            return Err(self.error(
                None,
                format!(
                    "json_tuple gives {} columns (c0, c1, ...); one alias names only one: leave it out and rename with withColumnRenamed",
                    fields.len()
                ),
            ));
        }
        fields
            .iter()
            .map(|f| {
                let expr = datafusion_functions::core::expr_fn::get_field(
                    tuple.clone(),
                    f.name().as_str(),
                );
                self.output(expr, Some(alias.unwrap_or(f.name())))
            })
            .collect()
    }

    /// The outputs of a `selectExpr` item that is not a generator.
    fn select_output(&self, item: SelectItem) -> std::result::Result<Vec<Output>, ExprError> {
        match item {
            SelectItem::Wildcard(_) => Ok(self
                .input
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    (
                        f.as_ref().clone(),
                        Arc::new(Column::new(f.name(), i)) as Arc<dyn PhysicalExpr>,
                    )
                })
                .collect()),
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(name), _) => {
                let column = name.to_string().trim_matches('`').to_owned();
                // `o.*` over a SQL join: that side's columns, by their own names.
                if let Some(indices) = super::qualified::wildcard(self.input, &column) {
                    return Ok(indices
                        .into_iter()
                        .map(|i| {
                            let f = self.input.field(i);
                            let name = crate::qualifier::original_name(f).to_owned();
                            (
                                f.clone().with_name(name),
                                Arc::new(Column::new(f.name(), i)) as Arc<dyn PhysicalExpr>,
                            )
                        })
                        .collect());
                }
                let index = self.column(&column, &self.field)?;
                let DataType::Struct(fields) = self.input.field(index).data_type() else {
                    return Err(self.error(
                        None,
                        format!(
                            "'{column}.*' expands a struct, but '{column}' is a {}",
                            self.input.field(index).data_type()
                        ),
                    ));
                };
                fields
                    .iter()
                    .map(|f| {
                        let expr = datafusion_functions::core::expr_fn::get_field(
                            datafusion_expr::col(datafusion_common::Column::new_unqualified(
                                &column,
                            )),
                            f.name().as_str(),
                        );
                        self.output(expr, Some(f.name()))
                    })
                    .collect()
            }
            SelectItem::UnnamedExpr(e) => Ok(vec![self.output(self.plan(e)?, None)?]),
            SelectItem::ExprWithAlias { expr, alias } => {
                Ok(vec![self.output(self.plan(expr)?, Some(&alias.value))?])
            }
            other => Err(self.error(
                None,
                format!("'{other}' is not a column expression selectExpr can take"),
            )),
        }
    }
}

/// Whether `expr` is a call of `name`.
fn is_call(expr: &ast::Expr, name: &str) -> bool {
    matches!(expr, ast::Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case(name))
}

/// The argument of `explode(x)` / `explode_outer(x)` (and whether outer), if `expr` is one.
fn generator_argument(expr: &ast::Expr) -> Option<(ast::Expr, bool)> {
    let ast::Expr::Function(f) = expr else {
        return None;
    };
    let outer = match f.name.to_string().to_ascii_lowercase().as_str() {
        "explode" => false,
        "explode_outer" => true,
        _ => return None,
    };
    let ast::FunctionArguments::List(list) = &f.args else {
        return None;
    };
    match list.args.as_slice() {
        [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e))] => Some((e.clone(), outer)),
        _ => None,
    }
}

/// `; did you mean 'x'?` for the closest of `known` to `name`, if any is close.
fn suggest<'k>(name: &str, known: impl Iterator<Item = &'k str>) -> String {
    crate::config::reader::closest(name, known)
        .map(|k| format!(" (did you mean '{k}'?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{BinaryArray, Int64Array, StringArray};

    fn input() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("value", DataType::Binary, true),
            Field::new("city", DataType::Utf8, true),
            Field::new("amount", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(BinaryArray::from(vec![
                    Some(b"{\"a\":1}".as_ref()),
                    Some(b"x".as_ref()),
                    None,
                ])),
                Arc::new(StringArray::from(vec![Some("Seoul"), Some("PARIS"), None])),
                Arc::new(Int64Array::from(vec![Some(700), Some(20), Some(501)])),
            ],
        )
        .unwrap()
    }

    fn step(kind: ExprStepKind) -> std::result::Result<CompiledStep, ExprError> {
        CompiledStep::new(
            &ExprStepSpec {
                name: "s".into(),
                kind,
                on_error: crate::wasm::spec::OnError::Fail,
            },
            &input().schema(),
        )
    }

    fn select(items: &[&str]) -> RecordBatch {
        let s = step(ExprStepKind::SelectExpr(
            items.iter().map(|s| s.to_string()).collect(),
        ))
        .unwrap();
        s.evaluate(&input()).unwrap()
    }

    fn strings(b: &RecordBatch, i: usize) -> Vec<Option<String>> {
        let a = arrow_cast::cast(b.column(i), &DataType::Utf8).unwrap();
        let a = a.as_any().downcast_ref::<StringArray>().unwrap();
        a.iter().map(|v| v.map(str::to_owned)).collect()
    }

    #[test]
    fn casts_lowers_and_names_as_spark_does() {
        let out = select(&[
            "CAST(value AS STRING)",
            "lower(city) AS city",
            "concat(city, '-', amount)",
        ]);
        let schema = out.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names[0], "value");
        assert_eq!(names[1], "city");
        assert_eq!(out.schema().field(0).data_type(), &DataType::Utf8);
        assert_eq!(
            strings(&out, 0),
            [Some("{\"a\":1}".into()), Some("x".into()), None]
        );
        assert_eq!(
            strings(&out, 1),
            [Some("seoul".into()), Some("paris".into()), None]
        );
        assert_eq!(strings(&out, 2)[0], Some("Seoul-700".into()));
    }

    #[test]
    fn explode_makes_a_row_per_element_and_outer_keeps_null_arrays() {
        let out = select(&["amount", "explode(split(city, 'A')) AS part"]);
        assert_eq!(out.schema().field(1).name(), "part");
        assert_eq!(
            strings(&out, 0),
            [Some("700".into()), Some("20".into()), Some("20".into())]
        );
        assert_eq!(
            strings(&out, 1),
            [Some("Seoul".into()), Some("P".into()), Some("RIS".into())]
        );
        let out = select(&["explode_outer(split(city, 'A'))", "amount"]);
        assert_eq!(out.schema().field(0).name(), "col");
        assert_eq!(
            strings(&out, 0),
            [
                Some("Seoul".into()),
                Some("P".into()),
                Some("RIS".into()),
                None
            ]
        );
        assert_eq!(strings(&out, 1)[3], Some("501".into()));
        let two = step(ExprStepKind::SelectExpr(vec![
            "explode(split(city, 'A'))".into(),
            "explode(split(city, 'B')) AS b".into(),
        ]))
        .unwrap_err();
        assert!(two.message.contains("only one explode"), "{two}");
        assert_eq!(two.field, "selectExpr[1]");
        let inside = step(ExprStepKind::SelectExpr(vec![
            "upper(explode(split(city, 'A')))".into(),
        ]))
        .unwrap_err();
        assert!(inside.message.contains("whole selectExpr item"), "{inside}");
        let scalar = step(ExprStepKind::SelectExpr(vec!["explode(city)".into()])).unwrap_err();
        assert!(scalar.message.contains("takes an array"), "{scalar}");
    }

    #[test]
    fn current_timestamp_is_the_batch_time_it_is_given_not_the_planning_time() {
        let s = step(ExprStepKind::SelectExpr(vec![
            "current_timestamp() AS t".into(),
            "now() AS n".into(),
            "current_date() AS d".into(),
            "unix_seconds(current_timestamp()) AS secs".into(),
        ]))
        .unwrap();
        assert_eq!(
            s.schema().field(0).data_type(),
            &DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("UTC".into()))
        );
        for ms in [1_765_000_000_123i64, 86_400_000 * 3 + 5] {
            s.set_batch_time(ms);
            let out = s.evaluate(&input()).unwrap();
            let t = out
                .column(0)
                .as_any()
                .downcast_ref::<arrow_array::TimestampMicrosecondArray>()
                .unwrap();
            assert!(t.iter().all(|v| v == Some(ms * 1000)), "{t:?}");
            assert_eq!(strings(&out, 1)[0], strings(&out, 0)[0]);
            let d = out
                .column(2)
                .as_any()
                .downcast_ref::<arrow_array::Date32Array>()
                .unwrap();
            assert_eq!(d.value(0), ms.div_euclid(86_400_000) as i32);
            assert_eq!(strings(&out, 3)[0], Some(ms.div_euclid(1000).to_string()));
        }
    }

    #[test]
    fn where_keeps_the_rows_the_predicate_holds_for_and_null_is_false() {
        let s = step(ExprStepKind::Where(
            "amount > 500 AND city IS NOT NULL".into(),
        ))
        .unwrap();
        let out = s.evaluate(&input()).unwrap();
        assert_eq!(out.num_rows(), 1);
        assert_eq!(strings(&out, 1), [Some("Seoul".into())]);
        let err = step(ExprStepKind::Where("amount + 1".into())).unwrap_err();
        assert!(err.message.contains("not a condition"), "{err}");
    }

    #[test]
    fn with_column_replaces_or_appends_renamed_and_drop() {
        let s = step(ExprStepKind::WithColumn {
            name: "amount".into(),
            expr: "amount * 2".into(),
        })
        .unwrap();
        let out = s.evaluate(&input()).unwrap();
        assert_eq!(out.num_columns(), 3);
        assert_eq!(strings(&out, 2)[0], Some("1400".into()));
        let s = step(ExprStepKind::WithColumn {
            name: "big".into(),
            expr: "amount > 500".into(),
        })
        .unwrap();
        assert_eq!(s.schema().field(3).name(), "big");
        let s = step(ExprStepKind::WithColumnRenamed {
            existing: "city".into(),
            new: "town".into(),
        })
        .unwrap();
        assert_eq!(
            s.evaluate(&input()).unwrap().schema().field(1).name(),
            "town"
        );
        let s = step(ExprStepKind::Drop(vec!["value".into()])).unwrap();
        assert_eq!(s.schema().fields().len(), 2);
        let err = step(ExprStepKind::Drop(vec!["citty".into()])).unwrap_err();
        assert!(err.message.contains("did you mean 'city'"), "{err}");
    }

    #[test]
    fn star_keeps_every_column() {
        let out = select(&["*", "amount + 1 AS next"]);
        assert_eq!(out.num_columns(), 4);
    }

    #[test]
    fn errors_say_where_in_the_expression() {
        let err = step(ExprStepKind::SelectExpr(vec![
            "city".into(),
            "lower(citi)".into(),
        ]))
        .unwrap_err();
        assert_eq!(err.field, "selectExpr[1]");
        assert!(err.message.contains("citi"), "{err}");
        assert_eq!(err.position, Some(7), "{err}");
        let err = step(ExprStepKind::SelectExpr(vec!["amount +".into()])).unwrap_err();
        assert!(err.position.is_some(), "{err}");
        let err = step(ExprStepKind::SelectExpr(vec!["lowr(city)".into()])).unwrap_err();
        assert!(err.message.contains("lower"), "{err}");
        let err = step(ExprStepKind::Where("amount > 1 1".into())).unwrap_err();
        assert!(err.message.contains("unexpected"), "{err}");
    }

    #[test]
    fn a_cast_that_fails_fails_the_batch_as_ansi_spark_does() {
        let s = step(ExprStepKind::SelectExpr(vec![
            "CAST(city AS INT) AS n".into(),
        ]))
        .unwrap();
        let err = s.evaluate(&input()).unwrap_err();
        assert!(err.to_string().contains("step 's'"), "{err}");
    }

    #[test]
    fn without_ansi_a_bad_cast_and_a_division_by_zero_are_null() {
        let legacy = PlanOptions {
            ansi: false,
            ..PlanOptions::default()
        };
        let spec = ExprStepSpec {
            name: "s".into(),
            kind: ExprStepKind::SelectExpr(vec![
                "CAST(city AS INT) AS n".into(),
                "amount / (amount - 700) AS q".into(),
            ]),
            on_error: crate::wasm::spec::OnError::Fail,
        };
        let out = CompiledStep::with_options(&spec, &input().schema(), &legacy)
            .unwrap()
            .evaluate(&input())
            .unwrap();
        assert_eq!(out.column(0).null_count(), 3);
        let q = arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Float64Type>(
            out.column(1),
        );
        assert!(q.is_null(0), "700 / 0 is null");
        assert_eq!(q.value(1), 20.0 / -680.0);
        // With ANSI (the default) the bad cast fails the batch.
        let ansi = CompiledStep::new(&spec, &input().schema()).unwrap();
        assert!(ansi.evaluate(&input()).is_err());
    }
}

#[cfg(test)]
mod json_tests {
    use super::*;
    use arrow_array::StringArray;

    #[test]
    fn from_json_then_fields_then_to_json_round_trip_the_seeds_events() {
        let schema = Arc::new(Schema::new(vec![Field::new("value", DataType::Utf8, true)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec![
                Some(r#"{"city":"SEOUL","amount":12.5}"#),
                Some("{not json"),
                None,
            ]))],
        )
        .unwrap();
        let parse = CompiledStep::new(
            &ExprStepSpec {
                name: "parse".into(),
                kind: ExprStepKind::SelectExpr(vec![
                    "from_json(value, 'city STRING, amount DOUBLE') AS e".into(),
                ]),
                on_error: crate::wasm::spec::OnError::Fail,
            },
            &schema,
        )
        .unwrap();
        let parsed = parse.evaluate(&batch).unwrap();
        let shape = CompiledStep::new(
            &ExprStepSpec {
                name: "shape".into(),
                kind: ExprStepKind::SelectExpr(vec![
                    "e.*".into(),
                    "to_json(named_struct('lower_city', lower(e.city), 'amount', e.amount)) AS value"
                        .into(),
                ]),
                on_error: crate::wasm::spec::OnError::Fail,
            },
            &parsed.schema(),
        )
        .unwrap();
        let out = shape.evaluate(&parsed).unwrap();
        let names: Vec<String> = out
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["city", "amount", "value"]);
        let value = out
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(value.value(0), r#"{"lower_city":"seoul","amount":12.5}"#);
        // PERMISSIVE: a malformed value's fields are null, the batch goes on.
        assert!(out.column(0).is_null(1) && out.column(1).is_null(1));
        assert_eq!(value.value(1), "{}");
        // A null value parses to a null struct; named_struct of its (null) fields is not null.
        assert!(out.column(0).is_null(2));
        assert_eq!(value.value(2), "{}");
        let err = CompiledStep::new(
            &ExprStepSpec {
                name: "bad".into(),
                kind: ExprStepKind::SelectExpr(vec!["from_json(value, value)".into()]),
                on_error: crate::wasm::spec::OnError::Fail,
            },
            &schema,
        )
        .unwrap_err();
        assert!(err.message.contains("string literal"), "{err}");
    }
}
