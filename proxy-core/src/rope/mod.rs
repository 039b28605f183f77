//! Payload bytes held as the HTTP/2 DATA frames they arrived in, never joined.
//!
//! A 4.9 MB tensor reaches the proxy as several DATA frames, each a `Bytes` slice of the
//! connection's read buffer. Joining them into one buffer (what a gRPC library does before it
//! decodes a message) and again into the next message's buffer (before it encodes one) costs two
//! copies of the tensor per leg. A [`Rope`] keeps the frames as they are: protobuf fields are read
//! across frame boundaries ([`split`]), the large `bytes` fields are taken out as ropes of their
//! own, and a message is written back as a list of buffers ([`Out`]) whose large fields are those
//! same frames. The small fields (names, shapes, the control JSON) are copied; they are a few
//! hundred bytes.

use std::collections::VecDeque;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes in several pieces, shared, not copied.
///
/// Every operation costs the pieces it touches, never the whole rope: a message arriving as a
/// million 1-byte DATA frames is a million pieces, and a cost per byte that walked them all
/// would be quadratic (one client could stall the proxy with one packet).
#[derive(Clone, Default, Debug, PartialEq)]
pub struct Rope {
    parts: VecDeque<Bytes>,
    len: usize,
}

impl From<Bytes> for Rope {
    fn from(b: Bytes) -> Self {
        let mut r = Rope::default();
        r.push(b);
        r
    }
}

/// Counts the pieces visited by this thread's rope operations, so that a unit test can tell a
/// linear scan from a quadratic one without timing it.
#[cfg(test)]
pub(crate) mod visits {
    use std::cell::Cell;
    thread_local!(static VISITS: Cell<usize> = const { Cell::new(0) });
    pub fn add(n: usize) {
        VISITS.with(|v| v.set(v.get() + n));
    }
    pub fn take() -> usize {
        VISITS.with(|v| v.replace(0))
    }
}
#[cfg(not(test))]
mod visits {
    #[inline(always)]
    pub fn add(_: usize) {}
}

impl Rope {
    /// Appends a piece (empty pieces are dropped).
    pub fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.len += b.len();
            self.parts.push_back(b);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces, in order.
    pub fn parts(&self) -> impl ExactSizeIterator<Item = &Bytes> + DoubleEndedIterator {
        self.parts.iter()
    }

    /// The bytes in `range`, sharing this rope's pieces. Costs the pieces before the range's end.
    ///
    /// # Panics
    /// When `range` is not inside the rope.
    pub fn slice(&self, range: Range<usize>) -> Rope {
        assert!(
            range.start <= range.end && range.end <= self.len,
            "rope slice {range:?} out of 0..{}",
            self.len
        );
        let mut out = Rope::default();
        let mut at = 0;
        for p in &self.parts {
            if at >= range.end {
                break;
            }
            visits::add(1);
            let (start, end) = (at, at + p.len());
            at = end;
            if end <= range.start {
                continue;
            }
            out.push(p.slice(range.start.max(start) - start..range.end.min(end) - start));
        }
        out
    }

    /// Removes and returns the first `n` bytes. Costs the pieces taken (and the one cut).
    ///
    /// # Panics
    /// When the rope is shorter than `n`.
    pub fn split_to(&mut self, n: usize) -> Rope {
        assert!(n <= self.len, "rope split at {n} out of 0..{}", self.len);
        let mut head = Rope::default();
        while head.len < n {
            visits::add(1);
            let want = n - head.len;
            let front = self
                .parts
                .front_mut()
                .expect("the length counts the pieces");
            if front.len() <= want {
                let p = self.parts.pop_front().expect("just seen");
                head.push(p);
            } else {
                head.push(front.split_to(want));
            }
        }
        self.len -= n;
        head
    }

    /// The first `N` bytes, copied (for prefixes and keys), or None when the rope is shorter.
    pub fn peek<const N: usize>(&self) -> Option<[u8; N]> {
        if self.len < N {
            return None;
        }
        let mut out = [0u8; N];
        let mut at = 0;
        for p in &self.parts {
            visits::add(1);
            let n = p.len().min(N - at);
            out[at..at + n].copy_from_slice(&p[..n]);
            at += n;
            if at == N {
                break;
            }
        }
        Some(out)
    }

    /// One contiguous buffer: the piece itself when there is one, else a copy.
    pub fn to_bytes(&self) -> Bytes {
        match self.parts.len() {
            0 => Bytes::new(),
            1 => self.parts[0].clone(),
            _ => {
                let mut b = BytesMut::with_capacity(self.len);
                for p in &self.parts {
                    b.put_slice(p);
                }
                b.freeze()
            }
        }
    }
}

