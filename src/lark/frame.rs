//! The long connection's protobuf `Frame` (package `pbbp2`, proto2), as
//! hand-written prost structs: no `protoc`, and the proto2 `required`
//! fields are always encoded (the official clients reject frames without
//! them).
//!
//! Headers and the payload are `Bytes` (the wire format of a proto
//! `string` and `bytes` is the same): decoded from a buffer they are
//! slices of it, not copies. A header that is not UTF-8 reads as absent.
//! These structs build frames (pings, the fakes' frames) and are the
//! reference reading of one; the client reads what it receives in place
//! ([`super::received`]), and both write acks through one encoder.

use prost::Message;
use prost::bytes::Bytes;

/// One `key`/`value` header.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Header {
    #[prost(bytes = "bytes", required, tag = "1")]
    pub key: Bytes,
    #[prost(bytes = "bytes", required, tag = "2")]
    pub value: Bytes,
}

impl Header {
    pub fn new(key: &str, value: &str) -> Header {
        Header {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::copy_from_slice(value.as_bytes()),
        }
    }
}

/// Every WebSocket binary message carries exactly one `Frame`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Frame {
    #[prost(uint64, required, tag = "1")]
    pub seq_id: u64,
    #[prost(uint64, required, tag = "2")]
    pub log_id: u64,
    #[prost(int32, required, tag = "3")]
    pub service: i32,
    /// `0` control, `1` data.
    #[prost(int32, required, tag = "4")]
    pub method: i32,
    #[prost(message, repeated, tag = "5")]
    pub headers: Vec<Header>,
    #[prost(string, optional, tag = "6")]
    pub payload_encoding: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub payload_type: Option<String>,
    #[prost(bytes = "bytes", optional, tag = "8")]
    pub payload: Option<Bytes>,
    #[prost(string, optional, tag = "9")]
    pub log_id_new: Option<String>,
}

pub const METHOD_CONTROL: i32 = 0;
pub const METHOD_DATA: i32 = 1;

