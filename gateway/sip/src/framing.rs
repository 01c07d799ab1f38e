//! Framing SIP on byte streams (TCP, TLS): RFC 3261 §18.3, with RFC 5626 §4.4.1 CRLF keepalives.
//!
//! A [`StreamFramer`] is fed bytes as they arrive and yields whole messages: the header block up to the
//! empty line, then exactly `Content-Length` bytes of body (mandatory on streams). Between messages, a
//! double CRLF is a keepalive ping (answer with a single CRLF) and a single CRLF a pong. The result does
//! not depend on how the stream was cut into reads.
//!
//! After an error the stream cannot be resynchronised: the caller closes the connection (after a 400 or
//! 413 where a response can still be formed from the message head).
//!
//! WebSocket (RFC 7118) needs no framer: each WebSocket message carries exactly one SIP message.

use crate::message::Message;

/// A unit read off the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One complete SIP message (head and body).
    Message(Vec<u8>),
    /// `CRLF CRLF`: the peer asks for a keepalive pong (send `CRLF`).
    Ping,
    /// A lone `CRLF`: a pong to our ping.
    Pong,
}

/// Why the stream is unusable from here on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramingError {
    /// A message (or its head, while still incomplete) exceeds the limit.
    TooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// A message on a stream has no Content-Length (§18.3 makes it mandatory).
    MissingContentLength,
    /// Content-Length is not a number.
    BadContentLength,
    /// The head is not a SIP message at all.
    Garbage,
}

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge { limit } => write!(f, "message larger than {limit} bytes"),
            Self::MissingContentLength => f.write_str("message without Content-Length on a stream"),
            Self::BadContentLength => f.write_str("invalid Content-Length"),
            Self::Garbage => f.write_str("bytes that are not a SIP message"),
        }
    }
}

impl std::error::Error for FramingError {}

/// Reassembles SIP messages from a byte stream.
#[derive(Debug)]
pub struct StreamFramer {
    buf: Vec<u8>,
    limit: usize,
    /// Length of the head (including its empty line) and of the body of the message being read.
    pending: Option<(usize, usize)>,
    failed: Option<FramingError>,
}

impl StreamFramer {
    /// A framer refusing messages larger than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            limit,
            pending: None,
            failed: None,
        }
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.next_inner();
        if let Err(e) = &result {
            self.failed = Some(e.clone());
            self.buf = Vec::new();
        }
        result
    }

    fn next_inner(&mut self) -> Result<Option<Frame>, FramingError> {
        if self.pending.is_none() {
            // Keepalives between messages (RFC 5626 §4.4.1).
            if self.buf.starts_with(b"\r\n\r\n") {
                self.buf.drain(..4);
                return Ok(Some(Frame::Ping));
            }
            if self.buf.len() < 4 && !self.buf.is_empty() && b"\r\n\r\n".starts_with(&self.buf) {
                // Could still become a ping: decide when the next bytes arrive, so that the frames do
                // not depend on how the stream was cut into reads. (A pong is only liveness news.)
                return Ok(None);
            }
            if self.buf.starts_with(b"\r\n") {
                self.buf.drain(..2);
                return Ok(Some(Frame::Pong));
            }
            let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                if self.buf.len() > self.limit {
                    return Err(FramingError::TooLarge { limit: self.limit });
                }
                return Ok(None);
            };
            let head_len = end + 4;
            let head = self.buf.get(..head_len).unwrap_or_default();
            let message = Message::parse(head).map_err(|_| FramingError::Garbage)?;
            let body_len = match message.content_length() {
                Ok(Some(len)) => len,
                Ok(None) => return Err(FramingError::MissingContentLength),
                Err(_) => return Err(FramingError::BadContentLength),
            };
            if head_len.saturating_add(body_len) > self.limit {
                return Err(FramingError::TooLarge { limit: self.limit });
            }
            self.pending = Some((head_len, body_len));
        }
        let Some((head_len, body_len)) = self.pending else {
            return Ok(None);
        };
        let total = head_len + body_len;
        if self.buf.len() < total {
            return Ok(None);
        }
        self.pending = None;
        let message: Vec<u8> = self.buf.drain(..total).collect();
        Ok(Some(Frame::Message(message)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nl: 5\r\nCall-ID: 1\r\n\r\nhello";
    const B: &[u8] = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";

    fn frames(chunks: &[&[u8]]) -> Vec<Result<Frame, FramingError>> {
        let mut f = StreamFramer::new(1024);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c);
            loop {
                match f.next_frame() {
                    Ok(Some(frame)) => out.push(Ok(frame)),
                    Ok(None) => break,
                    Err(e) => {
                        out.push(Err(e));
                        return out;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn messages_and_keepalives_in_one_read() {
        let stream = [b"\r\n\r\n".as_ref(), A, b"\r\n", B].concat();
        assert_eq!(
            frames(&[&stream]),
            [
                Ok(Frame::Ping),
                Ok(Frame::Message(A.to_vec())),
                Ok(Frame::Pong),
                Ok(Frame::Message(B.to_vec()))
            ]
        );
    }

    #[test]
    fn any_cut_of_the_stream_gives_the_same_frames() {
        let stream = [A, b"\r\n\r\n".as_ref(), B, A].concat();
        let whole = frames(&[&stream]);
        for cut in 0..=stream.len() {
            let (x, y) = stream.split_at(cut);
            assert_eq!(frames(&[x, y]), whole, "cut at {cut}");
        }
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(frames(&bytewise), whole);
    }

    #[test]
    fn errors_poison_the_stream() {
        assert_eq!(
            frames(&[b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: 1\r\n\r\n"]),
            [Err(FramingError::MissingContentLength)]
        );
        assert_eq!(
            frames(&[b"OPTIONS sip:a@b SIP/2.0\r\nl: x\r\n\r\n"]),
            [Err(FramingError::BadContentLength)]
        );
        assert_eq!(
            frames(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]),
            [Err(FramingError::Garbage)]
        );
        assert_eq!(
            frames(&[b"OPTIONS sip:a@b SIP/2.0\r\nl: 5000\r\n\r\n"]),
            [Err(FramingError::TooLarge { limit: 1024 })]
        );
        // A head that never ends is refused once it exceeds the limit, not buffered forever.
        let endless = vec![b'a'; 1025];
        assert_eq!(frames(&[&endless]), [Err(FramingError::TooLarge { limit: 1024 })]);
        let mut f = StreamFramer::new(1024);
        f.push(b"junk\r\n\r\n");
        assert!(f.next_frame().is_err());
        f.push(B);
        assert_eq!(f.next_frame(), Err(FramingError::Garbage), "stays failed");
        assert_eq!(f.buffered(), 0);
    }
}
