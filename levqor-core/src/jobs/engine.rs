//! The engine: a pool of workers on one node. It claims due jobs in batches under a lease,
//! heartbeats the leases while jobs run, checkpoints every finished step, and ends each attempt
//! with one write; writes from all workers are group-committed. Leases that expire (a node
//! died) are reaped by any node. Shutdown stops claiming, lets running steps finish for a
//! bounded time, and releases the rest.

use super::context::StepContext;
use super::model::{JobStatus, StepRecord, StepStatus};
use super::steps::{StepFailure, StepOutcome, StepRunner, callback_message};
use super::store::{Claim, ClaimedJob, Finish, JobStore, Lease, Write};
use super::workflow::Workflow;
use crate::batch::Batcher;
use crate::clock::Clock;
use crate::notify::{DispatchHandle, Dispatcher, OutboxMessage};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, broadcast};
use tokio::task::JoinSet;
use uuid::Uuid;

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Jobs run at once on this node.
    pub workers: usize,
    /// Most jobs taken by one claim.
    pub claim_batch: usize,
    /// How long a claim holds a job without a heartbeat.
    pub lease: Duration,
    /// How often an idle node looks for due jobs.
    pub poll_interval: Duration,
    /// First retry delay; doubled on each further attempt.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_cap: Duration,
    /// How long shutdown waits for running steps.
    pub shutdown_grace: Duration,
    /// How often expired leases are looked for.
    pub reap_interval: Duration,
    /// How often the node checks that every system task has its job for the current period.
    pub system_interval: Duration,
    /// This node's name, for operators.
    pub node: String,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            workers: 64,
            claim_batch: 500,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(100),
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(3600),
            shutdown_grace: Duration::from_secs(10),
            reap_interval: Duration::from_secs(1),
            system_interval: Duration::from_secs(60),
            node: format!("node-{}", Uuid::new_v4().simple()),
        }
    }
}

pub use crate::backoff::retry_delay;

/// Signals shared between the engine and the intake/cancel paths of the same process.
pub struct EngineSignals {
    wake: Notify,
    cancels: Mutex<HashMap<Uuid, Arc<AtomicBool>>>,
    changes: broadcast::Sender<Uuid>,
}

impl Default for EngineSignals {
    fn default() -> Self {
        Self {
            wake: Notify::new(),
            cancels: Mutex::new(HashMap::new()),
            changes: broadcast::channel(1024).0,
        }
    }
}

impl EngineSignals {
    /// Tells watchers in this process that a job changed (claimed, checkpointed, ended,
    /// cancelled, approved). Watchers of jobs that change on other nodes find out by polling.
    pub fn changed(&self, job_id: Uuid) {
        // No watcher, no receiver: nothing to tell.
        let _ = self.changes.send(job_id);
    }

    /// The ids of jobs as they change in this process.
    pub fn changes(&self) -> broadcast::Receiver<Uuid> {
        self.changes.subscribe()
    }

    /// How many watches of jobs are open in this process.
    pub fn watchers(&self) -> usize {
        self.changes.receiver_count()
    }

    /// Tells idle workers that a job may be due.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Asks a job running on this node to stop at its next step boundary; other nodes learn
    /// it from their next heartbeat.
    pub fn cancel(&self, job_id: Uuid) {
        if let Some(flag) = self.cancels.lock().expect("cancels lock").get(&job_id) {
            flag.store(true, Ordering::SeqCst);
        }
    }
}

struct Shared {
    store: Arc<dyn JobStore>,
    runner: Arc<StepRunner>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    signals: Arc<EngineSignals>,
    stopping: AtomicBool,
    leases: Mutex<HashMap<Uuid, Lease>>,
    writes: Batcher<Write, bool>,
}

/// A running engine; [`EngineHandle::shutdown`] stops it gracefully.
pub struct EngineHandle {
    shared: Arc<Shared>,
    claimer: tokio::task::JoinHandle<JoinSet<()>>,
    background: Vec<tokio::task::JoinHandle<()>>,
    dispatcher: Option<DispatchHandle>,
}

