//! A protobuf body as a tree of (field number, wire type, value), read by the known message layouts
//! ([`super::layout`]) so that embedded messages are walked and volatile leaves replaced by
//! placeholders; two trees are equal when the bodies agree in everything but those leaves.
//!
//! Encoding a tree back gives the bytes Go writes (minimal varints and length prefixes), so a tree
//! can be edited and then compared byte for byte with another server's body.

use std::fmt::Write as _;

use anyhow::{Context as _, Result, bail, ensure};

use super::layout::{self, Kind, Layout};
use super::{MAGIC, parse};

/// The wire types of protobuf (groups, 3 and 4, are not used by Kubernetes).
pub const VARINT: u8 = 0;
/// 64-bit fixed.
pub const FIXED64: u8 = 1;
/// Length-delimited: strings, bytes and embedded messages.
pub const LEN: u8 = 2;
/// 32-bit fixed.
pub const FIXED32: u8 = 5;

/// One field of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The field number.
    pub number: u64,
    /// The field's name in its layout (`?` when the layout does not know it).
    pub name: &'static str,
    /// The wire type.
    pub wire_type: u8,
    /// The value.
    pub value: Value,
}

/// The value of a field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A varint or fixed-width number.
    Number(u64),
    /// A string or bytes.
    Bytes(Vec<u8>),
    /// An embedded message.
    Message(Vec<Field>),
    /// A volatile leaf: the placeholder's name stands for the value.
    Volatile(&'static str),
}

impl Field {
    /// The text of a string field.
    pub fn text(&self) -> Option<&str> {
        match &self.value {
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The fields of an embedded message.
    pub fn message(&self) -> Option<&[Field]> {
        match &self.value {
            Value::Message(fields) => Some(fields),
            _ => None,
        }
    }

    /// The fields of an embedded message, to edit.
    pub fn message_mut(&mut self) -> Option<&mut Vec<Field>> {
        match &mut self.value {
            Value::Message(fields) => Some(fields),
            _ => None,
        }
    }
}

/// The text of the first field `number` of `fields`.
pub fn text_of(fields: &[Field], number: u64) -> Option<&str> {
    fields.iter().find(|f| f.number == number)?.text()
}

/// Decodes a whole body: the `k8s\0` magic, then the envelope whose `raw` object is read by the
/// layout of the kind its `typeMeta` names, volatile leaves replaced by placeholders.
pub fn decode_body(body: &[u8]) -> Result<Vec<Field>> {
    decode_body_with(body, Volatility::Mask)
}

/// [`decode_body`] keeping every value, volatile or not (a tree to edit and encode again).
pub fn decode_body_exact(body: &[u8]) -> Result<Vec<Field>> {
    decode_body_with(body, Volatility::Keep)
}

/// Whether volatile leaves are replaced by their placeholders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Volatility {
    Mask,
    Keep,
}

fn decode_body_with(body: &[u8], volatility: Volatility) -> Result<Vec<Field>> {
    let envelope = parse(body)?;
    let object = layout::for_kind(&envelope.kind)
        .with_context(|| format!("no layout for kind {:?}", envelope.kind))?;
    let message = body.strip_prefix(MAGIC).unwrap_or(body);
    let mut fields = decode_with(message, &layout::UNKNOWN, volatility)?;
    for field in fields.iter_mut().filter(|f| f.number == 2) {
        if let Value::Bytes(raw) = &field.value {
            field.value = Value::Message(decode_with(raw, object, volatility)?);
        }
    }
    Ok(fields)
}

/// Decodes a message of `layout`, volatile leaves replaced by placeholders.
pub fn decode(bytes: &[u8], layout: &'static Layout) -> Result<Vec<Field>> {
    decode_with(bytes, layout, Volatility::Mask)
}

fn decode_with(
    mut bytes: &[u8],
    layout: &'static Layout,
    volatility: Volatility,
) -> Result<Vec<Field>> {
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let (number, wire_type) = (key >> 3, (key & 7) as u8);
        let (name, kind) = layout.field(number);
        let raw = match wire_type {
            VARINT => Value::Number(varint(&mut bytes)?),
            FIXED64 => Value::Number(fixed(&mut bytes, 8)?),
            FIXED32 => Value::Number(fixed(&mut bytes, 4)?),
            LEN => Value::Bytes(length_delimited(&mut bytes)?.to_vec()),
            other => bail!("{}.{name} ({number}) has wire type {other}", layout.name),
        };
        let value = match (kind, raw) {
            (Kind::Volatile(placeholder), _) if volatility == Volatility::Mask => {
                Value::Volatile(placeholder)
            }
            (Kind::Message(inner), Value::Bytes(b)) => Value::Message(
                decode_with(&b, inner, volatility)
                    .with_context(|| format!("in {}.{name}", layout.name))?,
            ),
            (Kind::Message(_), _) => bail!(
                "{}.{name} is a message but not length-delimited",
                layout.name
            ),
            (Kind::Plain | Kind::Volatile(_), value) => value,
        };
        fields.push(Field {
            number,
            name,
            wire_type,
            value,
        });
    }
    Ok(fields)
}

