//! The proxy's own gRPC path for the two calls that carry tensors: the client's `Chat` stream
//! ([`chat`]) and the upstream `ModelInfer` ([`infer`]). tonic's codecs decode each message from
//! a buffer they assemble and encode each into a buffer of their own, which costs a copy of the
//! tensor at each of the four crossings; here the payload stays the HTTP/2 frames it arrived in
//! ([`Rope`]) from the client's socket to Triton's, and from Triton's back to the client's. The
//! rest of the service (ModelInfo, health, reflection) stays tonic's.

pub mod chat;
pub mod infer;

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http_body::Frame;
use tonic::{Code, Status};

use crate::rope::Rope;

/// The gRPC length prefix: not compressed, then the length (big-endian).
pub fn prefixed(msg: Rope) -> Rope {
    let mut head = BytesMut::with_capacity(5);
    head.put_u8(0);
    head.put_u32(msg.len() as u32);
    let mut out = Rope::from(head.freeze());
    for p in msg.parts() {
        out.push(p.clone());
    }
    out
}

/// Cuts a stream of DATA frames into gRPC messages, without joining the frames.
pub struct Deframer {
    buf: Rope,
    max: usize,
}

impl Deframer {
    pub fn new(max: usize) -> Self {
        Deframer {
            buf: Rope::default(),
            max,
        }
    }

    pub fn push(&mut self, data: Bytes) {
        self.buf.push(data);
    }

    /// The next whole message, if it has arrived. A compressed message (the proxy announces no
    /// compression) or one over the size limit is an error that ends the stream.
    pub fn message(&mut self) -> Result<Option<Rope>, Status> {
        let Some([flag, a, b, c, d]) = self.buf.peek::<5>() else {
            return Ok(None);
        };
        if flag != 0 {
            return Err(Status::unimplemented(
                "message compressed: the proxy accepts no grpc-encoding; expected uncompressed messages",
            ));
        }
        let len = u32::from_be_bytes([a, b, c, d]) as usize;
        if len > self.max {
            // The words of tonic's own error, which the service turns into the limit's name.
            return Err(Status::out_of_range(format!(
                "Error, decoded message length too large: found {len} bytes, the limit is: {} bytes",
                self.max
            )));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        self.buf.split_to(5);
        Ok(Some(self.buf.split_to(len)))
    }

    /// The length the next message's header declares, once its 5 bytes are here (checked by
    /// [`Deframer::message`] first).
    pub fn declared(&self) -> Option<usize> {
        let [_, a, b, c, d] = self.buf.peek::<5>()?;
        Some(u32::from_be_bytes([a, b, c, d]) as usize)
    }

    /// Bytes received but not yet a whole message (at the end of the stream: a cut message).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// An HTTP body of buffers already made (a request's).
pub struct Parts {
    parts: VecDeque<Bytes>,
}

impl Parts {
    pub fn new(r: Rope) -> Self {
        Parts {
            parts: r.parts().cloned().collect(),
        }
    }
}

impl http_body::Body for Parts {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.parts.pop_front().map(|p| Ok(Frame::data(p))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.parts.iter().map(|p| p.len() as u64).sum())
    }
}

/// The status a response without `grpc-status` stands for, from its HTTP status (the gRPC
/// spec's table for proxies and servers that are not gRPC).
pub fn http_status(code: http::StatusCode) -> Status {
    let c = match code.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502..=504 => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(c, format!("HTTP status {code} without a gRPC status"))
}

#[cfg(test)]
mod tests;
