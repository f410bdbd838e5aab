//! RFC 3339 timestamps at second precision, as `metav1.Time` serializes them.
//!
//! The metrics API truncates sub-second precision (spec E.4):
//! `2021-10-03T09:36:49.720Z` is served as `2021-10-03T09:36:49Z`. Hand
//! written (Howard Hinnant's civil-from-days) so `core` needs no time crate.

use std::fmt;

/// Unix nanoseconds that display as `YYYY-MM-DDTHH:MM:SSZ` (UTC, truncated
/// toward the past to whole seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rfc3339Seconds(pub i64);

/// Formats unix nanoseconds as RFC 3339 UTC with second precision,
/// e.g. `2021-10-03T09:36:49Z`.
pub fn format_rfc3339_seconds(unix_nanos: i64) -> String {
    Rfc3339Seconds(unix_nanos).to_string()
}

impl fmt::Display for Rfc3339Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Floor so that times before 1970 truncate like Go's Time.Unix().
        let secs = self.0.div_euclid(1_000_000_000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
        if y < 0 {
            write!(f, "-{:04}", -y)?;
        } else {
            write!(f, "{y:04}")?;
        }
        write!(f, "-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01; the inverse of
/// [`civil_from_days`]. Handy for tests and fixtures.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400); // [0, 399]
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 }; // [0, 11]
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_timestamp_truncates_to_the_second() {
        // 1633253809720 ms is 2021-10-03T09:36:49.720Z.
        assert_eq!(
            format_rfc3339_seconds(1_633_253_809_720 * 1_000_000),
            "2021-10-03T09:36:49Z"
        );
        assert_eq!(format_rfc3339_seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339_seconds(-1), "1969-12-31T23:59:59Z");
        assert_eq!(
            format_rfc3339_seconds(951_782_400 * 1_000_000_000),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn civil_conversion_round_trips_over_many_centuries() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(2021, 10, 3), 18_903);
    }
}
