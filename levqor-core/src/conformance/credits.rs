//! Conformance cases for the credit ledger.

use super::{admit, claim, finish, job, t0, user};
use crate::credits::{Account, EntryKind, NewEntry, NewHold, Posted};
use crate::jobs::model::JobStatus;
use crate::jobs::store::{Admission, Lease, NewJob};
use crate::store::Store;
use crate::users::User;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

fn grant(user_id: Uuid, credits: i64, key: &str, expires_at: Option<DateTime<Utc>>) -> NewEntry {
    NewEntry {
        user_id,
        kind: if credits > 0 {
            EntryKind::Grant
        } else {
            EntryKind::Adjustment
        },
        credits,
        idempotency_key: key.into(),
        reason: Some("test".into()),
        priority: 0,
        expires_at,
        now: t0(),
    }
}

fn held_job(owner: Uuid, credits: i64) -> NewJob {
    NewJob {
        hold: Some(NewHold {
            credits,
            quote: json!({"step_prices": {"log": credits}, "factor_bp": 10_000}),
            expires_at: t0() + Duration::hours(24),
        }),
        ..job(owner, None, t0())
    }
}

/// The account's totals recomputed from its entries.
async fn summed(store: &Arc<dyn Store>, user_id: Uuid) -> Account {
    let mut a = Account::default();
    let mut before = None;
    loop {
        let page = store.list_entries(user_id, before, 7).await.unwrap();
        let Some(last) = page.last() else { return a };
        before = Some(last.id);
        for e in &page {
            a.balance += e.credits;
            a.held += e.held;
        }
    }
}

pub async fn credit_entries_are_idempotent_and_never_overdraw(store: Arc<dyn Store>) {
    let u = user(&store, "ledger@example.com").await;
    assert_eq!(store.account(u.id).await.unwrap(), Account::default());
    let first = store
        .post_entry(&grant(u.id, 100, "g1", None))
        .await
        .unwrap();
    assert!(matches!(first, Posted::Created(_)));
    let again = store
        .post_entry(&grant(u.id, 999, "g1", None))
        .await
        .unwrap();
    assert_eq!(
        again,
        Posted::Replayed(first.entry().clone()),
        "a replayed key changes nothing"
    );
    assert_eq!(store.account(u.id).await.unwrap().balance, 100);

    let err = store
        .post_entry(&grant(u.id, -101, "a1", None))
        .await
        .unwrap_err();
    assert_eq!(err.code, "insufficient_credits");
    store
        .post_entry(&grant(u.id, -30, "a2", None))
        .await
        .unwrap();
    let a = store.account(u.id).await.unwrap();
    assert_eq!((a.balance, a.held), (70, 0));
    assert_eq!(
        summed(&store, u.id).await,
        a,
        "the entries add up to the account"
    );
    let e = store.list_entries(u.id, None, 10).await.unwrap();
    assert_eq!(e[0].kind, EntryKind::Adjustment);
    assert_eq!(e[1], first.entry().clone());
}

pub async fn admission_holds_what_fits_and_settles_what_ran(store: Arc<dyn Store>) {
    let u = user(&store, "holds@example.com").await;
    store.post_entry(&grant(u.id, 25, "g", None)).await.unwrap();
    // A batch of three 10-credit jobs against 25 credits: the first two fit, in batch order.
    let batch = vec![held_job(u.id, 10), held_job(u.id, 10), held_job(u.id, 10)];
    let ids: Vec<Uuid> = batch.iter().map(|n| n.job.id).collect();
    let out = store.admit_batch(batch).await.unwrap();
    assert!(matches!(out[0], Ok(Admission::Created(_))));
    assert!(matches!(out[1], Ok(Admission::Created(_))));
    assert_eq!(out[2].as_ref().unwrap_err().code, "insufficient_credits");
    assert!(
        store.get_job(ids[2]).await.unwrap().is_none(),
        "nothing is written for a refusal"
    );
    let a = store.account(u.id).await.unwrap();
    assert_eq!((a.balance, a.held, a.available()), (25, 20, 5));
    assert_eq!(summed(&store, u.id).await, a);

    // Nothing to close while the jobs wait.
    assert!(store.holds_to_close(t0(), 10).await.unwrap().is_empty());
    // The first runs and succeeds; the second is canceled.
    let c = claim(t0(), 1);
    let claimed = store.claim_due(&c).await.unwrap();
    let done = claimed[0].job.id;
    let lease = Lease {
        job_id: done,
        token: c.token,
    };
    assert_eq!(
        store
            .commit(&[finish(lease, JobStatus::Succeeded, Vec::new())])
            .await
            .unwrap(),
        vec![true]
    );
    let other = if done == ids[0] { ids[1] } else { ids[0] };
    store.cancel_job(other, t0()).await.unwrap();
    let mut to_close = store.holds_to_close(t0(), 10).await.unwrap();
    to_close.sort_by_key(|h| h.job_id);
    assert_eq!(to_close.len(), 2);
    assert!(store.close_hold(done, 7, t0()).await.unwrap());
    assert!(
        !store.close_hold(done, 7, t0()).await.unwrap(),
        "a hold closes once"
    );
    assert!(store.close_hold(other, 0, t0()).await.unwrap());
    let a = store.account(u.id).await.unwrap();
    assert_eq!((a.balance, a.held), (18, 0), "7 charged, 10 released");
    assert_eq!(summed(&store, u.id).await, a);
    let kinds: Vec<EntryKind> = store
        .list_entries(u.id, None, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&EntryKind::Settle) && kinds.contains(&EntryKind::Release));
    assert!(store.holds_to_close(t0(), 10).await.unwrap().is_empty());

    // A job without a hold is admitted whatever the balance.
    let free = admit(&store, job(u.id, None, t0())).await;
    assert_eq!(free.owner_id, u.id);
}

