//! Bencoding (BEP 3), the format of `.torrent` files: a tiny writer, and a bounded reader.
//!
//! [`Value::encode`] writes canonical bencode: dictionary keys in byte order (a
//! [`BTreeMap`] keeps them so), integers without leading zeros. [`decode`] reads one value
//! that must fill its input, refuses anything non-canonical, never recurses deeper than
//! [`DEPTH_MAX`] and never panics; what it allocates is bounded by the input's length.

use std::collections::BTreeMap;
use std::fmt;

/// Deepest nesting [`decode`] accepts (a `.torrent` needs 3 or 4).
pub const DEPTH_MAX: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Dict(BTreeMap<Vec<u8>, Value>),
}

impl Value {
    pub fn bytes(bytes: impl Into<Vec<u8>>) -> Value {
        Value::Bytes(bytes.into())
    }

    /// A dictionary from `(key, value)` pairs; a repeated key keeps the last value.
    pub fn dict<'k>(entries: impl IntoIterator<Item = (&'k str, Value)>) -> Value {
        Value::Dict(
            entries
                .into_iter()
                .map(|(key, value)| (key.as_bytes().to_vec(), value))
                .collect(),
        )
    }

    /// The value under `key`, when this is a dictionary that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(entries) => entries.get(key.as_bytes()),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(bytes) => Some(bytes),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(int) => Some(*int),
            _ => None,
        }
    }

    /// Appends the canonical encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(int) => out.extend_from_slice(format!("i{int}e").as_bytes()),
            Value::Bytes(bytes) => encode_bytes(bytes, out),
            Value::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode(out);
                }
                out.push(b'e');
            }
            Value::Dict(entries) => {
                out.push(b'd');
                for (key, value) in entries {
                    encode_bytes(key, out);
                    value.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

fn encode_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{}:", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
}

/// Where and why [`decode`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub problem: Problem,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The input ended inside a value.
    Truncated,
    /// A byte that starts no value, or a malformed integer or length.
    Unexpected,
    /// An integer with a leading zero, `-0`, or out of `i64`.
    BadInteger,
    /// Dictionary keys not in strictly increasing byte order (or not byte strings).
    KeyOrder,
    TooDeep,
    /// Bytes after the value.
    TrailingBytes,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bencode: {:?} at byte {}", self.problem, self.offset)
    }
}

impl std::error::Error for DecodeError {}

/// Reads one value that fills all of `input`.
pub fn decode(input: &[u8]) -> Result<Value, DecodeError> {
    let mut reader = Reader { input, at: 0 };
    let value = reader.value(0)?;
    if reader.at != input.len() {
        return Err(reader.fail(Problem::TrailingBytes));
    }
    Ok(value)
}

struct Reader<'a> {
    input: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn fail(&self, problem: Problem) -> DecodeError {
        DecodeError {
            offset: self.at,
            problem,
        }
    }

    fn peek(&self) -> Result<u8, DecodeError> {
        self.input
            .get(self.at)
            .copied()
            .ok_or(self.fail(Problem::Truncated))
    }

    /// Digits (and a leading `-` when `signed`) up to `end`, consumed with `end`.
    fn number(&mut self, end: u8, signed: bool) -> Result<i64, DecodeError> {
        let start = self.at;
        let rest = &self.input[start..];
        let len = rest
            .iter()
            .position(|&byte| byte == end)
            .ok_or(self.fail(Problem::Truncated))?;
        let text = std::str::from_utf8(&rest[..len]).map_err(|_| self.fail(Problem::Unexpected))?;
        let digits = if signed {
            text.strip_prefix('-').unwrap_or(text)
        } else {
            text
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.fail(Problem::Unexpected));
        }
        if (digits.len() > 1 && digits.starts_with('0')) || text == "-0" {
            return Err(self.fail(Problem::BadInteger));
        }
        let value = text
            .parse::<i64>()
            .map_err(|_| self.fail(Problem::BadInteger))?;
        self.at = start + len + 1;
        Ok(value)
    }

    fn byte_string(&mut self) -> Result<Vec<u8>, DecodeError> {
        let len = self.number(b':', false)?;
        let len = usize::try_from(len).map_err(|_| self.fail(Problem::BadInteger))?;
        let end = self
            .at
            .checked_add(len)
            .filter(|end| *end <= self.input.len())
            .ok_or(self.fail(Problem::Truncated))?;
        let bytes = self.input[self.at..end].to_vec();
        self.at = end;
        Ok(bytes)
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth >= DEPTH_MAX {
            return Err(self.fail(Problem::TooDeep));
        }
        match self.peek()? {
            b'i' => {
                self.at += 1;
                Ok(Value::Int(self.number(b'e', true)?))
            }
            b'0'..=b'9' => Ok(Value::Bytes(self.byte_string()?)),
            b'l' => {
                self.at += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.at += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                self.at += 1;
                let mut entries = BTreeMap::new();
                let mut last_key: Option<Vec<u8>> = None;
                while self.peek()? != b'e' {
                    if !self.peek()?.is_ascii_digit() {
                        return Err(self.fail(Problem::KeyOrder));
                    }
                    let key = self.byte_string()?;
                    if last_key.as_ref().is_some_and(|last| *last >= key) {
                        return Err(self.fail(Problem::KeyOrder));
                    }
                    let value = self.value(depth + 1)?;
                    last_key = Some(key.clone());
                    entries.insert(key, value);
                }
                self.at += 1;
                Ok(Value::Dict(entries))
            }
            _ => Err(self.fail(Problem::Unexpected)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_canonically() {
        let value = Value::dict([
            ("name", Value::bytes("a.txt")),
            ("length", Value::Int(12)),
            ("list", Value::List(vec![Value::Int(-3), Value::bytes("")])),
        ]);
        let bytes = value.to_bytes();
        assert_eq!(bytes, b"d6:lengthi12e4:listli-3e0:e4:name5:a.txte");
        assert_eq!(decode(&bytes), Ok(value));
    }

    #[test]
    fn refuses_what_is_not_canonical_or_not_bounded() {
        let problem = |input: &[u8]| decode(input).unwrap_err().problem;
        assert_eq!(problem(b""), Problem::Truncated);
        assert_eq!(problem(b"i12"), Problem::Truncated);
        assert_eq!(problem(b"i012e"), Problem::BadInteger);
        assert_eq!(problem(b"i-0e"), Problem::BadInteger);
        assert_eq!(problem(b"i99999999999999999999e"), Problem::BadInteger);
        assert_eq!(problem(b"ie"), Problem::Unexpected);
        assert_eq!(problem(b"5:abc"), Problem::Truncated);
        assert_eq!(problem(b"99999999999999999999:a"), Problem::BadInteger);
        assert_eq!(problem(b"d1:bi1e1:ai2ee"), Problem::KeyOrder);
        assert_eq!(problem(b"d1:ai1e1:ai2ee"), Problem::KeyOrder);
        assert_eq!(problem(b"di1ei2ee"), Problem::KeyOrder);
        assert_eq!(problem(b"i1ei2e"), Problem::TrailingBytes);
        assert_eq!(problem(b"x"), Problem::Unexpected);
        let deep = "l".repeat(DEPTH_MAX + 1) + &"e".repeat(DEPTH_MAX + 1);
        assert_eq!(problem(deep.as_bytes()), Problem::TooDeep);
        // Every prefix of a valid value is refused without a panic.
        let valid = b"d4:infod6:lengthi5e4:name1:ae3:key5:valuee";
        assert!(decode(valid).is_ok());
        for len in 0..valid.len() {
            assert!(decode(&valid[..len]).is_err());
        }
    }
}
