//! The entry points on a `levqor_t`: open and close, users and keys, jobs and the engine,
//! quotes and credits, consent, and screening.
//!
//! Calls made for a user take that user's API key (`key`), exactly as the REST and gRPC APIs
//! do: the core authorizes it and counts the call against the user's quota. Creating users and
//! keys is the embedding program's own business and needs no key.

use crate::handle::{Instance, LEVQORS, levqor_t};
use crate::io::{self, Out, OutString};
use crate::status::{guard, levqor_status};
use levqor_core::consent::ClientInfo;
use levqor_core::screening::Verdict;
use levqor_core::{
    EngineConfig, Error, Levqor, MemoryStore, OutboxNotifier, Principal, Result, StepRunner,
    SubmitRequest, SystemClock,
};
use levqor_http::extract::Fields;
use levqor_http::fetch::{DEFAULT_MAX_RESPONSE_BYTES, ReqwestHttp};
use levqor_http::routes::jobs::{SUBMISSION_FIELDS, read_submission};
use serde::Deserialize;
use serde_json::Value;
use std::ffi::c_char;
use std::sync::Arc;
use std::time::Duration;

/// What `levqor_open` reads from its JSON configuration. Every field is optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    /// `sqlite:PATH` (created if missing), `postgres://…`, or `memory` (nothing kept).
    database_url: String,
    /// Workers started at once (0: none; start them with `levqor_workers_start`, or run due
    /// jobs with `levqor_run_due`).
    workers: u32,
    /// Threads of the runtime that does the I/O.
    threads: u32,
    /// Credits granted to every new user.
    signup_credits: i64,
    /// The tier of users who have none set.
    default_tier: Option<String>,
    /// Let `http_request` steps reach internal addresses.
    http_allow_private: bool,
    /// How often idle workers look for due jobs, in milliseconds.
    poll_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "sqlite:levqor.db".into(),
            workers: 0,
            threads: 2,
            signup_credits: 0,
            default_tier: None,
            http_allow_private: false,
            poll_ms: 100,
        }
    }
}

const MAX_THREADS: u32 = 256;
const MAX_WORKERS: u32 = 10_000;