impl Frame {
    /// The first header with this key (`None` if its value is not UTF-8).
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.key == key.as_bytes())
            .and_then(|h| std::str::from_utf8(&h.value).ok())
    }

    /// The client's ping: control frame, `type=ping`, the service id from
    /// the connection URL, SeqID and LogID explicitly 0.
    pub fn ping(service: i32) -> Frame {
        Frame::control(service, "ping")
    }

    /// A control frame of this `type` (`ping`, `pong`) and nothing else:
    /// SeqID and LogID 0, no payload.
    pub fn control(service: i32, kind: &str) -> Frame {
        Frame {
            seq_id: 0,
            log_id: 0,
            service,
            method: METHOD_CONTROL,
            headers: vec![Header::new("type", kind)],
            payload_encoding: None,
            payload_type: None,
            payload: None,
            log_id_new: None,
        }
    }

    /// A data frame carrying (a fragment of) an event, as the platform sends
    /// it: `type=event`, the message id, the fragment count `sum` and index
    /// `seq` (text, as on the wire, so tests can send malformed ones), a
    /// trace id; SeqID and LogID 0.
    pub fn event_fragment(
        service: i32,
        message_id: &str,
        sum: &str,
        seq: &str,
        trace_id: &str,
        payload: Vec<u8>,
    ) -> Frame {
        let h = Header::new;
        Frame {
            seq_id: 0,
            log_id: 0,
            service,
            method: METHOD_DATA,
            headers: vec![
                h("type", "event"),
                h("message_id", message_id),
                h("sum", sum),
                h("seq", seq),
                h("trace_id", trace_id),
            ],
            payload_encoding: None,
            payload_type: None,
            payload: Some(payload.into()),
            log_id_new: None,
        }
    }

    /// The acknowledgement of a data message: the received frame with every
    /// field and header kept, `biz_rt` appended and the payload replaced by
    /// `{"code":N}`.
    pub fn ack(mut self, code: u16, biz_rt_ms: u128) -> Frame {
        self.headers.push(Header {
            key: Bytes::from_static(b"biz_rt"),
            value: biz_rt_ms.to_string().into(),
        });
        self.payload = Some(match code {
            200 => Bytes::from_static(b"{\"code\":200}"),
            500 => Bytes::from_static(b"{\"code\":500}"),
            _ => format!("{{\"code\":{code}}}").into(),
        });
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    /// `self.clone().ack(code, biz_rt_ms).to_bytes()`, written straight
    /// into one buffer of the exact size.
    pub fn ack_bytes(&self, code: u16, biz_rt_ms: u128) -> Vec<u8> {
        write_ack(
            &AckOf {
                seq_id: self.seq_id,
                log_id: self.log_id,
                service: self.service,
                method: self.method,
                payload_encoding: self.payload_encoding.as_deref().map(str::as_bytes),
                payload_type: self.payload_type.as_deref().map(str::as_bytes),
                log_id_new: self.log_id_new.as_deref().map(str::as_bytes),
            },
            self.headers.iter().map(|h| (&h.key[..], &h.value[..])),
            code,
            biz_rt_ms,
        )
    }

    /// Decode a frame, refusing one that lacks a required field (prost
    /// would silently default it; the official clients reject it).
    pub fn from_bytes(b: &[u8]) -> Result<Frame, FrameError> {
        Frame::from_shared(Bytes::copy_from_slice(b))
    }

    /// [`Frame::from_bytes`] of a received buffer: headers and payload
    /// are slices of it.
    pub fn from_shared(b: Bytes) -> Result<Frame, FrameError> {
        let missing = missing_required(&b)?;
        if let Some(name) = missing {
            return Err(FrameError::MissingRequired(name));
        }
        Frame::decode(b).map_err(|e| FrameError::Decode(e.to_string()))
    }
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not a protobuf frame: {0}")]
    Decode(String),
    #[error("frame lacks required field `{0}`")]
    MissingRequired(&'static str),
}

/// The fields of a frame its ack keeps (besides its headers).
pub(crate) struct AckOf<'a> {
    pub(crate) seq_id: u64,
    pub(crate) log_id: u64,
    pub(crate) service: i32,
    pub(crate) method: i32,
    pub(crate) payload_encoding: Option<&'a [u8]>,
    pub(crate) payload_type: Option<&'a [u8]>,
    pub(crate) log_id_new: Option<&'a [u8]>,
}

/// The ack of a data message, encoded as [`Frame::ack`] then
/// [`Frame::to_bytes`] would (every field and header kept, `biz_rt`
/// appended, the payload replaced by `{"code":N}`), but written straight
/// into one buffer of the exact size: no copy of the frame, its header
/// list or the `biz_rt` text on the way (an ack is written for every
/// message).
pub(crate) fn write_ack<'h>(
    f: &AckOf<'_>,
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])> + Clone,
    code: u16,
    biz_rt_ms: u128,
) -> Vec<u8> {
    use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
    let mut rt = [0u8; 40];
    let rt = decimal(biz_rt_ms, &mut rt);
    let owned;
    let payload: &[u8] = match code {
        200 => b"{\"code\":200}",
        500 => b"{\"code\":500}",
        _ => {
            owned = format!("{{\"code\":{code}}}");
            owned.as_bytes()
        }
    };
    let inner = |k: &[u8], v: &[u8]| {
        2 + encoded_len_varint(k.len() as u64)
            + k.len()
            + encoded_len_varint(v.len() as u64)
            + v.len()
    };
    let field = |b: &[u8]| 1 + encoded_len_varint(b.len() as u64) + b.len();
    let header_len = |k: &[u8], v: &[u8]| {
        let n = inner(k, v);
        1 + encoded_len_varint(n as u64) + n
    };
    let strings = [f.payload_encoding, f.payload_type, f.log_id_new];
    let len = 4
        + encoded_len_varint(f.seq_id)
        + encoded_len_varint(f.log_id)
        + encoded_len_varint(f.service as u64)
        + encoded_len_varint(f.method as u64)
        + headers
            .clone()
            .map(|(k, v)| header_len(k, v))
            .sum::<usize>()
        + header_len(b"biz_rt", rt)
        + strings.iter().flatten().map(|s| field(s)).sum::<usize>()
        + field(payload);
    let mut out = Vec::with_capacity(len);
    let bytes = |tag: u32, b: &[u8], out: &mut Vec<u8>| {
        encode_key(tag, WireType::LengthDelimited, out);
        encode_varint(b.len() as u64, out);
        out.extend_from_slice(b);
    };
    let header = |k: &[u8], v: &[u8], out: &mut Vec<u8>| {
        encode_key(5, WireType::LengthDelimited, out);
        encode_varint(inner(k, v) as u64, out);
        bytes(1, k, out);
        bytes(2, v, out);
    };
    for (tag, v) in [
        (1, f.seq_id),
        (2, f.log_id),
        // int32: a negative value is sign-extended, as prost writes it.
        (3, f.service as u64),
        (4, f.method as u64),
    ] {
        encode_key(tag, WireType::Varint, &mut out);
        encode_varint(v, &mut out);
    }
    for (k, v) in headers {
        header(k, v, &mut out);
    }
    header(b"biz_rt", rt, &mut out);
    for (tag, o) in [(6, f.payload_encoding), (7, f.payload_type)] {
        if let Some(s) = o {
            bytes(tag, s, &mut out);
        }
    }
    bytes(8, payload, &mut out);
    if let Some(s) = f.log_id_new {
        bytes(9, s, &mut out);
    }
    debug_assert_eq!(out.len(), len);
    out
}

