//! Kubernetes label selectors (`labels.Parse`) and field selectors
//! (`fields.ParseSelector` + `DefaultMetaV1FieldSelectorConversion`).
//!
//! Both are ports of k8s.io/apimachinery v0.36: same grammar, same
//! normalised `Display` (requirements sorted by key, set values sorted), same
//! matching, and the same error texts, which metrics-server returns verbatim
//! in 400 responses. `tests/golden/{label_selectors,label_matches,
//! field_selectors}.tsv` are generated from Go.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;

use thiserror::Error;

// === labels ===

/// Anything a label selector can be matched against.
pub trait Labels {
    /// The value of `key`, if present.
    fn get_label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn get_label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<S: BuildHasher> Labels for HashMap<String, String, S> {
    fn get_label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl Labels for [(&str, &str)] {
    fn get_label(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

impl<const N: usize> Labels for [(&str, &str); N] {
    fn get_label(&self, key: &str) -> Option<&str> {
        self.as_slice().get_label(key)
    }
}

impl<L: Labels + ?Sized> Labels for &L {
    fn get_label(&self, key: &str) -> Option<&str> {
        (**self).get_label(key)
    }
}

/// A label selector operator (`selection.Operator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `key in (a,b)`
    In,
    /// `key notin (a,b)`
    NotIn,
    /// `key=value`
    Equals,
    /// `key==value`
    DoubleEquals,
    /// `key!=value`
    NotEquals,
    /// `key`
    Exists,
    /// `!key`
    DoesNotExist,
    /// `key>int`
    GreaterThan,
    /// `key<int`
    LessThan,
}

/// One `key op values` term of a label selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requirement {
    key: String,
    operator: Operator,
    /// Sorted and de-duplicated for set operators, one value for the others,
    /// empty for exists / does-not-exist.
    values: Vec<String>,
}

impl Requirement {
    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values (sorted).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// `Requirement.Matches`.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        // Values are sorted (set operators) or single, so a binary search
        // keeps matching logarithmic in the length of an `in (...)` list.
        let has = |v: &str| self.values.binary_search_by(|x| x.as_str().cmp(v)).is_ok();
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                labels.get_label(&self.key).is_some_and(has)
            }
            Operator::NotIn | Operator::NotEquals => {
                labels.get_label(&self.key).is_none_or(|v| !has(v))
            }
            Operator::Exists => labels.get_label(&self.key).is_some(),
            Operator::DoesNotExist => labels.get_label(&self.key).is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(have) = labels.get_label(&self.key).and_then(go_parse_int) else {
                    return false;
                };
                let [want] = self.values.as_slice() else {
                    return false;
                };
                let Some(want) = go_parse_int(want) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let (op, set) = match self.operator {
            Operator::Equals => ("=", false),
            Operator::DoubleEquals => ("==", false),
            Operator::NotEquals => ("!=", false),
            Operator::In => (" in ", true),
            Operator::NotIn => (" notin ", true),
            Operator::GreaterThan => (">", false),
            Operator::LessThan => ("<", false),
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
        };
        f.write_str(op)?;
        if set {
            f.write_str("(")?;
        }
        f.write_str(&self.values.join(","))?;
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A parsed label selector: the AND of its requirements, sorted by key.
/// The empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

/// A label selector parse error; `Display` is Go's message.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct LabelSelectorError(pub String);

impl LabelSelector {
    /// The selector that matches everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// True when [`LabelSelector::parse`] would succeed; cheaper on invalid
    /// input, because no error text is built (a list of thousands of invalid
    /// values has a message of megabytes).
    pub fn is_valid(s: &str) -> bool {
        let mut parser = Parser::new(s);
        parser.quiet = true;
        parser.parse().is_ok()
    }

    /// Parses with `labels.Parse` rules.
    pub fn parse(s: &str) -> Result<Self, LabelSelectorError> {
        let mut requirements = Parser::new(s).parse().map_err(LabelSelectorError)?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements })
    }

    /// True when there are no requirements (matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// `Selector.Add`: the AND of both selectors, re-sorted by key.
    pub fn and(&self, other: &LabelSelector) -> LabelSelector {
        let mut requirements = self.requirements.clone();
        requirements.extend(other.requirements.iter().cloned());
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector { requirements }
    }

