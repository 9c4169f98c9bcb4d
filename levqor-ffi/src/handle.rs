//! `levqor_t`: an open Levqor, its runtime and its engine, and the table of open handles.
//!
//! A handle is a number the library hands out (never reused, never dereferenced), so a call
//! with a closed handle, a handle closed twice or a pointer that was never a handle is caught
//! (`LEVQOR_ERR_INVALID`, code `closed_handle`) instead of touching freed memory. A call holds
//! its own reference to the instance, so closing a handle while other threads still call it is
//! safe: their calls finish, later ones are refused.

use levqor_core::{EngineConfig, EngineHandle, Error, Levqor, Result};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::task::{Context, Poll, Waker};

/// An open Levqor: a database, a worker pool if started, and the threads that run them.
///
/// Opaque: hold it, pass it, close it with `levqor_close`; never dereference it. Thread-safe:
/// any function may be called with the same handle from any thread at once, `levqor_close`
/// included (calls in flight finish; later calls fail with `closed_handle`).
#[allow(non_camel_case_types)]
pub struct levqor_t {
    _opaque: [u8; 0],
}

/// One open Levqor.
pub(crate) struct Instance {
    pub(crate) levqor: Arc<Levqor>,
    pub(crate) engine_config: EngineConfig,
    pub(crate) engine: Mutex<Option<EngineHandle>>,
    runtime: tokio::runtime::Runtime,
}

/// The handles now open, by number (a B-tree: no allocation of it outlives its last handle,
/// so leak checkers see nothing of it at exit).
pub(crate) struct Table<T> {
    open: LazyLock<RwLock<BTreeMap<usize, Arc<T>>>>,
    next: AtomicUsize,
}

impl<T> Table<T> {
    pub(crate) const fn new() -> Self {
        Table {
            open: LazyLock::new(|| RwLock::new(BTreeMap::new())),
            next: AtomicUsize::new(1),
        }
    }

    /// Opens `value` under a new handle.
    pub(crate) fn insert<H>(&self, value: T) -> *mut H {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.open
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(n, Arc::new(value));
        std::ptr::without_provenance_mut(n)
    }

    /// The value of an open handle.
    pub(crate) fn get<H>(&self, handle: *const H, name: &str) -> Result<Arc<T>> {
        if handle.is_null() {
            return Err(crate::io::null(name));
        }
        self.open
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&handle.addr())
            .cloned()
            .ok_or_else(|| closed(name))
    }

    /// Closes a handle: its value, which calls in flight may still hold.
    pub(crate) fn remove<H>(&self, handle: *const H, name: &str) -> Result<Arc<T>> {
        self.open
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&handle.addr())
            .ok_or_else(|| closed(name))
    }
}

fn closed(name: &str) -> Error {
    Error::invalid(
        "closed_handle",
        format!("`{name}` is not an open handle (closed already, or never opened)"),
    )
}

pub(crate) static LEVQORS: Table<Instance> = Table::new();

impl Instance {
    pub(crate) fn new(
        runtime: tokio::runtime::Runtime,
        levqor: Arc<Levqor>,
        engine_config: EngineConfig,
    ) -> Self {
        Instance {
            levqor,
            engine_config,
            engine: Mutex::new(None),
            runtime,
        }
    }

    /// Runs a core call to its end on this instance's runtime. A call that completes without
    /// waiting (screening with its rules cached) completes on the caller's thread, with no
    /// hand-off to the runtime's threads.
    pub(crate) fn run<F: Future>(&self, call: F) -> F::Output {
        let _inside = self.runtime.enter();
        let mut call = pin!(call);
        match call.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(out) => out,
            Poll::Pending => self.runtime.block_on(call),
        }
    }

    /// Stops the worker pool, if one runs, letting running steps finish (up to the grace
    /// period). Whether one ran.
    pub(crate) fn stop_engine(&self) -> bool {
        let engine = self.engine.lock().unwrap_or_else(|e| e.into_inner()).take();
        match engine {
            Some(engine) => {
                self.runtime.block_on(engine.shutdown());
                true
            }
            None => false,
        }
    }

    /// Stops the engine and closes the database.
    pub(crate) fn shut(&self) {
        self.stop_engine();
        self.runtime.block_on(self.levqor.store().close());
    }
}
