//! `Content-Type` from the file name's extension.

use http::HeaderValue;

/// Text is sent with `charset=utf-8`: bundlers and Django write UTF-8, and a
/// browser left to guess may pick Latin-1. Unknown extensions are
/// `application/octet-stream`, so nothing is sniffed into HTML.
pub(super) fn for_name(file_name: &str) -> HeaderValue {
    let mime = mime_guess::from_path(file_name).first_or_octet_stream();
    let value = match mime.essence_str() {
        // RFC 9239 makes text/javascript the one name for JavaScript.
        "application/javascript" => "text/javascript; charset=utf-8".to_owned(),
        essence if mime.type_() == mime_guess::mime::TEXT => format!("{essence}; charset=utf-8"),
        essence => essence.to_owned(),
    };
    HeaderValue::from_str(&value).expect("a mime essence is a valid header value")
}

/// Whether the name ends in an extension with a known type (`.js`, `.png`, …);
/// the SPA fallback is not served for such names.
pub(super) fn is_known_extension(file_name: &str) -> bool {
    mime_guess::from_path(file_name).first().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types() {
        assert_eq!(for_name("a.html"), "text/html; charset=utf-8");
        assert_eq!(for_name("a.css"), "text/css; charset=utf-8");
        assert_eq!(for_name("a.js"), "text/javascript; charset=utf-8");
        assert_eq!(for_name("a.mjs"), "text/javascript; charset=utf-8");
        assert_eq!(for_name("a.json"), "application/json");
        assert_eq!(for_name("a.png"), "image/png");
        assert_eq!(for_name("a.WOFF2"), "font/woff2");
        assert_eq!(for_name("a.unknownext"), "application/octet-stream");
        assert_eq!(for_name("README"), "application/octet-stream");
    }

    #[test]
    fn known_extensions() {
        assert!(is_known_extension("missing.js"));
        assert!(is_known_extension("x.png"));
        assert!(!is_known_extension("dashboard"));
        assert!(!is_known_extension("john.smith"));
        assert!(!is_known_extension("v1.2"));
    }
}