/// `n` in decimal, in `buf`.
fn decimal(mut n: u128, buf: &mut [u8; 40]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// A base-128 varint at `*i`, as protobuf writes it.
pub(crate) fn varint(b: &[u8], i: &mut usize) -> Result<u64, FrameError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b
            .get(*i)
            .ok_or_else(|| FrameError::Decode("truncated varint".into()))?;
        *i += 1;
        // The tenth byte may carry only the top bit.
        if shift == 63 && byte > 1 {
            return Err(FrameError::Decode("varint overflows 64 bits".into()));
        }
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(FrameError::Decode("varint too long".into()))
}

/// Walk the top-level fields and report the first of tags 1–4 that is absent.
fn missing_required(b: &[u8]) -> Result<Option<&'static str>, FrameError> {
    let mut seen = [false; 5];
    let mut i = 0;
    while i < b.len() {
        let key = varint(b, &mut i)?;
        let (tag, wire) = (key >> 3, key & 7);
        let skip = match wire {
            0 => {
                varint(b, &mut i)?;
                0
            }
            1 => 8,
            2 => usize::try_from(varint(b, &mut i)?).unwrap_or(usize::MAX),
            5 => 4,
            _ => return Err(FrameError::Decode(format!("unsupported wire type {wire}"))),
        };
        i = i
            .checked_add(skip)
            .filter(|end| *end <= b.len())
            .ok_or_else(|| FrameError::Decode("truncated field".into()))?;
        if let Some(s) = usize::try_from(tag).ok().and_then(|t| seen.get_mut(t)) {
            *s = true;
        }
    }
    Ok(["SeqID", "LogID", "service", "method"]
        .into_iter()
        .zip(&seen[1..])
        .find(|(_, s)| !**s)
        .map(|(n, _)| n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_bytes_match_the_official_clients() {
        // spec §3: Python/Node ping for service_id=77
        let want = [
            0x08, 0x00, 0x10, 0x00, 0x18, 0x4d, 0x20, 0x00, 0x2a, 0x0c, 0x0a, 0x04, 0x74, 0x79,
            0x70, 0x65, 0x12, 0x04, 0x70, 0x69, 0x6e, 0x67,
        ];
        assert_eq!(Frame::ping(77).to_bytes(), want);
    }

    #[test]
    fn go_style_empty_optionals_decode() {
        let mut b = Frame::ping(77).to_bytes();
        b.extend_from_slice(&[0x32, 0x00, 0x3a, 0x00, 0x4a, 0x00]);
        let f = Frame::from_bytes(&b).unwrap();
        assert_eq!(f.payload_encoding.as_deref(), Some(""));
        assert_eq!(f.header("type"), Some("ping"));
    }

    #[test]
    fn missing_required_fields_are_rejected() {
        // only `service` and `method`: no SeqID/LogID
        assert_eq!(
            Frame::from_bytes(&[0x18, 0x01, 0x20, 0x01]),
            Err(FrameError::MissingRequired("SeqID"))
        );
        assert_eq!(
            Frame::from_bytes(&[0x08, 0x00, 0x10, 0x00, 0x18, 0x01]),
            Err(FrameError::MissingRequired("method"))
        );
        assert!(matches!(
            Frame::from_bytes(&[0x08]),
            Err(FrameError::Decode(_))
        ));
        assert!(matches!(
            Frame::from_bytes(&[0x08, 0x00, 0x42, 0x7f, 0x01]),
            Err(FrameError::Decode(_))
        ));
        assert!(Frame::from_bytes(b"\xff\xff\xff garbage").is_err());
    }

    #[test]
    fn an_ack_written_straight_is_the_ack_frame_encoded() {
        let mut frames = vec![
            Frame::ping(3),
            Frame::event_fragment(7, "m-1", "1", "0", "t-1", b"{}".to_vec()),
        ];
        let mut f = Frame::ping(-2);
        f.seq_id = u64::MAX;
        f.log_id = 300;
        f.method = -1;
        f.payload_encoding = Some("gzip".into());
        f.payload_type = Some(String::new());
        f.log_id_new = Some("log-\u{e9}".into());
        f.headers.push(Header::new("k", &"v".repeat(200)));
        frames.push(f);
        for f in &frames {
            for (code, rt) in [(200, 0), (500, 17), (503, u128::MAX)] {
                assert_eq!(
                    f.ack_bytes(code, rt),
                    f.clone().ack(code, rt).to_bytes(),
                    "{f:?} {code} {rt}"
                );
            }
        }
    }

    #[test]
    fn ack_keeps_the_frame_and_appends_biz_rt() {
        let mut f = Frame::ping(3);
        f.method = METHOD_DATA;
        f.seq_id = 9;
        f.headers.push(Header {
            key: "message_id".into(),
            value: "m1".into(),
        });
        f.payload = Some(b"{}".to_vec().into());
        let a = f.clone().ack(200, 4);
        assert_eq!(a.seq_id, 9);
        assert_eq!(a.header("message_id"), Some("m1"));
        assert_eq!(a.headers.last().unwrap().key, "biz_rt");
        assert_eq!(a.header("biz_rt"), Some("4"));
        assert_eq!(a.payload.as_deref(), Some(&b"{\"code\":200}"[..]));
        assert_eq!(
            f.ack(503, 0).payload.as_deref(),
            Some(&b"{\"code\":503}"[..])
        );
    }

    /// A received frame's headers and payload are slices of its buffer,
    /// not copies; a header that is not UTF-8 reads as absent, the rest of
    /// the frame as sent.
    #[test]
    fn a_received_frame_borrows_its_buffer() {
        let mut f = Frame::event_fragment(3, "m1", "1", "0", "t1", b"{\"a\":1}".to_vec());
        f.headers.push(Header {
            key: Bytes::from_static(b"bad"),
            value: Bytes::from_static(b"\xff\xfe"),
        });
        let wire = Bytes::from(f.to_bytes());
        let range = wire.as_ptr_range();
        let got = Frame::from_shared(wire.clone()).unwrap();
        let payload = got.payload.as_deref().unwrap();
        assert_eq!(payload, b"{\"a\":1}");
        assert!(range.contains(&payload.as_ptr()), "payload copied");
        assert!(
            got.headers
                .iter()
                .all(|h| range.contains(&h.value.as_ptr()) && range.contains(&h.key.as_ptr())),
            "headers copied"
        );
        assert_eq!(got.header("message_id"), Some("m1"));
        assert_eq!(got.header("bad"), None);
        assert_eq!(got.to_bytes(), wire, "re-encodes byte for byte");
    }
}