fn open(config_json: Option<Value>) -> Result<Instance> {
    let config: Config = match config_json {
        None => Config::default(),
        Some(v) if !v.is_object() => {
            return Err(Error::invalid(
                "bad_config",
                "`config_json` must be a JSON object",
            ));
        }
        Some(v) => serde_json::from_value(v)
            .map_err(|e| Error::invalid("bad_config", format!("`config_json`: {e}")))?,
    };
    if !(1..=MAX_THREADS).contains(&config.threads) {
        return Err(Error::invalid(
            "bad_config",
            format!("`config_json`: threads must be 1 to {MAX_THREADS}"),
        ));
    }
    if config.workers > MAX_WORKERS {
        return Err(Error::invalid(
            "bad_config",
            format!("`config_json`: workers must be at most {MAX_WORKERS}"),
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.threads as usize)
        .thread_name("levqor")
        .enable_all()
        .build()
        .map_err(|e| Error::internal(format!("cannot start the runtime: {e}")))?;
    let levqor = runtime.block_on(async {
        let store: Arc<dyn levqor_core::Store> = if config.database_url == "memory" {
            Arc::new(MemoryStore::new())
        } else {
            levqor_store::connect(&config.database_url).await?
        };
        let http = Arc::new(ReqwestHttp::new(
            config.http_allow_private,
            DEFAULT_MAX_RESPONSE_BYTES,
        ));
        let notifier = Arc::new(OutboxNotifier::new(store.clone()));
        let runner = Arc::new(StepRunner::new(http, notifier, Vec::new()));
        let mut builder = Levqor::builder(store, runner)
            .clock(Arc::new(SystemClock))
            .signup_grant(config.signup_credits);
        if let Some(tier) = &config.default_tier {
            builder = builder.default_tier(tier);
        }
        builder.build()
    })?;
    let engine_config = EngineConfig {
        workers: config.workers as usize,
        poll_interval: Duration::from_millis(config.poll_ms.max(1)),
        ..EngineConfig::default()
    };
    let instance = Instance::new(runtime, Arc::new(levqor), engine_config);
    if config.workers > 0 {
        start_workers(&instance, config.workers)?;
    }
    Ok(instance)
}

fn start_workers(lq: &Instance, workers: u32) -> Result<()> {
    if workers == 0 || workers > MAX_WORKERS {
        return Err(Error::invalid(
            "bad_workers",
            format!("`workers` must be 1 to {MAX_WORKERS}"),
        ));
    }
    let mut engine = lq.engine.lock().unwrap_or_else(|e| e.into_inner());
    if engine.is_some() {
        return Err(Error::conflict(
            "workers_running",
            "the workers are running already",
        ));
    }
    let config = EngineConfig {
        workers: workers as usize,
        ..lq.engine_config.clone()
    };
    *engine = Some(lq.run(async { lq.levqor.start_engine(config) }));
    Ok(())
}

/// The caller a user's key names, authorized and metered by the core.
fn caller(lq: &Instance, key: *const c_char) -> Result<Principal> {
    // SAFETY: forwarded from the entry point's contract.
    let key = unsafe { io::text(key, "key") }?;
    lq.run(lq.levqor.authorize(Some(key))).caller
}

/// Opens Levqor as `config_json` says (NULL: every default) and writes its handle to `*out`.
///
/// `config_json` is a JSON object; every field is optional:
/// `database_url` (`"sqlite:levqor.db"`; `"sqlite:PATH"`, `"postgres://…"`, or `"memory"` for
/// nothing kept), `workers` (0: run due jobs with `levqor_run_due` or start workers later with
/// `levqor_workers_start`), `threads` (2: the runtime's threads), `signup_credits` (0),
/// `default_tier` (`"sandbox"`), `http_allow_private` (false), `poll_ms` (100). An unknown
/// field is `LEVQOR_ERR_INVALID` (`bad_config`). The database's schema is brought up to date.
///
/// # Safety
/// `config_json` must be NULL or a NUL-terminated string; `out` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn levqor_open(
    config_json: *const c_char,
    out: *mut *mut levqor_t,
) -> levqor_status {
    guard(|| {
        if out.is_null() {
            return Err(io::null("out"));
        }
        // SAFETY: checked not NULL; the caller promises it is writable.
        unsafe { out.write(std::ptr::null_mut()) };
        let config = if config_json.is_null() {
            None
        } else {
            // SAFETY: the caller promises a NUL-terminated string.
            Some(unsafe { io::json(config_json, "config_json") }?)
        };
        let instance = open(config)?;
        // SAFETY: as above.
        unsafe { out.write(LEVQORS.insert(instance)) };
        Ok(())
    })
}

/// Closes a handle: stops its workers (running steps finish, up to 10 s), closes the database
/// and ends its threads. NULL is ignored (`LEVQOR_OK`); a handle closed already is
/// `LEVQOR_ERR_INVALID` (`closed_handle`).
///
/// # Safety
/// `lq` must be NULL or a value `levqor_open` wrote.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn levqor_close(lq: *mut levqor_t) -> levqor_status {
    guard(|| {
        if lq.is_null() {
            return Ok(());
        }
        LEVQORS.remove(lq, "lq")?.shut();
        Ok(())
    })
}

/// Creates a user with `email` (or finds the one that has it) and writes its id to
/// `*out_user_id` (free it with `levqor_string_free`; NULL: not wanted).
///
/// # Safety
/// `lq` as for `levqor_close`; `email` a NUL-terminated string; `out_user_id` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn levqor_user_create(
    lq: *mut levqor_t,
    email: *const c_char,
    out_user_id: *mut *mut c_char,
) -> levqor_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { Out::new(out_user_id) };
        let lq = LEVQORS.get(lq, "lq")?;
        // SAFETY: the caller's contract.
        let email = unsafe { io::text(email, "email") }?;
        let users = lq.levqor.users();
        let user = lq.run(users.create(&Principal::Admin, email, None))?;
        out.set_string(user.user().id.to_string());
        Ok(())
    })
}