/// What an engine runs on: the jobs' store, the step runner, the clock, and the signals
/// between intake and this node's engine.
pub struct EngineParts {
    /// Where the jobs are.
    pub store: Arc<dyn JobStore>,
    /// Runs the steps.
    pub runner: Arc<StepRunner>,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// Wake-ups, changes and cancellations.
    pub signals: Arc<EngineSignals>,
}

/// Starts the engine on the current tokio runtime.
pub fn start(parts: EngineParts, config: EngineConfig) -> EngineHandle {
    let shared = Shared::new(parts, config);
    let claimer = tokio::spawn(claim_loop(shared.clone()));
    let background = vec![
        tokio::spawn(heartbeat_loop(shared.clone())),
        tokio::spawn(reap_loop(shared.clone())),
        tokio::spawn(system_loop(shared.clone())),
    ];
    EngineHandle {
        shared,
        claimer,
        background,
        dispatcher: None,
    }
}

/// Claims up to `limit` due jobs as `config.node` and runs each attempt to its end, one after
/// another, on the calling task: the engine without a worker pool, for an embedder that drives
/// it from its own loop. No heartbeat runs, so an attempt longer than `config.lease` may be
/// taken over by a running engine. Returns how many attempts ran.
pub async fn run_due(
    parts: EngineParts,
    config: EngineConfig,
    limit: usize,
) -> crate::error::Result<usize> {
    if limit == 0 {
        return Ok(0);
    }
    let shared = Shared::new(parts, config);
    let claim = shared.claim(limit);
    let claimed = shared.store.claim_due(&claim).await?;
    let ran = claimed.len();
    let slot = Arc::new(Semaphore::new(1));
    for job in claimed {
        let permit = slot
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore is never closed");
        run_claimed(shared.clone(), job, claim.token, permit).await;
    }
    Ok(ran)
}

impl Shared {
    fn new(parts: EngineParts, config: EngineConfig) -> Arc<Shared> {
        let EngineParts {
            store,
            runner,
            clock,
            signals,
        } = parts;
        let commit_store = store.clone();
        let writes = Batcher::spawn(1000, 2, move |batch: Vec<Write>| {
            let store = commit_store.clone();
            async move { store.commit(&batch).await }
        });
        Arc::new(Shared {
            store,
            runner,
            clock,
            config,
            signals,
            stopping: AtomicBool::new(false),
            leases: Mutex::new(HashMap::new()),
            writes,
        })
    }

    /// A claim of up to `limit` due jobs by this node, leased from now.
    fn claim(&self, limit: usize) -> Claim {
        let now = self.clock.now_micros();
        Claim {
            token: Uuid::new_v4(),
            worker: self.config.node.clone(),
            now,
            lease_until: now + self.config.lease,
            limit,
        }
    }
}

impl EngineHandle {
    /// The node's outbox dispatcher, stopped with the engine (its deliveries in flight end
    /// and are recorded first).
    pub(crate) fn set_dispatcher(&mut self, dispatcher: DispatchHandle) {
        self.dispatcher = Some(dispatcher);
    }

    /// The running outbox dispatcher, if a channel is configured.
    pub fn dispatcher(&self) -> Option<&Arc<Dispatcher>> {
        self.dispatcher.as_ref().map(DispatchHandle::dispatcher)
    }

    /// Adds a task that runs as long as the engine and is stopped with it.
    pub(crate) fn add_background(&mut self, task: tokio::task::JoinHandle<()>) {
        self.background.push(task);
    }

