//! What a step can see: the job's input and earlier step outputs, as
//! `{"input": …, "steps": {id: {"output": …}}, "job": {"id", "attempt"}}`. Templates
//! (`{{steps.c.output.body}}`) and `condition` paths (JSON pointers) both read this document.

use super::workflow::ConditionTest;
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// The document steps read.
#[derive(Debug, Clone)]
pub struct StepContext {
    doc: Value,
}

impl StepContext {
    /// A context with the job's input and no outputs yet.
    pub fn new(job_id: Uuid, attempt: i32, input: &Value) -> Self {
        Self {
            doc: json!({"input": input, "steps": {}, "job": {"id": job_id, "attempt": attempt}}),
        }
    }

    /// Names the node running the job (`{{job.node}}`).
    pub fn with_node(mut self, node: &str) -> Self {
        self.doc["job"]["node"] = Value::String(node.to_string());
        self
    }

    /// Records a step's output for later steps.
    pub fn set_output(&mut self, step_id: &str, output: Value) {
        self.doc["steps"]
            .as_object_mut()
            .expect("steps is an object")
            .insert(step_id.into(), json!({"output": output}));
    }

    /// The outputs so far, keyed by step id: the job's result when it succeeds.
    pub fn outputs(&self) -> Value {
        let steps = self.doc["steps"].as_object().cloned().unwrap_or_default();
        Value::Object(
            steps
                .into_iter()
                .map(|(k, v)| (k, v["output"].clone()))
                .collect::<Map<_, _>>(),
        )
    }

    /// The value at a JSON pointer.
    pub fn pointer(&self, pointer: &str) -> Option<&Value> {
        self.doc.pointer(pointer)
    }

    /// Replaces every `{{a.b.c}}` in `text` by the value at `/a/b/c` (strings as they are, other
    /// values as JSON). A reference to nothing is an error naming it.
    pub fn render(&self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed template in {text:?}"))?;
            let path = after[..end].trim();
            let pointer = format!(
                "/{}",
                path.split('.')
                    .map(escape_segment)
                    .collect::<Vec<_>>()
                    .join("/")
            );
            match self.doc.pointer(&pointer) {
                Some(Value::String(s)) => out.push_str(s),
                Some(v) => out.push_str(&v.to_string()),
                None => return Err(format!("template {{{{{path}}}}} refers to nothing")),
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Renders every string inside a JSON value.
    pub fn render_value(&self, value: &Value) -> Result<Value, String> {
        Ok(match value {
            Value::String(s) => Value::String(self.render(s)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.render_value(v))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_value(v)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }

    /// Evaluates a `condition` test.
    pub fn test(&self, test: &ConditionTest) -> bool {
        let found = self.pointer(&test.path);
        match (test.op.as_str(), found) {
            ("exists", found) => found.is_some(),
            (_, None) => test.op == "ne",
            ("eq", Some(v)) => json_eq(v, &test.value),
            ("ne", Some(v)) => !json_eq(v, &test.value),
            ("contains", Some(Value::String(s))) => {
                test.value.as_str().is_some_and(|needle| s.contains(needle))
            }
            ("contains", Some(Value::Array(items))) => {
                items.iter().any(|i| json_eq(i, &test.value))
            }
            ("contains", Some(Value::Object(map))) => {
                test.value.as_str().is_some_and(|k| map.contains_key(k))
            }
            (op @ ("gt" | "gte" | "lt" | "lte"), Some(v)) => match order(v, &test.value) {
                Some(ord) => match op {
                    "gt" => ord.is_gt(),
                    "gte" => ord.is_ge(),
                    "lt" => ord.is_lt(),
                    _ => ord.is_le(),
                },
                None => false,
            },
            _ => false,
        }
    }
}

fn escape_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// JSON equality in which numbers compare by value (`200` equals `200.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

/// Numbers order by value, strings lexically; anything else is unordered.
fn order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> StepContext {
        let mut c = StepContext::new(Uuid::nil(), 1, &json!({"x": "hi", "n": 3, "a/b": 1}));
        c.set_output(
            "c",
            json!({"status": 200, "body": {"items": [1, 2], "word": "levqor"}}),
        );
        c
    }

    fn test(path: &str, op: &str, value: Value) -> bool {
        ctx().test(&ConditionTest {
            path: path.into(),
            op: op.into(),
            value,
        })
    }

    #[test]
    fn templates_read_input_outputs_and_the_job() {
        let c = ctx();
        assert_eq!(
            c.render("say {{input.x}} {{ steps.c.output.status }}")
                .unwrap(),
            "say hi 200"
        );
        assert_eq!(c.render("{{steps.c.output.body.items}}").unwrap(), "[1,2]");
        assert_eq!(c.render("attempt {{job.attempt}}").unwrap(), "attempt 1");
        assert_eq!(c.render("plain").unwrap(), "plain");
    }

    #[test]
    fn a_template_that_refers_to_nothing_is_an_error() {
        assert!(
            ctx()
                .render("{{steps.zz.output}}")
                .unwrap_err()
                .contains("steps.zz.output")
        );
        assert!(ctx().render("{{input.x").is_err());
    }

    #[test]
    fn every_operator_decides() {
        assert!(test("/steps/c/output/status", "eq", json!(200)));
        assert!(test("/steps/c/output/status", "eq", json!(200.0)));
        assert!(!test("/steps/c/output/status", "ne", json!(200)));
        assert!(test("/steps/c/output/status", "gt", json!(199)));
        assert!(test("/steps/c/output/status", "gte", json!(200)));
        assert!(test("/steps/c/output/status", "lt", json!(201)));
        assert!(!test("/steps/c/output/status", "lte", json!(199)));
        assert!(test("/steps/c/output/body/items", "contains", json!(2)));
        assert!(test("/steps/c/output/body/word", "contains", json!("vq")));
        assert!(test("/steps/c/output/body", "contains", json!("word")));
        assert!(test("/input/x", "exists", Value::Null));
        assert!(!test("/input/missing", "exists", Value::Null));
        assert!(!test("/input/missing", "eq", json!(1)));
        assert!(test("/input/missing", "ne", json!(1)));
        assert!(!test("/input/x", "gt", json!(1)));
    }
}