/// Issues an API key for the user `user_id` with every scope and writes its secret to
/// `*out_key` (shown once: only its hash is kept; free it with `levqor_string_free`).
///
/// # Safety
/// `lq` as for `levqor_close`; `user_id` a NUL-terminated string; `out_key` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn levqor_key_create(
    lq: *mut levqor_t,
    user_id: *const c_char,
    out_key: *mut *mut c_char,
) -> levqor_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { OutString::required(out_key, "out_key") }?;
        let lq = LEVQORS.get(lq, "lq")?;
        // SAFETY: the caller's contract.
        let user_id = unsafe { io::id(user_id, "user_id") }?;
        let users = lq.levqor.users();
        let issued = lq.run(users.create_key(&Principal::Admin, user_id, None))?;
        out.set_string(issued.secret);
        Ok(())
    })
}

/// Submits a job as the owner of `key`. `request_json` is the body of REST's `POST /v1/jobs`:
/// `{"workflow": {...}, "input": {...}, "max_attempts": n, "run_after": "RFC 3339",
/// "idempotency_key": "..."}` (`workflow` required). Writes the job's id to `*out_job_id` and
/// the answer REST gives (the job, `warnings`, `quote`, `screening`) to `*out_json`; either
/// may be NULL. Refusals are those of REST: `LEVQOR_ERR_INVALID` (`validation_failed`, with
/// every violation in the message), `LEVQOR_ERR_PAYMENT`, `LEVQOR_ERR_FORBIDDEN`, ...
///
/// # Safety
/// `lq` as for `levqor_close`; `key` and `request_json` NUL-terminated strings; each out-pointer
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn levqor_submit(
    lq: *mut levqor_t,
    key: *const c_char,
    request_json: *const c_char,
    out_job_id: *mut *mut c_char,
    out_json: *mut *mut c_char,
) -> levqor_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let (out_id, out_json) = unsafe { (Out::new(out_job_id), Out::new(out_json)) };
        let lq = LEVQORS.get(lq, "lq")?;
        let who = caller(&lq, key)?;
        // SAFETY: the caller's contract.
        let body = unsafe { io::json(request_json, "request_json") }?;
        let request = submit_request(body)?;
        let submitted = lq.run(lq.levqor.jobs().submit(&who, request))?;
        out_id.set_string(submitted.admission.job().id.to_string());
        out_json.set_json(&submitted)
    })
}

/// A submission's JSON as the core's request, read as REST reads its body (plus
/// `idempotency_key`, a header in REST), every bad field reported at once.
fn submit_request(body: Value) -> Result<SubmitRequest> {
    let Value::Object(body) = body else {
        return Err(Error::invalid(
            "validation_failed",
            "`request_json` must be a JSON object",
        ));
    };
    let known: Vec<&str> = SUBMISSION_FIELDS
        .iter()
        .copied()
        .chain(["idempotency_key"])
        .collect();
    let mut f = Fields::new(&body, &known);
    let submission = read_submission(&mut f);
    let idempotency_key = f.string("idempotency_key");
    f.check()?;
    Ok(SubmitRequest {
        idempotency_key,
        ..submission
    })
}

/// Reads the job `job_id` as the owner of `key`: its status (`queued`, `running`,
/// `succeeded`, `failed`, `dead`, `canceled`, `awaiting_approval`) to `*out_status` and the
/// whole job as JSON to `*out_json`; either may be NULL. Another user's job is
/// `LEVQOR_ERR_NOT_FOUND`.
///
/// # Safety
/// `lq` as for `levqor_close`; `key` and `job_id` NUL-terminated strings; each out-pointer NULL
/// or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn levqor_job_get(
    lq: *mut levqor_t,
    key: *const c_char,
    job_id: *const c_char,
    out_status: *mut *mut c_char,
    out_json: *mut *mut c_char,
) -> levqor_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let (out_status, out_json) = unsafe { (Out::new(out_status), Out::new(out_json)) };
        let lq = LEVQORS.get(lq, "lq")?;
        // SAFETY: the caller's contract.
        let id = unsafe { io::text(job_id, "job_id") }?;
        let who = caller(&lq, key)?;
        // Anything that is not an id names no job, as a bad path id in REST.
        let id = uuid::Uuid::parse_str(id).map_err(|_| Error::not_found("job"))?;
        let job = lq.run(lq.levqor.jobs().get(&who, id))?;
        out_status.set_string(job.status.as_str());
        out_json.set_json(&job)
    })
}

