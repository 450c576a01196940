//! `sluice explain`: a query's plan as a tree, the sink at the top and each operator above
//! what feeds it, drawn as Spark's `explain()` draws a physical plan (`:-` for a child with
//! siblings after it, `+-` for the last). Made from the same description as the dashboard's
//! plan picture ([`QuerySpec::plan_view`]), with where each stateful operator keeps its state
//! and which input's watermark it goes by.

use super::*;

/// One line of the tree and what feeds it.
struct PlanNode {
    text: String,
    children: Vec<PlanNode>,
}

impl PlanNode {
    fn leaf(text: String) -> PlanNode {
        PlanNode {
            text,
            children: Vec::new(),
        }
    }

    fn over(text: String, child: PlanNode) -> PlanNode {
        PlanNode {
            text,
            children: vec![child],
        }
    }

    fn draw(&self, prefix: &str, out: &mut String) {
        out.push_str(&self.text);
        out.push('\n');
        for (i, child) in self.children.iter().enumerate() {
            let last = i + 1 == self.children.len();
            out.push_str(prefix);
            out.push_str(if last { "+- " } else { ":- " });
            let deeper = format!("{prefix}{}", if last { "   " } else { ":  " });
            child.draw(&deeper, out);
        }
    }
}

/// `text` of a JSON value that is a string, else its JSON.
fn text(v: &serde_json::Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

/// A list of JSON strings as `[a, b]`.
fn list(v: &serde_json::Value) -> String {
    let items: Vec<String> = v.as_array().into_iter().flatten().map(text).collect();
    format!("[{}]", items.join(", "))
}

/// `node` under each of `steps` in turn (the first step reads `node`).
fn under_steps(mut node: PlanNode, steps: &serde_json::Value) -> PlanNode {
    for s in steps.as_array().into_iter().flatten() {
        let line = match &s["expression"] {
            serde_json::Value::Null => {
                format!("WasmStep '{}' ({})", text(&s["name"]), text(&s["module"]))
            }
            e => format!("Expression '{}' ({})", text(&s["name"]), text(e)),
        };
        node = PlanNode::over(line, node);
    }
    node
}

/// What a stage reads, as JSON: `null` for the one input; `{kind, of}` for a view or a
/// union; a join with its sides' names (`right` null for a table).
fn reads_view(from: &ViewFrom) -> serde_json::Value {
    use serde_json::json;
    match from {
        ViewFrom::Stream(name) => json!({ "kind": "from", "of": name }),
        ViewFrom::Union(names) => json!({ "kind": "union", "of": names }),
        ViewFrom::Join(j) => json!({
            "kind": if matches!(j.right, JoinRight::Table(_)) { "stream-static join" } else { "stream-stream join" },
            "type": format!("{:?}", j.join_type),
            "on": j.on.iter().map(|(l, r)| format!("{l} = {r}")).collect::<Vec<_>>(),
            "left": j.left,
            "right": match &j.right {
                JoinRight::Input(r) => json!(r),
                JoinRight::Table(_) => json!(null),
            },
            "table": match &j.right {
                JoinRight::Table(t) => match &t.source {
                    TableSource::Files(f) => json!(f.path.display().to_string()),
                    // The query, never the connection string's credentials.
                    TableSource::Postgres(p) => json!(format!("postgres: {}", p.query)),
                    TableSource::Cassandra(c) => json!(format!("cassandra: {}", c.query)),
                },
                JoinRight::Input(_) => json!(null),
            },
        }),
    }
}

/// A stage's steps as JSON: a Wasm step's module, an expression step's expressions.
fn steps_view(ts: &[StepSpec]) -> Vec<serde_json::Value> {
    ts.iter()
        .map(|t| match t {
            StepSpec::Wasm(t) => serde_json::json!({
                "name": t.name,
                "module": t.module_ref.clone().unwrap_or_else(|| t.module.display().to_string()),
            }),
            StepSpec::Expr(e) => serde_json::json!({
                "name": e.name,
                "expression": expression_text(&e.kind),
            }),
        })
        .collect()
}

/// An expression step as one line, as a user wrote it.
fn expression_text(kind: &ExprStepKind) -> String {
    match kind {
        ExprStepKind::SelectExpr(items) => format!("selectExpr {}", items.join(", ")),
        ExprStepKind::Where(e) => format!("where {e}"),
        ExprStepKind::WithColumn { name, expr } => format!("withColumn {name} = {expr}"),
        ExprStepKind::WithColumnRenamed { existing, new } => {
            format!("withColumnRenamed {existing} -> {new}")
        }
        ExprStepKind::Drop(names) => format!("drop {}", names.join(", ")),
    }
}

/// A stage's stateful operators as JSON, in the order they run.
fn operators_view(
    dedup: Option<&DedupSpec>,
    aggregate: Option<&AggregateSpec>,
    processor: Option<&ProcessorSpec>,
) -> Vec<serde_json::Value> {
    use serde_json::json;
    let mut operators = Vec::new();
    if let Some(d) = dedup {
        operators.push(json!({ "kind": "dropDuplicates", "columns": d.columns }));
    }
    if let Some(a) = aggregate {
        operators.push(json!({
            "kind": "aggregate",
            "groupBy": a.group_by,
            "window": a.window.as_ref().map(|w| match w {
                WindowSpec::Fixed { column, duration, slide, .. } => {
                    format!("{duration:?} window every {slide:?} on {column}")
                }
                WindowSpec::Session { column, gap } => {
                    format!("session window, gap {gap:?}, on {column}")
                }
            }),
            "aggs": a.aggs.iter().map(|x| x.alias.clone()).collect::<Vec<_>>(),
        }));
    }
    if let Some(p) = processor {
        operators.push(json!({
            "kind": "processor",
            "key": p.key,
            "module": p.module_name(),
            "timeMode": crate::operators::processor::time_mode_name(p.time_mode),
        }));
    }
    operators
}

impl QuerySpec {
    /// What the query is made of, as JSON for a picture of it (the dashboard's plan graph,
    /// `GET /queries/{name}`, `sluice explain`): its inputs with their steps and watermarks,
    /// its views, what the query reads, the steps after, the stateful operators and the sink.
    pub fn plan_view(&self) -> serde_json::Value {
        use serde_json::json;
        json!({
            "inputs": self.inputs.iter().map(|i| json!({
                "name": i.name,
                "source": i.source.description(),
                "watermark": i.watermark.as_ref().map(|w| format!("{} - {:?}", w.column, w.delay)),
                "steps": steps_view(&i.transforms),
            })).collect::<Vec<_>>(),
            "views": self.views.iter().map(|v| json!({
                "name": v.name,
                "combine": reads_view(&v.from),
                "steps": steps_view(&v.transforms),
                "operators": operators_view(v.dedup.as_ref(), v.aggregate.as_ref(), v.processor.as_ref()),
            })).collect::<Vec<_>>(),
            "combine": match &self.combine {
                Combine::Single => json!(null),
                other => reads_view(&other.reads()),
            },
            "steps": steps_view(&self.transforms),
            "operators": operators_view(self.dedup.as_ref(), self.aggregate.as_ref(), self.processor.as_ref()),
            "sink": self.sink.description(),
            "outputMode": format!("{:?}", self.output_mode).to_lowercase(),
            "sql": self.sql,
        })
    }

    /// The query's plan as a tree of text lines, the sink first.
    pub fn explain(&self) -> String {
        let view = self.plan_view();
        // Each input's and view's tree by name, taken by what reads it.
        let mut named: Vec<(String, PlanNode)> = view["inputs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                let watermark = match &i["watermark"] {
                    serde_json::Value::Null => String::new(),
                    w => format!(", watermark {}", text(w)),
                };
                let node = under_steps(
                    PlanNode::leaf(format!(
                        "Input '{}': {}{watermark}",
                        text(&i["name"]),
                        text(&i["source"])
                    )),
                    &i["steps"],
                );
                (text(&i["name"]), node)
            })
            .collect();
        for v in view["views"].as_array().into_iter().flatten() {
            let name = text(&v["name"]);
            let node = self.stage(v, Some(&name), &mut named);
            let node = PlanNode::over(format!("View '{name}'"), node);
            named.push((name, node));
        }
        let node = self.stage(&view, None, &mut named);
        let sink = PlanNode::over(
            format!(
                "Sink {} (outputMode {}, trigger {})",
                text(&view["sink"]),
                text(&view["outputMode"]),
                self.trigger
            ),
            node,
        );
        let mut out = String::new();
        sink.draw("", &mut out);
        out
    }

    /// One stage's tree (a view's, or the query's own when `view` is `None`): what it reads
    /// (taken from `named`), its steps, its stateful operators.
    fn stage(
        &self,
        stage: &serde_json::Value,
        view: Option<&str>,
        named: &mut Vec<(String, PlanNode)>,
    ) -> PlanNode {
        let mut take = |name: &serde_json::Value| -> PlanNode {
            let name = text(name);
            match named.iter().position(|(n, _)| *n == name) {
                Some(i) => named.remove(i).1,
                None => PlanNode::leaf(format!("(read above: '{name}')")),
            }
        };
        let state_at = |kind: &str| {
            self.state_at(&match view {
                Some(v) => format!("{v}.{kind}"),
                None => kind.to_owned(),
            })
        };
        let combine = &stage["combine"];
        let node = match text(&combine["kind"]).as_str() {
            "union" => PlanNode {
                text: "Union".to_owned(),
                children: combine["of"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(&mut take)
                    .collect(),
            },
            "from" => take(&combine["of"]),
            "stream-static join" => PlanNode {
                text: format!(
                    "StreamStaticJoin {} on {}",
                    text(&combine["type"]),
                    list(&combine["on"])
                ),
                children: vec![
                    take(&combine["left"]),
                    PlanNode::leaf(format!("Table {}", text(&combine["table"]))),
                ],
            },
            "stream-stream join" => PlanNode {
                text: format!(
                    "StreamStreamJoin {} on {}{}",
                    text(&combine["type"]),
                    list(&combine["on"]),
                    state_at(crate::operators::join::symmetric::STATE_NAME)
                ),
                children: vec![take(&combine["left"]), take(&combine["right"])],
            },
            // The one input.
            _ => match named.is_empty() {
                true => PlanNode::leaf("(no input)".to_owned()),
                false => named.remove(0).1,
            },
        };
        let mut node = under_steps(node, &stage["steps"]);
        for op in stage["operators"].as_array().into_iter().flatten() {
            let line = match text(&op["kind"]).as_str() {
                "dropDuplicates" => format!(
                    "DropDuplicates {}{}",
                    list(&op["columns"]),
                    state_at(crate::operators::dedup::STATE_NAME)
                ),
                "aggregate" => format!(
                    "Aggregate groupBy {}{}, aggs {}{}",
                    list(&op["groupBy"]),
                    match &op["window"] {
                        serde_json::Value::Null => String::new(),
                        w => format!(", {}", text(w)),
                    },
                    list(&op["aggs"]),
                    state_at(crate::operators::aggregate::STATE_NAME)
                ),
                "processor" => format!(
                    "KeyedProcessor key {} ({}, {} time){}",
                    list(&op["key"]),
                    text(&op["module"]),
                    text(&op["timeMode"]),
                    state_at(crate::operators::processor::STATE_NAME)
                ),
                other => other.to_owned(),
            };
            node = PlanNode::over(line, node);
        }
        node
    }

    /// `; state <checkpoint>/state/<operator>, N partitions, watermark from input 'x'`.
    fn state_at(&self, operator: &str) -> String {
        let dir = match &self.checkpoint_location {
            Some(c) => c.join("state").join(operator).display().to_string(),
            None => format!("<temporary checkpoint>/state/{operator}"),
        };
        let partitions = match self.shuffle_partitions {
            Some(n) => format!("{n} partitions"),
            // The default follows parallelism, unless the checkpoint started with another.
            None => format!(
                "{} partitions (or as many as its checkpoint was started with)",
                self.parallelism
            ),
        };
        // The operators go by the query's watermark: one input's, or the min (or max, with
        // watermarkPolicy) over the inputs that declare one.
        let with_watermark: Vec<String> = self
            .inputs
            .iter()
            .filter(|i| i.watermark.is_some())
            .map(|i| format!("'{}'", i.name))
            .collect();
        let watermark = match (with_watermark.len(), self.watermark()) {
            (0, _) | (_, None) => String::new(),
            (1, Some(w)) => format!(
                "; watermark {} - {:?} from input {}",
                w.column, w.delay, with_watermark[0]
            ),
            (_, Some(_)) => format!(
                "; watermark the {} over inputs {}",
                match self.watermark_policy {
                    WatermarkPolicy::Min => "min",
                    WatermarkPolicy::Max => "max",
                },
                with_watermark.join(", ")
            ),
        };
        format!("; state {dir}, {partitions}{watermark}")
    }
}
