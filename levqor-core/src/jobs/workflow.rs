//! Workflow documents: their published JSON Schema, validation that reports every violation
//! with its JSON pointer, and the typed steps the engine runs.

use crate::error::{Error, Result, Violation};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;

/// The step types every Levqor engine runs.
pub const BUILTIN_STEP_TYPES: &[&str] = &["log", "delay", "condition", "http_request", "email"];

/// Step types that send through a delivery channel of the same name; a workflow may use one
/// only where that channel is configured ([`WorkflowSchema::with_channels`]).
pub const CHANNEL_STEP_TYPES: &[&str] = &["slack", "telegram", "webhook"];

/// Operators a `condition` step may use.
pub const CONDITION_OPS: &[&str] = &["eq", "ne", "gt", "gte", "lt", "lte", "exists", "contains"];

/// Most steps in one workflow.
pub const MAX_STEPS: usize = 100;

/// The workflow schema, compiled, for the step types this engine knows.
pub struct WorkflowSchema {
    document: Value,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for WorkflowSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowSchema").finish_non_exhaustive()
    }
}

impl WorkflowSchema {
    /// The schema for the built-in step types plus `connectors`: each connector's step type with
    /// the JSON Schema of its step (or `None`: any fields).
    pub fn new(connectors: &[(String, Option<Value>)]) -> Self {
        Self::with_channels(connectors, &[])
    }

    /// Like [`new`](Self::new), plus the step types of the configured delivery `channels`
    /// (those of [`CHANNEL_STEP_TYPES`] that no connector claims) and, with a `webhook`
    /// channel, the workflow's `callback_url`.
    pub fn with_channels(connectors: &[(String, Option<Value>)], channels: &[String]) -> Self {
        let document = schema_document(connectors, channels);
        let validator = jsonschema::validator_for(&document).expect("the workflow schema is valid");
        Self {
            document,
            validator,
        }
    }

    /// The JSON Schema document, as published at `GET /v1/schemas/workflow`.
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// Validates `workflow`, returning every violation (schema and cross-step rules) or the
    /// typed workflow.
    pub fn validate(&self, workflow: &Value) -> Result<Workflow> {
        let mut violations: Vec<Violation> = self
            .validator
            .iter_errors(workflow)
            .map(|e| Violation::new(e.instance_path().as_str().to_string(), e.to_string()))
            .collect();
        if violations.is_empty() {
            violations.extend(cross_step_violations(workflow));
        }
        if !violations.is_empty() {
            violations.sort_by(|a, b| a.pointer.cmp(&b.pointer));
            violations.dedup();
            return Err(Error::violations(
                "validation_failed",
                format!("the workflow has {} problem(s)", violations.len()),
                violations,
            ));
        }
        Workflow::parse(workflow)
    }

    /// Like [`validate`](Self::validate), for a workflow sent as the `workflow` field of a
    /// request: every violation's pointer starts with `/workflow`.
    pub fn validate_field(&self, workflow: &Value) -> Result<Workflow> {
        self.validate(workflow).map_err(|e| {
            Error::violations(
                "validation_failed",
                e.message,
                e.violations
                    .into_iter()
                    .map(|v| Violation::new(format!("/workflow{}", v.pointer), v.message))
                    .collect(),
            )
        })
    }
}

