//! On-CPU timing for the benches' `*_CPU_BATCHES=<n>` modes: on a shared,
//! overloaded machine wall-clock samples mostly measure preemption, the
//! thread's own CPU time does not.

use std::hint::black_box;

/// On-CPU nanoseconds of this thread (`/proc/thread-self/schedstat`, Linux).
/// The kernel updates it at scheduler ticks, so only long spans are precise.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Per-call on-CPU nanoseconds of the best and the median of `batches`
/// batches of about 0.2 s of calls each, and the calls per batch; `None`
/// where the kernel gives no CPU time.
pub(crate) fn per_call_cpu_ns<T>(
    batches: u32,
    mut call: impl FnMut() -> T,
) -> Option<(f64, f64, u32)> {
    // Size the batches from one call.
    let t0 = std::time::Instant::now();
    black_box(call());
    let once = t0.elapsed().as_secs_f64().max(1e-4);
    let per_batch = ((0.2 / once) as u32).clamp(1, 1000);
    let mut times: Vec<f64> = (0..batches)
        .filter_map(|_| {
            let t0 = thread_cpu_ns()?;
            for _ in 0..per_batch {
                black_box(call());
            }
            Some((thread_cpu_ns()? - t0) as f64 / f64::from(per_batch))
        })
        .collect();
    times.sort_by(f64::total_cmp);
    Some((*times.first()?, *times.get(times.len() / 2)?, per_batch))
}
