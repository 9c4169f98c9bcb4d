//! The [`Dispatcher`]: delivers the outbox. Every node runs one; they share the outbox through
//! the store, whose claim hands each message to one dispatcher at a time under a lease.
//!
//! The rules that make a message go once:
//!
//! - A message is claimed (`sending`, attempt counted) before any byte goes to the provider,
//!   and its end is recorded only by the claim that took it.
//! - A provider's answer decides: accepted is `sent`; a temporary failure is `pending` again
//!   after an exponential backoff with jitter, until `max_attempts`, then `failed`; a refusal
//!   is `failed` at once.
//! - A message still `sending` when its lease ends was abandoned by a node that stopped mid-
//!   attempt, so whether it left is unknown. Through a channel whose provider deduplicates by
//!   the message's idempotency key (Resend, signed webhooks), it is claimed again and the
//!   provider drops the copy. Through one that cannot (SMTP, Slack, Telegram) it becomes
//!   `unknown` and waits for an admin: a message is never re-sent blindly.

use super::{Channel, Delivered, DeliveryStatus, EmailKind, OutboxMessage};
use super::{OutboxClaim, OutboxStore, Settle, store::Attempt};
use crate::backoff::retry_delay;
use crate::clock::{Clock, micros};
use crate::error::Result;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

/// How the dispatcher runs.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// This node's name, recorded with every attempt.
    pub node: String,
    /// Most messages taken by one claim.
    pub batch: usize,
    /// Deliveries in flight at once on this node.
    pub concurrency: usize,
    /// How long a claim holds a message: longer than any channel's own timeout.
    pub lease: Duration,
    /// How often an idle dispatcher looks for due messages.
    pub poll_interval: Duration,
    /// The delay before the second attempt; doubled on each further one.
    pub retry_base: Duration,
    /// Longest delay between attempts.
    pub retry_cap: Duration,
    /// Attempts before a message is `failed`.
    pub max_attempts: u32,
    /// A message not delivered this long after it was written is `failed` instead of sent
    /// late (a provider configured after months of outbox-only messages does not send them).
    pub max_age: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            node: format!("node-{}", Uuid::new_v4().simple()),
            batch: 64,
            concurrency: 16,
            lease: Duration::from_secs(120),
            poll_interval: Duration::from_millis(200),
            retry_base: Duration::from_secs(2),
            retry_cap: Duration::from_secs(600),
            max_attempts: 10,
            max_age: Duration::from_secs(3 * 24 * 3600),
        }
    }
}

/// What one pass of the dispatcher did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchTick {
    /// Messages claimed.
    pub claimed: usize,
    /// Accepted by their provider.
    pub sent: usize,
    /// Not accepted; pending again.
    pub retried: usize,
    /// Refused or out of attempts.
    pub failed: usize,
    /// Abandoned mid-attempt by a node, through a channel that cannot deduplicate.
    pub unknown: u64,
    /// Too old to send.
    pub expired: u64,
}

/// Delivers due outbox messages through the configured channels.
pub struct Dispatcher {
    store: Arc<dyn OutboxStore>,
    channels: HashMap<String, Arc<dyn Channel>>,
    clock: Arc<dyn Clock>,
    config: DispatchConfig,
    wake: Notify,
}

impl Dispatcher {
    /// A dispatcher of `store`'s outbox through `channels` (one per channel name; a later one
    /// replaces an earlier one of the same name).
    pub fn new(
        store: Arc<dyn OutboxStore>,
        channels: Vec<Arc<dyn Channel>>,
        clock: Arc<dyn Clock>,
        config: DispatchConfig,
    ) -> Self {
        let channels = channels
            .into_iter()
            .map(|c| (c.channel().to_string(), c))
            .collect();
        Self {
            store,
            channels,
            clock,
            config,
            wake: Notify::new(),
        }
    }

    /// The channels it delivers, sorted.
    pub fn channels(&self) -> Vec<String> {
        let mut names: Vec<String> = self.channels.keys().cloned().collect();
        names.sort();
        names
    }

    /// Makes an idle dispatcher look for due messages now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// One pass: settles abandoned and too-old messages, claims a batch, delivers it and
    /// records every attempt.
    pub async fn tick(&self) -> Result<DispatchTick> {
        if self.channels.is_empty() {
            return Ok(DispatchTick::default());
        }
        let now = self.clock.now_micros();
        let not_before = now - self.config.max_age;
        let (channels, reclaim) = self.split_channels();
        let claim = OutboxClaim {
            token: Uuid::new_v4(),
            node: self.config.node.clone(),
            now,
            lease_until: now + self.config.lease,
            not_before,
            channels,
            reclaim,
            limit: self.config.batch.max(1),
        };
        let swept = self.store.sweep_outbox(&claim).await?;
        let claimed = self.store.claim_outbox(&claim).await?;
        let mut tick = DispatchTick {
            claimed: claimed.len(),
            unknown: swept.unknown,
            expired: swept.expired,
            ..DispatchTick::default()
        };
        let mut ends = futures::stream::iter(claimed)
            .map(|m| self.attempt(m, claim.token))
            .buffer_unordered(self.config.concurrency.max(1))
            .ready_chunks(self.config.concurrency.max(1));
        while let Some(settles) = ends.next().await {
            for s in &settles {
                match s.status {
                    DeliveryStatus::Sent => tick.sent += 1,
                    DeliveryStatus::Pending => tick.retried += 1,
                    _ => tick.failed += 1,
                }
            }
            let applied = self.store.settle_outbox(&settles).await?;
            for (s, ok) in settles.iter().zip(applied) {
                if !ok {
                    tracing::warn!(message_id = %s.message_id, "outbox lease lost before the attempt was recorded");
                }
            }
        }
        Ok(tick)
    }

