//! One canonical form of the request path, made before any routing decision, so the
//! router decides on exactly the path the upstream will interpret.
//!
//! Percent-encoded unreserved characters are decoded (`/%61dmin` is `/admin`), dot
//! segments are removed (RFC 3986 §5.2.4), and runs of slashes are merged (`//admin`
//! is `/admin`). What cannot be made unambiguous is refused: an encoded slash or
//! backslash, a literal backslash, a NUL, or bytes that are not UTF-8 once decoded.
//! Other percent-escapes (`%20`, `%3F`, …) stay encoded, upper-cased, as the
//! upstream will decode them itself.

/// Why a path was refused (the gateway answers 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path does not start with `/`")]
    NotAbsolute,
    #[error("path holds an encoded slash or backslash")]
    EncodedSeparator,
    #[error("path holds a backslash")]
    Backslash,
    #[error("path holds a NUL or control byte")]
    ControlByte,
    #[error("path holds a malformed percent-escape")]
    BadEscape,
    #[error("path is not valid UTF-8")]
    InvalidUtf8,
}

/// Canonicalize a raw request path (without the query).
pub fn canonicalize(raw: &str) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    // Fast path: nothing to decode, no dot segment, no doubled slash.
    if raw.bytes().all(|b| b != b'%' && b != b'\\' && b > 0x1f && b != 0x7f)
        && !raw.contains("//")
        && !raw.split('/').any(|s| s == "." || s == "..")
    {
        return Ok(raw.to_owned());
    }
    let decoded = decode_unreserved(raw)?;
    Ok(remove_dot_segments(&decoded))
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Decode escapes of unreserved characters, normalize the rest to upper-case hex,
/// and check what the whole path would decode to.
fn decode_unreserved(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    // The fully decoded bytes, only to check that they are UTF-8 without control bytes.
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (Some(h), Some(l)) = (bytes.get(i + 1).and_then(|&c| hex(c)), bytes.get(i + 2).and_then(|&c| hex(c)))
            else {
                return Err(PathError::BadEscape);
            };
            let v = h << 4 | l;
            match v {
                b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                0..=0x1f | 0x7f => return Err(PathError::ControlByte),
                _ if is_unreserved(v) => out.push(v as char),
                _ => {
                    out.push('%');
                    out.push(char::from_digit(u32::from(h), 16).unwrap().to_ascii_uppercase());
                    out.push(char::from_digit(u32::from(l), 16).unwrap().to_ascii_uppercase());
                }
            }
            decoded.push(v);
            i += 3;
        } else {
            match b {
                b'\\' => return Err(PathError::Backslash),
                0..=0x1f | 0x7f => return Err(PathError::ControlByte),
                _ => {}
            }
            // `raw` is a &str, so a non-ASCII byte here belongs to a whole UTF-8 char.
            let len = utf8_len(b);
            out.push_str(&raw[i..i + len]);
            decoded.extend_from_slice(&bytes[i..i + len]);
            i += len;
        }
    }
    std::str::from_utf8(&decoded).map_err(|_| PathError::InvalidUtf8)?;
    Ok(out)
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// RFC 3986 §5.2.4 on a path already split into segments; empty segments (from
/// doubled slashes) are dropped. A trailing slash, or a final `.`/`..`, is kept as a
/// trailing slash.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." | "" => trailing_slash = i == last,
            ".." => {
                out.pop();
                trailing_slash = i == last;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut result = String::with_capacity(path.len());
    for seg in &out {
        result.push('/');
        result.push_str(seg);
    }
    if trailing_slash || out.is_empty() {
        result.push('/');
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_pass_unchanged() {
        for p in ["/", "/admin/", "/api/shop/products/1", "/a.b/c~d_e-f", "/caf\u{e9}"] {
            assert_eq!(canonicalize(p).unwrap(), p);
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded() {
        assert_eq!(canonicalize("/%61dmin/").unwrap(), "/admin/");
        assert_eq!(canonicalize("/%7euser").unwrap(), "/~user");
        assert_eq!(canonicalize("/a%2e%2e/b").unwrap(), "/a../b");
    }

    #[test]
    fn reserved_escapes_stay_encoded_upper_case() {
        assert_eq!(canonicalize("/a%20b%3f").unwrap(), "/a%20b%3F");
        assert_eq!(canonicalize("/caf%c3%a9").unwrap(), "/caf%C3%A9");
    }

    #[test]
    fn dot_segments_are_removed() {
        assert_eq!(canonicalize("/_event/../admin/").unwrap(), "/admin/");
        assert_eq!(canonicalize("/a/./b/../c").unwrap(), "/a/c");
        assert_eq!(canonicalize("/../../etc/passwd").unwrap(), "/etc/passwd");
        assert_eq!(canonicalize("/a/b/..").unwrap(), "/a/");
        assert_eq!(canonicalize("/a/.").unwrap(), "/a/");
        assert_eq!(canonicalize("/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(canonicalize("/static/%2E%2E/%2e%2E/secret").unwrap(), "/secret");
        assert_eq!(canonicalize("/..").unwrap(), "/");
    }

    #[test]
    fn doubled_slashes_are_merged() {
        assert_eq!(canonicalize("//admin/").unwrap(), "/admin/");
        assert_eq!(canonicalize("/api//shop///x").unwrap(), "/api/shop/x");
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        assert_eq!(canonicalize("/admin%2Fx"), Err(PathError::EncodedSeparator));
        assert_eq!(canonicalize("/admin%2fx"), Err(PathError::EncodedSeparator));
        assert_eq!(canonicalize("/admin%5Cx"), Err(PathError::EncodedSeparator));
        assert_eq!(canonicalize("/admin\\x"), Err(PathError::Backslash));
        assert_eq!(canonicalize("/a%00b"), Err(PathError::ControlByte));
        assert_eq!(canonicalize("/a%0ab"), Err(PathError::ControlByte));
        assert_eq!(canonicalize("/a%ff"), Err(PathError::InvalidUtf8));
        assert_eq!(canonicalize("/a%c3"), Err(PathError::InvalidUtf8));
        assert_eq!(canonicalize("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(canonicalize("/a%4"), Err(PathError::BadEscape));
        assert_eq!(canonicalize("admin"), Err(PathError::NotAbsolute));
    }
}
