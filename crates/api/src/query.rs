//! URL path and query decoding with Go `net/url` semantics.

/// Parsed query string: `(key, value)` pairs in order, like Go's
/// `url.Values` (pairs that fail to decode, or contain `;`, are dropped).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    raw: String,
    pairs: Vec<(String, String)>,
}

impl Query {
    /// `url.ParseQuery(raw)`, keeping what parsed.
    pub fn parse(raw: &str) -> Self {
        let mut pairs = Vec::new();
        for part in raw.split('&') {
            if part.is_empty() || part.contains(';') {
                continue;
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let (Some(k), Some(v)) = (unescape_query(k), unescape_query(v)) else {
                continue;
            };
            pairs.push((k, v));
        }
        Self {
            raw: raw.to_owned(),
            pairs,
        }
    }

    /// The raw (undecoded) query string.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// `Values.Get`: the first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// True when `key` is present (even with an empty value).
    pub fn has(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }

    /// All values of `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unescape(s: &str, plus_is_space: bool) -> Option<String> {
    if !s.contains(['%', '+']) {
        return Some(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = hex(*b.get(i + 1)?)?;
                let lo = hex(*b.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    // Go keeps invalid UTF-8 bytes; Rust strings cannot, so replace them.
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// `url.QueryUnescape`.
pub(crate) fn unescape_query(s: &str) -> Option<String> {
    unescape(s, true)
}

/// `url.PathUnescape`-like decoding of a request path (`URL.Path`).
pub(crate) fn unescape_path(s: &str) -> Option<String> {
    unescape(s, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_go_url_values() {
        let q = Query::parse("verbose&exclude=a&exclude=b%2Fc&x=1+2&bad=%zz&semi=a;b");
        assert!(q.has("verbose"));
        assert_eq!(q.get("verbose"), Some(""));
        assert_eq!(q.all("exclude").collect::<Vec<_>>(), vec!["a", "b/c"]);
        assert_eq!(q.get("x"), Some("1 2"));
        assert!(!q.has("bad"));
        assert!(!q.has("semi"));
    }

    #[test]
    fn trailing_ampersand_is_tolerated() {
        let q = Query::parse("verbose&");
        assert!(q.has("verbose"));
    }
}
