//! Bencoding (BEP 3), the format of `.torrent` files: a tiny writer, and a bounded reader.
//!
//! [`Value::encode`] writes canonical bencode: dictionary keys in byte order (a
//! [`BTreeMap`] keeps them so), integers without leading zeros. [`decode`] reads one value
//! that must fill its input, refuses anything non-canonical, never recurses deeper than
//! [`DEPTH_MAX`] and never panics; what it allocates is bounded by the input's length.
//!
//! [`Slice`] reads the same values in place, with the same checks, allocating nothing: its
//! parts are slices of the input, and [`Slice::raw`] is a value's exact bytes. A `.torrent`
//! made elsewhere is read so (`tree/parse.rs`): its info hash is the SHA-1 of the info
//! dictionary's bytes as given, whatever keys it holds, and a large file list or a
//! BitTorrent v2 `file tree` costs no copy of the tree of values.

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
            Value::Int(int) => encode_int(*int, out),
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

/// Appends the encoding of the integer `int` (written in place: a `format!` per value
/// was a third of the time of encoding a tree's info dictionary of 10,000 files).
pub(crate) fn encode_int(int: i64, out: &mut Vec<u8>) {
    out.push(b'i');
    encode_decimal(int.unsigned_abs(), int < 0, out);
    out.push(b'e');
}

/// Appends the encoding of the byte string `bytes`: its length, a colon, the bytes.
pub(crate) fn encode_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    encode_decimal(bytes.len() as u64, false, out);
    out.push(b':');
    out.extend_from_slice(bytes);
}

/// Appends `value` in decimal, with a minus sign when `negative`.
fn encode_decimal(mut value: u64, negative: bool, out: &mut Vec<u8>) {
    // u64::MAX has 20 digits.
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    if negative {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[start..]);
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

#[derive(Clone, Debug)]
struct Reader<'a> {
    input: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
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
        Ok(self.byte_slice()?.to_vec())
    }

    fn byte_slice(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.number(b':', false)?;
        let len = usize::try_from(len).map_err(|_| self.fail(Problem::BadInteger))?;
        let end = self
            .at
            .checked_add(len)
            .filter(|end| *end <= self.input.len())
            .ok_or(self.fail(Problem::Truncated))?;
        let bytes = &self.input[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    /// Checks one value as [`Reader::value`] reads it, and steps over it, allocating nothing.
    fn skip(&mut self, depth: usize) -> Result<(), DecodeError> {
        if depth >= DEPTH_MAX {
            return Err(self.fail(Problem::TooDeep));
        }
        match self.peek()? {
            b'i' => {
                self.at += 1;
                self.number(b'e', true)?;
            }
            b'0'..=b'9' => {
                self.byte_slice()?;
            }
            b'l' => {
                self.at += 1;
                while self.peek()? != b'e' {
                    self.skip(depth + 1)?;
                }
                self.at += 1;
            }
            b'd' => {
                self.at += 1;
                let mut last_key: Option<&[u8]> = None;
                while self.peek()? != b'e' {
                    if !self.peek()?.is_ascii_digit() {
                        return Err(self.fail(Problem::KeyOrder));
                    }
                    let key = self.byte_slice()?;
                    if last_key.is_some_and(|last| last >= key) {
                        return Err(self.fail(Problem::KeyOrder));
                    }
                    self.skip(depth + 1)?;
                    last_key = Some(key);
                }
                self.at += 1;
            }
            _ => return Err(self.fail(Problem::Unexpected)),
        }
        Ok(())
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

/// One bencoded value, read in place: checked whole when made (canonical, at most
/// [`DEPTH_MAX`] deep, as [`decode`] checks), so that reading its parts cannot fail but
/// only find the wrong kind (`None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice<'a> {
    raw: &'a [u8],
}

impl<'a> Slice<'a> {
    /// Checks that `input` is exactly one value, as [`decode`] would accept it.
    pub fn parse(input: &'a [u8]) -> Result<Slice<'a>, DecodeError> {
        let mut reader = Reader { input, at: 0 };
        reader.skip(0)?;
        if reader.at != input.len() {
            return Err(reader.fail(Problem::TrailingBytes));
        }
        Ok(Slice { raw: input })
    }

    /// The value's bytes exactly as they were given.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    pub fn as_int(&self) -> Option<i64> {
        if self.raw.first() != Some(&b'i') {
            return None;
        }
        Reader {
            input: self.raw,
            at: 1,
        }
        .number(b'e', true)
        .ok()
    }

    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        if !self.raw.first()?.is_ascii_digit() {
            return None;
        }
        Reader {
            input: self.raw,
            at: 0,
        }
        .byte_slice()
        .ok()
    }

    /// The items of a list, in order; `None` when this is not a list.
    pub fn items(&self) -> Option<Items<'a>> {
        (self.raw.first() == Some(&b'l')).then_some(Items {
            reader: Reader {
                input: self.raw,
                at: 1,
            },
        })
    }

    /// The entries of a dictionary, in key order; `None` when this is not a dictionary.
    pub fn entries(&self) -> Option<Entries<'a>> {
        (self.raw.first() == Some(&b'd')).then_some(Entries {
            reader: Reader {
                input: self.raw,
                at: 1,
            },
        })
    }

    /// The value under `key`, when this is a dictionary that has it.
    pub fn get(&self, key: &str) -> Option<Slice<'a>> {
        self.entries()?
            .find(|(name, _)| *name == key.as_bytes())
            .map(|(_, value)| value)
    }
}

