//! Choosing a precompressed sibling (`file.br`, `file.gz`) from `Accept-Encoding`
//! (RFC 9110 §12.5.3).
//!
//! Without the header the file is served as is: many clients that omit it cannot
//! decode anything. A coding not named (and not covered by `*`) is refused, as is
//! `q=0`. The highest q wins; on a tie brotli beats gzip, being smaller.

use http::header::{HeaderMap, ACCEPT_ENCODING};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    Brotli,
    Gzip,
}

impl Encoding {
    /// In order of preference when the client likes them equally.
    pub(super) const ALL: [Encoding; 2] = [Encoding::Brotli, Encoding::Gzip];

    /// The sibling file's suffix.
    pub(super) fn suffix(self) -> &'static str {
        match self {
            Encoding::Brotli => ".br",
            Encoding::Gzip => ".gz",
        }
    }

    /// The `Content-Encoding` token.
    pub(super) fn token(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
        }
    }

    fn accepts(self, coding: &str) -> bool {
        // RFC 9110 §8.4.1.3: `x-gzip` is the same as `gzip`.
        coding.eq_ignore_ascii_case(self.token()) || (self == Encoding::Gzip && coding.eq_ignore_ascii_case("x-gzip"))
    }
}

/// The best of `available` the request accepts, or `None` for the file as is.
pub(super) fn negotiate(headers: &HeaderMap, available: &[Encoding]) -> Option<Encoding> {
    let entries: Vec<(&str, u16)> = headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(parse_entry)
        .collect();
    let weight = |enc: Encoding| {
        let named = entries.iter().find(|(coding, _)| enc.accepts(coding));
        named.or_else(|| entries.iter().find(|(coding, _)| *coding == "*")).map_or(0, |&(_, q)| q)
    };
    let mut best: Option<(Encoding, u16)> = None;
    for enc in Encoding::ALL.into_iter().filter(|e| available.contains(e)) {
        let q = weight(enc);
        // Strictly greater keeps the earlier (preferred) coding on ties.
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((enc, q));
        }
    }
    best.map(|(enc, _)| enc)
}

/// `coding[;q=x][;other]` → (coding, q in thousandths). Empty list elements and
/// entries with an unreadable q-value are skipped.
fn parse_entry(item: &str) -> Option<(&str, u16)> {
    let mut parts = item.split(';');
    let coding = parts.next()?.trim();
    if coding.is_empty() {
        return None;
    }
    let mut q = 1000;
    for param in parts {
        let (name, value) = param.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("q") {
            q = qvalue(value.trim())?;
        }
    }
    Some((coding, q))
}

/// RFC 9110 §12.4.2: `0[.ddd]` or `1[.000]`, in thousandths.
fn qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths =
        frac.bytes().chain(std::iter::repeat(b'0')).take(3).fold(0u16, |n, b| n * 10 + u16::from(b - b'0'));
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Encoding::{Brotli, Gzip};

    fn pick(accept: &[&str], available: &[Encoding]) -> Option<Encoding> {
        let mut headers = HeaderMap::new();
        for a in accept {
            headers.append(ACCEPT_ENCODING, a.parse().unwrap());
        }
        negotiate(&headers, available)
    }

    const BOTH: &[Encoding] = &[Brotli, Gzip];

    #[test]
    fn prefers_brotli_on_ties() {
        assert_eq!(pick(&["gzip, deflate, br"], BOTH), Some(Brotli));
        assert_eq!(pick(&["br;q=0.5, gzip;q=0.5"], BOTH), Some(Brotli));
        assert_eq!(pick(&["*"], BOTH), Some(Brotli));
    }

    #[test]
    fn higher_q_wins() {
        assert_eq!(pick(&["br;q=0.5, gzip"], BOTH), Some(Gzip));
        assert_eq!(pick(&["br;q=0.999, gzip;q=1.000"], BOTH), Some(Gzip));
    }

    #[test]
    fn q_zero_refuses() {
        assert_eq!(pick(&["br;q=0, gzip"], BOTH), Some(Gzip));
        assert_eq!(pick(&["br;q=0, gzip;q=0.000"], BOTH), None);
        assert_eq!(pick(&["*;q=0"], BOTH), None);
        assert_eq!(pick(&["gzip, *;q=0"], BOTH), Some(Gzip));
        assert_eq!(pick(&["*, br;q=0"], BOTH), Some(Gzip));
    }

    #[test]
    fn only_available_codings() {
        assert_eq!(pick(&["br, gzip"], &[Gzip]), Some(Gzip));
        assert_eq!(pick(&["br"], &[Gzip]), None);
        assert_eq!(pick(&["br, gzip"], &[]), None);
    }

    #[test]
    fn absent_empty_or_identity_means_as_is() {
        assert_eq!(pick(&[], BOTH), None);
        assert_eq!(pick(&[""], BOTH), None);
        assert_eq!(pick(&["identity"], BOTH), None);
        assert_eq!(pick(&["deflate"], BOTH), None);
    }

    #[test]
    fn syntax_details() {
        assert_eq!(pick(&["GZIP"], BOTH), Some(Gzip));
        assert_eq!(pick(&["x-gzip"], BOTH), Some(Gzip));
        assert_eq!(pick(&[" br ; Q=0.8 , gzip;q=0.7"], BOTH), Some(Brotli));
        assert_eq!(pick(&["deflate", "gzip"], BOTH), Some(Gzip), "several header lines");
        assert_eq!(pick(&[",,gzip,"], BOTH), Some(Gzip), "empty list elements");
        assert_eq!(pick(&["br;q=2, gzip"], BOTH), Some(Gzip), "bad q skips the entry");
        assert_eq!(pick(&["br;q=abc"], BOTH), None);
        assert_eq!(pick(&["brotli, gzipped"], BOTH), None, "no prefix matching");
    }

    #[test]
    fn qvalues() {
        assert_eq!(qvalue("0"), Some(0));
        assert_eq!(qvalue("0."), Some(0));
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("0.05"), Some(50));
        assert_eq!(qvalue("0.123"), Some(123));
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("1.000"), Some(1000));
        for bad in ["1.001", "0.1234", "2", "-1", "", ".5", "0.a", "01"] {
            assert_eq!(qvalue(bad), None, "{bad}");
        }
    }
}
