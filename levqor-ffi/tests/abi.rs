//! The C ABI through its public surface: a whole flow, then every entry point fed NULLs, text
//! that is not UTF-8, malformed JSON and a closed handle, each answering its status, code and
//! message without crashing; a panic inside the library comes back as `LEVQOR_ERR_INTERNAL`.

use levqor_ffi::levqor_status::{self, *};
use levqor_ffi::*;
use std::ffi::{CStr, CString, c_char};
use std::ptr::{null, null_mut};

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// The thread's last error: (code, message).
fn last() -> (String, String) {
    let text = |p: *const c_char| unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string();
    (text(levqor_last_error_code()), text(levqor_last_error()))
}

/// Takes a string Levqor wrote, freeing it.
fn take(p: *mut c_char) -> String {
    assert!(!p.is_null(), "a string was written");
    let s = unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string();
    unsafe { levqor_string_free(p) };
    s
}

fn json(p: *mut c_char) -> serde_json::Value {
    serde_json::from_str(&take(p)).unwrap()
}

/// An open in-memory Levqor with a user's key.
struct Open {
    lq: *mut levqor_t,
    key: CString,
}

impl Open {
    fn new() -> Open {
        let mut lq = null_mut();
        let config = c(r#"{"database_url": "memory", "signup_credits": 1000}"#);
        assert_eq!(unsafe { levqor_open(config.as_ptr(), &mut lq) }, LEVQOR_OK);
        let mut id = null_mut();
        let email = c("ada@example.com");
        assert_eq!(
            unsafe { levqor_user_create(lq, email.as_ptr(), &mut id) },
            LEVQOR_OK
        );
        let id = c(&take(id));
        let mut key = null_mut();
        assert_eq!(
            unsafe { levqor_key_create(lq, id.as_ptr(), &mut key) },
            LEVQOR_OK
        );
        Open {
            lq,
            key: c(&take(key)),
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        unsafe { levqor_close(self.lq) };
    }
}

const WORKFLOW: &str =
    r#"{"name": "t", "steps": [{"id": "a", "type": "log", "message": "hi {{input.n}}"}]}"#;

#[test]
fn a_job_is_submitted_run_and_read_through_the_abi() {
    let o = Open::new();
    let request = c(&format!(
        r#"{{"workflow": {WORKFLOW}, "input": {{"n": 7}}}}"#
    ));
    let (mut id, mut answer) = (null_mut(), null_mut());
    let status =
        unsafe { levqor_submit(o.lq, o.key.as_ptr(), request.as_ptr(), &mut id, &mut answer) };
    assert_eq!(status, LEVQOR_OK, "{:?}", last());
    let id = take(id);
    let answer = json(answer);
    assert_eq!(
        (answer["id"].as_str(), answer["status"].as_str()),
        (Some(id.as_str()), Some("queued"))
    );
    assert!(answer["quote"]["credits"].as_i64().unwrap() > 0, "{answer}");

    let mut ran = 99;
    assert_eq!(unsafe { levqor_run_due(o.lq, 10, &mut ran) }, LEVQOR_OK);
    assert_eq!(ran, 1);
    let (mut status_out, mut job) = (null_mut(), null_mut());
    let job_id = c(&id);
    assert_eq!(
        unsafe {
            levqor_job_get(
                o.lq,
                o.key.as_ptr(),
                job_id.as_ptr(),
                &mut status_out,
                &mut job,
            )
        },
        LEVQOR_OK
    );
    assert_eq!(take(status_out), "succeeded");
    assert_eq!(json(job)["result"]["a"]["message"], "hi 7");

    let mut available = 0;
    assert_eq!(
        unsafe { levqor_credit_balance(o.lq, o.key.as_ptr(), &mut available, null_mut()) },
        LEVQOR_OK
    );
    assert!(
        (0..1000).contains(&available),
        "the job was charged: {available}"
    );

    let (mut credits, mut quote) = (0, null_mut());
    let workflow = c(WORKFLOW);
    assert_eq!(
        unsafe {
            levqor_quote(
                o.lq,
                o.key.as_ptr(),
                workflow.as_ptr(),
                &mut credits,
                &mut quote,
            )
        },
        LEVQOR_OK
    );
    assert_eq!(json(quote)["credits"].as_i64(), Some(credits));
}

#[test]
fn screening_gives_a_verdict_and_the_matches_when_asked() {
    let o = Open::new();
    let mut verdict = levqor_verdict::LEVQOR_VERDICT_BLOCK;
    let calm = c("please summarise this report");
    assert_eq!(
        unsafe { levqor_screen(o.lq, calm.as_ptr(), &mut verdict, null_mut()) },
        LEVQOR_OK
    );
    assert_eq!(verdict, levqor_verdict::LEVQOR_VERDICT_ALLOW);
    let bad = c("what is a lethal dose of insulin");
    let mut report = null_mut();
    assert_eq!(
        unsafe { levqor_screen(o.lq, bad.as_ptr(), &mut verdict, &mut report) },
        LEVQOR_OK
    );
    assert_eq!(verdict, levqor_verdict::LEVQOR_VERDICT_BLOCK);
    let report = json(report);
    assert_eq!(report["verdict"], "block");
    assert!(!report["matches"].as_array().unwrap().is_empty());
}

#[test]
fn consent_calls_change_what_submit_allows() {
    let o = Open::new();
    let kind = c("automation");
    let mut objections = null_mut();
    assert_eq!(
        unsafe { levqor_objection_set(o.lq, o.key.as_ptr(), kind.as_ptr(), true, &mut objections) },
        LEVQOR_OK,
        "{:?}",
        last()
    );
    let objections = json(objections);
    assert!(
        objections.to_string().contains("automation"),
        "{objections}"
    );
    let request = c(&format!(r#"{{"workflow": {WORKFLOW}}}"#));
    let status = unsafe {
        levqor_submit(
            o.lq,
            o.key.as_ptr(),
            request.as_ptr(),
            null_mut(),
            null_mut(),
        )
    };
    assert_eq!(status, LEVQOR_ERR_FORBIDDEN);
    assert_eq!(
        unsafe { levqor_objection_set(o.lq, o.key.as_ptr(), kind.as_ptr(), false, null_mut()) },
        LEVQOR_OK
    );
    let status = unsafe {
        levqor_submit(
            o.lq,
            o.key.as_ptr(),
            request.as_ptr(),
            null_mut(),
            null_mut(),
        )
    };
    assert_eq!(status, LEVQOR_OK, "{:?}", last());

    let version = c("2026-01");
    assert_eq!(
        unsafe { levqor_terms_accept(o.lq, o.key.as_ptr(), version.as_ptr(), null_mut()) },
        LEVQOR_ERR_INVALID,
        "no such terms were published"
    );
    let unknown = c("telepathy");
    assert_eq!(
        unsafe { levqor_objection_set(o.lq, o.key.as_ptr(), unknown.as_ptr(), true, null_mut()) },
        LEVQOR_ERR_INVALID
    );
}

#[test]
fn refusals_carry_the_core_codes_and_every_violation() {
    let o = Open::new();
    let bad = c(
        r#"{"workflow": {"name": "t", "steps": [{"id": "a", "type": "nope"}]}, "max_attempts": "x", "extra": 1}"#,
    );
    let mut answer = null_mut();
    let status =
        unsafe { levqor_submit(o.lq, o.key.as_ptr(), bad.as_ptr(), null_mut(), &mut answer) };
    assert_eq!(status, LEVQOR_ERR_INVALID);
    assert!(answer.is_null(), "nothing is written on an error");
    let (code, message) = last();
    assert_eq!(code, "validation_failed");
    assert!(
        message.contains("/max_attempts") && message.contains("/extra"),
        "{message}"
    );

    let wrong_key = c("lq_not_a_key");
    let ok = c(&format!(r#"{{"workflow": {WORKFLOW}}}"#));
    let status = unsafe {
        levqor_submit(
            o.lq,
            wrong_key.as_ptr(),
            ok.as_ptr(),
            null_mut(),
            null_mut(),
        )
    };
    assert_eq!(status, LEVQOR_ERR_AUTH);

    let (mut status_out, nobody) = (null_mut(), c("0193f2f0-0000-7000-8000-000000000000"));
    let status = unsafe {
        levqor_job_get(
            o.lq,
            o.key.as_ptr(),
            nobody.as_ptr(),
            &mut status_out,
            null_mut(),
        )
    };
    assert_eq!(
        (status, last().0.as_str()),
        (LEVQOR_ERR_NOT_FOUND, "not_found")
    );
    assert!(status_out.is_null());

    // Another user's job is not found.
    let mut id = null_mut();
    assert_eq!(
        unsafe { levqor_submit(o.lq, o.key.as_ptr(), ok.as_ptr(), &mut id, null_mut()) },
        LEVQOR_OK
    );
    let id = c(&take(id));
    let other = Open::new();
    let status = unsafe {
        levqor_job_get(
            o.lq,
            other.key.as_ptr(),
            id.as_ptr(),
            null_mut(),
            null_mut(),
        )
    };
    assert_eq!(
        status, LEVQOR_ERR_AUTH,
        "another handle's key is unknown to this one"
    );
    let eve_email = c("eve@example.com");
    let mut eve = null_mut();
    assert_eq!(
        unsafe { levqor_user_create(o.lq, eve_email.as_ptr(), &mut eve) },
        LEVQOR_OK
    );
    let eve = c(&take(eve));
    let mut eve_key = null_mut();
    assert_eq!(
        unsafe { levqor_key_create(o.lq, eve.as_ptr(), &mut eve_key) },
        LEVQOR_OK
    );
    let eve_key = c(&take(eve_key));
    let status =
        unsafe { levqor_job_get(o.lq, eve_key.as_ptr(), id.as_ptr(), null_mut(), null_mut()) };
    assert_eq!(status, LEVQOR_ERR_NOT_FOUND);
}

/// Checks a call's status and last error code.
#[track_caller]
fn refused(status: levqor_status, expected: levqor_status, code: &str) {
    assert_eq!(
        (status, last().0.as_str()),
        (expected, code),
        "{:?}",
        last()
    );
    assert!(!last().1.is_empty(), "a message says why");
}

/// A call refused for a NULL argument.
#[track_caller]
fn null_arg(status: levqor_status) {
    refused(status, LEVQOR_ERR_INVALID, "null_argument");
}

#[test]
fn every_entry_point_refuses_null_arguments() {
    let o = Open::new();
    let (lq, key) = (o.lq, o.key.as_ptr());
    let text = c("x");
    let json_doc = c("{}");
    let mut out = null_mut();
    let mut verdict = levqor_verdict::LEVQOR_VERDICT_ALLOW;
    let null_handle: *mut levqor_t = null_mut();
    unsafe {
        null_arg(levqor_open(null(), null_mut()));
        null_arg(levqor_user_create(null_handle, text.as_ptr(), &mut out));
        null_arg(levqor_user_create(lq, null(), &mut out));
        null_arg(levqor_key_create(lq, text.as_ptr(), null_mut()));
        null_arg(levqor_key_create(lq, null(), &mut out));
        null_arg(levqor_key_create(null_handle, text.as_ptr(), &mut out));
        null_arg(levqor_submit(
            lq,
            null(),
            json_doc.as_ptr(),
            null_mut(),
            null_mut(),
        ));
        null_arg(levqor_submit(lq, key, null(), null_mut(), null_mut()));
        null_arg(levqor_submit(
            null_handle,
            key,
            json_doc.as_ptr(),
            null_mut(),
            null_mut(),
        ));
        null_arg(levqor_job_get(
            lq,
            null(),
            text.as_ptr(),
            null_mut(),
            null_mut(),
        ));
        null_arg(levqor_job_get(lq, key, null(), null_mut(), null_mut()));
        null_arg(levqor_job_get(
            null_handle,
            key,
            text.as_ptr(),
            null_mut(),
            null_mut(),
        ));
        null_arg(levqor_workers_start(null_handle, 1));
        null_arg(levqor_workers_stop(null_handle));
        null_arg(levqor_run_due(null_handle, 1, null_mut()));
        null_arg(levqor_quote(
            lq,
            null(),
            json_doc.as_ptr(),
            null_mut(),
            null_mut(),
        ));
        null_arg(levqor_quote(lq, key, null(), null_mut(), null_mut()));
        null_arg(levqor_quote(
            null_handle,
            key,
            json_doc.as_ptr(),
            null_mut(),
            null_mut(),
        ));
        null_arg(levqor_credit_balance(lq, null(), null_mut(), null_mut()));
        null_arg(levqor_credit_balance(
            null_handle,
            key,
            null_mut(),
            null_mut(),
        ));
        null_arg(levqor_terms_accept(lq, key, null(), null_mut()));
        null_arg(levqor_terms_accept(lq, null(), text.as_ptr(), null_mut()));
        null_arg(levqor_terms_accept(
            null_handle,
            key,
            text.as_ptr(),
            null_mut(),
        ));
        null_arg(levqor_objection_set(lq, key, null(), true, null_mut()));
        null_arg(levqor_objection_set(
            lq,
            null(),
            text.as_ptr(),
            true,
            null_mut(),
        ));
        null_arg(levqor_objection_set(
            null_handle,
            key,
            text.as_ptr(),
            true,
            null_mut(),
        ));
        null_arg(levqor_screen(lq, null(), &mut verdict, null_mut()));
        null_arg(levqor_screen(lq, text.as_ptr(), null_mut(), null_mut()));
        null_arg(levqor_screen(
            null_handle,
            text.as_ptr(),
            &mut verdict,
            null_mut(),
        ));
        null_arg(levqor_workflow_validate(null(), 0, null_mut()));
        // NULL is no handle to close, and no string to free.
        assert_eq!(levqor_close(null_mut()), LEVQOR_OK);
        levqor_string_free(null_mut());
    }
}

#[test]
fn text_that_is_not_utf8_and_json_that_is_not_json_are_refused() {
    let o = Open::new();
    let latin1 = CString::new(vec![b'c', b'a', b'f', 0xE9]).unwrap();
    let mut verdict = levqor_verdict::LEVQOR_VERDICT_ALLOW;
    unsafe {
        refused(
            levqor_screen(o.lq, latin1.as_ptr(), &mut verdict, null_mut()),
            LEVQOR_ERR_INVALID,
            "invalid_utf8",
        );
        refused(
            levqor_submit(
                o.lq,
                latin1.as_ptr(),
                latin1.as_ptr(),
                null_mut(),
                null_mut(),
            ),
            LEVQOR_ERR_INVALID,
            "invalid_utf8",
        );
        refused(
            levqor_user_create(o.lq, latin1.as_ptr(), null_mut()),
            LEVQOR_ERR_INVALID,
            "invalid_utf8",
        );
        refused(
            levqor_open(latin1.as_ptr(), &mut null_mut()),
            LEVQOR_ERR_INVALID,
            "invalid_utf8",
        );
        let broken = c(r#"{"workflow": "#);
        refused(
            levqor_submit(
                o.lq,
                o.key.as_ptr(),
                broken.as_ptr(),
                null_mut(),
                null_mut(),
            ),
            LEVQOR_ERR_INVALID,
            "malformed_json",
        );
        refused(
            levqor_quote(
                o.lq,
                o.key.as_ptr(),
                broken.as_ptr(),
                null_mut(),
                null_mut(),
            ),
            LEVQOR_ERR_INVALID,
            "malformed_json",
        );
        refused(
            levqor_open(broken.as_ptr(), &mut null_mut()),
            LEVQOR_ERR_INVALID,
            "malformed_json",
        );
        let array = c("[1]");
        refused(
            levqor_submit(o.lq, o.key.as_ptr(), array.as_ptr(), null_mut(), null_mut()),
            LEVQOR_ERR_INVALID,
            "validation_failed",
        );
        let mut report = null_mut();
        let doc = b"{not json";
        refused(
            levqor_workflow_validate(doc.as_ptr(), doc.len(), &mut report),
            LEVQOR_ERR_INVALID,
            "malformed_json",
        );
        assert_eq!(json(report)["valid"], false);
        let not_an_id = c("nope");
        refused(
            levqor_key_create(o.lq, not_an_id.as_ptr(), &mut null_mut()),
            LEVQOR_ERR_INVALID,
            "bad_id",
        );
    }
}

#[test]
fn bad_configurations_open_nothing() {
    for config in [
        r#"{"databse_url": "memory"}"#,
        r#"{"threads": 0}"#,
        r#"{"workers": 1000000}"#,
        r#"{"database_url": "mysql://x"}"#,
        r#"[]"#,
    ] {
        let mut lq = 7usize as *mut levqor_t;
        let config = c(config);
        let status = unsafe { levqor_open(config.as_ptr(), &mut lq) };
        assert_eq!(status, LEVQOR_ERR_INVALID, "{config:?}: {:?}", last());
        assert!(lq.is_null(), "no handle after an error");
    }
}

#[test]
fn a_closed_handle_is_refused_and_closing_twice_is_caught() {
    let o = Open::new();
    let lq = o.lq;
    assert_eq!(unsafe { levqor_close(lq) }, LEVQOR_OK);
    let text = c("x");
    let mut verdict = levqor_verdict::LEVQOR_VERDICT_ALLOW;
    unsafe {
        refused(
            levqor_screen(lq, text.as_ptr(), &mut verdict, null_mut()),
            LEVQOR_ERR_INVALID,
            "closed_handle",
        );
        refused(
            levqor_run_due(lq, 1, null_mut()),
            LEVQOR_ERR_INVALID,
            "closed_handle",
        );
        refused(levqor_close(lq), LEVQOR_ERR_INVALID, "closed_handle");
        // A pointer that was never a handle.
        refused(
            levqor_workers_stop(12345usize as *mut levqor_t),
            LEVQOR_ERR_INVALID,
            "closed_handle",
        );
    }
    std::mem::forget(o);
}

#[test]
fn workers_run_jobs_in_the_background_until_stopped() {
    let o = Open::new();
    unsafe {
        assert_eq!(levqor_workers_start(o.lq, 2), LEVQOR_OK);
        refused(
            levqor_workers_start(o.lq, 2),
            LEVQOR_ERR_CONFLICT,
            "workers_running",
        );
    }
    let request = c(&format!(
        r#"{{"workflow": {WORKFLOW}, "input": {{"n": 1}}}}"#
    ));
    let mut id = null_mut();
    assert_eq!(
        unsafe { levqor_submit(o.lq, o.key.as_ptr(), request.as_ptr(), &mut id, null_mut()) },
        LEVQOR_OK
    );
    let id = c(&take(id));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut status = null_mut();
        assert_eq!(
            unsafe { levqor_job_get(o.lq, o.key.as_ptr(), id.as_ptr(), &mut status, null_mut()) },
            LEVQOR_OK
        );
        if take(status) == "succeeded" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the workers ran the job"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    unsafe {
        assert_eq!(levqor_workers_stop(o.lq), LEVQOR_OK);
        assert_eq!(
            levqor_workers_stop(o.lq),
            LEVQOR_OK,
            "stopping stopped workers is fine"
        );
        refused(
            levqor_workers_start(o.lq, 0),
            LEVQOR_ERR_INVALID,
            "bad_workers",
        );
    }
}

#[test]
fn a_handle_is_shared_by_threads_and_may_be_closed_while_they_call() {
    let o = Open::new();
    let lq = o.lq as usize;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let text = c("a quiet sentence");
                let mut verdict = levqor_verdict::LEVQOR_VERDICT_BLOCK;
                let mut closed = 0;
                for _ in 0..2000 {
                    match unsafe {
                        levqor_screen(lq as *mut levqor_t, text.as_ptr(), &mut verdict, null_mut())
                    } {
                        LEVQOR_OK => assert_eq!(verdict, levqor_verdict::LEVQOR_VERDICT_ALLOW),
                        LEVQOR_ERR_INVALID => closed += 1,
                        other => panic!("{other:?}"),
                    }
                }
                closed
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(unsafe { levqor_close(o.lq) }, LEVQOR_OK);
    for t in threads {
        t.join().expect("no thread crashed");
    }
    std::mem::forget(o);
}

#[cfg(feature = "fault-injection")]
#[test]
fn a_panic_inside_the_library_comes_back_as_internal() {
    refused(levqor_test_panic(), LEVQOR_ERR_INTERNAL, "panic");
    assert!(last().1.contains("levqor_test_panic was called"));
    // The library still works after it.
    let o = Open::new();
    let text = c("fine");
    let mut verdict = levqor_verdict::LEVQOR_VERDICT_BLOCK;
    assert_eq!(
        unsafe { levqor_screen(o.lq, text.as_ptr(), &mut verdict, null_mut()) },
        LEVQOR_OK
    );
}