    /// Stops claiming, lets running jobs finish their current step (up to the grace period),
    /// then releases whatever still runs so another node can take it at once.
    pub async fn shutdown(self) {
        let shared = self.shared;
        if let Some(dispatcher) = self.dispatcher {
            dispatcher.shutdown(shared.config.shutdown_grace).await;
        }
        shared.stopping.store(true, Ordering::SeqCst);
        shared.signals.wake.notify_waiters();
        let mut running = match self.claimer.await {
            Ok(set) => set,
            Err(_) => JoinSet::new(),
        };
        let drained = tokio::time::timeout(shared.config.shutdown_grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            running.abort_all();
            while running.join_next().await.is_some() {}
            let leftover: Vec<Lease> = shared
                .leases
                .lock()
                .expect("leases lock")
                .drain()
                .map(|(_, l)| l)
                .collect();
            let now = shared.clock.now();
            let releases: Vec<Write> = leftover
                .into_iter()
                .map(|lease| Write::Finish(release(lease, now, Vec::new())))
                .collect();
            if let Err(e) = shared.store.commit(&releases).await {
                tracing::warn!(error = %e, "could not release jobs at shutdown; their leases will expire");
            }
        }
        for task in self.background {
            task.abort();
        }
    }
}

fn release(lease: Lease, now: DateTime<Utc>, steps: Vec<StepRecord>) -> Finish {
    Finish {
        messages: Vec::new(),
        lease,
        status: JobStatus::Queued,
        run_after: Some(now),
        result: None,
        error: None,
        steps,
        attempts_delta: -1,
        now,
    }
}

async fn claim_loop(shared: Arc<Shared>) -> JoinSet<()> {
    let slots = Arc::new(Semaphore::new(shared.config.workers.max(1)));
    let mut running = JoinSet::new();
    loop {
        while running.try_join_next().is_some() {}
        if shared.stopping.load(Ordering::SeqCst) {
            return running;
        }
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("semaphore is never closed"),
            _ = shared.signals.wake.notified() => continue,
        };
        let mut permits = gather_permits(&slots, first, &shared.config).await;
        let claim = shared.claim(permits.len());
        let claimed = match shared.store.claim_due(&claim).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "claiming jobs failed; retrying");
                Vec::new()
            }
        };
        let full = claimed.len() == permits.len();
        for job in claimed {
            let permit = permits.pop().expect("one permit per claimed job");
            running.spawn(run_claimed(shared.clone(), job, claim.token, permit));
        }
        drop(permits);
        if !full {
            tokio::select! {
                _ = tokio::time::sleep(shared.config.poll_interval) => {}
                _ = shared.signals.wake.notified() => {}
            }
        }
    }
}

/// Collects worker slots for one claim. When most workers are busy it lingers up to 2 ms for a
/// quarter of a batch to free up, so that a busy node makes a few large claims rather than many
/// small ones (each claim walks the due index, which is the expensive part of claiming).
async fn gather_permits(
    slots: &Arc<Semaphore>,
    first: OwnedSemaphorePermit,
    config: &EngineConfig,
) -> Vec<OwnedSemaphorePermit> {
    let target = config.claim_batch.min(config.workers).max(1);
    let enough = (target / 4).max(1);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(2);
    let mut permits = vec![first];
    while permits.len() < target {
        if let Ok(p) = slots.clone().try_acquire_owned() {
            permits.push(p);
            continue;
        }
        if permits.len() >= enough {
            break;
        }
        match tokio::time::timeout_at(deadline, slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => permits.push(p),
            _ => break,
        }
    }
    permits
}

