//! The ordering rules of a batch, decided in Rust so that both backends apply them the same way
//! with set-based statements: a batch of writes or admissions must end as if its items had been
//! applied one after another.

use levqor_core::credits::Account;
use levqor_core::jobs::store::{Finish, Lease, NewJob, Write};
use levqor_core::notify::OutboxMessage;
use levqor_core::{Admission, Error, Job, Result, StepRecord};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// What a batch of writes does, given the leases that were held when it began.
pub(crate) struct CommitPlan<'a> {
    /// Per write, in order: whether its lease was held when its turn came.
    pub applied: Vec<bool>,
    /// Step records to upsert, at most one per `(job, step id)`: the last one written wins. Each
    /// is recorded under the job of the lease that wrote it.
    pub steps: Vec<(Uuid, &'a StepRecord)>,
    /// Attempts to end, at most one per job.
    pub finishes: Vec<&'a Finish>,
    /// Messages the applied writes sent, for the outbox.
    pub messages: Vec<&'a OutboxMessage>,
}

/// The distinct leases the writes claim to hold, in first-seen order.
pub(crate) fn leases(writes: &[Write]) -> Vec<Lease> {
    let mut seen = HashSet::new();
    writes
        .iter()
        .map(lease_of)
        .filter(|l| seen.insert((l.job_id, l.token)))
        .collect()
}

/// Plans `writes` given `held`, the `(job id, token)` pairs of the leases that were held (the job
/// `running` under that token) when the batch began. A write applies if its lease is held at its
/// turn; a `Finish` releases its lease, so later writes under it do not apply.
pub(crate) fn plan_commit<'a>(
    writes: &'a [Write],
    mut held: HashSet<(Uuid, Uuid)>,
) -> CommitPlan<'a> {
    let mut applied = Vec::with_capacity(writes.len());
    let mut steps: Vec<(Uuid, &StepRecord)> = Vec::new();
    let mut step_index: HashMap<(Uuid, &str), usize> = HashMap::new();
    let mut finishes = Vec::new();
    let mut messages = Vec::new();
    for write in writes {
        let lease = lease_of(write);
        let holds = held.contains(&(lease.job_id, lease.token));
        applied.push(holds);
        if !holds {
            continue;
        }
        let (recorded, sent, finish) = match write {
            Write::Checkpoint {
                steps, messages, ..
            } => (steps, messages, None),
            Write::Finish(f) => (&f.steps, &f.messages, Some(f)),
        };
        messages.extend(sent);
        for step in recorded {
            match step_index.get(&(lease.job_id, step.step_id.as_str())) {
                Some(&i) => steps[i] = (lease.job_id, step),
                None => {
                    step_index.insert((lease.job_id, &step.step_id), steps.len());
                    steps.push((lease.job_id, step));
                }
            }
        }
        if let Some(f) = finish {
            held.remove(&(lease.job_id, lease.token));
            finishes.push(f);
        }
    }
    CommitPlan {
        applied,
        steps,
        finishes,
        messages,
    }
}

fn lease_of(write: &Write) -> Lease {
    match write {
        Write::Checkpoint { lease, .. } => *lease,
        Write::Finish(f) => f.lease,
    }
}

/// The ids of the `leases` a heartbeat extended whose job's owner asked to cancel it, in lease
/// order, given the `(job id, token, cancel requested)` of each lease extended.
pub(crate) fn cancel_requested(leases: &[Lease], extended: Vec<(Uuid, Uuid, bool)>) -> Vec<Uuid> {
    let canceled: HashSet<(Uuid, Uuid)> = extended
        .into_iter()
        .filter_map(|(id, token, cancel)| cancel.then_some((id, token)))
        .collect();
    leases
        .iter()
        .filter(|l| canceled.contains(&(l.job_id, l.token)))
        .map(|l| l.job_id)
        .collect()
}

/// The jobs of an admit batch to offer for insertion, in the order to insert them: every job
/// without an idempotency key, and the first job of each (owner, key). A later job with the same
/// key then replays against whichever job holds the key, as if the batch were admitted one job
/// at a time. Keys are offered in order, so two batches that share keys wait for each other on
/// the unique index instead of deadlocking.
pub(crate) fn offered(jobs: &[NewJob]) -> Vec<&NewJob> {
    let mut seen = HashSet::new();
    let mut offered: Vec<&NewJob> = jobs
        .iter()
        .filter(|n| {
            n.job
                .idempotency_key
                .as_deref()
                .is_none_or(|k| seen.insert((n.job.owner_id, k)))
        })
        .collect();
    offered.sort_by_key(|n| (n.job.owner_id, n.job.idempotency_key.as_deref()));
    offered
}

/// The owners, sorted, of the offered jobs that ask for a hold: the accounts to lock.
pub(crate) fn hold_owners(offered: &[&NewJob]) -> Vec<Uuid> {
    let mut owners: Vec<Uuid> = offered
        .iter()
        .filter(|n| n.hold.is_some())
        .map(|n| n.job.owner_id)
        .collect();
    owners.sort();
    owners.dedup();
    owners
}

