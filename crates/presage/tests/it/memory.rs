//! Swapping versions does not accumulate memory: after 1,000 swaps in a serving
//! state, only the versions still referenced stay mapped.

use presage_serve::{AppState, OnStale, ServeJob, reload_all};
use presage_store::{EmbeddedStore, Store, VersionId};

use crate::project::{SmallProject, stderr};

/// Mappings of version lookup files in this process.
fn mapped_lookup_files() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|line| line.contains("predictions.lookup"))
        .map(|line| line.split_whitespace().last().unwrap_or("").to_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// Resident set size in bytes.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn a_thousand_swaps_keep_one_version_mapped() {
    let project = SmallProject::new();
    for _ in 0..2 {
        let out = project.run(&["run", "score"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let store = EmbeddedStore::new(project.path().join("store"));
    let job = ServeJob {
        name: "score".into(),
        max_age: None,
        default: None,
        on_stale: OnStale::Serve,
    };
    let state = AppState::new(
        Store::new(std::sync::Arc::new(store.clone())),
        vec![job],
        None,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let swap = |i: u64| {
        store
            // Back and forth between two versions, each rolled away from before.
            .rollback("score", Some(VersionId(1 + i % 2)), true)
            .expect("rollback");
        let events = runtime.block_on(reload_all(&state));
        assert_eq!(events.len(), 1, "swap {i}: {events:?}");
    };
    for i in 0..100 {
        swap(i);
    }
    let before = resident_bytes();
    for i in 100..1100 {
        swap(i);
    }
    let after = resident_bytes();
    assert!(state.current("score").is_some());
    // The served version, and at most one more that a finished swap just released.
    assert!(
        mapped_lookup_files() <= 2,
        "{} lookup files still mapped",
        mapped_lookup_files()
    );
    // Other tests run in this process at the same time, so allow them some room;
    // a leaked version per swap would be 1,000 mappings and far more memory.
    let grown = after.saturating_sub(before);
    assert!(
        grown < 32 << 20,
        "resident memory grew by {grown} bytes over 1,000 swaps"
    );
}
