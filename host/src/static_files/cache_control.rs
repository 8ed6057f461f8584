//! `Cache-Control` by file name. Content-hashed assets never change under their
//! name, so browsers may keep them a year without asking; everything else
//! (index.html above all) must be revalidated with its ETag on every use, or a
//! deploy would leave browsers on stale pages pointing at deleted assets.

use http::HeaderValue;

pub(super) const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
pub(super) const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");

pub(super) fn for_name(file_name: &str) -> HeaderValue {
    if is_hashed(file_name) {
        IMMUTABLE
    } else {
        NO_CACHE
    }
}

/// Whether the name carries a content hash right before its extension, as
/// bundlers and Django's ManifestStaticFilesStorage write them:
/// `index-BxYz12Ab.js`, `main.3f2a9c1d.css`, `chunk-4KQ2ZJ7M.mjs`.
///
/// The hash is the last `-`/`.`-separated piece of the name without its
/// extension: 8 or more of `[A-Za-z0-9_]` with at least one digit. A hash that
/// itself contains `-` is therefore only recognised if its last piece qualifies
/// on its own; that errs towards `no-cache` (one extra revalidation), never
/// towards caching a plain name like `some-long-name-v2.js` for a year.
fn is_hashed(file_name: &str) -> bool {
    let Some((stem, ext)) = file_name.rsplit_once('.') else {
        return false;
    };
    let Some((_, hash)) = stem.rsplit_once(['-', '.']) else {
        return false;
    };
    !ext.is_empty()
        && hash.len() >= 8
        && hash.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && hash.bytes().any(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names() {
        for name in [
            "index-BxYz12Ab.js",
            "main.3f2a9c1d.css",
            "chunk-4KQ2ZJ7M.mjs",
            "base.5af66c1b1797.css",
            "main-app-3f2a9c1d2e3b4a5c.js",
            "font.a1b2c3d4.woff2",
            "vendor-ab_cd12ef.js",
            "build-20240101.js",
        ] {
            assert!(is_hashed(name), "{name}");
        }
    }

    #[test]
    fn plain_names() {
        for name in [
            "index.html",
            "app.js",
            "favicon.ico",
            "jquery-3.7.1.min.js",
            "some-long-name-v2.js",
            "logo2024x.png",
            "index-abcdefgh.js",
            "index-1234567.js",
            "index-BxYz12Ab",
            "index-BxYz12Ab.",
            ".3f2a9c1d",
            "main.3f2a9c1d.chunk.js",
            "index-Bx$z12Ab.js",
        ] {
            assert!(!is_hashed(name), "{name}");
        }
    }

    #[test]
    fn header_values() {
        assert_eq!(for_name("index-BxYz12Ab.js"), "public, max-age=31536000, immutable");
        assert_eq!(for_name("index.html"), "no-cache");
    }
}
