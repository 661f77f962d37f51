//! A received frame, read in place: one pass over the WebSocket message
//! finds its fields, checks the required ones and notes where each header
//! and the payload lie in the buffer. Nothing is copied and no reference
//! is taken per header (a prost-decoded [`Frame`] holds every header as
//! two slices of the buffer, each a reference count to take and drop: 6 %
//! of the runtime thread at 150,000 events/s). It accepts exactly what
//! [`Frame::from_shared`] accepts, with the same values (a test and the
//! fuzz harness compare them).

use std::ops::Range;

use prost::bytes::Bytes;

use super::frame::{AckOf, Frame, FrameError, varint, write_ack};

/// A received frame: its scalar fields, and where the rest lies in `raw`.
#[derive(Debug, Clone)]
pub struct Received {
    raw: Bytes,
    pub seq_id: u64,
    pub log_id: u64,
    pub service: i32,
    pub method: i32,
    /// Each header's key and value, in order.
    headers: Vec<(Range<usize>, Range<usize>)>,
    payload_encoding: Option<Range<usize>>,
    payload_type: Option<Range<usize>>,
    payload: Option<Range<usize>>,
    log_id_new: Option<Range<usize>>,
}

fn decode_err(what: impl Into<String>) -> FrameError {
    FrameError::Decode(what.into())
}

/// A field's key at `*i`: its tag and wire type.
fn field_key(b: &[u8], i: &mut usize) -> Result<(u64, u64), FrameError> {
    let k = varint(b, i)?;
    if k > u64::from(u32::MAX) {
        return Err(decode_err(format!("invalid key value: {k}")));
    }
    Ok((k >> 3, k & 7))
}

/// A length-delimited field's contents at `*i` (after its key).
fn delimited(b: &[u8], i: &mut usize) -> Result<Range<usize>, FrameError> {
    let len = usize::try_from(varint(b, i)?).map_err(|_| decode_err("length overflows"))?;
    let start = *i;
    let end = start
        .checked_add(len)
        .filter(|e| *e <= b.len())
        .ok_or_else(|| decode_err("truncated field"))?;
    *i = end;
    Ok(start..end)
}

/// Skip a field of another tag, as prost does (groups included).
fn skip(b: &[u8], i: &mut usize, wire: u64, tag: u64, depth: u32) -> Result<(), FrameError> {
    match wire {
        0 => varint(b, i).map(drop),
        1 | 5 => {
            let n = if wire == 1 { 8 } else { 4 };
            *i = i
                .checked_add(n)
                .filter(|e| *e <= b.len())
                .ok_or_else(|| decode_err("truncated field"))?;
            Ok(())
        }
        2 => delimited(b, i).map(drop),
        3 => {
            if depth >= 100 {
                return Err(decode_err("groups nested too deep"));
            }
            loop {
                let (t, w) = field_key(b, i)?;
                if w == 4 {
                    return if t == tag {
                        Ok(())
                    } else {
                        Err(decode_err("unexpected end group tag"))
                    };
                }
                if t == 0 {
                    return Err(decode_err("invalid tag value: 0"));
                }
                skip(b, i, w, t, depth + 1)?;
            }
        }
        _ => Err(decode_err(format!("invalid wire type value: {wire}"))),
    }
}

fn want(wire: u64, expected: u64) -> Result<(), FrameError> {
    if wire == expected {
        Ok(())
    } else {
        Err(decode_err(format!(
            "invalid wire type: {wire} (expected {expected})"
        )))
    }
}

fn utf8(b: &[u8], r: &Range<usize>) -> Result<(), FrameError> {
    std::str::from_utf8(&b[r.clone()])
        .map(drop)
        .map_err(|_| decode_err("invalid string value: data is not UTF-8 encoded"))
}

/// A header message: its key and value (each absent one empty).
fn header(b: &[u8], r: Range<usize>) -> Result<(Range<usize>, Range<usize>), FrameError> {
    let (mut key, mut value) = (r.start..r.start, r.start..r.start);
    let end = r.end;
    let m = &b[..end];
    let mut i = r.start;
    while i < end {
        let (tag, wire) = field_key(m, &mut i)?;
        match tag {
            0 => return Err(decode_err("invalid tag value: 0")),
            1 | 2 => {
                want(wire, 2)?;
                let f = delimited(m, &mut i)?;
                if tag == 1 {
                    key = f;
                } else {
                    value = f;
                }
            }
            _ => skip(m, &mut i, wire, tag, 0)?,
        }
    }
    Ok((key, value))
}

