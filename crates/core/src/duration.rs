//! Go `time.Duration`: `String()` formatting and `time.ParseDuration`.
//!
//! The metrics API serializes `window` with `Duration.String()` (spec E.4),
//! and flags such as `--metric-resolution=15s` are parsed with
//! `ParseDuration`. Both are straight ports of Go's `time/format.go`, so
//! outputs and error texts match byte for byte (`tests/golden/durations.tsv`,
//! `tests/golden/parse_durations.tsv`).

use std::fmt;

use thiserror::Error;

/// A duration in nanoseconds that displays like Go's `time.Duration.String()`:
/// `0s`, `1µs` (U+00B5), `1.5µs`, `500ms`, `15.012s`, `1m0s`, `1h0m5s`, `-1s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration(pub i64);

/// Formats nanoseconds like Go's `time.Duration(ns).String()`.
pub fn format_duration(nanos: i64) -> String {
    GoDuration(nanos).to_string()
}

/// Room for any formatted duration (the largest, "-2562047h47m16.854775808s",
/// is 25 bytes).
pub const DURATION_TEXT_LEN: usize = 32;

impl GoDuration {
    /// Formats into `buf` without allocating and returns the UTF-8 text
    /// `Display` writes (ASCII and the two-byte micro sign), as bytes.
    pub fn format_into(self, buf: &mut [u8; DURATION_TEXT_LEN]) -> &[u8] {
        let start = format_into(self.0, buf);
        &buf[start..]
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0; DURATION_TEXT_LEN];
        let text = self.format_into(&mut buf);
        f.write_str(std::str::from_utf8(text).map_err(|_| fmt::Error)?)
    }
}

/// Port of `Duration.format`: writes right-aligned into `buf`, returns the
/// start index.
fn format_into(d: i64, buf: &mut [u8; 32]) -> usize {
    let mut w = buf.len();
    let neg = d < 0;
    let mut u = d.unsigned_abs();
    if u < 1_000_000_000 {
        // Below one second use ns, µs or ms with a trimmed fraction.
        w -= 1;
        buf[w] = b's';
        w -= 1;
        let prec = match u {
            0 => {
                buf[w] = b'0';
                return w;
            }
            1..=999 => {
                buf[w] = b'n';
                0
            }
            1_000..=999_999 => {
                // U+00B5 MICRO SIGN is 0xC2 0xB5.
                w -= 1;
                buf[w] = 0xC2;
                buf[w + 1] = 0xB5;
                3
            }
            _ => {
                buf[w] = b'm';
                6
            }
        };
        let (nw, nv) = fmt_frac(buf, w, u, prec);
        w = fmt_int(buf, nw, nv);
    } else {
        w -= 1;
        buf[w] = b's';
        let (nw, nv) = fmt_frac(buf, w, u, 9);
        w = nw;
        u = nv;
        // u is now whole seconds.
        w = fmt_int(buf, w, u % 60);
        u /= 60;
        if u > 0 {
            w -= 1;
            buf[w] = b'm';
            w = fmt_int(buf, w, u % 60);
            u /= 60;
            // Stop at hours: days can have different lengths.
            if u > 0 {
                w -= 1;
                buf[w] = b'h';
                w = fmt_int(buf, w, u);
            }
        }
    }
    if neg {
        w -= 1;
        buf[w] = b'-';
    }
    w
}

/// `fmtFrac`: writes the `prec` low digits of `v` as `.ddd` without trailing
/// zeros (and without the point if they are all zero) ending at `w`.
fn fmt_frac(buf: &mut [u8], mut w: usize, mut v: u64, prec: u32) -> (usize, u64) {
    let mut print = false;
    for _ in 0..prec {
        let digit = (v % 10) as u8;
        print = print || digit != 0;
        if print {
            w -= 1;
            buf[w] = digit + b'0';
        }
        v /= 10;
    }
    if print {
        w -= 1;
        buf[w] = b'.';
    }
    (w, v)
}

/// `fmtInt`: writes `v` in decimal ending at `w`.
fn fmt_int(buf: &mut [u8], mut w: usize, mut v: u64) -> usize {
    if v == 0 {
        w -= 1;
        buf[w] = b'0';
    } else {
        while v > 0 {
            w -= 1;
            buf[w] = (v % 10) as u8 + b'0';
            v /= 10;
        }
    }
    w
}

/// A `time.ParseDuration` failure. `Display` gives Go's exact text, for
/// example `time: missing unit in duration "15"`.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("time: {message} {}", go_quote(.input))]
pub struct DurationError {
    /// Go's message part: `invalid duration`, `missing unit in duration` or
    /// `unknown unit "<u>" in duration`.
    pub message: String,
    /// The whole input, as given.
    pub input: String,
}

impl DurationError {
    fn new(message: impl Into<String>, input: &str) -> Self {
        Self {
            message: message.into(),
            input: input.to_owned(),
        }
    }
}

