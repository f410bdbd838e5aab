//! A small, exact parser for Kubernetes quantity strings (`50m`, `1500u`, `12240Ki`, `1.5Gi`, `1e3`).
//!
//! The suite only reads quantities, and it reads them the way client-go does: `MilliValue()` and
//! `Value()` both round up. The value is kept as an exact fraction so that `50m` is 50 millis, never
//! 50.000000000000001 rounded up to 51.

use std::fmt;

/// An exact non-negative or negative quantity, `numerator / denominator` (the denominator is a positive
/// power of ten).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity {
    numerator: i128,
    denominator: i128,
}

/// Why a string is not a quantity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseQuantityError {
    input: String,
    reason: &'static str,
}

impl fmt::Display for ParseQuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid quantity {:?}: {}", self.input, self.reason)
    }
}

impl std::error::Error for ParseQuantityError {}

impl Quantity {
    /// Parses `<sign><digits>[.<digits>]<suffix>`, where the suffix is empty, a binary SI suffix
    /// (`Ki`…`Ei`), a decimal SI suffix (`n`, `u`, `m`, `k`, `M`, `G`, `T`, `P`, `E`) or a decimal exponent
    /// (`e3`, `E-2`).
    pub fn parse(input: &str) -> Result<Self, ParseQuantityError> {
        let err = |reason| ParseQuantityError {
            input: input.to_owned(),
            reason,
        };
        let s = input.trim();
        let (negative, s) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let number_len = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(number_len);
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(err("no digits"));
        }
        if frac_part.contains('.') {
            return Err(err("more than one decimal point"));
        }

        let mut numerator: i128 = 0;
        for digit in int_part.bytes().chain(frac_part.bytes()) {
            numerator = numerator
                .checked_mul(10)
                .and_then(|n| n.checked_add(i128::from(digit - b'0')))
                .ok_or_else(|| err("too many digits"))?;
        }
        let mut denominator =
            pow(10, frac_part.len() as u32).ok_or_else(|| err("too many digits"))?;

        let (base, exponent): (i128, i32) = match suffix {
            "" => (10, 0),
            "n" => (10, -9),
            "u" => (10, -6),
            "m" => (10, -3),
            "k" => (10, 3),
            "M" => (10, 6),
            "G" => (10, 9),
            "T" => (10, 12),
            "P" => (10, 15),
            "E" => (10, 18),
            "Ki" => (2, 10),
            "Mi" => (2, 20),
            "Gi" => (2, 30),
            "Ti" => (2, 40),
            "Pi" => (2, 50),
            "Ei" => (2, 60),
            _ => match suffix.strip_prefix(['e', 'E']) {
                Some(exp) => (10, exp.parse().map_err(|_| err("bad exponent"))?),
                None => return Err(err("unknown suffix")),
            },
        };
        let factor = pow(base, exponent.unsigned_abs()).ok_or_else(|| err("exponent too large"))?;
        if exponent >= 0 {
            numerator = numerator
                .checked_mul(factor)
                .ok_or_else(|| err("value too large"))?;
        } else {
            denominator = denominator
                .checked_mul(factor)
                .ok_or_else(|| err("value too small"))?;
        }
        if negative {
            numerator = -numerator;
        }
        Ok(Self {
            numerator,
            denominator,
        })
    }

    /// The value in thousandths, rounded up (client-go `MilliValue()`).
    pub fn milli_value(&self) -> i128 {
        ceil_div(self.numerator.saturating_mul(1000), self.denominator)
    }

    /// The value in units (bytes for memory, cores for CPU), rounded up (client-go `Value()`).
    pub fn value(&self) -> i128 {
        ceil_div(self.numerator, self.denominator)
    }

    /// Whether the quantity is exactly zero.
    pub fn is_zero(&self) -> bool {
        self.numerator == 0
    }
}

impl std::str::FromStr for Quantity {
    type Err = ParseQuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn pow(base: i128, exponent: u32) -> Option<i128> {
    base.checked_pow(exponent)
}

fn ceil_div(numerator: i128, denominator: i128) -> i128 {
    let quotient = numerator.div_euclid(denominator);
    if numerator.rem_euclid(denominator) == 0 {
        quotient
    } else {
        quotient + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    #[test]
    fn decimal_suffixes_give_exact_millis() {
        assert_eq!(q("50m").milli_value(), 50);
        assert_eq!(q("1").milli_value(), 1000);
        assert_eq!(q("2500m").milli_value(), 2500);
        assert_eq!(q("1500u").milli_value(), 2);
        assert_eq!(q("7338891n").milli_value(), 8);
        assert_eq!(q("50000000n").milli_value(), 50);
        assert_eq!(q("0").milli_value(), 0);
        assert_eq!(q("1k").value(), 1000);
        assert_eq!(q("0.1").milli_value(), 100);
    }

    #[test]
    fn milli_value_rounds_up_like_client_go() {
        assert_eq!(q("1234567n").milli_value(), 2);
        assert_eq!(q("1n").milli_value(), 1);
        assert_eq!(q("1m").milli_value(), 1);
    }

    #[test]
    fn binary_suffixes_give_exact_bytes() {
        assert_eq!(q("50Mi").value(), 50 * 1024 * 1024);
        assert_eq!(q("12240Ki").value(), 12_533_760);
        assert_eq!(q("1.5Gi").value(), 1_610_612_736);
        assert_eq!(q("12533761").value(), 12_533_761);
    }

    #[test]
    fn exponents_and_signs_are_accepted() {
        assert_eq!(q("1e3").value(), 1000);
        assert_eq!(q("5E-3").milli_value(), 5);
        assert_eq!(q("-1").milli_value(), -1000);
        assert_eq!(q("+2").value(), 2);
        assert!(q("0m").is_zero());
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in ["", "m", "abc", "1.2.3", "5Xi", "1e", ".", "--1"] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
