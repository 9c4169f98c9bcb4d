//! `levqor.v1.JobsService`: intake, reads, cancellation, steps, watching and approval.

use crate::call::{Reply, authed, authed_with_id, deadline, open};
use crate::convert::{Checks, from_json, id, limit, message, messages};
use crate::direct;
use crate::error::status_for;
use crate::pb;
use futures::stream::{self, BoxStream};
use levqor_core::{Admission, Levqor, SubmitRequest};
use serde_json::{Value, json};
use std::sync::Arc;
use tonic::{Request, Status};

/// Jobs over gRPC.
pub struct Jobs(pub Arc<Levqor>);

#[tonic::async_trait]
impl pb::jobs_service_server::JobsService for Jobs {
    async fn submit(&self, req: Request<pb::SubmitRequest>) -> Reply<pb::SubmitResponse> {
        authed(&self.0, req, |who, r| async move {
            let mut checks = Checks::default();
            let run_after = checks.time(r.run_after.as_ref(), "run_after");
            checks.finish()?;
            let request = SubmitRequest {
                workflow: r.workflow.map_or(Value::Null, direct::json_object),
                input: r.input.map_or_else(|| json!({}), direct::json),
                max_attempts: r.max_attempts,
                run_after,
                idempotency_key: r.idempotency_key,
            };
            let submitted = self.0.jobs().submit(&who, request).await?;
            let (replayed, job) = match submitted.admission {
                Admission::Created(job) => (false, job),
                Admission::Replayed(job) => (true, job),
            };
            Ok(pb::SubmitResponse {
                job: Some(direct::job(job)),
                replayed,
                warnings: messages(&submitted.warnings)?,
                screening: submitted.screening.map(from_json).transpose()?,
                quote: submitted.quote.map(direct::quote).transpose()?,
            })
        })
        .await
    }

    async fn get_job(&self, req: Request<pb::GetJobRequest>) -> Reply<pb::Job> {
        authed(&self.0, req, |who, r| async move {
            Ok(direct::job(
                self.0.jobs().get(&who, id(&r.id, "job")?).await?,
            ))
        })
        .await
    }

    async fn list_jobs(&self, req: Request<pb::ListJobsRequest>) -> Reply<pb::ListJobsResponse> {
        authed(&self.0, req, |who, r| async move {
            let page = self
                .0
                .jobs()
                .list(
                    &who,
                    r.status.as_deref(),
                    limit(r.limit),
                    r.cursor.as_deref(),
                )
                .await?;
            Ok(pb::ListJobsResponse {
                jobs: page.items.into_iter().map(direct::job).collect(),
                next_cursor: page.next_cursor,
            })
        })
        .await
    }

    async fn cancel_job(&self, req: Request<pb::CancelJobRequest>) -> Reply<pb::Job> {
        authed(&self.0, req, |who, r| async move {
            Ok(direct::job(
                self.0.jobs().cancel(&who, id(&r.id, "job")?).await?,
            ))
        })
        .await
    }

    async fn list_steps(&self, req: Request<pb::ListStepsRequest>) -> Reply<pb::ListStepsResponse> {
        authed(&self.0, req, |who, r| async move {
            let steps = self.0.jobs().steps(&who, id(&r.id, "job")?).await?;
            Ok(pb::ListStepsResponse {
                steps: messages(&steps)?,
            })
        })
        .await
    }

    type WatchStream = BoxStream<'static, Result<pb::JobEvent, Status>>;

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Reply<Self::WatchStream> {
        // A stream outlives the call's future, which is all tonic times out: the stream ends
        // itself at the deadline.
        let deadline = deadline(&req).map(|d| tokio::time::Instant::now() + d);
        authed_with_id(&self.0, req, |who, r, request_id| async move {
            let watch = self.0.jobs().watch(&who, id(&r.id, "job")?).await?;
            // Dropping the stream (the client cancelled, or the deadline passed) drops the
            // watch: nothing is read after that.
            let events = stream::unfold(Some(watch), move |watch| {
                let request_id = request_id.clone();
                async move {
                    let mut watch = watch?;
                    let next = match deadline {
                        Some(at) => match tokio::time::timeout_at(at, watch.next()).await {
                            Ok(next) => next?,
                            Err(_) => {
                                let late = Status::deadline_exceeded("the deadline passed");
                                return Some((Err(late), None));
                            }
                        },
                        None => watch.next().await?,
                    };
                    let event = next
                        .and_then(|snapshot| message(&snapshot))
                        .map_err(|e| status_for(e, &request_id));
                    Some((event, Some(watch)))
                }
            });
            Ok(Box::pin(events) as Self::WatchStream)
        })
        .await
    }

    async fn approve_job(&self, req: Request<pb::ApproveJobRequest>) -> Reply<pb::Job> {
        authed(&self.0, req, |who, r| async move {
            Ok(direct::job(
                self.0.jobs().approve(&who, id(&r.id, "job")?).await?,
            ))
        })
        .await
    }

    async fn get_workflow_schema(
        &self,
        req: Request<pb::GetWorkflowSchemaRequest>,
    ) -> Reply<pbjson_types::Struct> {
        open(req, |_, _| async move {
            from_json(self.0.jobs().workflow_schema().clone())
        })
        .await
    }
}
