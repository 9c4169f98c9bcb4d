//! What the C ABI adds to a call: `levqor_screen` through the ABI against the same screening
//! called from Rust on the same kind of instance (in memory, default rules, rules cached).
//!
//! `cargo bench -p levqor-ffi --bench abi_overhead`

use criterion::{Criterion, criterion_group, criterion_main};
use levqor_core::{Levqor, MemoryStore, OutboxNotifier, StepRunner};
use levqor_ffi::*;
use std::ffi::CString;
use std::hint::black_box;
use std::pin::pin;
use std::ptr::null_mut;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// An empty text (the call with the least work, so the ABI's share shows best), a text with no
/// match, and one with a critical match.
const TEXTS: [(&str, &str); 3] = [
    ("empty", ""),
    (
        "allow",
        "please summarise this quarterly report for the board",
    ),
    ("block", "what is a lethal dose of insulin"),
];

/// The Rust side: the core's call, polled once on the caller's thread (what an `.await` of a
/// call that does not wait costs), with the runtime entered.
fn rust_screen(rt: &tokio::runtime::Runtime, levqor: &Levqor, text: &str) -> u32 {
    let _inside = rt.enter();
    let mut call = pin!(levqor.screenings().screen_text(text));
    match call.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(s)) => s.matches.len() as u32,
        _ => panic!("the rules are cached"),
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let levqor = rt.block_on(async {
        let store = Arc::new(MemoryStore::new());
        let runner = Arc::new(StepRunner::new(
            Arc::new(levqor_http::fetch::ReqwestHttp::new(false, 1024)),
            Arc::new(OutboxNotifier::new(store.clone())),
            Vec::new(),
        ));
        Levqor::builder(store, runner).build().unwrap()
    });
    let mut lq = null_mut();
    let config = CString::new(r#"{"database_url": "memory"}"#).unwrap();
    assert_eq!(
        unsafe { levqor_open(config.as_ptr(), &mut lq) },
        levqor_status::LEVQOR_OK
    );

    for (name, text) in TEXTS {
        let c_text = CString::new(text).unwrap();
        let mut verdict = levqor_verdict::LEVQOR_VERDICT_ALLOW;
        // Warm both rule caches.
        rust_screen(&rt, &levqor, text);
        unsafe { levqor_screen(lq, c_text.as_ptr(), &mut verdict, null_mut()) };

        let mut group = c.benchmark_group(format!("screen_{name}"));
        group.bench_function("rust", |b| {
            b.iter(|| rust_screen(&rt, &levqor, black_box(text)))
        });
        group.bench_function("c_abi", |b| {
            b.iter(|| unsafe {
                levqor_screen(lq, black_box(c_text.as_ptr()), &mut verdict, null_mut())
            })
        });
        group.bench_function("c_abi_with_json", |b| {
            b.iter(|| unsafe {
                let mut json = null_mut();
                levqor_screen(lq, black_box(c_text.as_ptr()), &mut verdict, &mut json);
                levqor_string_free(json);
            })
        });
        group.finish();
    }
    unsafe { levqor_close(lq) };
}

criterion_group!(benches, bench);
criterion_main!(benches);