/// Starts `workers` workers (1 to 10,000) on the handle's threads: due jobs run in the
/// background until `levqor_workers_stop` or `levqor_close`. Workers already running are
/// `LEVQOR_ERR_CONFLICT` (`workers_running`).
///
/// # Safety
/// `lq` as for `levqor_close`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn levqor_workers_start(lq: *mut levqor_t, workers: u32) -> levqor_status {
    guard(|| start_workers(&*LEVQORS.get(lq, "lq")?, workers))
}

/// Stops the workers: no new job is taken, running steps finish (up to 10 s), and what still
/// runs is released for another node. Not running is `LEVQOR_OK`.
///
/// # Safety
/// `lq` as for `levqor_close`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn levqor_workers_stop(lq: *mut levqor_t) -> levqor_status {
    guard(|| {
        LEVQORS.get(lq, "lq")?.stop_engine();
        Ok(())
    })
}

/// Runs up to `max_jobs` due jobs on the calling thread, one after another, each attempt to its
/// end (a job that fails and may retry is due again later), and writes how many ran to
/// `*out_ran` (NULL: not wanted). The manual engine, for a program that drives Levqor from its
/// own loop instead of starting workers.
///
/// # Safety
/// `lq` as for `levqor_close`; `out_ran` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn levqor_run_due(
    lq: *mut levqor_t,
    max_jobs: u32,
    out_ran: *mut u32,
) -> levqor_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { Out::new(out_ran) };
        let lq = LEVQORS.get(lq, "lq")?;
        let config = lq.engine_config.clone();
        let ran = lq.run(lq.levqor.jobs().run_due(config, max_jobs as usize))?;
        out.set(ran as u32);
        Ok(())
    })
}

/// Prices `workflow_json` for the owner of `key` (as `levqor_submit` would hold it): the
/// credits to `*out_credits` and the whole quote (components, step prices, load factor) as JSON
/// to `*out_json`; either may be NULL.
///
/// # Safety
/// `lq` as for `levqor_close`; `key` and `workflow_json` NUL-terminated strings; each
/// out-pointer NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn levqor_quote(
    lq: *mut levqor_t,
    key: *const c_char,
    workflow_json: *const c_char,
    out_credits: *mut i64,
    out_json: *mut *mut c_char,
) -> levqor_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let (out_credits, out_json) = unsafe { (Out::new(out_credits), Out::new(out_json)) };
        let lq = LEVQORS.get(lq, "lq")?;
        let who = caller(&lq, key)?;
        // SAFETY: the caller's contract.
        let workflow = unsafe { io::json(workflow_json, "workflow_json") }?;
        let quote = lq.run(lq.levqor.credits().quote(&who, &workflow))?;
        out_credits.set(quote.credits);
        out_json.set_json(&quote)
    })
}

/// The credit balance of the owner of `key`: what may be spent now to `*out_available`, and
/// `{"balance", "available", "held"}` as JSON to `*out_json`; either may be NULL.
///
/// # Safety
/// `lq` as for `levqor_close`; `key` a NUL-terminated string; each out-pointer NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn levqor_credit_balance(
    lq: *mut levqor_t,
    key: *const c_char,
    out_available: *mut i64,
    out_json: *mut *mut c_char,
) -> levqor_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let (out_available, out_json) = unsafe { (Out::new(out_available), Out::new(out_json)) };
        let lq = LEVQORS.get(lq, "lq")?;
        let who = caller(&lq, key)?;
        let balance = lq.run(lq.levqor.credits().balance(&who, None))?;
        out_available.set(balance.available);
        out_json.set_json(&balance)
    })
}

/// Records that the owner of `key` accepts the terms `version` (published earlier), and
/// writes their terms status as JSON to `*out_json` (NULL: not wanted). A version that was
/// never published is `LEVQOR_ERR_INVALID`.
///
/// # Safety
/// `lq` as for `levqor_close`; `key` and `version` NUL-terminated strings; `out_json` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn levqor_terms_accept(
    lq: *mut levqor_t,
    key: *const c_char,
    version: *const c_char,
    out_json: *mut *mut c_char,
) -> levqor_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { Out::new(out_json) };
        let lq = LEVQORS.get(lq, "lq")?;
        // SAFETY: the caller's contract.
        let version = unsafe { io::text(version, "version") }?;
        let who = caller(&lq, key)?;
        let client = ClientInfo::new(None, Some("levqor-ffi"));
        let consent = lq.levqor.consent();
        let status = lq.run(consent.accept_terms(&who, None, version, client))?;
        out.set_json(&status)
    })
}

