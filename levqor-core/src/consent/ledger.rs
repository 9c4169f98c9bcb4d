//! The consent ledger: every consent change chained by SHA-256 into a tamper-evident log.
//! [`seal`] hashes a record; [`verify_records`] walks a chain and names its first break.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A consent change to chain into the ledger. It carries no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Stable id.
    pub id: Uuid,
    /// When.
    pub at: DateTime<Utc>,
    /// The opaque subject reference (never a user id or an email).
    pub subject: Uuid,
    /// What happened, e.g. `terms.accepted`, `marketing.confirmed`, `objection.set`.
    pub action: String,
    /// The facts of the change (versions, categories, kinds), never personal data.
    pub detail: Value,
}

impl LedgerEntry {
    /// A new entry (a fresh time-ordered id).
    pub fn new(at: DateTime<Utc>, subject: Uuid, action: &str, detail: Value) -> Self {
        Self {
            id: Uuid::now_v7(),
            at,
            subject,
            action: action.into(),
            detail,
        }
    }
}

/// A ledger record: an entry, its place in the chain, the hash of the record before it and its
/// own hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRecord {
    /// Position, from 1.
    pub seq: i64,
    /// The entry.
    #[serde(flatten)]
    pub entry: LedgerEntry,
    /// The previous record's hash (64 zeros for the first).
    pub prev_hash: String,
    /// SHA-256 over `seq`, `prev_hash` and the entry.
    pub hash: String,
}

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of the record at `seq` holding `entry` after a record hashed `prev_hash`. Times
/// count in microseconds so that the hash of a stored record can be recomputed exactly.
pub fn seal(seq: i64, prev_hash: &str, entry: &LedgerEntry) -> String {
    let canonical = json!({
        "seq": seq,
        "prev_hash": prev_hash,
        "id": entry.id,
        "at_micros": entry.at.timestamp_micros(),
        "subject": entry.subject,
        "action": entry.action,
        "detail": entry.detail,
    });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// Where a chain first breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    /// The first bad record's position.
    pub seq: i64,
    /// Its id.
    pub id: Uuid,
    /// What is wrong with it.
    pub reason: String,
}

/// Walks records in order, from the one after `prev` (`(0, GENESIS_HASH)` at the start), and
/// returns the last good position and hash, or the first break.
pub fn verify_records(
    prev: (i64, String),
    records: &[LedgerRecord],
) -> std::result::Result<(i64, String), Break> {
    let (mut seq, mut hash) = prev;
    for r in records {
        let bad = |reason: &str| Break {
            seq: r.seq,
            id: r.entry.id,
            reason: reason.into(),
        };
        if r.seq != seq + 1 {
            return Err(bad("a record is missing before this one"));
        }
        if r.prev_hash != hash {
            return Err(bad("its prev_hash is not the hash of the record before it"));
        }
        if seal(r.seq, &r.prev_hash, &r.entry) != r.hash {
            return Err(bad("its content does not match its hash"));
        }
        seq = r.seq;
        hash = r.hash.clone();
    }
    Ok((seq, hash))
}

/// What checking the whole ledger found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerVerification {
    /// Whether the whole chain verifies.
    pub ok: bool,
    /// Records in the chain (when it verifies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<i64>,
    /// The hash of the last record (when it verifies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// Records that verified before the break (when it does not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records_checked: Option<i64>,
    /// The first broken record (when it does not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken: Option<Break>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, 0, 0, 0).unwrap()
    }

    fn chain(n: usize) -> Vec<LedgerRecord> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n as i64)
            .map(|seq| {
                let e = LedgerEntry::new(
                    t(1),
                    Uuid::from_u128(seq as u128),
                    "objection.set",
                    json!({"kind": "analytics"}),
                );
                let hash = seal(seq, &prev, &e);
                let r = LedgerRecord {
                    seq,
                    entry: e,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                r
            })
            .collect()
    }

    #[test]
    fn the_ledger_verifies_and_names_the_first_tampered_record() {
        let mut records = chain(5);
        assert_eq!(
            verify_records((0, GENESIS_HASH.into()), &records)
                .unwrap()
                .0,
            5
        );
        records[2].entry.detail = json!({"kind": "marketing"});
        let b = verify_records((0, GENESIS_HASH.into()), &records).unwrap_err();
        assert_eq!(b.seq, 3);
        let mut records = chain(5);
        records.remove(1);
        assert_eq!(
            verify_records((0, GENESIS_HASH.into()), &records)
                .unwrap_err()
                .seq,
            3
        );
    }
}
