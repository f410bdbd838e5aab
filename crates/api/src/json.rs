//! A streaming JSON writer whose bytes match Go's `encoding/json`.
//!
//! Kubernetes serializes API objects with `json.NewEncoder(w).Encode(obj)`
//! (compact, trailing newline) or, for `?pretty=true` and some user agents,
//! `json.MarshalIndent(obj, "", "  ")` (no trailing newline). Both escape
//! strings the Go way: `<`, `>`, `&`, U+2028 and U+2029 become `\u003c` etc.,
//! `\b` and `\f` use their short forms (Go 1.22+), other control bytes are
//! `\u00XX` with lowercase hex. Writing straight into a `Vec<u8>` keeps large
//! lists (tens of thousands of pods) cheap: no intermediate value tree.

use std::fmt::Display;
use std::io::Write as _;

/// Go-compatible JSON writer over a byte buffer.
#[derive(Debug)]
pub(crate) struct JsonWriter<'a> {
    out: &'a mut Vec<u8>,
    pretty: bool,
    /// One entry per open container: `true` until its first element.
    stack: Vec<bool>,
    /// A key was just written; the next value follows it directly.
    after_key: bool,
}

impl<'a> JsonWriter<'a> {
    /// A writer appending to `out`; `pretty` selects `MarshalIndent` layout.
    pub(crate) fn new(out: &'a mut Vec<u8>, pretty: bool) -> Self {
        Self {
            out,
            pretty,
            stack: Vec::with_capacity(8),
            after_key: false,
        }
    }

    /// Writes the separator and indentation that precede a new element.
    fn element_start(&mut self) {
        if self.after_key {
            self.after_key = false;
            return;
        }
        let depth = self.stack.len();
        if let Some(first) = self.stack.last_mut() {
            if !*first {
                self.out.push(b',');
            }
            *first = false;
            if self.pretty {
                self.out.push(b'\n');
                indent(self.out, depth);
            }
        }
    }

    /// Opens an object (`{`).
    pub(crate) fn begin_object(&mut self) {
        self.element_start();
        self.out.push(b'{');
        self.stack.push(true);
    }

    /// Closes the innermost object (`}`).
    pub(crate) fn end_object(&mut self) {
        self.close(b'}');
    }

    /// Opens an array (`[`).
    pub(crate) fn begin_array(&mut self) {
        self.element_start();
        self.out.push(b'[');
        self.stack.push(true);
    }

    /// Closes the innermost array (`]`).
    pub(crate) fn end_array(&mut self) {
        self.close(b']');
    }

    fn close(&mut self, c: u8) {
        let empty = self.stack.pop().unwrap_or(true);
        if self.pretty && !empty {
            self.out.push(b'\n');
            indent(self.out, self.stack.len());
        }
        self.out.push(c);
    }

    /// Writes an object key; the next call writes its value.
    pub(crate) fn key(&mut self, key: &str) {
        self.element_start();
        write_go_string(self.out, key);
        self.out.push(b':');
        if self.pretty {
            self.out.push(b' ');
        }
        self.after_key = true;
    }

    /// Writes a string value.
    pub(crate) fn string(&mut self, s: &str) {
        self.element_start();
        write_go_string(self.out, s);
    }

    /// Writes a string value from a `Display` whose output never needs JSON
    /// escaping (quantities, durations, timestamps).
    pub(crate) fn display_string<D: Display>(&mut self, d: D) {
        self.element_start();
        self.out.push(b'"');
        // Writing into a Vec cannot fail.
        let _ = write!(self.out, "{d}");
        self.out.push(b'"');
    }

    /// Writes `null`.
    pub(crate) fn null(&mut self) {
        self.element_start();
        self.out.extend_from_slice(b"null");
    }

    /// Writes a boolean.
    pub(crate) fn bool(&mut self, b: bool) {
        self.element_start();
        self.out
            .extend_from_slice(if b { b"true" } else { b"false" });
    }

    /// Writes an integer.
    pub(crate) fn int(&mut self, v: i64) {
        self.element_start();
        self.out
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }

