//! The HTTP/2 server under the gRPC routes: one task per connection, which runs that
//! connection's calls itself.
//!
//! tonic's own server (hyper's HTTP/2 with a tokio executor) spawns a task for every call, and
//! on a small machine that spawn wakes another worker thread and moves the call's state
//! between cores, several microseconds a call. The REST adapter's HTTP/1.1 connections run
//! their requests on the connection's own task; here each connection's calls are polled by
//! the connection's task too ([`ConnectionExecutor`]), so a call costs no spawn and no
//! cross-thread wake-up. Calls on one connection share that task, as requests on one HTTP/1.1
//! connection do, except the share spawned while connections are too few to keep every core
//! busy ([`Connections::spawn_next`]).
//!
//! What tonic's server did on top of hyper is kept: `grpc-timeout` deadlines (the call is
//! answered `DEADLINE_EXCEEDED` and its handler dropped), the peer's address for
//! `Request::remote_addr`, TCP_NODELAY, HTTP/2 keep-alive pings, and a graceful shutdown that
//! lets calls in flight finish.

use futures::stream::{FuturesUnordered, StreamExt};
use futures::task::{ArcWake, AtomicWaker, waker_ref};
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::service::Routes;
use tonic::transport::server::TcpConnectInfo;
use tower::ServiceExt;

/// How often an idle connection is pinged, and how long a ping may go unanswered.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// How long the accept loop waits after an accept error that is not the peer's (too many
/// open files, say) before it accepts again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

type Call = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The calls a connection has started and its task has not yet taken up.
#[derive(Default)]
struct Started {
    calls: Vec<Call>,
    /// The connection's task is polling: it takes up what is started before it sleeps, so
    /// starting a call need not wake it.
    polling: bool,
}

struct Shared {
    started: Mutex<Started>,
    task: AtomicWaker,
    /// The connection itself (its socket, or a call's answer to send) asked to be polled.
    connection_woken: AtomicBool,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            started: Mutex::default(),
            task: AtomicWaker::new(),
            connection_woken: AtomicBool::new(true),
        }
    }
}

/// The waker the connection is polled with: it marks the connection as woken, so a wake-up
/// for a call alone does not poll the connection.
impl ArcWake for Shared {
    fn wake_by_ref(shared: &Arc<Self>) {
        shared.connection_woken.store(true, Ordering::Release);
        shared.task.wake();
    }
}

/// How many connections are open, against how many threads the runtime runs tasks on.
pub(crate) struct Connections {
    open: AtomicUsize,
    workers: usize,
    /// Calls started so far, for spreading them while connections are fewer than workers.
    started: AtomicUsize,
}

impl Connections {
    fn new(workers: usize) -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            workers,
            started: AtomicUsize::new(0),
        })
    }

    /// Counts a connection open until the guard drops.
    fn open(self: &Arc<Self>) -> OpenConnection {
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self.clone())
    }

    /// Whether the call starting now is spawned. With as many connections as worker threads
    /// or more, none is: the connections keep every core busy. With fewer, the connections'
    /// tasks cover `open` of the `workers` cores, so of every `workers` calls `workers - open`
    /// are spawned, for the other cores to take.
    fn spawn_next(&self) -> bool {
        let open = self.open.load(Ordering::Relaxed);
        open < self.workers && self.started.fetch_add(1, Ordering::Relaxed) % self.workers >= open
    }
}

struct OpenConnection(Arc<Connections>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The executor hyper hands each call of one connection to. It queues the call for the
/// connection's own task ([`drive`]), except the share that [`Connections::spawn_next`] spawns
/// while connections are fewer than worker threads, so that a single busy connection still
/// has every core.
#[derive(Clone)]
pub(crate) struct ConnectionExecutor {
    shared: Arc<Shared>,
    connections: Arc<Connections>,
}

impl<F> hyper::rt::Executor<F> for ConnectionExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, call: F) {
        if self.connections.spawn_next() {
            tokio::spawn(call);
            return;
        }
        let wake = {
            let mut started = self
                .shared
                .started
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            started.calls.push(Box::pin(call));
            !started.polling
        };
        if wake {
            self.shared.task.wake();
        }
    }
}

