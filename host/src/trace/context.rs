//! W3C Trace Context (traceparent, tracestate): parsed strictly, written by hand, and
//! ids drawn from a per-thread generator seeded by the OS (no syscall per request).

use std::cell::Cell;

use crate::limits;

/// A trace id and span id pair; never zero (the spec's invalid value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: u128,
    pub span_id: u64,
    pub sampled: bool,
}

/// What a valid `traceparent` carried: the caller's span and its sampled flag.
pub type Remote = SpanContext;

impl SpanContext {
    /// `00-<32 hex trace id>-<16 hex span id>-<flags>`, the form the gateway sends.
    pub fn traceparent(&self) -> [u8; 55] {
        let mut out = [b'-'; 55];
        out[..2].copy_from_slice(b"00");
        write_hex(&mut out[3..35], self.trace_id);
        write_hex(&mut out[36..52], u128::from(self.span_id));
        out[53..55].copy_from_slice(if self.sampled { b"01" } else { b"00" });
        out
    }
}

/// Parse a `traceparent` value per W3C Trace Context level 1: lowercase hex, version
/// `ff` invalid, version 00 exactly 55 bytes, a later version at least that with a `-`
/// after the flags; all-zero ids invalid. `None` means: start a new trace.
pub fn parse_traceparent(value: &[u8]) -> Option<Remote> {
    if value.len() < 55 || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let version = hex(&value[..2])?;
    match version {
        0xff => return None,
        0 if value.len() != 55 => return None,
        _ if value.len() > 55 && value[55] != b'-' => return None,
        _ => {}
    }
    let trace_id = hex(&value[3..35])?;
    let span_id = hex(&value[36..52])? as u64;
    let flags = hex(&value[53..55])?;
    if trace_id == 0 || span_id == 0 {
        return None;
    }
    Some(SpanContext { trace_id, span_id, sampled: flags & 1 == 1 })
}

/// The `tracestate` to pass on: header values joined with `,` (as the spec combines
/// repeated fields), kept only when printable ASCII and at most
/// `limits::TRACESTATE_MAX_BYTES` long; otherwise dropped whole, which the spec allows.
pub fn tracestate<'v>(values: impl Iterator<Item = &'v [u8]>) -> Option<String> {
    let mut out = String::new();
    for value in values {
        if !out.is_empty() {
            out.push(',');
        }
        let text = std::str::from_utf8(value).ok()?;
        if !text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return None;
        }
        out.push_str(text.trim());
        if out.len() > limits::TRACESTATE_MAX_BYTES {
            return None;
        }
    }
    (!out.trim_matches(',').is_empty()).then_some(out)
}

/// Lowercase hex only: the spec forbids uppercase, and a value that is not the
/// gateway's own form starts a new trace instead of being passed on unnormalised.
fn hex(digits: &[u8]) -> Option<u128> {
    let mut n: u128 = 0;
    for &d in digits {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        n = (n << 4) | u128::from(v);
    }
    Some(n)
}

fn write_hex(out: &mut [u8], n: u128) {
    let len = out.len();
    for (i, digit) in out.iter_mut().enumerate() {
        *digit = b"0123456789abcdef"[(n >> (4 * (len - 1 - i))) as usize & 0xf];
    }
}

thread_local! {
    static STATE: Cell<u64> = Cell::new({
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).expect("the OS random source");
        u64::from_le_bytes(seed)
    });
}

/// wyrand: 64 random bits per call, a few instructions; ids need to be unpredictable
/// enough not to collide, not secret.
fn next_u64() -> u64 {
    STATE.with(|s| {
        let x = s.get().wrapping_add(0xa076_1d64_78bd_642f);
        s.set(x);
        let t = u128::from(x) * u128::from(x ^ 0xe703_7ed1_a0b4_28db);
        (t as u64) ^ ((t >> 64) as u64)
    })
}

pub fn new_span_id() -> u64 {
    loop {
        let id = next_u64();
        if id != 0 {
            return id;
        }
    }
}

pub fn new_trace_id() -> u128 {
    loop {
        let id = (u128::from(next_u64()) << 64) | u128::from(next_u64());
        if id != 0 {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_read() {
        let remote = parse_traceparent(VALID.as_bytes()).unwrap();
        assert_eq!(remote.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(remote.span_id, 0x00f067aa0ba902b7);
        assert!(remote.sampled);
        let unsampled = parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!unsampled.sampled);
        // Only bit 0 means sampled; other flags are read and not passed on.
        assert!(!parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02").unwrap().sampled);
        assert_eq!(std::str::from_utf8(&remote.traceparent()).unwrap(), VALID, "written back the same");
    }

    #[test]
    fn invalid_traceparents_start_a_new_trace() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ] {
            assert_eq!(parse_traceparent(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_for_what_version_00_defines() {
        let later = parse_traceparent(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future").unwrap();
        assert_eq!(later.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert!(parse_traceparent(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_some());
    }

    #[test]
    fn tracestate_is_joined_and_bounded() {
        let joined = tracestate([b"a=1".as_slice(), b" b=2 "].into_iter()).unwrap();
        assert_eq!(joined, "a=1,b=2");
        assert_eq!(tracestate(std::iter::empty()), None);
        assert_eq!(tracestate([b"".as_slice()].into_iter()), None);
        let long = "k=".to_owned() + &"v".repeat(limits::TRACESTATE_MAX_BYTES);
        assert_eq!(tracestate([long.as_bytes()].into_iter()), None, "too long: dropped");
        let fits = "k=".to_owned() + &"v".repeat(limits::TRACESTATE_MAX_BYTES - 2);
        assert_eq!(tracestate([fits.as_bytes()].into_iter()).as_deref(), Some(fits.as_str()));
        assert_eq!(tracestate([b"a=\x01".as_slice()].into_iter()), None, "control characters");
        assert_eq!(tracestate(["a=\u{e9}".as_bytes()].into_iter()), None, "not ASCII");
    }

    #[test]
    fn generated_ids_are_nonzero_and_distinct() {
        let ids: std::collections::HashSet<u128> = (0..10_000).map(|_| new_trace_id()).collect();
        assert_eq!(ids.len(), 10_000);
        let ctx = SpanContext { trace_id: new_trace_id(), span_id: new_span_id(), sampled: false };
        let text = ctx.traceparent();
        assert_eq!(parse_traceparent(&text), Some(ctx), "what the gateway writes, it reads");
    }
}