/// Takes out of `offered` the jobs whose hold does not fit what their owner has available in
/// `accounts`, deciding in batch order (each hold that fits reduces what the next may take);
/// returns their ids.
pub(crate) fn take_refused(
    jobs: &[NewJob],
    offered: &mut Vec<&NewJob>,
    accounts: &HashMap<Uuid, Account>,
) -> HashSet<Uuid> {
    let refused = refused_holds(jobs, offered, accounts);
    offered.retain(|n| !refused.contains(&n.job.id));
    refused
}

fn refused_holds(
    jobs: &[NewJob],
    offered: &[&NewJob],
    accounts: &HashMap<Uuid, Account>,
) -> HashSet<Uuid> {
    let offered: HashSet<Uuid> = offered.iter().map(|n| n.job.id).collect();
    let mut available: HashMap<Uuid, i64> = accounts
        .iter()
        .map(|(owner, a)| (*owner, a.available()))
        .collect();
    let mut refused = HashSet::new();
    for new in jobs.iter().filter(|n| offered.contains(&n.job.id)) {
        let Some(hold) = &new.hold else { continue };
        let left = available.entry(new.job.owner_id).or_default();
        if *left >= hold.credits {
            *left -= hold.credits;
        } else {
            refused.insert(new.job.id);
        }
    }
    refused
}

/// What each owner's held total grows by when the `offered` jobs are admitted, by owner.
pub(crate) fn held_per_owner(offered: &[&NewJob]) -> Vec<(Uuid, i64)> {
    let mut held: HashMap<Uuid, i64> = HashMap::new();
    for new in offered {
        if let Some(hold) = &new.hold {
            *held.entry(new.job.owner_id).or_default() += hold.credits;
        }
    }
    let mut held: Vec<(Uuid, i64)> = held.into_iter().collect();
    held.sort();
    held
}

/// The (owner, key) pairs of the offered jobs that carry a key: those to look up before
/// deciding holds, so that a replay is never refused for credits it would not take.
pub(crate) fn offered_keys<'a>(offered: &[&'a NewJob]) -> Vec<(Uuid, &'a str)> {
    offered
        .iter()
        .filter_map(|n| Some((n.job.owner_id, n.job.idempotency_key.as_deref()?)))
        .collect()
}

/// Drops from `offered` the jobs whose key one of `firsts` already holds: they replay.
pub(crate) fn drop_taken(offered: &mut Vec<&NewJob>, firsts: &[First]) {
    if firsts.is_empty() {
        return;
    }
    let taken: HashSet<(Uuid, &str)> = firsts
        .iter()
        .filter_map(|f| Some((f.job.owner_id, f.job.idempotency_key.as_deref()?)))
        .collect();
    offered.retain(|n| {
        n.job
            .idempotency_key
            .as_deref()
            .is_none_or(|k| !taken.contains(&(n.job.owner_id, k)))
    });
}

/// The (owner, key) pairs to look the first job up by: those of the jobs not `inserted` whose
/// first job is not among `firsts` (on PostgreSQL, keys another node took in the meantime).
pub(crate) fn keys_taken<'a>(
    jobs: &'a [NewJob],
    inserted: &HashSet<Uuid>,
    firsts: &[First],
) -> Vec<(Uuid, &'a str)> {
    let mut seen: HashSet<(Uuid, &str)> = firsts
        .iter()
        .filter_map(|f| Some((f.job.owner_id, f.job.idempotency_key.as_deref()?)))
        .collect();
    jobs.iter()
        .filter(|n| !inserted.contains(&n.job.id))
        .filter_map(|n| Some((n.job.owner_id, n.job.idempotency_key.as_deref()?)))
        .filter(|pair| seen.insert(*pair))
        .collect()
}

/// The job that first used an owner's idempotency key, with the hash of its request.
pub(crate) struct First {
    pub job: Job,
    pub request_hash: String,
}

/// What admitting each job did, given the ids `inserted` and the `firsts` holding the keys of
/// the others.
pub(crate) fn admissions(
    jobs: Vec<NewJob>,
    inserted: &HashSet<Uuid>,
    firsts: &[First],
    refused: &HashSet<Uuid>,
) -> Vec<Result<Admission>> {
    let by_key: HashMap<(Uuid, &str), &First> = firsts
        .iter()
        .filter_map(|f| Some(((f.job.owner_id, f.job.idempotency_key.as_deref()?), f)))
        .collect();
    // A job whose key was first offered by a job refused for credits is refused the same way.
    let refused_keys: HashSet<(Uuid, String)> = jobs
        .iter()
        .filter(|n| refused.contains(&n.job.id))
        .filter_map(|n| Some((n.job.owner_id, n.job.idempotency_key.clone()?)))
        .collect();
    jobs.into_iter()
        .map(|new| {
            if inserted.contains(&new.job.id) {
                return Ok(Admission::Created(new.job));
            }
            if refused.contains(&new.job.id) {
                return Err(levqor_core::credits::insufficient_credits());
            }
            let first = new
                .job
                .idempotency_key
                .as_deref()
                .and_then(|key| by_key.get(&(new.job.owner_id, key)));
            match first {
                Some(first) => replay(first, &new.request_hash),
                None if new
                    .job
                    .idempotency_key
                    .as_ref()
                    .is_some_and(|k| refused_keys.contains(&(new.job.owner_id, k.clone()))) =>
                {
                    Err(levqor_core::credits::insufficient_credits())
                }
                None => Err(Error::internal(
                    "a job was neither inserted nor found by its idempotency key",
                )),
            }
        })
        .collect()
}