    /// True when every requirement matches.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl std::str::FromStr for LabelSelector {
    type Err = LabelSelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

// --- lexer (port of labels.Lexer) ---

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Error,
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &[u8]) -> Option<Tok> {
    Some(match s {
        b")" => Tok::ClosedPar,
        b"," => Tok::Comma,
        b"!" => Tok::DoesNotExist,
        b"==" => Tok::DoubleEquals,
        b"=" => Tok::Equals,
        b">" => Tok::GreaterThan,
        b"in" => Tok::In,
        b"<" => Tok::LessThan,
        b"!=" => Tok::NotEquals,
        b"notin" => Tok::NotIn,
        b"(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Tokens borrow from the input: they start and end at ASCII bytes, so
/// every token is a `str` slice and lexing allocates nothing.
struct Lexer<'a> {
    text: &'a str,
    s: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn slice(&self, start: usize, end: usize) -> Cow<'a, str> {
        match self.text.get(start..end) {
            Some(t) => Cow::Borrowed(t),
            None => Cow::Owned(
                String::from_utf8_lossy(self.s.get(start..end).unwrap_or(&[])).into_owned(),
            ),
        }
    }

    /// Returns 0 at the end (and, like Go, for a NUL byte).
    fn read(&mut self) -> u8 {
        match self.s.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.pos -= 1;
    }

    fn lex(&mut self) -> (Tok, Cow<'a, str>) {
        let mut ch = self.read();
        while is_whitespace(ch) {
            ch = self.read();
        }
        if ch == 0 {
            return (Tok::EndOfString, Cow::Borrowed(""));
        }
        self.unread();
        if is_special(ch) {
            self.scan_special()
        } else {
            self.scan_id_or_keyword()
        }
    }

    fn scan_id_or_keyword(&mut self) -> (Tok, Cow<'a, str>) {
        let start = self.pos;
        let mut end;
        loop {
            end = self.pos;
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if is_special(ch) || is_whitespace(ch) {
                self.unread();
                break;
            }
        }
        let text = self.slice(start, end);
        match keyword(text.as_bytes()) {
            Some(t) => (t, text),
            None => (Tok::Identifier, text),
        }
    }

    fn scan_special(&mut self) -> (Tok, Cow<'a, str>) {
        let start = self.pos;
        let mut last: Option<(Tok, usize)> = None;
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if !is_special(ch) {
                self.unread();
                break;
            }
            match keyword(&self.s[start..self.pos]) {
                Some(t) => last = Some((t, self.pos)),
                None if last.is_some() => {
                    self.unread();
                    break;
                }
                None => {}
            }
        }
        match last {
            Some((t, end)) => (t, self.slice(start, end)),
            None => (
                Tok::Error,
                Cow::Owned(format!(
                    "error expected: keyword found '{}'",
                    self.slice(start, self.pos)
                )),
            ),
        }
    }
}

// --- parser (port of labels.Parser) ---

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    KeyAndOperator,
    Values,
}