/// Records (`objected` true) or withdraws (false) the objection of the owner of `key` to one
/// kind of processing (`automation`, `profiling` or `marketing`: GDPR article 21) and writes
/// every objection's state as JSON to `*out_json` (NULL: not wanted). An objection to
/// `automation` makes `levqor_submit` refuse their jobs (`LEVQOR_ERR_FORBIDDEN`).
///
/// # Safety
/// `lq` as for `levqor_close`; `key` and `kind` NUL-terminated strings; `out_json` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn levqor_objection_set(
    lq: *mut levqor_t,
    key: *const c_char,
    kind: *const c_char,
    objected: bool,
    out_json: *mut *mut c_char,
) -> levqor_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { Out::new(out_json) };
        let lq = LEVQORS.get(lq, "lq")?;
        // SAFETY: the caller's contract.
        let kind = unsafe { io::text(kind, "kind") }?;
        let who = caller(&lq, key)?;
        let consent = lq.levqor.consent();
        let objections = lq.run(consent.set_objection(&who, None, kind, objected))?;
        out.set_json(&objections)
    })
}

/// The verdict of screening, worst first.
#[repr(u32)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum levqor_verdict {
    /// Nothing found, or only low-severity terms.
    LEVQOR_VERDICT_ALLOW = 0,
    /// A medium-severity term: let through with a warning.
    LEVQOR_VERDICT_WARN = 1,
    /// A high-severity term: held for a person to approve.
    LEVQOR_VERDICT_HOLD = 2,
    /// A critical term: refused.
    LEVQOR_VERDICT_BLOCK = 3,
}

impl crate::io::Cleared for levqor_verdict {
    fn cleared() -> Self {
        levqor_verdict::LEVQOR_VERDICT_ALLOW
    }
}

/// Screens `text` with the rules in force (those `levqor serve` and every node share): the
/// verdict to `*out_verdict` and, when `out_json` is not NULL, `{"verdict", "matches": [{"term",
/// "category", "severity", "pointer", "because", "learned"}]}` as JSON, where an intent's
/// `because` holds its `action` and `subject` words and the `mark` that set its severity, and
/// `learned` (when the rules' learned stage changed the severity) the severity `from`, the
/// model's `score` and the `words` that weighed most. Needs no key; screening is not metered.
///
/// # Safety
/// `lq` as for `levqor_close`; `text` a NUL-terminated string; `out_verdict` writable;
/// `out_json` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn levqor_screen(
    lq: *mut levqor_t,
    text: *const c_char,
    out_verdict: *mut levqor_verdict,
    out_json: *mut *mut c_char,
) -> levqor_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let (out_verdict, out_json) = unsafe {
            (
                Out::required(out_verdict, "out_verdict")?,
                Out::new(out_json),
            )
        };
        let lq = LEVQORS.get(lq, "lq")?;
        // SAFETY: the caller's contract.
        let text = unsafe { io::text(text, "text") }?;
        let screening = lq.run(lq.levqor.screenings().screen_text(text))?;
        out_verdict.set(match screening.verdict {
            Verdict::Allow => levqor_verdict::LEVQOR_VERDICT_ALLOW,
            Verdict::Warn => levqor_verdict::LEVQOR_VERDICT_WARN,
            Verdict::Hold => levqor_verdict::LEVQOR_VERDICT_HOLD,
            Verdict::Block => levqor_verdict::LEVQOR_VERDICT_BLOCK,
        });
        out_json.set_json(&screening)
    })
}

/// Panics inside the library, for the tests of the boundary: returns `LEVQOR_ERR_INTERNAL`
/// (code `panic`). Only in builds with the `fault-injection` feature.
#[cfg(feature = "fault-injection")]
#[unsafe(no_mangle)]
pub extern "C" fn levqor_test_panic() -> levqor_status {
    guard(|| panic!("levqor_test_panic was called"))
}