fn schema_document(connectors: &[(String, Option<Value>)], channels: &[String]) -> Value {
    let head = json!({"id": {"type": "string"}, "type": {"type": "string"}});
    let with_head = |props: Value| {
        let mut p = head.clone();
        p.as_object_mut()
            .unwrap()
            .extend(props.as_object().unwrap().clone());
        p
    };
    let mut types: Vec<Value> = BUILTIN_STEP_TYPES.iter().map(|t| json!(t)).collect();
    let mut defs = serde_json::Map::new();
    defs.insert(
        "log".into(),
        json!({"type": "object", "required": ["message"], "additionalProperties": false,
               "properties": with_head(json!({"message": {"type": "string", "maxLength": 10000}}))}),
    );
    defs.insert(
        "delay".into(),
        json!({"type": "object", "required": ["ms"], "additionalProperties": false,
               "properties": with_head(json!({"ms": {"type": "integer", "minimum": 0, "maximum": 2_592_000_000u64}}))}),
    );
    defs.insert(
        "http_request".into(),
        json!({"type": "object", "required": ["url"], "additionalProperties": false,
               "properties": with_head(json!({
                   "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]},
                   "url": {"type": "string", "minLength": 1, "maxLength": 2048},
                   "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                   "body": {},
                   "timeout_ms": {"type": "integer", "minimum": 1, "maximum": 60000}}))}),
    );
    defs.insert(
        "condition".into(),
        json!({"type": "object", "required": ["if"], "additionalProperties": false,
               "properties": with_head(json!({
                   "if": {"type": "object", "required": ["path", "op"], "additionalProperties": false,
                          "properties": {"path": {"type": "string", "pattern": "^(/.*)?$"},
                                         "op": {"enum": CONDITION_OPS}, "value": {}}},
                   "then": {"type": "string"},
                   "else": {"type": "string"}}))}),
    );
    defs.insert(
        "email".into(),
        json!({"type": "object", "required": ["to", "subject", "body"], "additionalProperties": false,
               "properties": with_head(json!({
                   "to": {"type": "string", "minLength": 3, "maxLength": 254},
                   "subject": {"type": "string", "maxLength": 998},
                   "body": {"type": "string", "maxLength": 100000}}))}),
    );
    let text = json!({"type": "string", "minLength": 1, "maxLength": 4000});
    let channel_steps = [
        (
            "slack",
            json!({"type": "object", "required": ["text"], "additionalProperties": false,
            "properties": with_head(json!({"text": text}))}),
        ),
        (
            "telegram",
            json!({"type": "object", "required": ["chat_id", "text"], "additionalProperties": false,
            "properties": with_head(json!({"chat_id": {"type": "string", "minLength": 1, "maxLength": 64}, "text": text}))}),
        ),
        (
            "webhook",
            json!({"type": "object", "required": ["url"], "additionalProperties": false,
            "properties": with_head(json!({
                "url": {"type": "string", "minLength": 1, "maxLength": 2048},
                "event": {"type": "string", "pattern": "^[a-z0-9_.]{1,64}$"},
                "body": {}}))}),
        ),
    ];
    for (name, def) in channel_steps {
        let claimed = connectors.iter().any(|(c, _)| c == name);
        if channels.iter().any(|c| c == name) && !claimed {
            types.push(json!(name));
            defs.insert(name.into(), def);
        }
    }
    for (name, schema) in connectors {
        types.push(json!(name));
        defs.insert(
            name.clone(),
            schema.clone().unwrap_or_else(|| json!({"type": "object"})),
        );
    }
    let branches: Vec<Value> = defs
        .keys()
        .map(|t| {
            json!({"if": {"properties": {"type": {"const": t}}, "required": ["type"]},
                   "then": {"$ref": format!("#/$defs/{t}")}})
        })
        .collect();
    let mut properties = json!({
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "steps": {"type": "array", "minItems": 1, "maxItems": MAX_STEPS, "items": {"$ref": "#/$defs/step"}}
    });
    if channels.iter().any(|c| c == "webhook") {
        properties["callback_url"] = json!({
            "type": "string", "minLength": 1, "maxLength": 2048,
            "description": "Receives a signed webhook (event job.succeeded, job.dead or job.canceled) when the job ends."
        });
    }
    defs.insert(
        "step".into(),
        json!({"type": "object", "required": ["id", "type"],
               "properties": {"id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                              "type": {"enum": types}},
               "allOf": branches}),
    );
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:levqor:schema:workflow",
        "title": "Levqor workflow",
        "description": "A name and ordered steps; each step has an id and a type.",
        "type": "object",
        "required": ["name", "steps"],
        "additionalProperties": false,
        "properties": properties,
        "$defs": defs,
    })
}

