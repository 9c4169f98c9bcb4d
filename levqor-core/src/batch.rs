//! Group commit: callers hand in one item each and wait; a task gathers whatever is waiting
//! into one batch and commits it with one store call (one transaction). Under load, many
//! requests share a transaction; alone, a request waits for nothing.

use crate::error::{Error, Result};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

type Commit<I, O> =
    Arc<dyn Fn(Vec<I>) -> Pin<Box<dyn Future<Output = Result<Vec<O>>> + Send>> + Send + Sync>;
type Pending<I, O> = (I, oneshot::Sender<Result<O>>);

/// A handle to a group-commit task; clone it freely. The task ends when every handle is gone.
pub struct Batcher<I, O> {
    tx: mpsc::Sender<Pending<I, O>>,
}

impl<I, O> Clone for Batcher<I, O> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the task: batches of at most `max_batch` items, at most `parallel` batches being
    /// committed at once. `commit` must return one output per item, in order.
    pub fn spawn<F, Fut>(max_batch: usize, parallel: usize, commit: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<O>>> + Send + 'static,
    {
        let commit: Commit<I, O> = Arc::new(move |items| Box::pin(commit(items)));
        let (tx, mut rx) = mpsc::channel::<Pending<I, O>>(max_batch * parallel.max(1) * 4);
        let slots = Arc::new(Semaphore::new(parallel.max(1)));
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let slot = slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore is never closed");
                let mut batch = vec![first];
                while batch.len() < max_batch {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                let commit = commit.clone();
                tokio::spawn(async move {
                    let (items, waiters): (Vec<I>, Vec<_>) = batch.into_iter().unzip();
                    let n = items.len();
                    match commit(items).await {
                        Ok(outputs) if outputs.len() == n => {
                            for (w, o) in waiters.into_iter().zip(outputs) {
                                let _ = w.send(Ok(o));
                            }
                        }
                        Ok(_) => {
                            for w in waiters {
                                let _ = w.send(Err(Error::internal(
                                    "a batch commit returned the wrong number of results",
                                )));
                            }
                        }
                        Err(e) => {
                            for w in waiters {
                                let _ = w.send(Err(e.clone()));
                            }
                        }
                    }
                    drop(slot);
                });
            }
            // Wait for the batches still being committed before the task ends.
            let _ = slots.acquire_many(parallel.max(1) as u32).await;
        });
        Self { tx }
    }

    /// Hands in one item and waits for its batch to commit.
    pub async fn submit(&self, item: I) -> Result<O> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((item, tx))
            .await
            .map_err(|_| Error::unavailable("the commit task has stopped"))?;
        rx.await
            .map_err(|_| Error::unavailable("the commit task has stopped"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_submissions_share_batches_and_get_their_own_result() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let b = Batcher::spawn(64, 1, move |items: Vec<u32>| {
            c.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                Ok(items.into_iter().map(|i| i * 2).collect())
            }
        });
        let handles: Vec<_> = (0..200u32)
            .map(|i| {
                let b = b.clone();
                tokio::spawn(async move { (i, b.submit(i).await.unwrap()) })
            })
            .collect();
        for h in handles {
            let (i, doubled) = h.await.unwrap();
            assert_eq!(doubled, i * 2);
        }
        assert!(
            calls.load(Ordering::SeqCst) < 200,
            "batches were not shared"
        );
    }

    #[tokio::test]
    async fn a_failed_commit_fails_every_waiter() {
        let b = Batcher::spawn(8, 1, |_items: Vec<u32>| async {
            Err::<Vec<u32>, _>(Error::unavailable("down"))
        });
        assert_eq!(b.submit(1).await.unwrap_err().code, "unavailable");
    }
}
