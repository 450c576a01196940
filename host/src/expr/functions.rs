//! The functions an expression may call: DataFusion's scalar functions (strings, dates and
//! times, regular expressions, hashes, encodings, math, arrays), looked up without regard to
//! case as Spark does.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow_schema::DataType;
use datafusion_common::config::ConfigOptions;
use datafusion_common::{Result, TableReference, plan_err};
use datafusion_expr::planner::{ContextProvider, ExprPlanner};
use datafusion_expr::{AggregateUDF, HigherOrderUDF, ScalarUDF, TableSource, WindowUDF};

/// Every scalar function by its lower-case name and aliases, built once per process.
struct Library {
    scalar: HashMap<String, Arc<ScalarUDF>>,
    /// What plans SQL syntax that is not a call: `SUBSTRING(s FROM 1)`, `s.field`, `a[1]`,
    /// array literals.
    planners: Vec<Arc<dyn ExprPlanner>>,
    options: ConfigOptions,
}

impl Library {
    /// The process's function table.
    fn get() -> &'static Library {
        static FUNCTIONS: OnceLock<Library> = OnceLock::new();
        FUNCTIONS.get_or_init(|| {
            let mut scalar = HashMap::new();
            for f in datafusion_functions::all_default_functions()
                .into_iter()
                .chain(datafusion_functions_nested::all_default_nested_functions())
            {
                for name in std::iter::once(f.name()).chain(f.aliases().iter().map(String::as_str))
                {
                    scalar.insert(name.to_ascii_lowercase(), f.clone());
                }
            }
            // Spark's own versions (datafusion-spark) over DataFusion's where both have a name:
            // they follow Spark's answers (sha2, hex, date_add, format_string, ...).
            for f in datafusion_spark::all_default_scalar_functions() {
                for name in std::iter::once(f.name()).chain(f.aliases().iter().map(String::as_str))
                {
                    scalar.insert(name.to_ascii_lowercase(), f.clone());
                }
            }
            if let Some(substring) = scalar.get("substring").cloned() {
                scalar.insert("spark_substring".into(), substring);
            }
            // Spark's JSON functions, which DataFusion does not have.
            scalar.insert(
                "from_json".into(),
                Arc::new(ScalarUDF::new_from_impl(super::json::FromJson::new())),
            );
            scalar.insert(
                "to_json".into(),
                Arc::new(ScalarUDF::new_from_impl(super::json::ToJson::new())),
            );
            scalar.insert(
                "get_json_object".into(),
                Arc::new(ScalarUDF::new_from_impl(
                    super::json_path::GetJsonObject::new(),
                )),
            );
            scalar.insert(
                "hash".into(),
                Arc::new(ScalarUDF::new_from_impl(super::spark_hash::SparkHash::new())),
            );
            scalar.insert(
                "typeof".into(),
                Arc::new(ScalarUDF::new_from_impl(super::type_of::TypeOf::new())),
            );
            scalar.insert(
                "format_number".into(),
                Arc::new(ScalarUDF::new_from_impl(
                    super::format_number::FormatNumber::new(),
                )),
            );
            // Spark's split takes a pattern; DataFusion's string functions take a delimiter.
            scalar.insert(
                "split".into(),
                Arc::new(ScalarUDF::new_from_impl(super::split::Split::new())),
            );
            let mut options = ConfigOptions::default();
            // Spark's `STRING` is Arrow `Utf8` here, as everywhere else in Sluice.
            options.sql_parser.map_string_types_to_utf8view = false;
            let planners: Vec<Arc<dyn ExprPlanner>> = vec![
                Arc::new(datafusion_functions::core::planner::CoreFunctionPlanner::default()),
                Arc::new(datafusion_functions::unicode::planner::UnicodeFunctionPlanner),
                Arc::new(datafusion_functions::datetime::planner::DatetimeFunctionPlanner),
                Arc::new(datafusion_functions_nested::planner::NestedFunctionPlanner),
                Arc::new(datafusion_functions_nested::planner::FieldAccessPlanner),
            ];
            Library {
                scalar,
                planners,
                options,
            }
        })
    }
}

/// The functions one step's expressions may call: the process's table, and the step's own
/// batch-time functions (`current_timestamp()`, ...) bound to its clock.
pub(super) struct Functions {
    library: &'static Library,
    own: HashMap<String, Arc<ScalarUDF>>,
}

impl Functions {
    /// The functions of a step whose batch time is `clock`, with the pipeline's own
    /// (`declared`: Wasm functions, by their names).
    pub(super) fn for_step(
        clock: &super::batch_time::BatchClock,
        declared: &[Arc<ScalarUDF>],
    ) -> Functions {
        let own = super::batch_time::functions(clock)
            .into_iter()
            .map(|f| Arc::new(ScalarUDF::new_from_impl(f)))
            .chain(declared.iter().cloned())
            .map(|f| (f.name().to_ascii_lowercase(), f))
            .collect();
        Functions {
            library: Library::get(),
            own,
        }
    }

    /// The known function names, for suggestions.
    pub(super) fn names(&self) -> impl Iterator<Item = &str> {
        self.library
            .scalar
            .keys()
            .chain(self.own.keys())
            .map(String::as_str)
    }
}

impl ContextProvider for Functions {
    fn get_table_source(&self, name: TableReference) -> Result<Arc<dyn TableSource>> {
        plan_err!("an expression reads the step's columns, not a table ('{name}')")
    }
    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        &self.library.planners
    }
    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        let name = name.to_ascii_lowercase();
        self.own
            .get(&name)
            .or_else(|| self.library.scalar.get(&name))
            .cloned()
    }
    fn get_higher_order_meta(&self, _name: &str) -> Option<Arc<HigherOrderUDF>> {
        None
    }
    fn get_aggregate_meta(&self, _name: &str) -> Option<Arc<AggregateUDF>> {
        None
    }
    fn get_window_meta(&self, _name: &str) -> Option<Arc<WindowUDF>> {
        None
    }
    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }
    fn options(&self) -> &ConfigOptions {
        &self.library.options
    }
    fn udf_names(&self) -> Vec<String> {
        self.names().map(str::to_owned).collect()
    }
    fn higher_order_function_names(&self) -> Vec<String> {
        Vec::new()
    }
    fn udaf_names(&self) -> Vec<String> {
        Vec::new()
    }
    fn udwf_names(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Whether `name` is one of the functions every expression has (so a pipeline's own function
/// may not take it).
pub(crate) fn is_builtin(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    Library::get().scalar.contains_key(&name)
        || super::batch_time::NAMES.contains(&name.as_str())
        || super::spark_names::rewrites(&name)
}

/// A declared function whose module is not loaded (while a pipeline is only parsed): it
/// takes any arguments and its type is not known (`NULL`), so a step using it ends what
/// parsing can check; the query plans with the real one.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Declared {
    name: String,
    signature: datafusion_expr::Signature,
}

impl datafusion_expr::ScalarUDFImpl for Declared {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &datafusion_expr::Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Null)
    }
    fn invoke_with_args(
        &self,
        _args: datafusion_expr::ScalarFunctionArgs,
    ) -> Result<datafusion_expr::ColumnarValue> {
        datafusion_common::exec_err!("function '{}' is declared but not loaded", self.name)
    }
}

/// The stand-in for the pipeline's function `name` while the pipeline is only parsed.
pub fn declared(name: &str) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(Declared {
        name: name.to_owned(),
        signature: datafusion_expr::Signature::variadic_any(datafusion_expr::Volatility::Immutable),
    }))
}
