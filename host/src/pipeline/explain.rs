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
        node = PlanNode::over(
            format!("WasmStep '{}' ({})", text(&s["name"]), text(&s["module"])),
            node,
        );
    }
    node
}

impl QuerySpec {
    /// The query's plan as a tree of text lines, the sink first.
    pub fn explain(&self) -> String {
        let view = self.plan_view();
        let inputs: Vec<PlanNode> = view["inputs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                let watermark = match &i["watermark"] {
                    serde_json::Value::Null => String::new(),
                    w => format!(", watermark {}", text(w)),
                };
                under_steps(
                    PlanNode::leaf(format!(
                        "Input '{}': {}{watermark}",
                        text(&i["name"]),
                        text(&i["source"])
                    )),
                    &i["steps"],
                )
            })
            .collect();
        let combine = &view["combine"];
        let mut node = match text(&combine["kind"]).as_str() {
            "union" => PlanNode {
                text: "Union".to_owned(),
                children: inputs,
            },
            "stream-static join" => {
                let table = PlanNode::leaf(format!("Table {}", text(&combine["table"])));
                let mut children = inputs;
                children.push(table);
                PlanNode {
                    text: format!(
                        "StreamStaticJoin {} on {}",
                        text(&combine["type"]),
                        list(&combine["on"])
                    ),
                    children,
                }
            }
            "stream-stream join" => PlanNode {
                text: format!(
                    "StreamStreamJoin {} on {}{}",
                    text(&combine["type"]),
                    list(&combine["on"]),
                    self.state_at(crate::operators::join::symmetric::STATE_NAME)
                ),
                children: inputs,
            },
            _ => inputs
                .into_iter()
                .next()
                .unwrap_or_else(|| PlanNode::leaf("(no input)".to_owned())),
        };
        node = under_steps(node, &view["steps"]);
        for op in view["operators"].as_array().into_iter().flatten() {
            let line = match text(&op["kind"]).as_str() {
                "dropDuplicates" => format!(
                    "DropDuplicates {}{}",
                    list(&op["columns"]),
                    self.state_at(crate::operators::dedup::STATE_NAME)
                ),
                "aggregate" => format!(
                    "Aggregate groupBy {}{}, aggs {}{}",
                    list(&op["groupBy"]),
                    match &op["window"] {
                        serde_json::Value::Null => String::new(),
                        w => format!(", {}", text(w)),
                    },
                    list(&op["aggs"]),
                    self.state_at(crate::operators::aggregate::STATE_NAME)
                ),
                "processor" => format!(
                    "KeyedProcessor key {} ({}, {} time){}",
                    list(&op["key"]),
                    text(&op["module"]),
                    text(&op["timeMode"]),
                    self.state_at(crate::operators::processor::STATE_NAME)
                ),
                other => other.to_owned(),
            };
            node = PlanNode::over(line, node);
        }
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
