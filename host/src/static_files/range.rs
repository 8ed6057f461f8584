//! The `Range` request header (RFC 9110 §14.2), single byte ranges only.
//!
//! Multipart/byteranges replies are not produced: a malformed header, another
//! unit, or more than one range is ignored and the whole file is served (200),
//! which RFC 9110 allows ("a server MAY ignore the Range header field"). A Range
//! on an empty file is ignored too: there is no byte to point at, and the whole
//! (empty) file is the useful answer.

use http::header::{HeaderMap, RANGE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ByteRange {
    /// No usable Range: serve the whole file.
    Whole,
    /// Bytes `start..=end`, both inside the file.
    Part { start: u64, end: u64 },
    /// A well-formed range that selects nothing: 416.
    Unsatisfiable,
}

pub(super) fn parse(headers: &HeaderMap, size: u64) -> ByteRange {
    let mut values = headers.get_all(RANGE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return ByteRange::Whole;
    };
    let Ok(value) = value.to_str() else {
        return ByteRange::Whole;
    };
    parse_value(value, size)
}

pub(crate) fn parse_value(value: &str, size: u64) -> ByteRange {
    let Some((unit, set)) = value.split_once('=') else {
        return ByteRange::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return ByteRange::Whole;
    }
    let Some((first, last)) = set.trim().split_once('-') else {
        return ByteRange::Whole;
    };
    let spec = match (first, last) {
        ("", suffix) => match digits(suffix) {
            Some(n) => Spec::Suffix(n),
            None => return ByteRange::Whole,
        },
        (first, "") => match digits(first) {
            Some(a) => Spec::From(a),
            None => return ByteRange::Whole,
        },
        (first, last) => match (digits(first), digits(last)) {
            (Some(a), Some(b)) if a <= b => Spec::Between(a, b),
            _ => return ByteRange::Whole,
        },
    };
    if size == 0 {
        return ByteRange::Whole;
    }
    let last_byte = size - 1;
    match spec {
        Spec::Suffix(0) => ByteRange::Unsatisfiable,
        Spec::Suffix(n) => ByteRange::Part { start: size.saturating_sub(n), end: last_byte },
        Spec::From(a) | Spec::Between(a, _) if a >= size => ByteRange::Unsatisfiable,
        Spec::From(a) => ByteRange::Part { start: a, end: last_byte },
        Spec::Between(a, b) => ByteRange::Part { start: a, end: b.min(last_byte) },
    }
}

enum Spec {
    /// `-n`: the last n bytes.
    Suffix(u64),
    /// `a-`: from a to the end.
    From(u64),
    /// `a-b`, inclusive.
    Between(u64, u64),
}

/// A non-empty run of ASCII digits. Values past u64 saturate: they are still
/// well-formed, just larger than any file.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, b| n.saturating_mul(10).saturating_add(u64::from(b - b'0'))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(start: u64, end: u64) -> ByteRange {
        ByteRange::Part { start, end }
    }

    #[test]
    fn single_ranges() {
        assert_eq!(parse_value("bytes=0-4", 10), part(0, 4));
        assert_eq!(parse_value("bytes=3-", 10), part(3, 9));
        assert_eq!(parse_value("bytes=-3", 10), part(7, 9));
        assert_eq!(parse_value("bytes=9-9", 10), part(9, 9));
        assert_eq!(parse_value("Bytes = 2-3", 10), part(2, 3));
    }

    #[test]
    fn ranges_are_clamped_to_the_file() {
        assert_eq!(parse_value("bytes=5-100", 10), part(5, 9));
        assert_eq!(parse_value("bytes=-100", 10), part(0, 9));
        assert_eq!(parse_value("bytes=0-99999999999999999999999", 10), part(0, 9));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(parse_value("bytes=10-", 10), ByteRange::Unsatisfiable);
        assert_eq!(parse_value("bytes=10-20", 10), ByteRange::Unsatisfiable);
        assert_eq!(parse_value("bytes=-0", 10), ByteRange::Unsatisfiable);
        assert_eq!(parse_value("bytes=99999999999999999999999-", 10), ByteRange::Unsatisfiable);
    }

    #[test]
    fn malformed_or_multiple_are_ignored() {
        for v in [
            "bytes=5-2",
            "bytes=abc",
            "bytes=",
            "bytes=-",
            "bytes=1-2-3",
            "bytes=0-1,3-4",
            "bytes=0-1,",
            "items=0-1",
            "0-1",
            "bytes=+1-2",
            "bytes=1 -2",
            "bytes=0x1-2",
        ] {
            assert_eq!(parse_value(v, 10), ByteRange::Whole, "{v}");
        }
    }

    #[test]
    fn empty_file_ignores_ranges() {
        assert_eq!(parse_value("bytes=0-", 0), ByteRange::Whole);
        assert_eq!(parse_value("bytes=-5", 0), ByteRange::Whole);
    }

    #[test]
    fn several_range_headers_are_ignored() {
        let mut headers = HeaderMap::new();
        headers.append(RANGE, "bytes=0-1".parse().unwrap());
        assert_eq!(parse(&headers, 10), part(0, 1));
        headers.append(RANGE, "bytes=2-3".parse().unwrap());
        assert_eq!(parse(&headers, 10), ByteRange::Whole);
    }
}
