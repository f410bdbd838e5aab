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

/// Room for any formatted timestamp (`-292277026596-12-04T15:30:07Z` is 28).
pub const RFC3339_TEXT_LEN: usize = 32;

impl Rfc3339Seconds {
    /// Formats into `buf` without allocating and returns the ASCII text
    /// `Display` writes, as bytes: for serializers of millions of values.
    pub fn format_into(self, buf: &mut [u8; RFC3339_TEXT_LEN]) -> &[u8] {
        // Floor so that times before 1970 truncate like Go's Time.Unix().
        let secs = self.0.div_euclid(1_000_000_000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
        // Fixed part "-MM-DDTHH:MM:SSZ" (16 bytes) at the end, year before it.
        let end = RFC3339_TEXT_LEN;
        let tail = &mut buf[end - 16..];
        tail.copy_from_slice(b"-00-00T00:00:00Z");
        for (at, v) in [(1, m), (4, d), (7, hh), (10, mm), (13, ss)] {
            tail[at] = b'0' + (v / 10) as u8;
            tail[at + 1] = b'0' + (v % 10) as u8;
        }
        // Years print with at least four digits, like Go's %04d.
        let mut w = end - 16;
        let mut year = y.unsigned_abs();
        for _ in 0..4 {
            w -= 1;
            buf[w] = b'0' + (year % 10) as u8;
            year /= 10;
        }
        while year > 0 {
            w -= 1;
            buf[w] = b'0' + (year % 10) as u8;
            year /= 10;
        }
        if y < 0 {
            w -= 1;
            buf[w] = b'-';
        }
        &buf[w..]
    }
}

impl fmt::Display for Rfc3339Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0; RFC3339_TEXT_LEN];
        let text = self.format_into(&mut buf);
        f.write_str(std::str::from_utf8(text).map_err(|_| fmt::Error)?)
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

    /// The formatter writes digits by hand; `format!` with Go's `%04d`
    /// layout is the reference, over the whole i64 range.
    #[test]
    fn format_into_matches_a_format_reference() {
        let reference = |ns: i64| {
            let secs = ns.div_euclid(1_000_000_000);
            let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
            let rem = secs.rem_euclid(86_400);
            let year = if y < 0 {
                format!("-{:04}", -y)
            } else {
                format!("{y:04}")
            };
            format!(
                "{year}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
                rem / 3600,
                rem % 3600 / 60,
                rem % 60
            )
        };
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut buf = [0; RFC3339_TEXT_LEN];
        for i in 0..20_000i64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for ns in [x as i64, i * 86_399_999_999_917, -i * 3_600_000_000_007] {
                assert_eq!(
                    Rfc3339Seconds(ns).format_into(&mut buf),
                    reference(ns).as_bytes()
                );
            }
        }
        for ns in [i64::MIN, i64::MAX, 0, -1, 1] {
            assert_eq!(
                Rfc3339Seconds(ns).format_into(&mut buf),
                reference(ns).as_bytes()
            );
        }
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
