//! Heap held by the store after two ticks of upstream's largest storage
//! shape (1000 nodes × 30 pods × 2 containers = 60,000 containers), measured
//! with a counting global allocator: live bytes after − live bytes before.
//! Target: ≤ 100 bytes per stored container. Prints a report; run with
//! `make bench` (or `cargo bench -p metrics-server-core --bench
//! store_memory`).

#![allow(clippy::print_stdout)]

use std::alloc::System;
use std::sync::Arc;
use std::time::Duration;

use metrics_server_core::{MetricsPoint, Snapshot, Store};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

mod support;
use support::{Cluster, Shape};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const TARGET_BYTES_PER_CONTAINER: f64 = 100.0;

/// Net heap growth (bytes) while `f` runs, plus `f`'s result.
fn live_growth<T>(f: impl FnOnce() -> T) -> (i64, T) {
    let region = Region::new(GLOBAL);
    let out = f();
    let s = region.change();
    // A realloc's growth or shrink is already in bytes_allocated / bytes_deallocated;
    // bytes_reallocated is the same change again, so it is not added.
    let live = s.bytes_allocated as i64 - s.bytes_deallocated as i64;
    (live, out)
}

struct Measured {
    containers: usize,
    pods: usize,
    /// Store (interner included) + current snapshot.
    store_and_snapshot: i64,
    /// The snapshot alone, once the store (and its interner table) is gone.
    snapshot_only: i64,
    /// One batch as handed to `apply`.
    batch: i64,
}

fn measure(shape: Shape) -> Measured {
    let cluster = Cluster::new(shape);
    let b0 = cluster.batch(0);
    let b1 = cluster.batch(1);
    let (batch, copy) = live_growth(|| b1.clone());
    drop(copy);
    // The batches are cloned inside the measured region and consumed by
    // `apply`, so only what the store keeps counts.
    let (store_and_snapshot, (store, snap)) = live_growth(|| {
        let mut store = Store::new(Duration::from_secs(60));
        store.apply(b0.clone());
        let snap: Arc<Snapshot> = store.apply(b1.clone());
        (store, snap)
    });
    assert_eq!(snap.container_points(), shape.total_containers());
    let (freed_with_store, ()) = live_growth(|| drop(store));
    let snapshot_only = store_and_snapshot + freed_with_store;
    drop(snap);
    Measured {
        containers: shape.total_containers(),
        pods: shape.pods(),
        store_and_snapshot,
        snapshot_only,
        batch,
    }
}

fn per(bytes: i64, n: usize) -> f64 {
    bytes as f64 / n as f64
}

fn main() {
    // Benches get libtest-style flags (`--bench`); there is nothing to tune.
    let big = measure(Shape::new("normal_1000", 1000, 30, 100, 10, 2));
    // Same pods, 10 containers each: separates per-pod from per-container cost.
    let dense = measure(Shape::new("dense_1000", 1000, 30, 100, 10, 10));

    let bpc = per(big.store_and_snapshot, big.containers);
    println!("store memory after two ticks, 1000 nodes x 30 pods x 2 containers");
    println!("  (bytes requested from the allocator; malloc's per-chunk overhead not included)");
    println!(
        "  store + snapshot : {:>10} bytes = {bpc:6.1} bytes/container (target <= {TARGET_BYTES_PER_CONTAINER})",
        big.store_and_snapshot
    );
    println!(
        "  snapshot alone   : {:>10} bytes = {:6.1} bytes/container",
        big.snapshot_only,
        per(big.snapshot_only, big.containers)
    );
    let interner = big.store_and_snapshot - big.snapshot_only;
    println!(
        "  interner table   : {interner:>10} bytes = {:6.1} bytes/container",
        per(interner, big.containers)
    );
    println!(
        "  one input batch  : {:>10} bytes = {:6.1} bytes/container (transient, freed by apply)",
        big.batch,
        per(big.batch, big.containers)
    );
    // store(P pods, C containers each) ≈ P * per_pod + P * C * per_container.
    let per_container = (dense.store_and_snapshot - big.store_and_snapshot) as f64
        / (dense.containers - big.containers) as f64;
    let per_pod =
        (big.store_and_snapshot as f64 - per_container * big.containers as f64) / big.pods as f64;
    println!(
        "split from the 10-containers-per-pod run ({} bytes):",
        dense.store_and_snapshot
    );
    println!("  marginal cost per container slot : {per_container:6.1} bytes");
    println!(
        "  cost per pod (names, pod slot, interner entries, nodes spread over pods): {per_pod:6.1} bytes \
         = {:6.1} bytes per container at 2 containers/pod",
        per_pod / 2.0
    );
    // A container slot is a `last` point, the prev's three fields, a name index and a flag.
    println!(
        "type sizes: MetricsPoint {} B (a container slot is about two of them)",
        size_of::<MetricsPoint>()
    );
    let verdict = if bpc <= TARGET_BYTES_PER_CONTAINER {
        "meets".to_owned()
    } else {
        format!(
            "misses by {:.1} bytes ({:.0}%)",
            bpc - TARGET_BYTES_PER_CONTAINER,
            (bpc / TARGET_BYTES_PER_CONTAINER - 1.0) * 100.0
        )
    };
    println!("  => {bpc:.1} bytes/container {verdict} the <= {TARGET_BYTES_PER_CONTAINER} target");
}
