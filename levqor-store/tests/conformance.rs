//! The core's store conformance suite against SQLite (a fresh file per case, and an in-memory
//! database) and PostgreSQL (a fresh database per case); see `support` for where they live.

mod support;

mod sqlite {
    levqor_core::conformance_suite!(super::support::sqlite());

    mod in_memory {
        async fn fresh() -> std::sync::Arc<dyn levqor_core::Store> {
            levqor_store::connect("sqlite::memory:")
                .await
                .expect("in-memory sqlite store")
        }

        levqor_core::conformance_suite!(fresh());
    }
}

mod postgres {
    levqor_core::conformance_suite!(super::support::postgres());
}