/// The next value from a reader over a checked [`Slice`]: `None` at the list's or
/// dictionary's end (or, which checking made impossible, at anything malformed).
fn next_value<'a>(reader: &mut Reader<'a>) -> Option<Slice<'a>> {
    if reader.peek().ok()? == b'e' {
        return None;
    }
    let start = reader.at;
    // Depth was checked when the whole value was; 0 here only restarts the count.
    reader.skip(0).ok()?;
    Some(Slice {
        raw: &reader.input[start..reader.at],
    })
}

/// The items of a list [`Slice`].
#[derive(Clone, Debug)]
pub struct Items<'a> {
    reader: Reader<'a>,
}

impl<'a> Iterator for Items<'a> {
    type Item = Slice<'a>;

    fn next(&mut self) -> Option<Slice<'a>> {
        next_value(&mut self.reader)
    }
}

/// The `(key, value)` entries of a dictionary [`Slice`].
#[derive(Clone, Debug)]
pub struct Entries<'a> {
    reader: Reader<'a>,
}

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a [u8], Slice<'a>);

    fn next(&mut self) -> Option<(&'a [u8], Slice<'a>)> {
        if self.reader.peek().ok()? == b'e' {
            return None;
        }
        let key = self.reader.byte_slice().ok()?;
        Some((key, next_value(&mut self.reader)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_integers_and_lengths_in_decimal() {
        for (int, text) in [
            (0, "i0e"),
            (7, "i7e"),
            (-1, "i-1e"),
            (1 << 40, "i1099511627776e"),
            (i64::MAX, "i9223372036854775807e"),
            (i64::MIN, "i-9223372036854775808e"),
        ] {
            assert_eq!(Value::Int(int).to_bytes(), text.as_bytes());
            assert_eq!(decode(text.as_bytes()), Ok(Value::Int(int)));
        }
        assert_eq!(Value::bytes("").to_bytes(), b"0:");
        let mut long = b"1234:".to_vec();
        long.extend([b'a'; 1234]);
        assert_eq!(Value::bytes([b'a'; 1234]).to_bytes(), long);
    }

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

    #[test]
    fn slices_read_in_place_what_decode_reads() {
        let input = b"d4:infod5:filesld6:lengthi3e4:pathl1:a1:beee4:name1:xe3:keyi-7ee";
        let value = decode(input).unwrap();
        let slice = Slice::parse(input).unwrap();
        assert_eq!(slice.raw(), &input[..]);
        let info = slice.get("info").unwrap();
        // The raw span is the info value's bytes exactly, re-encoded or not.
        assert_eq!(info.raw(), value.get("info").unwrap().to_bytes());
        assert_eq!(
            info.raw(),
            b"d5:filesld6:lengthi3e4:pathl1:a1:beee4:name1:xe"
        );
        assert_eq!(slice.get("key").and_then(|k| k.as_int()), Some(-7));
        assert_eq!(info.get("name").and_then(|n| n.as_bytes()), Some(&b"x"[..]));
        let files: Vec<_> = info.get("files").unwrap().items().unwrap().collect();
        assert_eq!(files.len(), 1);
        let path: Vec<_> = files[0]
            .get("path")
            .unwrap()
            .items()
            .unwrap()
            .filter_map(|part| part.as_bytes())
            .collect();
        assert_eq!(path, [&b"a"[..], b"b"]);
        let keys: Vec<_> = info.entries().unwrap().map(|(key, _)| key).collect();
        assert_eq!(keys, [&b"files"[..], b"name"]);
        // The wrong kind is None, not a panic.
        assert_eq!(info.as_int(), None);
        assert_eq!(info.as_bytes(), None);
        assert!(info.items().is_none());
        assert!(slice.get("key").unwrap().entries().is_none());
        assert!(
            Slice::parse(b"le")
                .unwrap()
                .items()
                .unwrap()
                .next()
                .is_none()
        );
    }

    #[test]
    fn slices_refuse_what_decode_refuses() {
        let deep = "l".repeat(DEPTH_MAX + 1) + &"e".repeat(DEPTH_MAX + 1);
        let inputs: [&[u8]; 12] = [
            b"",
            b"i012e",
            b"i-0e",
            b"5:abc",
            b"d1:bi1e1:ai2ee",
            b"d1:ai1e1:ai2ee",
            b"di1ei2ee",
            b"i1ei2e",
            b"x",
            deep.as_bytes(),
            b"d4:infod6:lengthi5e4:name1:ae3:key5:valuee",
            b"l4:spami42ee",
        ];
        for input in inputs {
            assert_eq!(
                Slice::parse(input).map(|_| ()),
                decode(input).map(|_| ()),
                "{}",
                input.escape_ascii()
            );
        }
    }
}