struct Parser<'a> {
    items: Vec<(Tok, Cow<'a, str>)>,
    position: usize,
    /// Only validity matters: invalid values fail without building their
    /// (large) error text.
    quiet: bool,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        let mut lexer = Lexer {
            text: s,
            s: s.as_bytes(),
            pos: 0,
        };
        let mut items = Vec::new();
        loop {
            let (t, lit) = lexer.lex();
            let end = t == Tok::EndOfString;
            items.push((t, lit));
            if end {
                break;
            }
        }
        Self {
            items,
            position: 0,
            quiet: false,
        }
    }

    fn adjust(t: Tok, ctx: Ctx) -> Tok {
        match (t, ctx) {
            (Tok::In | Tok::NotIn, Ctx::Values) => Tok::Identifier,
            _ => t,
        }
    }

    /// The current token; past the end (never reached: the parser stops at
    /// `EndOfString`) it reads as `EndOfString`. Cloning a borrowed literal
    /// copies a pointer.
    fn lookahead(&self, ctx: Ctx) -> (Tok, Cow<'a, str>) {
        match self.items.get(self.position) {
            Some((t, lit)) => (Self::adjust(*t, ctx), lit.clone()),
            None => (Tok::EndOfString, Cow::Borrowed("")),
        }
    }

    fn consume(&mut self, ctx: Ctx) -> (Tok, Cow<'a, str>) {
        let item = self.lookahead(ctx);
        self.position += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut reqs = Vec::new();
        loop {
            let (t, lit) = self.lookahead(Ctx::Values);
            match t {
                Tok::Identifier | Tok::DoesNotExist => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    let (t, l) = self.consume(Ctx::Values);
                    match t {
                        Tok::EndOfString => return Ok(reqs),
                        Tok::Comma => {
                            let (t2, l2) = self.lookahead(Ctx::Values);
                            if t2 != Tok::Identifier && t2 != Tok::DoesNotExist {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::EndOfString => return Ok(reqs),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, op) = self.parse_key_and_infer_operator()?;
        if let Some(op @ (Operator::Exists | Operator::DoesNotExist)) = op {
            return new_requirement(key, op, Vec::new(), self.quiet);
        }
        let op = self.parse_operator()?;
        let values = match op {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        new_requirement(key, op, values, self.quiet)
    }

    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut op = None;
        let (mut t, mut lit) = self.consume(Ctx::Values);
        if t == Tok::DoesNotExist {
            op = Some(Operator::DoesNotExist);
            (t, lit) = self.consume(Ctx::Values);
        }
        if t != Tok::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        if let Some(msgs) = label_key_errors(&lit) {
            // The parser validates with a nil field path.
            let msgs: Vec<&str> = msgs.iter().map(String::as_str).collect();
            return Err(field_invalid(format_args!("<nil>"), &lit, &msgs));
        }
        let (t, _) = self.lookahead(Ctx::Values);
        if (t == Tok::EndOfString || t == Tok::Comma) && op != Some(Operator::DoesNotExist) {
            op = Some(Operator::Exists);
        }
        Ok((lit.into_owned(), op))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        let (t, lit) = self.consume(Ctx::KeyAndOperator);
        Ok(match t {
            Tok::In => Operator::In,
            Tok::Equals => Operator::Equals,
            Tok::DoubleEquals => Operator::DoubleEquals,
            Tok::GreaterThan => Operator::GreaterThan,
            Tok::LessThan => Operator::LessThan,
            Tok::NotIn => Operator::NotIn,
            Tok::NotEquals => Operator::NotEquals,
            _ => {
                return Err(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                ));
            }
        })
    }

    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (t, lit) = self.consume(Ctx::Values);
        if t != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (t, lit) = self.lookahead(Ctx::Values);
        match t {
            Tok::Identifier | Tok::Comma => {
                let s = self.parse_identifiers_list()?;
                let (t, _) = self.consume(Ctx::Values);
                if t != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(s)
            }
            Tok::ClosedPar => {
                self.consume(Ctx::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    /// Returns a sorted, de-duplicated list (Go's `sets.String.List()`).
    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, String> {
        // Borrowed literals, sorted and de-duplicated once at the end.
        let mut s: Vec<Cow<'a, str>> = Vec::new();
        let into_set = |mut s: Vec<Cow<'a, str>>| {
            s.sort_unstable();
            s.dedup();
            s.into_iter().map(Cow::into_owned).collect()
        };
        loop {
            let (t, lit) = self.consume(Ctx::Values);
            match t {
                Tok::Identifier => {
                    s.push(lit);
                    let (t2, lit2) = self.lookahead(Ctx::Values);
                    match t2 {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(into_set(s)),
                        _ => return Err(format!("found '{lit2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if s.is_empty() {
                        s.push(Cow::Borrowed(""));
                    }
                    let (t2, _) = self.lookahead(Ctx::Values);
                    if t2 == Tok::ClosedPar || t2 == Tok::Comma {
                        s.push(Cow::Borrowed(""));
                    }
                    if t2 == Tok::ClosedPar {
                        return Ok(into_set(s));
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        let (t, _) = self.lookahead(Ctx::Values);
        if t == Tok::EndOfString || t == Tok::Comma {
            return Ok(vec![String::new()]);
        }
        let (t, lit) = self.consume(Ctx::Values);
        if t == Tok::Identifier {
            return Ok(vec![lit.into_owned()]);
        }
        Err(format!("found '{lit}', expected: identifier"))
    }
}

/// `NewRequirement` validation (values only: the parser already checked the
/// key). Errors aggregate like `field.ErrorList.ToAggregate()`.
fn new_requirement(
    key: String,
    op: Operator,
    values: Vec<String>,
    quiet: bool,
) -> Result<Requirement, String> {
    let mut errs: Vec<String> = Vec::new();
    if matches!(op, Operator::GreaterThan | Operator::LessThan) {
        for (i, v) in values.iter().enumerate() {
            if go_parse_int(v).is_none() {
                if quiet {
                    return Err(String::new());
                }
                errs.push(field_invalid(
                    format_args!("values[{i}]"),
                    v,
                    &["for 'Gt', 'Lt' operators, the value must be an integer"],
                ));
            }
        }
    }
    // Built once: a list of thousands of invalid values repeats it for each.
    let mut value_regex_msg = None;
    for (i, v) in values.iter().enumerate() {
        let too_long = v.len() > 63;
        let bad_chars = !v.is_empty() && !is_qualified_token(v);
        if !too_long && !bad_chars {
            continue;
        }
        if quiet {
            return Err(String::new());
        }
        let regex_msg = value_regex_msg.get_or_insert_with(|| {
            regex_error(
                LABEL_VALUE_MSG,
                LABEL_VALUE_FMT,
                &["MyValue", "my_value", "12345"],
            )
        });
        let msgs: &[&str] = match (too_long, bad_chars) {
            (true, true) => &["must be no more than 63 bytes", regex_msg],
            (true, false) => &["must be no more than 63 bytes"],
            _ => &[regex_msg],
        };
        errs.push(field_invalid(format_args!("values[{i}][{key}]"), v, msgs));
    }
    if !errs.is_empty() {
        return Err(aggregate_distinct(errs));
    }
    Ok(Requirement {
        key,
        operator: op,
        values,
    })
}

/// `utilerrors.Aggregate.Error()` for messages that are distinct by
/// construction (each names its own `values[i]` path, and the two kinds of
/// path differ right after the index), so Go's de-duplication never drops
/// one: one error as is, several in brackets.
fn aggregate_distinct(mut errs: Vec<String>) -> String {
    if errs.len() == 1 {
        return errs.pop().unwrap_or_default();
    }
    let len: usize = errs.iter().map(|e| e.len() + 2).sum();
    let mut out = String::with_capacity(len + 2);
    out.push('[');
    for (i, e) in errs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(e);
    }
    out.push(']');
    out
}

/// `field.Invalid(path, value, detail).Error()` for a string value, built in
/// one buffer.
fn field_invalid(path: fmt::Arguments<'_>, value: &str, msgs: &[&str]) -> String {
    let details: usize = msgs.iter().map(|m| m.len() + 2).sum();
    let mut out = String::with_capacity(40 + value.len() + details);
    let _ = fmt::Write::write_fmt(&mut out, path);
    out.push_str(": Invalid value: ");
    push_go_quoted(&mut out, value);
    out.push_str(": ");
    for (i, m) in msgs.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(m);
    }
    out
}

/// Go `strconv.Quote` for the strings that reach error messages.
fn go_strconv_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_go_quoted(&mut out, s);
    out
}

fn push_go_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if c < ' ' || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            '\u{fffd}' => out.push_str("\\ufffd"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `strconv.ParseInt(s, 10, 64)`.
fn go_parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

const LABEL_KEY_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_KEY_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

/// `content.RegexError`.
fn regex_error(msg: &str, re: &str, examples: &[&str]) -> String {
    let mut out = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{e}', "));
    }
    out.push_str(&format!("regex used for validation is '{re}')"));
    out
}

/// `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`
fn is_qualified_token(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
fn is_dns1123_subdomain(s: &str) -> bool {
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        match (b.first(), b.last()) {
            (Some(f), Some(e)) => alnum(f) && alnum(e) && b.iter().all(|c| alnum(c) || *c == b'-'),
            _ => false,
        }
    };
    s.split('.').all(label_ok)
}

/// `content.IsLabelKey`; `None` when valid.
fn label_key_errors(key: &str) -> Option<Vec<String>> {
    let mut errs = Vec::new();
    // `[name]`, `[prefix, name]`, or `None` for more than one `/`.
    let parts = match key.split_once('/') {
        None => Some((None, key)),
        Some((prefix, name)) if !name.contains('/') => Some((Some(prefix), name)),
        Some(_) => None,
    };
    let name = match parts {
        Some((None, name)) => name,
        Some((Some(prefix), name)) => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_owned());
            } else {
                if prefix.len() > 253 {
                    errs.push("prefix part must be no more than 253 bytes".to_owned());
                }
                if !is_dns1123_subdomain(prefix) {
                    errs.push(format!(
                        "prefix part {}",
                        regex_error(
                            DNS1123_SUBDOMAIN_MSG,
                            DNS1123_SUBDOMAIN_FMT,
                            &["example.com"]
                        )
                    ));
                }
            }
            name
        }
        None => {
            return Some(vec![format!(
                "a valid label key {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    LABEL_KEY_MSG,
                    LABEL_KEY_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            )]);
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_owned());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 bytes".to_owned());
    }
    if !is_qualified_token(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                LABEL_KEY_MSG,
                LABEL_KEY_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    (!errs.is_empty()).then_some(errs)
}

// === fields ===

/// The fields every metrics.k8s.io resource accepts in a field selector
/// (`DefaultMetaV1FieldSelectorConversion`).
pub const METADATA_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

/// A field selector term operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `=` or `==`.
    Equals,
    /// `!=`.
    NotEquals,
}

/// One `field op value` term.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldTerm {
    /// Field path, e.g. `metadata.name`.
    pub field: String,
    /// Operator.
    pub operator: FieldOperator,
    /// Unescaped value.
    pub value: String,
}

/// A parsed field selector: the AND of its terms. Empty matches everything.
///
/// Matching follows `fields.Set`: a field missing from the object's set
/// compares as `""`. metrics-server validates both endpoints against
/// [`METADATA_FIELDS`] but matches nodes against `{metadata.name}` only and
/// pods against `{metadata.name, metadata.namespace}` (spec E.5), so
/// `metadata.namespace=x` is accepted for nodes and matches none of them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

/// Why a field selector was rejected. `Display` is Go's text.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FieldSelectorError {
    /// Syntax error from `fields.ParseSelector`.
    #[error("{0}")]
    Syntax(String),
    /// A field outside the allowed set (the 400 text of spec E.5).
    #[error("{} is not a known field selector: only {}", go_strconv_quote(.field), .allowed.iter().map(|a| go_strconv_quote(a)).collect::<Vec<_>>().join(", "))]
    UnknownField {
        /// The rejected field.
        field: String,
        /// The fields that would have been accepted.
        allowed: Vec<String>,
    },
}

impl FieldSelector {
    /// Parses and validates against [`METADATA_FIELDS`], as metrics-server
    /// does for both nodes and pods.
    pub fn parse(s: &str) -> Result<Self, FieldSelectorError> {
        Self::parse_with_fields(s, METADATA_FIELDS)
    }

    /// Parses and validates against an explicit set of known fields.
    pub fn parse_with_fields(s: &str, known: &[&str]) -> Result<Self, FieldSelectorError> {
        let selector = Self::parse_syntax(s)?;
        // Transform step: the conversion func rejects the first unknown field
        // in term order.
        if let Some(t) = selector
            .terms
            .iter()
            .find(|t| !known.contains(&t.field.as_str()))
        {
            return Err(FieldSelectorError::UnknownField {
                field: t.field.clone(),
                allowed: known.iter().map(|k| (*k).to_owned()).collect(),
            });
        }
        Ok(selector)
    }

    /// Syntax only, like Go's `fields.ParseSelector`: any field name is
    /// accepted, only [`FieldSelectorError::Syntax`] can come back. Linear in
    /// the input apart from sorting the terms (n log n).
    pub fn parse_syntax(s: &str) -> Result<Self, FieldSelectorError> {
        let mut parts = split_terms(s);
        parts.sort_unstable();
        let mut terms = Vec::with_capacity(parts.len());
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((lhs, op, rhs)) = split_term(part) else {
                return Err(FieldSelectorError::Syntax(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let value = unescape_field_value(rhs)?;
            terms.push(FieldTerm {
                field: lhs.to_owned(),
                operator: op,
                value,
            });
        }
        Ok(Self { terms })
    }

    /// True when there are no terms.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The terms, in Go's order (sorted by raw term text).
    pub fn terms(&self) -> &[FieldTerm] {
        &self.terms
    }

    /// Matches against an object's field set; absent fields are `""`.
    pub fn matches(&self, fields: &[(&str, &str)]) -> bool {
        self.terms.iter().all(|t| {
            let have = fields
                .iter()
                .find(|(f, _)| *f == t.field)
                .map_or("", |(_, v)| *v);
            match t.operator {
                FieldOperator::Equals => have == t.value,
                FieldOperator::NotEquals => have != t.value,
            }
        })
    }

    /// The value required by an `=`/`==` term on `field`, if any
    /// (`RequiresExactMatch`); lets a caller turn `metadata.name=x` into a
    /// direct lookup.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && t.operator == FieldOperator::Equals)
            .map(|t| t.value.as_str())
    }
}

impl std::str::FromStr for FieldSelector {
    type Err = FieldSelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match t.operator {
                FieldOperator::Equals => "=",
                FieldOperator::NotEquals => "!=",
            };
            write!(f, "{}{op}{}", t.field, escape_field_value(&t.value))?;
        }
        Ok(())
    }
}

/// `splitTerms`: split on commas not escaped by a backslash (a byte scan,
/// as Go's).
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let b = s.as_bytes();
    let mut terms = Vec::new();
    let (mut start, mut i) = (0, 0);
    while let Some(off) = b
        .get(i..)
        .and_then(|rest| memchr::memchr2(b'\\', b',', rest))
    {
        let at = i + off;
        if b[at] == b'\\' {
            // The escaped byte is skipped, whatever it is.
            i = at + 2;
            continue;
        }
        terms.push(&s[start..at]);
        start = at + 1;
        i = at + 1;
    }
    terms.push(s.get(start..).unwrap_or(""));
    terms
}

