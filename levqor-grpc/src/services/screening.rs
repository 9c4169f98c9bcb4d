//! `levqor.v1.ScreeningService`: free-text screening, the rule set and appeals.

use crate::MAX_MESSAGE_BYTES;
use crate::call::{Reply, authed};
use crate::convert::{id, message, messages};
use crate::pb;
use levqor_core::Levqor;
use serde_json::{Value, json};
use std::sync::Arc;
use tonic::{Request, Status};

/// Screening over gRPC.
pub struct Screening(pub Arc<Levqor>);

#[tonic::async_trait]
impl pb::screening_service_server::ScreeningService for Screening {
    async fn screen(&self, req: Request<pb::ScreenRequest>) -> Reply<pb::Screening> {
        within_limit(&req)?;
        authed(&self.0, req, |_, r| async move {
            message(&self.0.screenings().screen_text(&r.text).await?)
        })
        .await
    }

    async fn get_rules(&self, req: Request<pb::GetRulesRequest>) -> Reply<pb::RuleSet> {
        authed(&self.0, req, |who, _| async move {
            message(&self.0.screenings().rules(&who).await?)
        })
        .await
    }

    async fn set_rules(&self, req: Request<pb::SetRulesRequest>) -> Reply<pb::RuleSet> {
        authed(&self.0, req, |who, r| async move {
            message(
                &self
                    .0
                    .screenings()
                    .set_rules(&who, rule_set_document(r))
                    .await?,
            )
        })
        .await
    }

    async fn appeal(&self, req: Request<pb::AppealRequest>) -> Reply<pb::ScreeningRecord> {
        within_limit(&req)?;
        authed(&self.0, req, |who, r| async move {
            let job = id(&r.job_id, "refused job")?;
            message(&self.0.screenings().appeal(&who, job, &r.reason).await?)
        })
        .await
    }

    async fn list_appeals(
        &self,
        req: Request<pb::ListAppealsRequest>,
    ) -> Reply<pb::ListAppealsResponse> {
        authed(&self.0, req, |who, _| async move {
            let appeals = self.0.screenings().pending_appeals(&who).await?;
            Ok(pb::ListAppealsResponse {
                appeals: messages(&appeals)?,
            })
        })
        .await
    }

    async fn decide_appeal(
        &self,
        req: Request<pb::DecideAppealRequest>,
    ) -> Reply<pb::AppealDecision> {
        within_limit(&req)?;
        authed(&self.0, req, |who, r| async move {
            let appeal = id(&r.id, "appeal")?;
            let decision = self
                .0
                .screenings()
                .decide_appeal(&who, appeal, r.approve, r.note.as_deref())
                .await?;
            message(&decision)
        })
        .await
    }
}

/// The request as the core's rule set document: every field as sent, empty ones included (so
/// the core names a blank term), unset optional ones left out (so their defaults apply).
/// The service decodes messages up to the rule documents' limit; every call but `SetRules`
/// keeps the limit of every other service, refused as tonic refuses a message over it.
fn within_limit<T: prost::Message>(req: &Request<T>) -> Result<(), Status> {
    let len = req.get_ref().encoded_len();
    if len > MAX_MESSAGE_BYTES {
        return Err(Status::out_of_range(format!(
            "the message is {len} bytes; at most {MAX_MESSAGE_BYTES} are allowed"
        )));
    }
    Ok(())
}

fn rule_set_document(r: pb::SetRulesRequest) -> Value {
    let rules: Vec<Value> = r
        .rules
        .into_iter()
        .map(|r| {
            let mut rule = json!({"term": r.term, "category": r.category, "severity": r.severity});
            put(&mut rule, "unless", r.unless.map(Value::from));
            put(&mut rule, "within", r.within.map(Value::from));
            rule
        })
        .collect();
    let lists: Vec<Value> = r
        .lists
        .into_iter()
        .map(|l| json!({"name": l.name, "terms": l.terms}))
        .collect();
    let intents: Vec<Value> = r
        .intents
        .into_iter()
        .map(|i| {
            let mut intent = json!({"name": i.name, "action": i.action, "ordered": i.ordered});
            for (field, value) in [
                ("subject", i.subject),
                ("marks", i.marks),
                ("category", i.category),
                ("severity", i.severity),
                ("escalated", i.escalated),
                ("informational", i.informational),
                ("reviewed", i.reviewed),
                ("to_everyone", i.to_everyone),
                ("unless", i.unless),
            ] {
                put(&mut intent, field, value.map(Value::from));
            }
            put(&mut intent, "window", i.window.map(Value::from));
            intent
        })
        .collect();
    let mut doc = json!({"rules": rules, "lists": lists, "intents": intents});
    put(&mut doc, "model", r.model.map(model_document));
    doc
}

/// The learned stage as the core reads it: each feature's weights a list of integers (a
/// `ListValue` carries numbers as doubles; one that is not a whole number stays as it is, for
/// the core to refuse with its pointer).
fn model_document(m: pb::Model) -> Value {
    let number = |v: &pbjson_types::Value| match &v.kind {
        Some(pbjson_types::value::Kind::NumberValue(n)) if n.fract() == 0.0 && n.abs() < 1e15 => {
            Value::from(*n as i64)
        }
        _ => serde_json::to_value(v).unwrap_or(Value::Null),
    };
    let weights: serde_json::Map<String, Value> = m
        .weights
        .into_iter()
        .map(|(feature, list)| {
            let values: Vec<Value> = list.values.iter().map(number).collect();
            (feature, Value::from(values))
        })
        .collect();
    let mut doc = json!({
        "escalate_at": m.escalate_at,
        "clear_below": m.clear_below,
        "bias": m.bias,
        "weights": weights,
    });
    put(&mut doc, "window", m.window.map(Value::from));
    doc
}

/// Sets `field` of the object `doc` when there is a value.
fn put(doc: &mut Value, field: &str, value: Option<Value>) {
    if let (Some(object), Some(value)) = (doc.as_object_mut(), value) {
        object.insert(field.to_owned(), value);
    }
}