/// What admitting a job whose owner already used its idempotency key does: the first job when
/// the requests match, a conflict when they do not.
fn replay(first: &First, request_hash: &str) -> Result<Admission> {
    if first.request_hash == request_hash {
        Ok(Admission::Replayed(first.job.clone()))
    } else {
        Err(Error::conflict(
            "idempotency_key_reused",
            "this Idempotency-Key was used with another request",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use levqor_core::{JobStatus, StepStatus};
    use serde_json::Value;

    fn step(id: &str, attempt: i32) -> StepRecord {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        StepRecord {
            job_id: Uuid::nil(),
            step_id: id.into(),
            position: 0,
            status: StepStatus::Succeeded,
            output: Value::Null,
            error: None,
            attempt,
            started_at: t,
            finished_at: t,
        }
    }

    fn finish(lease: Lease, steps: Vec<StepRecord>) -> Write {
        Write::Finish(Finish {
            lease,
            status: JobStatus::Succeeded,
            run_after: None,
            result: None,
            error: None,
            steps,
            messages: Vec::new(),
            attempts_delta: 0,
            now: Utc::now(),
        })
    }

    #[test]
    fn a_batch_applies_as_if_written_one_after_another() {
        let a = Lease {
            job_id: Uuid::now_v7(),
            token: Uuid::new_v4(),
        };
        let stale = Lease {
            job_id: a.job_id,
            token: Uuid::new_v4(),
        };
        let writes = vec![
            Write::Checkpoint {
                lease: a,
                steps: vec![step("x", 1)],
                messages: Vec::new(),
            },
            Write::Checkpoint {
                lease: stale,
                steps: vec![step("y", 1)],
                messages: Vec::new(),
            },
            finish(a, vec![step("x", 2)]),
            finish(a, vec![step("z", 1)]),
        ];
        assert_eq!(leases(&writes), vec![a, stale]);
        let plan = plan_commit(&writes, HashSet::from([(a.job_id, a.token)]));
        assert_eq!(
            plan.applied,
            vec![true, false, true, false],
            "a finish releases the lease"
        );
        let steps: Vec<(&str, i32)> = plan
            .steps
            .iter()
            .map(|(_, s)| (s.step_id.as_str(), s.attempt))
            .collect();
        assert_eq!(
            steps,
            vec![("x", 2)],
            "the last record of a step wins; fenced-off steps are dropped"
        );
        assert!(plan.steps.iter().all(|(job, _)| *job == a.job_id));
        assert_eq!(plan.finishes.len(), 1);
    }

    #[test]
    fn a_reused_key_replays_the_same_request_and_refuses_another() {
        let owner = Uuid::now_v7();
        let new = |key: &str, hash: &str| {
            let mut n = levqor_core::conformance::job(owner, Some(key), Utc::now());
            n.request_hash = hash.into();
            n
        };
        let held = new("old", "h");
        let jobs = vec![
            new("k", "h"),
            new("k", "h"),
            new("k", "other"),
            new("old", "h"),
            new("old", "x"),
        ];
        let offered: Vec<Uuid> = offered(&jobs).iter().map(|n| n.job.id).collect();
        assert_eq!(
            offered,
            vec![jobs[0].job.id, jobs[3].job.id],
            "one job per key is offered"
        );
        let inserted = HashSet::from([jobs[0].job.id]);
        assert_eq!(
            keys_taken(&jobs, &inserted, &[]),
            vec![(owner, "k"), (owner, "old")]
        );
        let firsts = [
            First {
                job: jobs[0].job.clone(),
                request_hash: "h".into(),
            },
            First {
                job: held.job.clone(),
                request_hash: "h".into(),
            },
        ];
        let outcomes = admissions(jobs.clone(), &inserted, &firsts, &HashSet::new());
        assert_eq!(
            outcomes[0].as_ref().unwrap(),
            &Admission::Created(jobs[0].job.clone())
        );
        assert_eq!(
            outcomes[1].as_ref().unwrap(),
            &Admission::Replayed(jobs[0].job.clone())
        );
        assert_eq!(
            outcomes[2].as_ref().unwrap_err().code,
            "idempotency_key_reused"
        );
        assert_eq!(
            outcomes[3].as_ref().unwrap(),
            &Admission::Replayed(held.job)
        );
        assert_eq!(
            outcomes[4].as_ref().unwrap_err().code,
            "idempotency_key_reused"
        );
    }
}