/// `splitTerm`: the first position where `!=`, `==` or `=` starts splits
/// (checked in that order at each position).
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    let b = term.as_bytes();
    let mut i = 0;
    while let Some(off) = b
        .get(i..)
        .and_then(|rest| memchr::memchr2(b'!', b'=', rest))
    {
        let at = i + off;
        let next_is_eq = b.get(at + 1) == Some(&b'=');
        match (b[at], next_is_eq) {
            (b'!', true) => return Some((&term[..at], FieldOperator::NotEquals, &term[at + 2..])),
            (b'=', true) => return Some((&term[..at], FieldOperator::Equals, &term[at + 2..])),
            (b'=', false) => return Some((&term[..at], FieldOperator::Equals, &term[at + 1..])),
            _ => i = at + 1,
        }
    }
    None
}

/// `fields.UnescapeValue`.
fn unescape_field_value(s: &str) -> Result<String, FieldSelectorError> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => {
                    return Err(FieldSelectorError::Syntax(format!(
                        "invalid field selector: invalid escape sequence: \\{c}"
                    )));
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(FieldSelectorError::Syntax(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                )));
            }
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err(FieldSelectorError::Syntax(
            "invalid field selector: invalid escape sequence: \\".to_owned(),
        ));
    }
    Ok(out)
}