impl Received {
    /// Read a received message: `Err` where [`Frame::from_shared`] would
    /// refuse it (not protobuf, or a required field missing).
    pub fn parse(raw: Bytes) -> Result<Received, FrameError> {
        let b = &raw[..];
        let mut f = Received {
            raw: Bytes::new(),
            seq_id: 0,
            log_id: 0,
            service: 0,
            method: 0,
            headers: Vec::with_capacity(8),
            payload_encoding: None,
            payload_type: None,
            payload: None,
            log_id_new: None,
        };
        let mut seen = [false; 5];
        let mut i = 0;
        while i < b.len() {
            let (tag, wire) = field_key(b, &mut i)?;
            match tag {
                0 => return Err(decode_err("invalid tag value: 0")),
                1..=4 => {
                    want(wire, 0)?;
                    let v = varint(b, &mut i)?;
                    match tag {
                        1 => f.seq_id = v,
                        2 => f.log_id = v,
                        // int32: the low 32 bits, as prost reads them.
                        3 => f.service = v as i32,
                        _ => f.method = v as i32,
                    }
                    if let Some(s) = usize::try_from(tag).ok().and_then(|t| seen.get_mut(t)) {
                        *s = true;
                    }
                }
                5 => {
                    want(wire, 2)?;
                    let r = delimited(b, &mut i)?;
                    f.headers.push(header(b, r)?);
                }
                6 | 7 | 9 => {
                    want(wire, 2)?;
                    let r = delimited(b, &mut i)?;
                    utf8(b, &r)?;
                    *match tag {
                        6 => &mut f.payload_encoding,
                        7 => &mut f.payload_type,
                        _ => &mut f.log_id_new,
                    } = Some(r);
                }
                8 => {
                    want(wire, 2)?;
                    f.payload = Some(delimited(b, &mut i)?);
                }
                // Groups are refused at the top (as `Frame::from_shared`
                // refuses them before prost reads the frame).
                _ if wire == 3 || wire == 4 => {
                    return Err(decode_err(format!("unsupported wire type {wire}")));
                }
                _ => skip(b, &mut i, wire, tag, 0)?,
            }
        }
        if let Some((name, _)) = ["SeqID", "LogID", "service", "method"]
            .into_iter()
            .zip(&seen[1..])
            .find(|(_, s)| !**s)
        {
            return Err(FrameError::MissingRequired(name));
        }
        f.raw = raw;
        Ok(f)
    }

    fn value(&self, r: &Range<usize>) -> &[u8] {
        self.raw.get(r.clone()).unwrap_or_default()
    }