/// Rules that span steps, checked once the shape is right: unique ids, and `condition` targets
/// that exist and lie ahead (a workflow never loops).
fn cross_step_violations(workflow: &Value) -> Vec<Violation> {
    let steps = workflow["steps"].as_array().cloned().unwrap_or_default();
    let mut position: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let id = step["id"].as_str().unwrap_or_default();
        if position.contains_key(id) {
            out.push(Violation::new(
                format!("/steps/{i}/id"),
                format!("step id {id:?} is used more than once"),
            ));
        } else {
            position.insert(id, i);
        }
    }
    for (i, step) in steps.iter().enumerate() {
        if step["type"] != "condition" {
            continue;
        }
        for branch in ["then", "else"] {
            let Some(target) = step[branch].as_str() else {
                continue;
            };
            match position.get(target) {
                None => out.push(Violation::new(
                    format!("/steps/{i}/{branch}"),
                    format!("no step has id {target:?}"),
                )),
                Some(&j) if j <= i => out.push(Violation::new(
                    format!("/steps/{i}/{branch}"),
                    format!(
                        "step {target:?} is not after this condition; workflows only jump forward"
                    ),
                )),
                Some(_) => {}
            }
        }
    }
    out
}

/// A validated workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    /// Its name.
    pub name: String,
    /// Its steps, in order.
    pub steps: Vec<Step>,
    /// Receives a signed webhook when the job ends.
    pub callback_url: Option<String>,
}

/// One step: its id, its type, and the whole step document (connectors read their own fields).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Unique within the workflow.
    pub id: String,
    /// A built-in type or a registered connector's.
    pub kind: String,
    /// The step as submitted.
    pub spec: Value,
}

impl Workflow {
    /// Reads a workflow that already passed validation (also used on stored jobs).
    pub fn parse(workflow: &Value) -> Result<Workflow> {
        let name = workflow["name"].as_str().unwrap_or_default().to_string();
        let steps = workflow["steps"]
            .as_array()
            .ok_or_else(|| Error::invalid("validation_failed", "workflow has no steps"))?
            .iter()
            .map(|s| Step {
                id: s["id"].as_str().unwrap_or_default().to_string(),
                kind: s["type"].as_str().unwrap_or_default().to_string(),
                spec: s.clone(),
            })
            .collect();
        let callback_url = workflow["callback_url"].as_str().map(str::to_string);
        Ok(Workflow {
            name,
            steps,
            callback_url,
        })
    }

    /// The position of the step with id `id`.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.id == id)
    }
}

/// An `http_request` step.
#[derive(Debug, Clone, Deserialize)]
pub struct HttpRequestStep {
    /// HTTP method; GET by default.
    #[serde(default = "default_method")]
    pub method: String,
    /// Absolute http(s) URL; may hold templates.
    pub url: String,
    /// Request headers; values may hold templates.
    #[serde(default)]
    pub headers: HashMap<String, String>,
    /// JSON body (strings inside may hold templates); none when null.
    #[serde(default)]
    pub body: Value,
    /// Whole-request timeout.
    pub timeout_ms: Option<u64>,
}

fn default_method() -> String {
    "GET".into()
}

/// A `condition` step.
#[derive(Debug, Clone, Deserialize)]
pub struct ConditionStep {
    /// The test.
    #[serde(rename = "if")]
    pub test: ConditionTest,
    /// Where to go when the test holds (default: the next step).
    pub then: Option<String>,
    /// Where to go when it does not (default: the next step).
    #[serde(rename = "else")]
    pub otherwise: Option<String>,
}

/// `{"path", "op", "value"}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ConditionTest {
    /// JSON pointer into `{"input", "steps": {id: {"output"}}}`.
    pub path: String,
    /// One of [`CONDITION_OPS`].
    pub op: String,
    /// What to compare with.
    #[serde(default)]
    pub value: Value,
}