/// Three owners: one with 100 credits, one without an account, one with 5 credits.
async fn rich_poor_broke(store: &Arc<dyn Store>) -> [User; 3] {
    let owners = [
        user(store, "rich@example.com").await,
        user(store, "poor@example.com").await,
        user(store, "broke@example.com").await,
    ];
    for (owner, credits) in [(&owners[0], 100), (&owners[2], 5)] {
        store
            .post_entry(&grant(owner.id, credits, "g", None))
            .await
            .unwrap();
    }
    owners
}

/// Admits `batch`; checks that the jobs stored are those admitted, and that every refusal is
/// for credits. Returns which were admitted, and their ids.
async fn admit_checked(store: &Arc<dyn Store>, batch: Vec<NewJob>) -> (Vec<bool>, Vec<Uuid>) {
    let ids: Vec<Uuid> = batch.iter().map(|n| n.job.id).collect();
    let out = store.admit_batch(batch).await.unwrap();
    for refused in out.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(refused.code, "insufficient_credits");
    }
    let admitted: Vec<bool> = out.iter().map(Result::is_ok).collect();
    for (id, admitted) in ids.iter().zip(&admitted) {
        assert_eq!(store.get_job(*id).await.unwrap().is_some(), *admitted);
    }
    (admitted, ids)
}

/// Each owner's (balance, held), and that its entries add up to them.
async fn assert_totals(store: &Arc<dyn Store>, totals: [(&User, (i64, i64)); 3]) {
    for (u, totals) in totals {
        let a = store.account(u.id).await.unwrap();
        assert_eq!((a.balance, a.held), totals);
        assert_eq!(summed(store, u.id).await, a, "the entries add up");
    }
}

/// A batch without idempotency keys in which some holds do not fit: only those are refused, an
/// owner without an account included (a hold of nothing still admits, and opens the account).
pub async fn a_batch_without_keys_refuses_only_what_does_not_fit(store: Arc<dyn Store>) {
    let [rich, nobody, broke] = rich_poor_broke(&store).await;
    let batch = vec![
        held_job(rich.id, 10),
        held_job(nobody.id, 10),
        held_job(broke.id, 10),
        held_job(rich.id, 10),
        held_job(broke.id, 5),
        held_job(nobody.id, 0),
    ];
    let (admitted, _) = admit_checked(&store, batch).await;
    assert_eq!(admitted, [true, false, false, true, true, true]);
    // A batch that fits whole.
    let (admitted, _) =
        admit_checked(&store, vec![held_job(rich.id, 10), held_job(nobody.id, 0)]).await;
    assert_eq!(admitted, [true, true]);
    assert_totals(
        &store,
        [(&rich, (100, 30)), (&nobody, (0, 0)), (&broke, (5, 5))],
    )
    .await;
}

/// A batch the database refuses (here two jobs with one id) writes nothing, neither its jobs nor
/// their holds, and the store goes on admitting.
pub async fn a_failed_admission_writes_nothing(store: Arc<dyn Store>) {
    let u = user(&store, "failed-batch@example.com").await;
    store
        .post_entry(&grant(u.id, 100, "g", None))
        .await
        .unwrap();
    let fine = held_job(u.id, 10);
    let twin = held_job(u.id, 10);
    let fine_id = fine.job.id;
    let batch = vec![fine, twin.clone(), twin];
    assert!(store.admit_batch(batch).await.is_err(), "one id twice");
    assert!(store.get_job(fine_id).await.unwrap().is_none());
    let a = store.account(u.id).await.unwrap();
    assert_eq!((a.balance, a.held), (100, 0), "no hold is left behind");
    assert_eq!(summed(&store, u.id).await, a);

    let next = admit(&store, held_job(u.id, 10)).await;
    assert!(store.get_job(next.id).await.unwrap().is_some());
    assert_eq!(store.account(u.id).await.unwrap().held, 10);
}

