//! Samples and the CPU rate derivation (spec C.8).
//!
//! Storage keeps raw cumulative samples; usage is derived at read time from
//! the two newest samples of a node or container.

use thiserror::Error;

/// One sample of a node or container, as decoded from the kubelet.
///
/// Fixed size and `Copy` so storage can keep two of them per series inline.
/// Times are unix nanoseconds; `0` in `start_time_ns` means "no start time"
/// (Go's zero `time.Time`), which sorts before every real time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MetricsPoint {
    /// Container start time (unix ns), `0` when unknown. Nodes never have one.
    pub start_time_ns: i64,
    /// When the sample was measured (unix ns, millisecond resolution).
    pub timestamp_ns: i64,
    /// Cumulative CPU time in nanoseconds (core-nanoseconds).
    pub cumulative_cpu_ns: u64,
    /// Working set in bytes.
    pub memory_bytes: u64,
}

/// Usage derived from two samples: what the metrics API serves for a node or
/// a container.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ResourceUsage {
    /// `last.timestamp` (unix ns). The API truncates it to seconds.
    pub timestamp_ns: i64,
    /// `last.timestamp - prev.timestamp` in nanoseconds.
    pub window_ns: i64,
    /// Average CPU usage over the window, in nanocores.
    pub cpu_nanocores: u64,
    /// Working set at `timestamp` (not averaged).
    pub memory_bytes: u64,
}

/// Why two samples cannot produce a rate. Texts are upstream's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
pub enum RateError {
    /// The newer sample has an older start time.
    #[error("unexpected decrease in startTime of node/container")]
    StartTimeDecrease,
    /// The cumulative CPU counter went down (reset or reboot).
    #[error("unexpected decrease in cumulative CPU usage value")]
    CpuDecrease,
    /// `last` is not newer than `prev`. Storage never pairs such samples; this
    /// guards direct callers against dividing by zero.
    #[error("non-positive window between samples")]
    NonPositiveWindow,
}

/// Derives usage from the newer sample `last` and the older `prev`:
/// `cpu = trunc((last.cpu - prev.cpu) / window_seconds)`, memory = `last.memory`.
///
/// The float steps mirror Go (`float64(delta) / window.Seconds()`, then
/// `uint64(...)`), so results are bit-identical to upstream.
///
/// ```
/// use metrics_server_core::rate::{resource_usage, MetricsPoint};
/// let ms = 1_000_000;
/// let prev = MetricsPoint { timestamp_ns: 10 * ms, cumulative_cpu_ns: 300, ..Default::default() };
/// let last = MetricsPoint { timestamp_ns: 20 * ms, cumulative_cpu_ns: 500, ..Default::default() };
/// assert_eq!(resource_usage(&last, &prev).unwrap().cpu_nanocores, 20_000);
/// ```
pub fn resource_usage(
    last: &MetricsPoint,
    prev: &MetricsPoint,
) -> Result<ResourceUsage, RateError> {
    if last.start_time_ns < prev.start_time_ns {
        return Err(RateError::StartTimeDecrease);
    }
    if last.cumulative_cpu_ns < prev.cumulative_cpu_ns {
        return Err(RateError::CpuDecrease);
    }
    let window_ns = last.timestamp_ns.saturating_sub(prev.timestamp_ns);
    if window_ns <= 0 {
        return Err(RateError::NonPositiveWindow);
    }
    let delta = (last.cumulative_cpu_ns - prev.cumulative_cpu_ns) as f64;
    let cpu = delta / go_seconds(window_ns);
    Ok(ResourceUsage {
        timestamp_ns: last.timestamp_ns,
        window_ns,
        cpu_nanocores: cpu as u64,
        memory_bytes: last.memory_bytes,
    })
}

/// Go `Duration.Seconds()`: whole seconds plus the fraction, added as floats.
fn go_seconds(nanos: i64) -> f64 {
    let sec = nanos / 1_000_000_000;
    let nsec = nanos % 1_000_000_000;
    sec as f64 + nsec as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    fn point(ts: i64, cpu: u64) -> MetricsPoint {
        MetricsPoint {
            timestamp_ns: ts,
            cumulative_cpu_ns: cpu,
            ..Default::default()
        }
    }

    #[test]
    fn q1_worked_example_gives_twenty_thousand_nanocores() {
        let prev = MetricsPoint {
            memory_bytes: 1,
            ..point(10 * MS, 300)
        };
        let last = MetricsPoint {
            memory_bytes: 2,
            ..point(20 * MS, 500)
        };
        let u = resource_usage(&last, &prev).unwrap();
        assert_eq!(u.cpu_nanocores, 20_000);
        assert_eq!(
            crate::quantity::format_cpu_nanocores(u.cpu_nanocores),
            "20u"
        );
        assert_eq!(u.memory_bytes, 2);
        assert_eq!(u.window_ns, 10 * MS);
        assert_eq!(u.timestamp_ns, 20 * MS);
    }

    #[test]
    fn extreme_counters_and_windows_saturate_instead_of_overflowing() {
        // Widest window: i64::MIN to i64::MAX saturates at i64::MAX ns.
        let u = resource_usage(&point(i64::MAX, u64::MAX), &point(i64::MIN, 0)).unwrap();
        assert_eq!(u.window_ns, i64::MAX);
        assert_eq!(
            u.cpu_nanocores,
            (u64::MAX as f64 / go_seconds(i64::MAX)) as u64
        );
        // The whole counter range in one nanosecond saturates at u64::MAX.
        let u = resource_usage(&point(1, u64::MAX), &point(0, 0)).unwrap();
        assert_eq!(u.cpu_nanocores, u64::MAX);
        // A counter at the top moving by one over a second.
        let u = resource_usage(
            &point(2_000_000_000, u64::MAX),
            &point(1_000_000_000, u64::MAX - 1),
        )
        .unwrap();
        assert_eq!(u.cpu_nanocores, 1);
        // Negative timestamps (wrapped by upstream's ms * 1e6) still pair.
        let u = resource_usage(&point(-10 * MS, 2_000), &point(-20 * MS, 1_000)).unwrap();
        assert_eq!((u.window_ns, u.cpu_nanocores), (10 * MS, 100_000));
    }

    #[test]
    fn decreasing_counters_and_start_times_are_errors() {
        assert_eq!(
            resource_usage(&point(20, 100), &point(10, 200)),
            Err(RateError::CpuDecrease)
        );
        let prev = MetricsPoint {
            start_time_ns: 5,
            ..point(10, 1)
        };
        assert_eq!(
            resource_usage(&point(20, 2), &prev),
            Err(RateError::StartTimeDecrease)
        );
        assert_eq!(
            resource_usage(&point(10, 2), &point(10, 1)),
            Err(RateError::NonPositiveWindow)
        );
    }
}
