//! The `levqor` binary: the composition root. It builds the store, the notifier and the HTTP
//! client from configuration, hands them to the core, and serves REST, gRPC and the worker
//! pool in one process.
#![forbid(unsafe_code)]

use clap::{Args, Parser, Subcommand};
use levqor_core::notify::DispatchConfig;
use levqor_core::{EngineConfig, Levqor, LevqorBuilder, OutboxNotifier, StepRunner, SystemClock};
use levqor_http::deliver::resend::ResendChannel;
use levqor_http::deliver::slack::SlackChannel;
use levqor_http::deliver::smtp::{SmtpChannel, SmtpConfig};
use levqor_http::deliver::telegram::TelegramChannel;
use levqor_http::deliver::webhook::WebhookChannel;
use levqor_http::fetch::{DEFAULT_MAX_RESPONSE_BYTES, ReqwestHttp};
use levqor_http::{AppState, router};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// mimalloc rather than the system allocator: under many concurrent requests glibc's malloc
/// spends its time in arena locks (a profile of intake put about 17% of CPU in it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Levqor: the back office of an AI-automation platform.
#[derive(Parser)]
#[command(name = "levqor", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the REST and gRPC APIs and run the worker pool.
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
}

#[derive(Args)]
struct DatabaseArgs {
    /// Database URL: `sqlite:PATH` (created if missing) or `postgres://…`.
    #[arg(long, env = "LEVQOR_DATABASE_URL", default_value = "sqlite:levqor.db")]
    database_url: String,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "LEVQOR_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Address the gRPC API listens on (port 0 picks a free port; the chosen address is
    /// printed).
    #[arg(long, env = "LEVQOR_GRPC_LISTEN", default_value = "127.0.0.1:50051")]
    grpc_listen: SocketAddr,
    /// Jobs run at once by this node (0: serve the API only, run no jobs).
    #[arg(long, env = "LEVQOR_WORKERS", default_value_t = 64)]
    workers: usize,
    /// The admin API key (full access to every user's data).
    #[arg(long, env = "LEVQOR_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// Let `http_request` steps reach private, loopback and link-local addresses.
    #[arg(long, env = "LEVQOR_HTTP_ALLOW_PRIVATE", default_value_t = false)]
    http_allow_private: bool,
    /// Largest response body an `http_request` step reads, in bytes.
    #[arg(long, env = "LEVQOR_HTTP_MAX_RESPONSE_BYTES", default_value_t = DEFAULT_MAX_RESPONSE_BYTES)]
    http_max_response_bytes: usize,
    /// Seconds a claimed job stays leased without a heartbeat; a crashed node's jobs return
    /// to the queue after this.
    #[arg(long, env = "LEVQOR_LEASE_SECS", default_value_t = 30)]
    lease_secs: u64,
    /// Milliseconds between looks for due jobs when idle.
    #[arg(long, env = "LEVQOR_POLL_MS", default_value_t = 100)]
    poll_ms: u64,
    /// First retry delay in milliseconds (doubles per attempt, with jitter).
    #[arg(long, env = "LEVQOR_RETRY_BASE_MS", default_value_t = 1000)]
    retry_base_ms: u64,
    /// Most jobs one claim takes.
    #[arg(long, env = "LEVQOR_CLAIM_BATCH", default_value_t = 500)]
    claim_batch: usize,
    /// Seconds shutdown waits for running steps before releasing their jobs.
    #[arg(long, env = "LEVQOR_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    shutdown_grace_secs: u64,
    /// This node's name in logs and in `{{job.node}}` (default: a random one).
    #[arg(long, env = "LEVQOR_NODE_NAME")]
    node_name: Option<String>,
    /// Base URL of the links in emails (marketing confirmation and unsubscribe links).
    #[arg(
        long,
        env = "LEVQOR_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    public_url: String,
    /// Calls per minute one client address may make to the routes that need no key
    /// (marketing sign-up and status).
    #[arg(long, env = "LEVQOR_PUBLIC_RATE_PER_MINUTE", default_value_t = 10)]
    public_rate_per_minute: u32,
    /// The tier of users who have none set: `sandbox`, `pro` or `enterprise`.
    #[arg(long, env = "LEVQOR_DEFAULT_TIER", default_value = "sandbox")]
    default_tier: String,
    /// Credits granted to every new user (0: none; an admin grants them).
    #[arg(long, env = "LEVQOR_SIGNUP_CREDITS", default_value_t = 0)]
    signup_credits: i64,
    /// Stripe secret key; with the webhook secret, enables billing.
    #[arg(long, env = "LEVQOR_STRIPE_SECRET_KEY", hide_env_values = true)]
    stripe_secret_key: Option<String>,
    /// Stripe webhook signing secret (`whsec_…`).
    #[arg(long, env = "LEVQOR_STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    stripe_webhook_secret: Option<String>,
    /// Another Stripe API base URL (a test server); Stripe's own by default.
    #[arg(long, env = "LEVQOR_STRIPE_API_BASE")]
    stripe_api_base: Option<String>,
    /// Seconds between two advances of the dunning ladder (one system job per period across
    /// every node).
    #[arg(long, env = "LEVQOR_DUNNING_INTERVAL_SECS", default_value_t = 3600)]
    dunning_interval_secs: u64,
    /// Where email goes: `outbox` (kept for the admin to read; nothing leaves the process),
    /// `smtp` or `resend` (delivered by the outbox dispatcher of every node that runs jobs).
    #[arg(long, env = "LEVQOR_EMAIL_PROVIDER", default_value = "outbox")]
    email_provider: String,
    /// The sender of every email (`Name <address>` or an address); needed by `smtp` and
    /// `resend`.
    #[arg(long, env = "LEVQOR_EMAIL_FROM")]
    email_from: Option<String>,
    /// SMTP server host.
    #[arg(long, env = "LEVQOR_SMTP_HOST", default_value = "127.0.0.1")]
    smtp_host: String,
    /// SMTP server port.
    #[arg(long, env = "LEVQOR_SMTP_PORT", default_value_t = 587)]
    smtp_port: u16,
    /// SMTP connection security: `none`, `starttls` (required) or `tls` (implicit, port 465).
    #[arg(long, env = "LEVQOR_SMTP_TLS", default_value = "starttls")]
    smtp_tls: String,
    /// SMTP user name (with the password).
    #[arg(long, env = "LEVQOR_SMTP_USERNAME")]
    smtp_username: Option<String>,
    /// SMTP password.
    #[arg(long, env = "LEVQOR_SMTP_PASSWORD", hide_env_values = true)]
    smtp_password: Option<String>,
    /// SMTP connections kept open per node.
    #[arg(long, env = "LEVQOR_SMTP_POOL_SIZE", default_value_t = 4)]
    smtp_pool_size: u32,
    /// Resend API key.
    #[arg(long, env = "LEVQOR_RESEND_API_KEY", hide_env_values = true)]
    resend_api_key: Option<String>,
    /// Signing secret of Resend's webhook (`whsec_…`, from Resend's dashboard): hard bounces
    /// and complaints posted to `/v1/webhooks/resend` suppress the address.
    #[arg(long, env = "LEVQOR_RESEND_WEBHOOK_SECRET", hide_env_values = true)]
    resend_webhook_secret: Option<String>,
    /// Resend API base URL (a test server); Resend's own by default.
    #[arg(long, env = "LEVQOR_RESEND_BASE_URL", default_value = levqor_http::deliver::resend::RESEND_API)]
    resend_base_url: String,
    /// Slack incoming webhook URL: enables `slack` steps.
    #[arg(long, env = "LEVQOR_SLACK_WEBHOOK_URL", hide_env_values = true)]
    slack_webhook_url: Option<String>,
    /// Telegram bot token: enables `telegram` steps.
    #[arg(long, env = "LEVQOR_TELEGRAM_BOT_TOKEN", hide_env_values = true)]
    telegram_bot_token: Option<String>,
    /// Telegram bot API base URL (a test server); Telegram's own by default.
    #[arg(long, env = "LEVQOR_TELEGRAM_BASE_URL", default_value = levqor_http::deliver::telegram::TELEGRAM_API)]
    telegram_base_url: String,
    /// Secret that signs outbound webhooks (at least 16 characters): enables `webhook` steps
    /// and jobs' `callback_url`. Webhook targets follow `--http-allow-private`.
    #[arg(long, env = "LEVQOR_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// Milliseconds before a message's second delivery attempt (doubles per attempt, with
    /// jitter, up to ten minutes).
    #[arg(long, env = "LEVQOR_DISPATCH_RETRY_BASE_MS", default_value_t = 2000)]
    dispatch_retry_base_ms: u64,
    /// Delivery attempts before a message is `failed`.
    #[arg(long, env = "LEVQOR_DISPATCH_MAX_ATTEMPTS", default_value_t = 10)]
    dispatch_max_attempts: u32,
    /// Deliveries in flight at once per node.
    #[arg(long, env = "LEVQOR_DISPATCH_CONCURRENCY", default_value_t = 16)]
    dispatch_concurrency: usize,
    /// Seconds a claimed message stays leased: a node that stops mid-delivery leaves it
    /// `sending` this long (then Resend's are sent again with their idempotency key, SMTP's
    /// become `unknown`). Longer than a delivery's 30-second timeout.
    #[arg(long, env = "LEVQOR_DISPATCH_LEASE_SECS", default_value_t = 120)]
    dispatch_lease_secs: u64,
    /// Milliseconds between looks for due messages when idle.
    #[arg(long, env = "LEVQOR_DISPATCH_POLL_MS", default_value_t = 200)]
    dispatch_poll_ms: u64,
    /// A directory of email template overrides: files named `<template>.subject`,
    /// `<template>.txt`, `<template>.html` or `layout.html` replace the built-in part
    /// (`GET /v1/admin/templates` lists the templates). A bad override stops the start.
    #[arg(long, env = "LEVQOR_TEMPLATES_DIR")]
    templates_dir: Option<std::path::PathBuf>,
    /// Log format: `text` or `json`.
    #[arg(long, env = "LEVQOR_LOG_FORMAT", default_value = "text")]
    log_format: String,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Migrate(args) => {
            init_logs("text");
            levqor_store::migrate(&args.database_url)
                .await
                .map(|()| println!("migrations applied"))
                .map_err(|e| e.to_string())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("levqor: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logs(format: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("LEVQOR_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    init_logs(&args.log_format);
    let store = levqor_store::connect(&args.database.database_url)
        .await
        .map_err(|e| e.to_string())?;
    let http = Arc::new(ReqwestHttp::new(
        args.http_allow_private,
        args.http_max_response_bytes,
    ));
    let notifier = Arc::new(OutboxNotifier::new(store.clone()));
    let runner = Arc::new(StepRunner::new(http, notifier, Vec::new()));
    let builder = Levqor::builder(store, runner)
        .clock(Arc::new(SystemClock))
        .admin_key(args.admin_key.as_deref())
        .public_url(&args.public_url)
        .signup_grant(args.signup_credits)
        .public_rate_per_minute(args.public_rate_per_minute)
        .default_tier(&args.default_tier)
        .dunning_every(Duration::from_secs(args.dunning_interval_secs.max(1)));
    let builder = configure_delivery(builder, &args)?
        .templates(templates(&args)?)
        .resend_webhook_secret(args.resend_webhook_secret.as_deref());
    let levqor = Arc::new(
        configure_billing(builder, &args)?
            .build()
            .map_err(|e| e.message)?,
    );
    let engine = (args.workers > 0).then(|| {
        levqor.start_engine(EngineConfig {
            workers: args.workers,
            claim_batch: args.claim_batch.max(1),
            lease: Duration::from_secs(args.lease_secs.max(1)),
            poll_interval: Duration::from_millis(args.poll_ms.max(1)),
            retry_base: Duration::from_millis(args.retry_base_ms),
            shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
            node: args
                .node_name
                .clone()
                .unwrap_or_else(|| EngineConfig::default().node),
            ..EngineConfig::default()
        })
    });
    let listener = bind(args.listen).await?;
    let grpc_listener = bind(args.grpc_listen).await?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let grpc_addr = grpc_listener.local_addr().map_err(|e| e.to_string())?;
    println!("levqor listening on {addr}");
    println!("levqor grpc listening on {grpc_addr}");
    tracing::info!(%addr, %grpc_addr, workers = args.workers, "levqor serving");
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let stopped = |mut stopping: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    let grpc = tokio::spawn(levqor_grpc::serve(
        levqor.clone(),
        grpc_listener,
        stopped(stopping.clone()),
    ));
    let app = router(AppState::new(levqor)).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(stopped(stopping))
        .await
        .map_err(|e| e.to_string())?;
    match grpc.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("gRPC server failed: {e}")),
        Err(e) => return Err(format!("gRPC server failed: {e}")),
    }
    tracing::info!("shutting down: no new claims; waiting for running steps");
    if let Some(engine) = engine {
        engine.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}

/// The built-in email templates with the overrides of `--templates-dir`.
fn templates(args: &ServeArgs) -> Result<levqor_core::notify::Templates, String> {
    let mut overrides = std::collections::BTreeMap::new();
    if let Some(dir) = &args.templates_dir {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read the templates directory {}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            if !path.is_file() {
                continue;
            }
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| format!("{} is not a UTF-8 file name", path.display()))?
                .to_string();
            let source = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            overrides.insert(name, source);
        }
    }
    levqor_core::notify::Templates::new(overrides).map_err(|e| {
        let problems: Vec<String> = e
            .violations
            .iter()
            .map(|v| format!("{}: {}", v.pointer.trim_start_matches('/'), v.message))
            .collect();
        format!("{}:\n  {}", e.message, problems.join("\n  "))
    })
}

