//! Property test of the credit ledger on the in-memory store: under any interleaving of
//! grants, purchases, refunds, holds, settles, releases, adjustments, expiries and replayed
//! keys, available credits are never negative, the entries add up to the account, and a
//! replayed idempotency key changes nothing. (The same operations run against SQLite and
//! PostgreSQL in the store conformance suite.)

use levqor_core::conformance::random_ledger_operations;
use levqor_core::{MemoryStore, Store};
use proptest::prelude::*;
use std::sync::Arc;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_ledger_never_overdraws_and_always_adds_up(seed in 1u64..u64::MAX, steps in 1usize..150) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        rt.block_on(random_ledger_operations(store, seed, steps));
    }
}