    /// The first header with this key (`None` if its value is not UTF-8).
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| self.value(k) == key.as_bytes())
            .and_then(|(_, v)| std::str::from_utf8(self.value(v)).ok())
    }

    /// `part` as a slice of the received buffer (its reference count, no
    /// copy); `None` if it does not lie in that buffer.
    pub fn slice_of(&self, part: &[u8]) -> Option<Bytes> {
        let start = (part.as_ptr() as usize).checked_sub(self.raw.as_ptr() as usize)?;
        let end = start.checked_add(part.len())?;
        (end <= self.raw.len()).then(|| self.raw.slice(start..end))
    }

    /// The payload, if any.
    pub fn payload(&self) -> Option<&[u8]> {
        self.payload.as_ref().map(|r| self.value(r))
    }

    /// Take the payload out (a slice of the received buffer).
    pub fn take_payload(&mut self) -> Option<Bytes> {
        self.payload.take().map(|r| self.raw.slice(r))
    }

    /// The ack: the bytes [`Frame::ack`] of this frame encodes to.
    pub fn ack_bytes(&self, code: u16, biz_rt_ms: u128) -> Vec<u8> {
        let opt = |r: &Option<Range<usize>>| r.as_ref().map(|r| self.value(r));
        write_ack(
            &AckOf {
                seq_id: self.seq_id,
                log_id: self.log_id,
                service: self.service,
                method: self.method,
                payload_encoding: opt(&self.payload_encoding),
                payload_type: opt(&self.payload_type),
                log_id_new: opt(&self.log_id_new),
            },
            self.headers
                .iter()
                .map(|(k, v)| (self.value(k), self.value(v))),
            code,
            biz_rt_ms,
        )
    }

    /// The same frame decoded by prost (tests and the fuzz harness
    /// compare the two readings).
    pub fn to_frame(&self) -> Frame {
        let s = |r: &Option<Range<usize>>| {
            r.as_ref()
                .map(|r| String::from_utf8_lossy(self.value(r)).into_owned())
        };
        Frame {
            seq_id: self.seq_id,
            log_id: self.log_id,
            service: self.service,
            method: self.method,
            headers: self
                .headers
                .iter()
                .map(|(k, v)| super::frame::Header {
                    key: self.raw.slice(k.clone()),
                    value: self.raw.slice(v.clone()),
                })
                .collect(),
            payload_encoding: s(&self.payload_encoding),
            payload_type: s(&self.payload_type),
            payload: self.payload.as_ref().map(|r| self.raw.slice(r.clone())),
            log_id_new: s(&self.log_id_new),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mutated frames: accepted by both readings or by neither, and read
    /// the same when accepted.
    #[test]
    fn read_in_place_as_prost_decodes_it() {
        let mut f = Frame::event_fragment(7, "m-1", "1", "0", "t-1", b"{\"a\":1}".to_vec());
        f.payload_encoding = Some("gzip".into());
        f.log_id_new = Some("l".into());
        f.service = -3;
        let mut seeds = vec![
            f.to_bytes(),
            Frame::ping(2).to_bytes(),
            // An unknown field of each wire type, a group among them.
            [
                Frame::ping(2).to_bytes(),
                vec![
                    0x50, 1, 0x59, 0, 0, 0, 0, 0, 0, 0, 0, 0x5a, 1, b'x', 0x5d, 0, 0, 0, 0,
                ],
                vec![0x63, 0x08, 1, 0x64],
            ]
            .concat(),
        ];
        // Repeated singular fields: the last wins.
        seeds.push([f.to_bytes(), vec![0x08, 0x2a, 0x42, 1, b'z']].concat());
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (mut accepted, mut refused) = (0, 0);
        for round in 0..20_000 {
            let mut b = seeds[round % seeds.len()].clone();
            for _ in 0..(next() % 4) {
                let i = (next() as usize) % b.len().max(1);
                match next() % 4 {
                    0 if !b.is_empty() => b[i] = next() as u8,
                    1 if !b.is_empty() => {
                        b.truncate(i);
                    }
                    2 => b.insert(i.min(b.len()), next() as u8),
                    _ => {
                        // A field's length (or any byte) one larger.
                        if let Some(x) = b.get_mut(i) {
                            *x = x.wrapping_add(1);
                        }
                    }
                }
            }
            let prost = Frame::from_bytes(&b);
            let ours = Received::parse(Bytes::from(b.clone()));
            match (&prost, &ours) {
                (Ok(p), Ok(o)) => {
                    accepted += 1;
                    assert_eq!(&o.to_frame(), p, "{b:?}");
                    for code in [200, 500] {
                        assert_eq!(o.ack_bytes(code, 9), p.ack_bytes(code, 9), "{b:?}");
                    }
                }
                (Err(_), Err(_)) => refused += 1,
                _ => panic!("{b:?}: prost {prost:?}, in place {ours:?}"),
            }
        }
        assert!(
            accepted > 1000 && refused > 1000,
            "{accepted} accepted, {refused} refused"
        );
    }

    #[test]
    fn headers_and_payload_are_found_in_place() {
        let f = Frame::event_fragment(7, "m-1", "2", "1", "t-1", b"{}".to_vec());
        let mut r = Received::parse(Bytes::from(f.to_bytes())).unwrap();
        assert_eq!(r.header("message_id"), Some("m-1"));
        assert_eq!(r.header("sum"), Some("2"));
        assert_eq!(r.header("nope"), None);
        assert_eq!(r.payload(), Some(&b"{}"[..]));
        assert_eq!(r.take_payload().as_deref(), Some(&b"{}"[..]));
        assert_eq!(r.payload(), None);
        let id = r
            .header("message_id")
            .and_then(|v| r.slice_of(v.as_bytes()));
        assert_eq!(id.as_deref(), Some(&b"m-1"[..]));
        assert_eq!(r.slice_of(b"m-1"), None, "not a part of the frame");
    }
}