impl ConnectionExecutor {
    fn new(connections: Arc<Connections>) -> Self {
        Self {
            shared: Arc::default(),
            connections,
        }
    }

    fn set_polling(&self, polling: bool) {
        self.shared
            .started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .polling = polling;
    }

    /// The calls started since the last take; when there are none, the task is marked as no
    /// longer polling (in the same critical section, so a call started after it wakes it).
    fn take(&self) -> Vec<Call> {
        let mut started = self
            .shared
            .started
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if started.calls.is_empty() {
            started.polling = false;
        }
        std::mem::take(&mut started.calls)
    }
}

/// Runs `connection` and every call it starts on the current task, until the connection has
/// closed and its last call has finished.
///
/// Each round polls the calls first, then the connection if anything woke it: a call that
/// answers wakes the connection, so the answers of one round go out in the same poll (one
/// write) instead of after a second trip through the scheduler. Rounds repeat while the
/// connection starts calls or is woken, up to [`ROUNDS_PER_POLL`], and then the task yields.
pub(crate) async fn drive<C: Future>(connection: C, executor: ConnectionExecutor) -> C::Output {
    let mut connection = pin!(connection);
    let mut closed = None;
    let mut calls = FuturesUnordered::new();
    poll_fn(|cx| {
        let shared = &executor.shared;
        shared.task.register(cx.waker());
        executor.set_polling(true);
        for _ in 0..ROUNDS_PER_POLL {
            let started = executor.take();
            let took = !started.is_empty();
            calls.extend(started);
            while let Poll::Ready(Some(())) = calls.poll_next_unpin(cx) {}
            if closed.is_none() && shared.connection_woken.swap(false, Ordering::AcqRel) {
                let waker = waker_ref(shared);
                if let Poll::Ready(out) = connection.as_mut().poll(&mut Context::from_waker(&waker))
                {
                    closed = Some(out);
                }
            } else if !took {
                // `take` found no call and marked the task as no longer polling: a call
                // started from now on wakes it.
                return if closed.is_some() && calls.is_empty() {
                    Poll::Ready(closed.take().expect("checked"))
                } else {
                    Poll::Pending
                };
            }
        }
        // Still busy: let the worker run other tasks, and come back.
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// How many rounds of calls and connection one poll of a connection's task runs before it
/// yields to the worker's other tasks.
const ROUNDS_PER_POLL: usize = 16;

/// The call's deadline from its `grpc-timeout` header; a malformed header sets none, as in
/// tonic's server.
fn deadline(headers: &http::HeaderMap) -> Option<Duration> {
    grpc_timeout(headers.get("grpc-timeout")?.to_str().ok()?)
}

/// A `grpc-timeout` value: an integer of at most 8 digits and a unit (H, M, S, m, u, n).
pub(crate) fn grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Serves `routes` on `listener` until `shutdown` resolves; then stops accepting, asks every
/// connection to close (HTTP/2 GOAWAY) and waits for the calls in flight.
pub(crate) async fn serve(
    routes: Routes,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let connections = Connections::new(tokio::runtime::Handle::current().metrics().num_workers());
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "gRPC accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let info = TcpConnectInfo {
            local_addr: stream.local_addr().ok(),
            remote_addr: Some(remote),
        };
        let routes = routes.clone();
        let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            req.extensions_mut().insert(info.clone());
            let deadline = deadline(req.headers());
            let call = routes.clone().oneshot(req.map(Body::new));
            async move {
                let Some(deadline) = deadline else {
                    return call.await;
                };
                match tokio::time::timeout(deadline, call).await {
                    Ok(answer) => answer,
                    Err(_) => Ok::<_, Infallible>(
                        tonic::Status::deadline_exceeded("deadline exceeded").into_http(),
                    ),
                }
            }
        });
        let open = connections.open();
        let executor = ConnectionExecutor::new(connections.clone());
        let mut builder = http2::Builder::new(executor.clone());
        builder
            .timer(TokioTimer::new())
            .keep_alive_interval(KEEPALIVE_EVERY)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT);
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = drive(connection, executor).await {
                tracing::debug!(error = %e, "gRPC connection ended with an error");
            }
            drop(open);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Errors of one connection that was being accepted (the peer gave up): accept the next.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_read_in_every_unit() {
        let at = |v: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("grpc-timeout", v.parse().unwrap());
            deadline(&headers)
        };
        assert_eq!(at("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(at("3M"), Some(Duration::from_secs(180)));
        assert_eq!(at("4S"), Some(Duration::from_secs(4)));
        assert_eq!(at("50m"), Some(Duration::from_millis(50)));
        assert_eq!(at("7u"), Some(Duration::from_micros(7)));
        assert_eq!(at("99999999n"), Some(Duration::from_nanos(99_999_999)));
        for bad in ["", "S", "100", "123456789S", "1x", "-1S", "1.5S"] {
            assert_eq!(at(bad), None, "{bad:?}");
        }
        assert_eq!(deadline(&http::HeaderMap::new()), None);
    }

    fn start(executor: &ConnectionExecutor, call: impl Future<Output = ()> + Send + 'static) {
        hyper::rt::Executor::execute(executor, call);
    }

    #[tokio::test]
    async fn a_connection_ends_once_every_call_it_started_has_finished() {
        let connections = Connections::new(1);
        let _open = connections.open();
        let executor = ConnectionExecutor::new(connections);
        let finished = Arc::new(AtomicUsize::new(0));
        let (closing, closed) = tokio::sync::oneshot::channel::<()>();
        let connection = {
            let executor = executor.clone();
            let finished = finished.clone();
            async move {
                for i in 0..10 {
                    let finished = finished.clone();
                    start(&executor, async move {
                        tokio::time::sleep(Duration::from_millis(5 * i)).await;
                        finished.fetch_add(1, Ordering::SeqCst);
                    });
                }
                closed.await.unwrap();
                "closed"
            }
        };
        // A call started from elsewhere while the connection's task sleeps wakes it.
        let elsewhere = executor.clone();
        let late = finished.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            start(&elsewhere, async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                late.fetch_add(1, Ordering::SeqCst);
            });
            closing.send(()).unwrap();
        });
        let closed = tokio::time::timeout(Duration::from_secs(5), drive(connection, executor));
        assert_eq!(closed.await.expect("every call finished"), "closed");
        assert_eq!(finished.load(Ordering::SeqCst), 11);
    }

    /// A connection that starts one call and counts how often it is polled; the call answers
    /// once `answer` fires, waking the connection as hyper's stream does when a response is
    /// queued.
    fn answering_connection(
        executor: &ConnectionExecutor,
        answer: tokio::sync::oneshot::Receiver<()>,
    ) -> (
        impl Future<Output = ()> + use<>,
        Arc<AtomicUsize>,
        Arc<AtomicBool>,
    ) {
        let polls = Arc::new(AtomicUsize::new(0));
        let answered = Arc::new(AtomicBool::new(false));
        let waker = Arc::new(Mutex::new(None::<std::task::Waker>));
        let mut answer = Some(answer);
        let (executor, counted, flag) = (executor.clone(), polls.clone(), answered.clone());
        let connection = poll_fn(move |cx| {
            counted.fetch_add(1, Ordering::SeqCst);
            *waker.lock().unwrap() = Some(cx.waker().clone());
            if let Some(answer) = answer.take() {
                let (waker, flag) = (waker.clone(), flag.clone());
                start(&executor, async move {
                    answer.await.unwrap();
                    flag.store(true, Ordering::SeqCst);
                    waker.lock().unwrap().take().unwrap().wake();
                });
            }
            Poll::Pending
        });
        (connection, polls, answered)
    }

    #[test]
    fn an_answer_is_sent_in_the_same_poll_that_produced_it() {
        let connections = Connections::new(1);
        let _open = connections.open();
        let executor = ConnectionExecutor::new(connections);
        let (answer, answer_ready) = tokio::sync::oneshot::channel();
        let (connection, polls, answered) = answering_connection(&executor, answer_ready);
        let mut driven = pin!(drive(connection, executor));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(driven.as_mut().poll(&mut cx).is_pending());
        assert!(!answered.load(Ordering::SeqCst));
        let before = polls.load(Ordering::SeqCst);

        // The call's answer arrives from elsewhere: the next poll runs the call, which wakes
        // the connection, and the connection is polled (its answer written) in that poll.
        answer.send(()).unwrap();
        assert!(driven.as_mut().poll(&mut cx).is_pending());
        assert!(answered.load(Ordering::SeqCst));
        assert_eq!(polls.load(Ordering::SeqCst), before + 1);
    }

    #[test]
    fn a_connection_that_stays_busy_yields_to_other_tasks() {
        struct Counter(AtomicUsize);
        impl ArcWake for Counter {
            fn wake_by_ref(counter: &Arc<Self>) {
                counter.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let connections = Connections::new(1);
        let _open = connections.open();
        let executor = ConnectionExecutor::new(connections);
        let polls = Arc::new(AtomicUsize::new(0));
        let counted = polls.clone();
        // Always woken again, as under a client that never stops sending (until 1,000 polls,
        // so that a driver without a bound still returns).
        let connection = poll_fn(move |cx| {
            if counted.fetch_add(1, Ordering::SeqCst) < 1000 {
                cx.waker().wake_by_ref();
            }
            Poll::<()>::Pending
        });
        let task = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = futures::task::waker(task.clone());
        let mut driven = pin!(drive(connection, executor));
        assert!(
            driven
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        assert_eq!(polls.load(Ordering::SeqCst), ROUNDS_PER_POLL);
        assert_ne!(
            task.0.load(Ordering::SeqCst),
            0,
            "the task asked to be polled again"
        );
    }

    #[test]
    fn calls_are_spawned_for_the_cores_the_connections_leave_idle() {
        let spawned_of_eight = |workers, open| {
            let connections = Connections::new(workers);
            let _open: Vec<_> = (0..open).map(|_| connections.open()).collect();
            (0..8).filter(|_| connections.spawn_next()).count()
        };
        assert_eq!(spawned_of_eight(4, 1), 6);
        assert_eq!(spawned_of_eight(4, 2), 4);
        assert_eq!(spawned_of_eight(4, 3), 2);
        assert_eq!(spawned_of_eight(4, 4), 0);
        assert_eq!(spawned_of_eight(4, 9), 0);
        assert_eq!(spawned_of_eight(2, 1), 4);
        assert_eq!(spawned_of_eight(1, 1), 0);

        let connections = Connections::new(2);
        let closed = connections.open();
        drop(closed);
        assert_eq!(connections.open.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_spawned_call_runs_on_its_own_and_a_queued_one_with_its_connection() {
        let connections = Connections::new(2);
        let _only = connections.open();
        let executor = ConnectionExecutor::new(connections);
        let (queued, mut queued_ran) = tokio::sync::oneshot::channel();
        let (spawned, spawned_ran) = tokio::sync::oneshot::channel();
        start(&executor, async move { queued.send(()).unwrap() });
        start(&executor, async move { spawned.send(()).unwrap() });
        // Nothing drives the connection yet: only the spawned call can run.
        tokio::time::timeout(Duration::from_secs(5), spawned_ran)
            .await
            .expect("the second call was spawned")
            .unwrap();
        assert!(
            queued_ran.try_recv().is_err(),
            "the first call waits for its connection"
        );
        tokio::time::timeout(Duration::from_secs(5), drive(async {}, executor))
            .await
            .expect("the connection ran its call");
        queued_ran.await.unwrap();
    }
}