/// Parses a Go duration string such as `15s`, `1h30m`, `1.5h`, `300ms`, `-1s`
/// into nanoseconds (`time.ParseDuration`).
pub fn parse_duration(input: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::new("invalid duration", input);
    let mut s = input.as_bytes();
    let mut d: u64 = 0;
    let mut neg = false;
    if let Some(&c @ (b'-' | b'+')) = s.first() {
        neg = c == b'-';
        s = &s[1..];
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    const LIMIT: u64 = 1 << 63;
    while !s.is_empty() {
        // The next character must be [0-9.].
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // Consume [0-9]*.
        let before = s.len();
        let (mut v, rest) = leading_int(s).ok_or_else(invalid)?;
        s = rest;
        let pre = before != s.len();
        // Consume (\.[0-9]*)?.
        let mut post = false;
        let (mut f, mut scale) = (0u64, 1f64);
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let before = s.len();
            let (ff, sc, rest) = leading_fraction(s);
            f = ff;
            scale = sc;
            s = rest;
            post = before != s.len();
        }
        if !pre && !post {
            return Err(invalid());
        }
        // Consume the unit.
        let i = s
            .iter()
            .position(|&c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if i == 0 {
            return Err(DurationError::new("missing unit in duration", input));
        }
        let (u, rest) = s.split_at(i);
        s = rest;
        let Some(unit) = unit_nanos(u) else {
            // `u` ends right before an ASCII byte (or at the end), so it is
            // valid UTF-8 whenever the input is.
            let u = String::from_utf8_lossy(u);
            return Err(DurationError::new(
                format!("unknown unit {} in duration", go_quote(&u)),
                input,
            ));
        };
        if v > LIMIT / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            // float64 keeps nanosecond accuracy for fractions of hours.
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        // Go's uint64 addition wraps (2^63 + 2^63 = 0); so does this.
        d = d.wrapping_add(v);
        if d > LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        return Ok((d as i64).wrapping_neg());
    }
    if d > LIMIT - 1 {
        return Err(invalid());
    }
    Ok(d as i64)
}

fn unit_nanos(u: &[u8]) -> Option<u64> {
    Some(match u {
        b"ns" => 1,
        b"us" => 1_000,
        [0xC2, 0xB5, b's'] => 1_000, // "µs", U+00B5 micro sign
        [0xCE, 0xBC, b's'] => 1_000, // "μs", U+03BC Greek letter mu
        b"ms" => 1_000_000,
        b"s" => 1_000_000_000,
        b"m" => 60_000_000_000,
        b"h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// `leadingInt`: consumes `[0-9]*`; `None` on overflow past 2^63.
fn leading_int(s: &[u8]) -> Option<(u64, &[u8])> {
    let mut x: u64 = 0;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        if x > (1 << 63) / 10 {
            return None;
        }
        x = x * 10 + u64::from(s[i] - b'0');
        if x > 1 << 63 {
            return None;
        }
        i += 1;
    }
    Some((x, &s[i..]))
}

/// `leadingFraction`: consumes `[0-9]*`, silently dropping precision on
/// overflow.
fn leading_fraction(s: &[u8]) -> (u64, f64, &[u8]) {
    let mut x: u64 = 0;
    let mut scale = 1f64;
    let mut overflow = false;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        let c = s[i];
        i += 1;
        if overflow {
            continue;
        }
        if x > ((1u64 << 63) - 1) / 10 {
            overflow = true;
            continue;
        }
        let y = x * 10 + u64::from(c - b'0');
        if y > 1 << 63 {
            overflow = true;
            continue;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, &s[i..])
}

/// Go `time.quote`: double quotes, `\"` and `\\` escaped, and every byte of a
/// non-ASCII or control character written as `\xNN`.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if !(' '..'\u{80}').contains(&c) {
            let mut tmp = [0u8; 4];
            for b in c.encode_utf8(&mut tmp).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_windows_format_like_go_durations() {
        for (ns, want) in [
            (0, "0s"),
            (1_000, "1µs"),
            (1_500, "1.5µs"),
            (500_000_000, "500ms"),
            (10_000_000_000, "10s"),
            (15_012_000_000, "15.012s"),
            (60_000_000_000, "1m0s"),
            (60_500_000_000, "1m0.5s"),
            (3_605_000_000_000, "1h0m5s"),
            (-1_000_000_000, "-1s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ] {
            assert_eq!(format_duration(ns), want);
        }
    }

    #[test]
    fn flags_parse_like_go() {
        assert_eq!(parse_duration("15s"), Ok(15_000_000_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("300ms"), Ok(300_000_000));
        assert_eq!(parse_duration("-1s"), Ok(-1_000_000_000));
        assert_eq!(
            parse_duration("15").unwrap_err().to_string(),
            r#"time: missing unit in duration "15""#
        );
        assert_eq!(
            parse_duration("1d").unwrap_err().to_string(),
            r#"time: unknown unit "d" in duration "1d""#
        );
    }
}