/// A `slack` step: a message to the deployment's Slack incoming webhook.
#[derive(Debug, Clone, Deserialize)]
pub struct SlackStep {
    /// The text; may hold templates.
    pub text: String,
}

/// A `telegram` step: a message from the deployment's bot to a chat.
#[derive(Debug, Clone, Deserialize)]
pub struct TelegramStep {
    /// The chat; may hold templates.
    pub chat_id: String,
    /// The text; may hold templates.
    pub text: String,
}

/// A `webhook` step: a signed `POST` of a JSON document.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookStep {
    /// Where; may hold templates.
    pub url: String,
    /// The event name sent in `Levqor-Event` (default `workflow.step`).
    pub event: Option<String>,
    /// The document; strings in it may hold templates.
    #[serde(default)]
    pub body: Value,
}

/// An `email` step.
#[derive(Debug, Clone, Deserialize)]
pub struct EmailStep {
    /// Recipient; may hold templates.
    pub to: String,
    /// Subject; may hold templates.
    pub subject: String,
    /// Body; may hold templates.
    pub body: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> WorkflowSchema {
        WorkflowSchema::new(&[])
    }

    #[test]
    fn a_workflow_with_every_step_type_validates() {
        let wf = json!({"name": "tour", "steps": [
            {"id": "a", "type": "log", "message": "start"},
            {"id": "b", "type": "delay", "ms": 200},
            {"id": "c", "type": "http_request", "method": "GET", "url": "https://example.com", "headers": {}, "body": null, "timeout_ms": 5000},
            {"id": "d", "type": "condition", "if": {"path": "/steps/c/output/status", "op": "eq", "value": 200}, "then": "e", "else": "f"},
            {"id": "e", "type": "email", "to": "a@b.c", "subject": "s", "body": "b"},
            {"id": "f", "type": "log", "message": "end"}
        ]});
        let parsed = schema().validate(&wf).unwrap();
        assert_eq!(parsed.steps.len(), 6);
        assert_eq!(parsed.steps[3].kind, "condition");
    }

    #[test]
    fn every_violation_is_reported_with_its_pointer() {
        let wf = json!({"name": "", "steps": [
            {"id": "a", "type": "log"},
            {"id": "b", "type": "teleport"},
            {"id": "c", "type": "delay", "ms": -1},
            {"type": "log", "message": "x"}
        ], "extra": 1});
        let err = schema().validate(&wf).unwrap_err();
        let pointers: Vec<&str> = err.violations.iter().map(|v| v.pointer.as_str()).collect();
        for expected in [
            "",
            "/name",
            "/steps/0",
            "/steps/1/type",
            "/steps/2/ms",
            "/steps/3",
        ] {
            assert!(
                pointers.contains(&expected),
                "missing {expected:?} in {pointers:?}"
            );
        }
    }

    #[test]
    fn condition_targets_must_exist_and_lie_ahead() {
        let wf = json!({"name": "n", "steps": [
            {"id": "a", "type": "log", "message": "x"},
            {"id": "d", "type": "condition", "if": {"path": "/input/x", "op": "exists"}, "then": "a", "else": "zz"},
            {"id": "a", "type": "log", "message": "y"}
        ]});
        let err = schema().validate(&wf).unwrap_err();
        let pointers: Vec<&str> = err.violations.iter().map(|v| v.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            vec!["/steps/1/else", "/steps/1/then", "/steps/2/id"]
        );
    }

    #[test]
    fn registered_connectors_extend_the_schema() {
        let with = WorkflowSchema::new(&[("slack".into(), None)]);
        let wf = json!({"name": "n", "steps": [{"id": "s", "type": "slack", "channel": "#x"}]});
        assert!(with.validate(&wf).is_ok());
        assert!(schema().validate(&wf).is_err());
    }
}
