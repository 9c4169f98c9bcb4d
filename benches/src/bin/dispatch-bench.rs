//! The outbox dispatcher's throughput: N messages delivered to a local SMTP server and to a
//! local Resend API (the same fakes the tests use, in this process), and what running the
//! dispatcher costs the engine: jobs with one `email` step drained with the outbox only, then
//! with a Resend channel delivering every message as the jobs run.
//!
//! ```text
//! dispatch-bench --database-url sqlite:/tmp/dispatch.db --messages 10000 --jobs 10000
//! ```

#[path = "../../../levqor-http/tests/support/fake_delivery.rs"]
#[allow(dead_code)]
mod fake_delivery;

use clap::Parser;
use fake_delivery::{FakeResend, FakeSmtp};
use levqor_core::jobs::store::NewJob;
use levqor_core::notify::{Channel, DispatchConfig, Dispatcher, Email, EmailKind, OutboxMessage};
use levqor_core::{
    Clock, EngineConfig, Job, JobStatus, Levqor, OutboxNotifier, StepRunner, Store, SystemClock,
};
use levqor_http::deliver::resend::ResendChannel;
use levqor_http::deliver::smtp::{SmtpChannel, SmtpConfig, SmtpTls};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    /// Store URL (a fresh database: the bench counts its outbox).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Messages per provider run.
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    /// Jobs per engine run (0: skip the engine runs).
    #[arg(long, default_value_t = 10_000)]
    jobs: usize,
    /// Deliveries in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Messages per claim.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Workers while draining jobs.
    #[arg(long, default_value_t = 256)]
    workers: usize,
}

const FROM: &str = "Bench <bench@levqor.test>";

struct NoHttp;

#[async_trait::async_trait]
impl levqor_core::HttpClient for NoHttp {
    async fn send(
        &self,
        _: levqor_core::HttpRequest,
    ) -> Result<levqor_core::HttpResponse, levqor_core::StepFailure> {
        Err(levqor_core::StepFailure::permanent("no HTTP in this bench"))
    }
}

fn config(args: &Args) -> DispatchConfig {
    DispatchConfig {
        node: "bench".into(),
        batch: args.batch,
        concurrency: args.concurrency,
        poll_interval: Duration::from_millis(5),
        ..DispatchConfig::default()
    }
}

/// Pushes `n` pending messages; then delivers them all through `channel` and returns
/// messages/s and how many the outbox holds as sent.
async fn deliver_all(
    store: &Arc<dyn Store>,
    channel: Arc<dyn Channel>,
    args: &Args,
    tag: &str,
) -> (f64, usize) {
    for i in 0..args.messages {
        let email = Email {
            to: format!("{tag}{i}@example.com"),
            subject: "Your export is ready".into(),
            body: "Hello,\n\nyour weekly report is ready.\n\n-- \nLevqor".into(),
            job_id: None,
            attachments: Vec::new(),
            ..Default::default()
        };
        store
            .push_outbox(&OutboxMessage::email(
                &email,
                EmailKind::Transactional,
                SystemClock.now_micros(),
            ))
            .await
            .expect("push");
    }
    let dispatcher = Dispatcher::new(
        store.clone(),
        vec![channel],
        Arc::new(SystemClock),
        config(args),
    );
    let t = Instant::now();
    let mut sent = 0;
    loop {
        let tick = dispatcher.tick().await.expect("tick");
        sent += tick.sent;
        if tick.claimed == 0 {
            break;
        }
    }
    (args.messages as f64 / t.elapsed().as_secs_f64(), sent)
}

fn email_job(owner: Uuid, i: usize) -> NewJob {
    let now = chrono::Utc::now();
    NewJob {
        job: Job {
            id: Uuid::now_v7(),
            owner_id: owner,
            workflow: json!({"name": "mail", "steps": [
                {"id": "m", "type": "email", "to": format!("job{i}@example.com"), "subject": "Done", "body": "Your job ran."}
            ]}),
            input: json!({}),
            status: JobStatus::Queued,
            attempts: 0,
            max_attempts: 3,
            run_after: now,
            result: None,
            error: None,
            cancel_requested: false,
            idempotency_key: None,
            created_at: now,
            updated_at: now,
            started_at: None,
            finished_at: None,
        },
        request_hash: String::new(),
        hold: None,
    }
}