/// An admission dropped part-way (its caller cancelled) lands whole or not at all, and the store
/// goes on admitting.
pub async fn a_cancelled_admission_lands_whole_or_not_at_all(store: Arc<dyn Store>) {
    use futures::FutureExt;
    let u = user(&store, "cancelled-batch@example.com").await;
    store
        .post_entry(&grant(u.id, 100, "g", None))
        .await
        .unwrap();
    for _ in 0..20 {
        let batch = vec![held_job(u.id, 1), held_job(u.id, 1)];
        let ids: Vec<Uuid> = batch.iter().map(|n| n.job.id).collect();
        // One poll starts the batch's first statements; the future is then dropped.
        let _ = store.admit_batch(batch).now_or_never();
        let next = admit(&store, held_job(u.id, 1)).await;
        assert!(store.get_job(next.id).await.unwrap().is_some());
        let landed = [
            store.get_job(ids[0]).await.unwrap().is_some(),
            store.get_job(ids[1]).await.unwrap().is_some(),
        ];
        assert!(landed[0] == landed[1], "a batch lands whole: {landed:?}");
        let a = store.account(u.id).await.unwrap();
        assert_eq!(summed(&store, u.id).await, a, "holds match the ledger");
    }
}

/// In one batch, the holds that do not fit are refused job by job, in batch order, and the
/// others' jobs are admitted as if alone: an owner without an account, an idempotency key first
/// offered by a refused job, and a smaller hold after a refused one.
pub async fn a_short_account_refuses_only_its_own_jobs(store: Arc<dyn Store>) {
    let [rich, poor, broke] = rich_poor_broke(&store).await;
    let keyed = |owner: Uuid, key: &str| NewJob {
        hold: held_job(owner, 10).hold,
        ..job(owner, Some(key), t0())
    };
    let batch = vec![
        held_job(rich.id, 10),
        keyed(poor.id, "k"),
        held_job(broke.id, 10),
        held_job(rich.id, 10),
        keyed(poor.id, "k"),
        held_job(broke.id, 5),
    ];
    let (admitted, ids) = admit_checked(&store, batch).await;
    assert_eq!(admitted, [true, false, false, true, false, true]);
    let mut claimed: Vec<Uuid> = store
        .claim_due(&claim(t0(), 10))
        .await
        .unwrap()
        .iter()
        .map(|c| c.job.id)
        .collect();
    claimed.sort();
    assert_eq!(
        claimed,
        [ids[0], ids[3], ids[5]],
        "only admitted jobs are queued"
    );
    assert_totals(
        &store,
        [(&rich, (100, 20)), (&poor, (0, 0)), (&broke, (5, 5))],
    )
    .await;

    // Once the poor owner has credits, the same key admits (and then replays).
    store
        .post_entry(&grant(poor.id, 10, "g", None))
        .await
        .unwrap();
    let retry = keyed(poor.id, "k");
    let out = store
        .admit_batch(vec![retry.clone(), held_job(rich.id, 10)])
        .await
        .unwrap();
    assert!(matches!(&out[0], Ok(Admission::Created(j)) if j.id == retry.job.id));
    assert!(matches!(out[1], Ok(Admission::Created(_))));
    let out = store.admit_batch(vec![keyed(poor.id, "k")]).await.unwrap();
    assert!(matches!(&out[0], Ok(Admission::Replayed(j)) if j.id == retry.job.id));
    let a = store.account(poor.id).await.unwrap();
    assert_eq!((a.balance, a.held), (10, 10));
    assert_eq!(summed(&store, poor.id).await, a);
}