    /// `"key":"value"`.
    pub(crate) fn field_str(&mut self, key: &str, value: &str) {
        self.key(key);
        self.string(value);
    }

    /// `"key":"value"` unless `value` is empty (Go `omitempty`).
    pub(crate) fn field_str_omitempty(&mut self, key: &str, value: &str) {
        if !value.is_empty() {
            self.field_str(key, value);
        }
    }

    /// `"key":{}`: an empty object (e.g. an empty `ListMeta`).
    pub(crate) fn field_empty_object(&mut self, key: &str) {
        self.key(key);
        self.begin_object();
        self.end_object();
    }

    /// `"key":["a","b"]`.
    pub(crate) fn field_str_array(&mut self, key: &str, values: &[&str]) {
        self.key(key);
        self.begin_array();
        for v in values {
            self.string(v);
        }
        self.end_array();
    }
}

fn indent(out: &mut Vec<u8>, depth: usize) {
    for _ in 0..depth {
        out.extend_from_slice(b"  ");
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a JSON string literal, escaped exactly like Go's
/// `encoding/json` with HTML escaping on (the default for `Marshal`,
/// `MarshalIndent` and `Encoder`).
pub(crate) fn write_go_string(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0x08 => Some(b"\\b"),
            0x0c => Some(b"\\f"),
            _ => None,
        };
        if let Some(e) = escape {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(e);
            i += 1;
            start = i;
            continue;
        }
        if b < 0x20 || b == b'<' || b == b'>' || b == b'&' {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
            i += 1;
            start = i;
            continue;
        }
        // U+2028 and U+2029 are E2 80 A8 / E2 80 A9 in UTF-8.
        if b == 0xe2
            && i + 2 < bytes.len()
            && bytes[i + 1] == 0x80
            && (bytes[i + 2] == 0xa8 || bytes[i + 2] == 0xa9)
        {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(if bytes[i + 2] == 0xa8 {
                b"\\u2028"
            } else {
                b"\\u2029"
            });
            i += 3;
            start = i;
            continue;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(pretty: bool, f: impl FnOnce(&mut JsonWriter<'_>)) -> String {
        let mut out = Vec::new();
        let mut w = JsonWriter::new(&mut out, pretty);
        f(&mut w);
        String::from_utf8(out).unwrap_or_default()
    }

    fn sample(w: &mut JsonWriter<'_>) {
        w.begin_object();
        w.field_str("kind", "X");
        w.field_empty_object("metadata");
        w.key("items");
        w.begin_array();
        w.begin_object();
        w.field_str("a", "b");
        w.key("n");
        w.int(0);
        w.key("z");
        w.null();
        w.end_object();
        w.end_array();
        w.key("empty");
        w.begin_array();
        w.end_array();
        w.end_object();
    }

    #[test]
    fn compact_output_has_no_whitespace() {
        assert_eq!(
            render(false, sample),
            r#"{"kind":"X","metadata":{},"items":[{"a":"b","n":0,"z":null}],"empty":[]}"#
        );
    }

    #[test]
    fn pretty_output_matches_go_marshal_indent() {
        assert_eq!(
            render(true, sample),
            "{\n  \"kind\": \"X\",\n  \"metadata\": {},\n  \"items\": [\n    {\n      \"a\": \"b\",\n      \"n\": 0,\n      \"z\": null\n    }\n  ],\n  \"empty\": []\n}"
        );
    }

    #[test]
    fn strings_are_escaped_like_go_encoding_json() {
        let mut out = Vec::new();
        write_go_string(
            &mut out,
            "a\"b\\c\n\r\t\u{8}\u{c}\u{1}<>&\u{2028}\u{2029}é\u{7f}µ",
        );
        assert_eq!(
            String::from_utf8(out).unwrap_or_default(),
            r#""a\"b\\c\n\r\t\b\f\u0001\u003c\u003e\u0026\u2028\u2029é"#.to_owned() + "\u{7f}µ\""
        );
    }
}