/// Enqueues `args.jobs` one-`email`-step jobs, drains them with an engine built with the
/// channel of `to` (none: the outbox only) and returns jobs/s of the drain, then waits until
/// the fake has every message and returns the seconds that took after the last job.
async fn drain_email_jobs(
    store: &Arc<dyn Store>,
    to: Option<&FakeResend>,
    args: &Args,
) -> (f64, f64) {
    let channel: Option<Arc<dyn Channel>> = to.map(|fake| {
        Arc::new(ResendChannel::new(&fake.base, "re_bench", FROM).expect("resend"))
            as Arc<dyn Channel>
    });
    let owner = Uuid::now_v7();
    let mut left = args.jobs;
    while left > 0 {
        let n = left.min(1000);
        let batch: Vec<NewJob> = (0..n).map(|i| email_job(owner, left - i)).collect();
        for r in store.admit_batch(batch).await.expect("admit") {
            r.expect("admitted");
        }
        left -= n;
    }
    let runner = Arc::new(StepRunner::new(
        Arc::new(NoHttp),
        Arc::new(OutboxNotifier::new(store.clone())),
        Vec::new(),
    ));
    let mut builder = Levqor::builder(store.clone(), runner).dispatch(config(args));
    if let Some(c) = channel.clone() {
        builder = builder.channel(c);
    }
    let levqor = builder.build().expect("service");
    let before = store.count_jobs(JobStatus::Succeeded).await.expect("count");
    let t = Instant::now();
    let engine = levqor.start_engine(EngineConfig {
        workers: args.workers,
        claim_batch: 1000,
        poll_interval: Duration::from_millis(5),
        ..EngineConfig::default()
    });
    loop {
        let due = store.queue_depth(chrono::Utc::now()).await.expect("depth");
        let running = store.count_jobs(JobStatus::Running).await.expect("count");
        if due == 0 && running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drained = t.elapsed();
    let done = store.count_jobs(JobStatus::Succeeded).await.expect("count") - before;
    // The platform's own system jobs (the retention sweep) may have run too.
    assert!(done as usize >= args.jobs, "every job succeeded");
    let t = Instant::now();
    if let Some(fake) = to {
        while fake.deliveries().len() < args.jobs {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let tail = t.elapsed().as_secs_f64();
    engine.shutdown().await;
    (args.jobs as f64 / drained.as_secs_f64(), tail)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let store = levqor_store::connect(&args.database_url)
        .await
        .expect("store connects");
    let system = format!("levqor-{}", store.backend());

    let smtp = FakeSmtp::start().await;
    let channel = Arc::new(
        SmtpChannel::new(&SmtpConfig {
            host: "127.0.0.1".into(),
            port: smtp.port,
            tls: SmtpTls::None,
            credentials: None,
            pool_size: args.concurrency as u32,
            from: FROM.into(),
        })
        .expect("smtp"),
    );
    let (rate, sent) = deliver_all(&store, channel, &args, "smtp").await;
    assert_eq!(
        (sent, smtp.messages().len()),
        (args.messages, args.messages)
    );
    println!(
        "{system} dispatch_smtp_c{}_messages_per_s={rate:.0}",
        args.concurrency
    );

    let resend = FakeResend::start().await;
    let channel = Arc::new(ResendChannel::new(&resend.base, "re_bench", FROM).expect("resend"));
    let (rate, sent) = deliver_all(&store, channel, &args, "resend").await;
    assert_eq!(
        (sent, resend.deliveries().len()),
        (args.messages, args.messages)
    );
    println!(
        "{system} dispatch_resend_c{}_messages_per_s={rate:.0}",
        args.concurrency
    );

    if args.jobs > 0 {
        // With the dispatcher first: the outbox-only run leaves its messages pending, which a
        // dispatcher started after it would deliver too.
        let resend = FakeResend::start().await;
        let (rate, tail) = drain_email_jobs(&store, Some(&resend), &args).await;
        println!(
            "{system} email_jobs_with_resend_dispatch_w{}_jobs_per_s={rate:.0}",
            args.workers
        );
        println!("{system} email_jobs_dispatch_tail_after_last_job_s={tail:.2}");
        assert_eq!(resend.deliveries().len(), args.jobs);
        let (rate, _) = drain_email_jobs(&store, None, &args).await;
        println!(
            "{system} email_jobs_outbox_only_w{}_jobs_per_s={rate:.0}",
            args.workers
        );
    }
}