fn varint(bytes: &mut &[u8]) -> Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let Some((&byte, rest)) = bytes.split_first() else {
            bail!("truncated varint");
        };
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    bail!("varint longer than 64 bits")
}

fn fixed(bytes: &mut &[u8], width: usize) -> Result<u64> {
    ensure!(bytes.len() >= width, "truncated fixed-width field");
    let (value, rest) = bytes.split_at(width);
    *bytes = rest;
    Ok(value
        .iter()
        .rev()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

fn length_delimited<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8]> {
    let len = usize::try_from(varint(bytes)?)?;
    ensure!(len <= bytes.len(), "a field overruns its message");
    let (value, rest) = bytes.split_at(len);
    *bytes = rest;
    Ok(value)
}

/// Encodes a body decoded by [`decode_body`] (and maybe edited): the magic, then the fields.
/// Volatile placeholders have no bytes: a tree holding one is an error.
pub fn encode_body(fields: &[Field]) -> Result<Vec<u8>> {
    let mut out = MAGIC.to_vec();
    encode_into(&mut out, fields)?;
    Ok(out)
}

fn encode_into(out: &mut Vec<u8>, fields: &[Field]) -> Result<()> {
    for field in fields {
        put_varint(out, (field.number << 3) | u64::from(field.wire_type));
        match (&field.value, field.wire_type) {
            (Value::Number(n), VARINT) => put_varint(out, *n),
            (Value::Number(n), FIXED64) => out.extend_from_slice(&n.to_le_bytes()),
            (Value::Number(n), FIXED32) => out.extend_from_slice(&n.to_le_bytes()[..4]),
            (Value::Bytes(b), LEN) => {
                put_varint(out, b.len() as u64);
                out.extend_from_slice(b);
            }
            (Value::Message(inner), LEN) => {
                let mut body = Vec::new();
                encode_into(&mut body, inner)?;
                put_varint(out, body.len() as u64);
                out.extend_from_slice(&body);
            }
            (value, wire_type) => {
                bail!("field {} ({wire_type}) cannot encode {value:?}", field.name)
            }
        }
    }
    Ok(())
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Where two trees first differ, as a path of field names (`items[3].metadata.name`) with both
/// values; `None` when they are equal.
pub fn difference(a: &[Field], b: &[Field]) -> Option<String> {
    difference_at("", a, b)
}

fn difference_at(path: &str, a: &[Field], b: &[Field]) -> Option<String> {
    for i in 0..a.len().max(b.len()) {
        let (fa, fb) = match (a.get(i), b.get(i)) {
            (Some(fa), Some(fb)) => (fa, fb),
            (Some(f), None) | (None, Some(f)) => {
                let side = if a.len() > b.len() { "first" } else { "second" };
                let at = child_path(path, a.get(..i).unwrap_or(a), f);
                return Some(format!("{at}: only in the {side}: {}", show(&f.value)));
            }
            (None, None) => return None,
        };
        let at = child_path(path, a.get(..i).unwrap_or(a), fa);
        if (fa.number, fa.wire_type) != (fb.number, fb.wire_type) {
            return Some(format!(
                "{at}: field {} (wire type {}) vs field {} {} (wire type {})",
                fa.number, fa.wire_type, fb.number, fb.name, fb.wire_type
            ));
        }
        if let (Value::Message(ma), Value::Message(mb)) = (&fa.value, &fb.value) {
            if let Some(d) = difference_at(&at, ma, mb) {
                return Some(d);
            }
        } else if fa.value != fb.value {
            return Some(format!("{at}: {} vs {}", show(&fa.value), show(&fb.value)));
        }
    }
    None
}

/// `path.name`, with `[k]` when the field is the k-th (k > 0) of its number among `before`.
fn child_path(path: &str, before: &[Field], field: &Field) -> String {
    let k = before.iter().filter(|f| f.number == field.number).count();
    let mut out = if path.is_empty() {
        field.name.to_owned()
    } else {
        format!("{path}.{}", field.name)
    };
    if field.name == "?" {
        let _ = write!(out, "{}", field.number);
    }
    if k > 0 {
        let _ = write!(out, "[{k}]");
    }
    out
}

fn show(value: &Value) -> String {
    match value {
        Value::Number(n) => n.to_string(),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => format!("{s:?}"),
            Err(_) => format!("{b:02x?}"),
        },
        Value::Message(fields) => format!("a message of {} fields", fields.len()),
        Value::Volatile(name) => format!("<{name}>"),
    }
}