async fn heartbeat_loop(shared: Arc<Shared>) {
    let every = shared.config.lease / 3;
    loop {
        tokio::time::sleep(every).await;
        let leases: Vec<Lease> = shared
            .leases
            .lock()
            .expect("leases lock")
            .values()
            .copied()
            .collect();
        if leases.is_empty() {
            continue;
        }
        let until = shared.clock.now() + shared.config.lease;
        match shared.store.extend_leases(&leases, until).await {
            Ok(canceled) => {
                let cancels = shared.signals.cancels.lock().expect("cancels lock");
                for id in canceled {
                    if let Some(flag) = cancels.get(&id) {
                        flag.store(true, Ordering::SeqCst);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}

async fn reap_loop(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(shared.config.reap_interval).await;
        match shared.store.reap_expired(shared.clock.now()).await {
            Ok(r) if r.retried + r.dead > 0 => {
                tracing::info!(
                    retried = r.retried,
                    dead = r.dead,
                    "reaped jobs whose worker was lost"
                );
                shared.signals.wake();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reaping expired leases failed"),
        }
    }
}

/// Admits, for every system task, the job of the period `now` falls in. The idempotency key
/// names the task and the period, and the request is the same on every node, so however many
/// nodes do this, each period gets one job.
pub async fn schedule_system_jobs(
    store: &dyn JobStore,
    runner: &StepRunner,
    now: DateTime<Utc>,
) -> crate::error::Result<usize> {
    use super::intake::{SubmitRequest, fingerprint};
    use super::model::Job;
    use super::store::NewJob;
    let mut jobs = Vec::new();
    for task in runner.system_tasks().all() {
        let period = task.period().as_secs().max(1) as i64;
        let slot = now.timestamp().div_euclid(period);
        let starts = DateTime::from_timestamp(slot * period, 0).unwrap_or(now);
        let request = SubmitRequest {
            workflow: serde_json::json!({"steps": [{"id": "run", "type": "system", "task": task.name()}]}),
            input: serde_json::json!({}),
            max_attempts: Some(3),
            run_after: Some(starts),
            idempotency_key: Some(format!("system:{}:{slot}", task.name())),
        };
        let request_hash = fingerprint(&request);
        jobs.push(NewJob {
            job: Job {
                id: Uuid::now_v7(),
                owner_id: super::SYSTEM_OWNER,
                workflow: request.workflow,
                input: request.input,
                status: JobStatus::Queued,
                attempts: 0,
                max_attempts: 3,
                run_after: starts,
                result: None,
                error: None,
                cancel_requested: false,
                idempotency_key: request.idempotency_key,
                created_at: now,
                updated_at: now,
                started_at: None,
                finished_at: None,
            },
            request_hash,
            hold: None,
        });
    }
    if jobs.is_empty() {
        return Ok(0);
    }
    let results = store.admit_batch(jobs).await?;
    Ok(results
        .iter()
        .filter(|r| matches!(r, Ok(super::store::Admission::Created(_))))
        .count())
}

async fn system_loop(shared: Arc<Shared>) {
    loop {
        match schedule_system_jobs(shared.store.as_ref(), &shared.runner, shared.clock.now()).await
        {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(jobs = n, "system jobs admitted");
                shared.signals.wake();
            }
            Err(e) => tracing::warn!(error = %e, "admitting system jobs failed"),
        }
        tokio::time::sleep(shared.config.system_interval).await;
    }
}

fn record(
    job_id: Uuid,
    step_id: &str,
    position: usize,
    attempt: i32,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
) -> StepRecord {
    StepRecord {
        job_id,
        step_id: step_id.to_string(),
        position: position as i32,
        status: StepStatus::Succeeded,
        output: Value::Null,
        error: None,
        attempt,
        started_at: started,
        finished_at: finished,
    }
}

/// Runs a job this node just claimed: it holds the lease (so heartbeats and shutdown see it)
/// and can be cancelled while it runs.
async fn run_claimed(
    shared: Arc<Shared>,
    job: ClaimedJob,
    token: Uuid,
    permit: OwnedSemaphorePermit,
) {
    let lease = Lease {
        job_id: job.job.id,
        token,
    };
    let cancel = Arc::new(AtomicBool::new(job.job.cancel_requested));
    shared.signals.changed(lease.job_id);
    shared
        .leases
        .lock()
        .expect("leases lock")
        .insert(lease.job_id, lease);
    shared
        .signals
        .cancels
        .lock()
        .expect("cancels lock")
        .insert(lease.job_id, cancel.clone());
    run_job(&shared, job, lease, cancel, permit).await;
    shared
        .leases
        .lock()
        .expect("leases lock")
        .remove(&lease.job_id);
    shared
        .signals
        .cancels
        .lock()
        .expect("cancels lock")
        .remove(&lease.job_id);
}

/// Runs one claimed attempt to its end (or to a boundary where it must stop) and writes it.
/// The worker slot is freed as soon as the steps are done, so the next claim overlaps with the
/// group commit of this one's end (the commit queue bounds how many ends wait).
async fn run_job(
    shared: &Shared,
    claimed: ClaimedJob,
    lease: Lease,
    cancel: Arc<AtomicBool>,
    slot: OwnedSemaphorePermit,
) {
    let job = &claimed.job;
    let mut finish = execute(shared, &claimed, lease, &cancel).await;
    drop(slot);
    // A job that ends calls its `callback_url` back, in the same write as its end.
    if let Some(f) = finish.as_mut()
        && f.status.is_terminal()
        && let Some(url) = job.workflow["callback_url"].as_str()
    {
        f.messages.push(callback_message(
            job,
            url,
            f.status,
            f.result.as_ref(),
            f.error.as_deref(),
            f.now,
        ));
    }
    let Some(finish) = finish else {
        tracing::warn!(job_id = %job.id, "lease lost while running; another node owns the job");
        return;
    };
    let (status, run_after) = (finish.status, finish.run_after);
    match shared.writes.submit(Write::Finish(finish)).await {
        Ok(true) => {
            shared.signals.changed(job.id);
            if status == JobStatus::Queued || status == JobStatus::Failed {
                wake_at(shared, run_after);
            }
        }
        Ok(false) => {
            tracing::warn!(job_id = %job.id, "lease lost before the attempt was written; another node owns the job")
        }
        Err(e) => {
            tracing::warn!(job_id = %job.id, error = %e, "could not write the end of an attempt; the lease will expire")
        }
    }
}

fn wake_at(shared: &Shared, at: Option<DateTime<Utc>>) {
    let Some(at) = at else { return };
    let wait = (at - shared.clock.now()).to_std().unwrap_or_default();
    if wait > shared.config.poll_interval * 20 {
        return;
    }
    let signals = shared.signals.clone();
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        signals.wake();
    });
}

async fn execute(
    shared: &Shared,
    claimed: &ClaimedJob,
    lease: Lease,
    cancel: &AtomicBool,
) -> Option<Finish> {
    let job = &claimed.job;
    let mut messages: Vec<OutboxMessage> = Vec::new();
    let end = |status, run_after, result, error, steps, messages, attempts_delta| {
        Some(Finish {
            messages,
            lease,
            status,
            run_after,
            result,
            error,
            steps,
            attempts_delta,
            now: shared.clock.now(),
        })
    };
    let workflow = match Workflow::parse(&job.workflow) {
        Ok(w) => w,
        Err(e) => {
            return end(
                JobStatus::Dead,
                None,
                None,
                Some(e.message),
                Vec::new(),
                Vec::new(),
                0,
            );
        }
    };
    let done: HashSet<&str> = claimed
        .steps
        .iter()
        .filter(|s| s.status != StepStatus::Failed)
        .map(|s| s.step_id.as_str())
        .collect();
    let mut ctx = StepContext::new(job.id, job.attempts, &job.input).with_node(&shared.config.node);
    for step in claimed
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Succeeded)
    {
        ctx.set_output(&step.step_id, step.output.clone());
    }
    let mut pending: Vec<StepRecord> = Vec::new();
    let mut position = 0;
    while position < workflow.steps.len() {
        let step = &workflow.steps[position];
        if done.contains(step.id.as_str()) {
            position += 1;
            continue;
        }
        let t = shared.clock.now();
        if cancel.load(Ordering::SeqCst) {
            return end(
                JobStatus::Canceled,
                None,
                None,
                Some("canceled by its owner".into()),
                pending,
                messages,
                0,
            );
        }
        if shared.stopping.load(Ordering::SeqCst) {
            return Some(Finish {
                messages,
                ..release(lease, t, pending)
            });
        }
        let outcome = shared.runner.run(&workflow, step, &ctx, job.id, t).await;
        let finished = shared.clock.now();
        let mut rec = record(job.id, &step.id, position, job.attempts, t, finished);
        let mut next = position + 1;
        match outcome {
            StepOutcome::Fail(StepFailure { message, retryable }) => {
                rec.status = StepStatus::Failed;
                rec.error = Some(message.clone());
                pending.push(rec);
                let error = format!("step {} failed: {message}", step.id);
                if retryable && job.attempts < job.max_attempts {
                    let jitter = 0.5 + rand::random::<f64>() * 0.5;
                    let delay = retry_delay(
                        job.attempts,
                        shared.config.retry_base,
                        shared.config.retry_cap,
                        jitter,
                    );
                    return end(
                        JobStatus::Failed,
                        Some(finished + delay),
                        None,
                        Some(error),
                        pending,
                        messages,
                        0,
                    );
                }
                return end(
                    JobStatus::Dead,
                    None,
                    None,
                    Some(error),
                    pending,
                    messages,
                    0,
                );
            }
            StepOutcome::Sleep(output, until) => {
                rec.output = output.clone();
                ctx.set_output(&step.id, output);
                pending.push(rec);
                if next < workflow.steps.len() {
                    return end(
                        JobStatus::Queued,
                        Some(until),
                        None,
                        None,
                        pending,
                        messages,
                        -1,
                    );
                }
            }
            StepOutcome::Next(output) => {
                rec.output = output.clone();
                ctx.set_output(&step.id, output);
                pending.push(rec);
            }
            StepOutcome::Send(output, message) => {
                rec.output = output.clone();
                ctx.set_output(&step.id, output);
                pending.push(rec);
                messages.push(*message);
            }
            StepOutcome::Jump(output, target) => {
                rec.output = output.clone();
                ctx.set_output(&step.id, output);
                pending.push(rec);
                // Validation guarantees the target lies ahead; the steps jumped over are
                // recorded as skipped in the same checkpoint as the condition.
                let target = workflow
                    .position(&target)
                    .filter(|&p| p > position)
                    .unwrap_or(next);
                for (p, skipped) in workflow.steps.iter().enumerate().take(target).skip(next) {
                    pending.push(StepRecord {
                        status: StepStatus::Skipped,
                        ..record(job.id, &skipped.id, p, job.attempts, finished, finished)
                    });
                }
                next = target;
            }
        }
        if next < workflow.steps.len() {
            // Checkpoint before the next step runs, so a crash never re-runs this one.
            match shared
                .writes
                .submit(Write::Checkpoint {
                    lease,
                    steps: std::mem::take(&mut pending),
                    messages: std::mem::take(&mut messages),
                })
                .await
            {
                Ok(true) => shared.signals.changed(job.id),
                Ok(false) => return None,
                Err(e) => {
                    tracing::warn!(job_id = %job.id, error = %e, "checkpoint failed; releasing the job");
                    return Some(release(lease, shared.clock.now(), Vec::new()));
                }
            }
        }
        position = next;
    }
    end(
        JobStatus::Succeeded,
        None,
        Some(ctx.outputs()),
        None,
        pending,
        messages,
        0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_and_stop_at_the_cap() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(10);
        assert_eq!(retry_delay(1, base, cap, 1.0), Duration::from_secs(1));
        assert_eq!(retry_delay(2, base, cap, 1.0), Duration::from_secs(2));
        assert_eq!(retry_delay(3, base, cap, 1.0), Duration::from_secs(4));
        assert_eq!(retry_delay(5, base, cap, 1.0), Duration::from_secs(10));
        assert_eq!(retry_delay(40, base, cap, 1.0), Duration::from_secs(10));
        assert_eq!(retry_delay(3, base, cap, 0.5), Duration::from_secs(2));
        assert_eq!(
            retry_delay(3, base, cap, 0.1),
            Duration::from_secs(2),
            "jitter never goes below half"
        );
    }
}