/// The delivery channels configured (the email channel `--email-provider` names, Slack,
/// Telegram, signed webhooks), and how the dispatcher retries.
fn configure_delivery(builder: LevqorBuilder, args: &ServeArgs) -> Result<LevqorBuilder, String> {
    let from = || {
        args.email_from.clone().ok_or_else(|| {
            format!(
                "--email-provider {} needs --email-from",
                args.email_provider
            )
        })
    };
    let mut channels: Vec<Arc<dyn levqor_core::notify::Channel>> = Vec::new();
    if let Some(url) = &args.slack_webhook_url {
        channels.push(Arc::new(SlackChannel::new(url)?));
    }
    if let Some(token) = &args.telegram_bot_token {
        channels.push(Arc::new(TelegramChannel::new(
            &args.telegram_base_url,
            token,
        )?));
    }
    if let Some(secret) = &args.webhook_secret {
        channels.push(Arc::new(WebhookChannel::new(
            secret,
            args.http_allow_private,
        )?));
    }
    let email: Option<Arc<dyn levqor_core::notify::Channel>> = match args.email_provider.as_str() {
        "outbox" => None,
        "smtp" => Some(Arc::new(SmtpChannel::new(&SmtpConfig {
            host: args.smtp_host.clone(),
            port: args.smtp_port,
            tls: args.smtp_tls.parse()?,
            credentials: match (&args.smtp_username, &args.smtp_password) {
                (Some(u), Some(p)) => Some((u.clone(), p.clone())),
                (None, None) => None,
                _ => return Err("set both --smtp-username and --smtp-password, or neither".into()),
            },
            pool_size: args.smtp_pool_size,
            from: from()?,
        })?)),
        "resend" => Some(Arc::new(ResendChannel::new(
            &args.resend_base_url,
            args.resend_api_key.as_deref().unwrap_or_default(),
            &from()?,
        )?)),
        other => {
            return Err(format!(
                "unknown email provider {other:?}: outbox, smtp or resend"
            ));
        }
    };
    channels.extend(email);
    let builder = channels.into_iter().fold(builder, LevqorBuilder::channel);
    Ok(builder.dispatch(DispatchConfig {
        retry_base: Duration::from_millis(args.dispatch_retry_base_ms.max(1)),
        max_attempts: args.dispatch_max_attempts.max(1),
        concurrency: args.dispatch_concurrency.max(1),
        lease: Duration::from_secs(args.dispatch_lease_secs.max(1)),
        poll_interval: Duration::from_millis(args.dispatch_poll_ms.max(1)),
        ..DispatchConfig::default()
    }))
}

/// Billing needs both Stripe secrets; with neither, billing routes answer 503 and everything
/// else works; with one, the configuration is refused.
fn configure_billing(builder: LevqorBuilder, args: &ServeArgs) -> Result<LevqorBuilder, String> {
    match (&args.stripe_secret_key, &args.stripe_webhook_secret) {
        (None, None) => Ok(builder),
        (Some(key), Some(webhook)) => {
            #[cfg(feature = "stripe")]
            {
                let provider =
                    levqor_http::stripe::StripeProvider::new(key, args.stripe_api_base.as_deref())
                        .map_err(|e| format!("cannot configure Stripe: {e}"))?;
                Ok(builder.billing(levqor_core::billing::BillingConfig {
                    provider: Arc::new(provider),
                    webhook_secret: webhook.clone(),
                }))
            }
            #[cfg(not(feature = "stripe"))]
            {
                let _ = (key, webhook, builder);
                Err("this build has no Stripe support (feature `stripe`)".into())
            }
        }
        _ => Err(
            "set both LEVQOR_STRIPE_SECRET_KEY and LEVQOR_STRIPE_WEBHOOK_SECRET, or neither".into(),
        ),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