/// Why bytes are not the protobuf message they should be.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("not a valid protobuf message: {0}")]
pub struct Malformed(pub &'static str);

/// A forward reader over a rope: it consumes the rope's pieces from the front, so reading a
/// byte costs O(1) and taking `n` bytes costs the pieces they span.
struct Cursor {
    rest: Rope,
}

impl Cursor {
    fn byte(&mut self) -> Result<u8, Malformed> {
        let front = self
            .rest
            .parts
            .front_mut()
            .ok_or(Malformed("truncated varint"))?;
        let b = front[0];
        if front.len() == 1 {
            visits::add(1);
            self.rest.parts.pop_front();
        } else {
            bytes::Buf::advance(front, 1);
        }
        self.rest.len -= 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Malformed("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: u64) -> Result<Rope, Malformed> {
        let n = usize::try_from(n).map_err(|_| Malformed("length too large"))?;
        if n > self.rest.len() {
            return Err(Malformed("field runs past the end of the message"));
        }
        Ok(self.rest.split_to(n))
    }
}

/// A message with its large `bytes` fields taken out: `small` holds every other field (copied,
/// in their order), to be decoded with prost; `large` holds each taken field as
/// `(index into the paths given to split, bytes)`, in the order they came.
#[derive(Debug, Default)]
pub struct Split {
    pub small: BytesMut,
    pub large: Vec<(usize, Rope)>,
}

/// Splits a protobuf message. Each path names a length-delimited field by its field numbers,
/// outer first: `[7]` is a top-level field, `[2, 1]` field 1 of the message in field 2. A
/// message on the way to a path is kept in `small` (with its length adjusted), without the
/// taken field.
pub fn split(msg: Rope, paths: &[&[u32]]) -> Result<Split, Malformed> {
    split_limited(msg, paths, usize::MAX)
}

/// What [`split_limited`] says of a message over its limit.
pub const TOO_MANY_FIELDS: &str = "more fields than the limit";

/// [`split`], refusing a message of more than `max_fields` fields (counted at every level):
/// the work of a scan is linear in the fields, and a message a client sends needs only a few.
pub fn split_limited(msg: Rope, paths: &[&[u32]], max_fields: usize) -> Result<Split, Malformed> {
    let mut out = Split::default();
    let all: Vec<(usize, &[u32])> = paths.iter().copied().enumerate().collect();
    let mut budget = max_fields;
    split_into(msg, &all, &mut out.small, &mut out.large, &mut budget)?;
    Ok(out)
}

/// Splits one message level; `paths` are what is left of each path below this level, with the
/// index of the path it came from; `budget` is how many more fields may be read.
fn split_into(
    msg: Rope,
    paths: &[(usize, &[u32])],
    small: &mut BytesMut,
    large: &mut Vec<(usize, Rope)>,
    budget: &mut usize,
) -> Result<(), Malformed> {
    let mut c = Cursor { rest: msg };
    while !c.rest.is_empty() {
        *budget = budget.checked_sub(1).ok_or(Malformed(TOO_MANY_FIELDS))?;
        let key = c.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| Malformed("field number too large"))?;
        let wire = key & 7;
        if field == 0 {
            return Err(Malformed("field number 0"));
        }
        let body = match wire {
            0 => {
                let v = c.varint()?;
                put_varint(small, key);
                put_varint(small, v);
                continue;
            }
            1 => c.take(8)?,
            5 => c.take(4)?,
            2 => {
                let n = c.varint()?;
                c.take(n)?
            }
            _ => return Err(Malformed("group or unknown wire type")),
        };
        // The paths through this field, with what is left of them below it.
        let below: Vec<(usize, &[u32])> = paths
            .iter()
            .filter(|(_, p)| wire == 2 && p.first() == Some(&field))
            .map(|(i, p)| (*i, &p[1..]))
            .collect();
        if let Some((i, _)) = below.iter().find(|(_, rest)| rest.is_empty()) {
            large.push((*i, body));
        } else if !below.is_empty() {
            let mut inner = BytesMut::new();
            split_into(body, &below, &mut inner, large, budget)?;
            put_varint(small, key);
            put_varint(small, inner.len() as u64);
            small.put_slice(&inner);
        } else {
            put_varint(small, key);
            if wire == 2 {
                put_varint(small, body.len() as u64);
            }
            for p in body.parts() {
                small.put_slice(p);
            }
        }
    }
    Ok(())
}

/// Appends a protobuf varint.
pub fn put_varint(b: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

/// A message being written as a list of buffers: small parts are copied into a running buffer,
/// ropes are appended as their pieces.
#[derive(Default)]
pub struct Out {
    parts: Vec<Bytes>,
    cur: BytesMut,
}

impl Out {
    pub fn small(&mut self) -> &mut BytesMut {
        &mut self.cur
    }

    /// A length-delimited field whose body is `small` followed by `rope`.
    pub fn field(&mut self, field: u32, small: &[u8], rope: &Rope) {
        put_varint(&mut self.cur, (u64::from(field) << 3) | 2);
        put_varint(&mut self.cur, (small.len() + rope.len()) as u64);
        self.cur.put_slice(small);
        self.rope(rope);
    }

    pub fn rope(&mut self, rope: &Rope) {
        if rope.is_empty() {
            return;
        }
        self.flush();
        self.parts.extend(rope.parts().cloned());
    }

    fn flush(&mut self) {
        if !self.cur.is_empty() {
            self.parts.push(self.cur.split().freeze());
        }
    }

    /// Everything written.
    pub fn finish(mut self) -> Rope {
        self.flush();
        let mut r = Rope::default();
        for p in self.parts {
            r.push(p);
        }
        r
    }
}

#[cfg(test)]
mod tests;