pub async fn expired_holds_and_credits_are_released_but_never_below_holds(store: Arc<dyn Store>) {
    let u = user(&store, "expiry@example.com").await;
    let soon = t0() + Duration::hours(1);
    store
        .post_entry(&grant(u.id, 10, "expiring", Some(soon)))
        .await
        .unwrap();
    store
        .post_entry(&grant(u.id, 5, "lasting", None))
        .await
        .unwrap();
    let out = store.admit_batch(vec![held_job(u.id, 12)]).await.unwrap();
    let job_id = out[0].as_ref().unwrap().job().id;
    // At expiry, only what the hold does not need may expire: available is 3.
    let expired = store.expire_credits(soon).await.unwrap();
    assert_eq!(expired, 3);
    let a = store.account(u.id).await.unwrap();
    assert_eq!((a.balance, a.held, a.available()), (12, 12, 0));
    // The hold expires while the job still waits: it is released, and then the rest expires.
    let late = t0() + Duration::hours(25);
    let holds = store.holds_to_close(late, 10).await.unwrap();
    assert_eq!(
        holds.iter().map(|h| h.job_id).collect::<Vec<_>>(),
        vec![job_id]
    );
    assert!(store.close_hold(job_id, 0, late).await.unwrap());
    assert_eq!(store.expire_credits(late).await.unwrap(), 7);
    let a = store.account(u.id).await.unwrap();
    assert_eq!((a.balance, a.held), (5, 0));
    assert_eq!(summed(&store, u.id).await, a);
    assert_eq!(
        store.expire_credits(late).await.unwrap(),
        0,
        "nothing expires twice"
    );

    // Erasure keeps the ledger under a tombstone: it still adds up.
    let tombstone = Uuid::new_v4();
    assert!(store.pseudonymize_credits(u.id, tombstone).await.unwrap() >= 5);
    assert_eq!(store.account(u.id).await.unwrap(), Account::default());
    assert!(store.list_entries(u.id, None, 10).await.unwrap().is_empty());
    let kept = store.account(tombstone).await.unwrap();
    assert_eq!(kept.balance, 5);
    assert_eq!(summed(&store, tombstone).await, kept);
    assert!(
        store
            .list_entries(tombstone, None, 50)
            .await
            .unwrap()
            .iter()
            .all(|e| e.reason.is_none())
    );
}

/// Random interleavings of grants, holds, settles, releases, refunds, adjustments and expiries,
/// from `seed`: after every step, available is never negative, the entries add up to the
/// account, and replaying any key changes nothing.
pub async fn random_ledger_operations(store: Arc<dyn Store>, seed: u64, steps: usize) {
    let u = user(&store, &format!("random-{seed}@example.com")).await;
    let mut rng = seed.max(1);
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut open: Vec<Uuid> = Vec::new();
    let mut keys: Vec<NewEntry> = Vec::new();
    let mut now = t0();
    for i in 0..steps {
        now += Duration::minutes(next(90) as i64);
        match next(7) {
            0 | 1 => {
                let expires = (next(2) == 0).then(|| now + Duration::minutes(next(240) as i64 + 1));
                let mut e = grant(u.id, next(50) as i64 + 1, &format!("k{i}"), expires);
                e.kind = [
                    EntryKind::Grant,
                    EntryKind::Purchase,
                    EntryKind::Refund,
                    EntryKind::Referral,
                ][next(4) as usize];
                e.priority = next(3) as i32;
                e.now = now;
                store.post_entry(&e).await.unwrap();
                keys.push(e);
            }
            2 => {
                let mut n = held_job(u.id, next(30) as i64 + 1);
                n.job.created_at = now;
                if let Ok(a) = &store.admit_batch(vec![n]).await.unwrap()[0] {
                    open.push(a.job().id);
                }
            }
            3 if !open.is_empty() => {
                let job_id = open.swap_remove(next(open.len() as u64) as usize);
                let hold = store
                    .holds_to_close(now + Duration::days(3650), 10_000)
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|h| h.job_id == job_id)
                    .unwrap();
                let actual = next(hold.credits as u64 + 1) as i64;
                assert!(store.close_hold(job_id, actual, now).await.unwrap());
            }
            4 => {
                let mut e = grant(u.id, -(next(20) as i64 + 1), &format!("k{i}"), None);
                e.now = now;
                if store.post_entry(&e).await.is_ok() {
                    keys.push(e);
                }
            }
            5 => {
                store.expire_credits(now).await.unwrap();
            }
            _ if !keys.is_empty() => {
                let before = store.account(u.id).await.unwrap();
                let replay = &keys[next(keys.len() as u64) as usize];
                assert!(matches!(
                    store.post_entry(replay).await.unwrap(),
                    Posted::Replayed(_)
                ));
                assert_eq!(
                    store.account(u.id).await.unwrap(),
                    before,
                    "a replay changes nothing"
                );
            }
            _ => {}
        }
        let a = store.account(u.id).await.unwrap();
        assert!(a.available() >= 0 && a.held >= 0, "step {i}: {a:?}");
        assert_eq!(summed(&store, u.id).await, a, "step {i}");
    }
}

pub async fn ledger_holds_under_random_operations(store: Arc<dyn Store>) {
    for seed in 1..=4 {
        random_ledger_operations(store.clone(), seed, 60).await;
    }
}