/// `fields.EscapeValue`.
fn escape_field_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_give_the_exact_400_text() {
        let err = FieldSelector::parse("spec.nodeName=node1").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#""spec.nodeName" is not a known field selector: only "metadata.name", "metadata.namespace""#
        );
        let err = FieldSelector::parse_with_fields("metadata.namespace=x", &["metadata.name"])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#""metadata.namespace" is not a known field selector: only "metadata.name""#
        );
    }

    #[test]
    fn node_field_sets_hold_only_the_name() {
        // Accepted (both endpoints validate against METADATA_FIELDS) but a
        // node's field set has no namespace, which compares as "".
        let sel = FieldSelector::parse("metadata.namespace=default").unwrap();
        assert!(!sel.matches(&[("metadata.name", "node1")]));
        let sel = FieldSelector::parse("metadata.namespace!=default").unwrap();
        assert!(sel.matches(&[("metadata.name", "node1")]));
        let sel = FieldSelector::parse("metadata.name=node3").unwrap();
        assert_eq!(sel.requires_exact_match("metadata.name"), Some("node3"));
        assert!(sel.matches(&[("metadata.name", "node3")]));
    }

    #[test]
    fn label_selectors_cover_every_operator() {
        let labels: BTreeMap<String, String> = [("a", "1"), ("b", "x")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        for (sel, want) in [
            ("a", true),
            ("!a", false),
            ("!c", true),
            ("a=1", true),
            ("a==1", true),
            ("a!=1", false),
            ("c!=1", true),
            ("b in (x,y)", true),
            ("b notin (x,y)", false),
            ("c notin (x)", true),
            ("a>0", true),
            ("a<1", false),
            ("b>0", false),
            ("c>0", false),
            ("a=1,b=x", true),
            ("a=1,b=y", false),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&labels),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn combining_selectors_sorts_by_key() {
        let request = LabelSelector::parse("z=1,labelKey=labelValue").unwrap();
        let node_selector = LabelSelector::parse("metrics-server-skip!=true").unwrap();
        assert_eq!(
            request.and(&node_selector).to_string(),
            "labelKey=labelValue,metrics-server-skip!=true,z=1"
        );
        assert!(LabelSelector::everything().matches(&[("a", "b")]));
    }
}