    /// The channels to claim, and those of them whose abandoned messages may be claimed again.
    fn split_channels(&self) -> (Vec<String>, Vec<String>) {
        let channels = self.channels();
        let reclaim = channels
            .iter()
            .filter(|c| self.channels[c.as_str()].deduplicates())
            .cloned()
            .collect();
        (channels, reclaim)
    }

    async fn attempt(&self, message: OutboxMessage, token: Uuid) -> Settle {
        let started_at = self.clock.now_micros();
        let delivered = match self.suppressed(&message).await {
            Some(refusal) => refusal,
            None => match self.channels.get(&message.channel) {
                Some(channel) => channel.deliver(&message).await,
                None => Delivered::Retry {
                    error: format!("no {} channel on this node", message.channel),
                    after: None,
                },
            },
        };
        let finished_at = self.clock.now_micros();
        self.settle(&message, token, delivered, started_at, finished_at)
    }

    /// A marketing email to an address suppressed after it was queued is refused here, before
    /// it reaches the provider. (A lookup that fails lets the attempt go ahead: the send
    /// already checked.)
    async fn suppressed(&self, message: &OutboxMessage) -> Option<Delivered> {
        if message.channel != "email" || message.kind != EmailKind::Marketing {
            return None;
        }
        match self.store.suppression(&message.to).await {
            Ok(Some(s)) => Some(Delivered::Reject {
                error: format!("the address is suppressed ({})", s.reason.as_str()),
            }),
            _ => None,
        }
    }

    fn settle(
        &self,
        message: &OutboxMessage,
        token: Uuid,
        delivered: Delivered,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
    ) -> Settle {
        let attempts = message.delivery.attempts;
        let (status, next_attempt_at, provider_message_id, outcome, answer) = match delivered {
            Delivered::Sent {
                provider_message_id,
                answer,
            } => (
                DeliveryStatus::Sent,
                None,
                provider_message_id,
                "sent",
                answer,
            ),
            Delivered::Retry { error, after } if attempts < self.config.max_attempts => {
                let jitter = 0.5 + rand::random::<f64>() * 0.5;
                let backoff = retry_delay(
                    attempts as i32,
                    self.config.retry_base,
                    self.config.retry_cap,
                    jitter,
                );
                let asked = after.unwrap_or_default().min(self.config.retry_cap);
                let delay = backoff.max(asked);
                (
                    DeliveryStatus::Pending,
                    Some(micros(finished_at + delay)),
                    None,
                    "retry",
                    error,
                )
            }
            Delivered::Retry { error, .. } => (DeliveryStatus::Failed, None, None, "retry", error),
            Delivered::Reject { error } => (DeliveryStatus::Failed, None, None, "rejected", error),
        };
        if status != DeliveryStatus::Sent {
            tracing::warn!(message_id = %message.id, channel = %message.channel, attempt = attempts, status = status.as_str(), error = %answer, "delivery not accepted");
        }
        Settle {
            message_id: message.id,
            token,
            status,
            next_attempt_at,
            provider_message_id,
            attempt: Attempt {
                number: attempts,
                node: self.config.node.clone(),
                started_at,
                finished_at,
                outcome: outcome.into(),
                answer,
            },
        }
    }

    /// Runs passes until stopped: at once after a full batch, else after the poll interval or
    /// a [`Dispatcher::wake`].
    pub fn start(self: Arc<Self>) -> DispatchHandle {
        let (stop, mut stopping) = watch::channel(false);
        let dispatcher = self.clone();
        let task = tokio::spawn(async move {
            loop {
                if *stopping.borrow() {
                    return;
                }
                let full = match dispatcher.tick().await {
                    Ok(t) => t.claimed >= dispatcher.config.batch.max(1),
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox dispatch failed; trying again");
                        false
                    }
                };
                if full {
                    continue;
                }
                tokio::select! {
                    _ = tokio::time::sleep(dispatcher.config.poll_interval) => {}
                    _ = dispatcher.wake.notified() => {}
                    _ = stopping.changed() => {}
                }
            }
        });
        DispatchHandle {
            dispatcher: self,
            stop,
            task,
        }
    }
}

/// A running dispatcher.
pub struct DispatchHandle {
    dispatcher: Arc<Dispatcher>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl DispatchHandle {
    /// The dispatcher.
    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }

    /// Stops after the pass in flight (its deliveries end and are recorded), waiting at most
    /// `grace`; a pass still running then is abandoned and its messages' leases expire.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
        }
    }
}
