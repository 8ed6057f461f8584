//! Validators (`ETag`, `Last-Modified`) and the conditional request headers of
//! RFC 9110 §13, evaluated in the order of §13.2.2: If-Match, If-Unmodified-Since,
//! If-None-Match, If-Modified-Since; If-Range separately, once a Range applies.

use std::fs::Metadata;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{
    HeaderMap, HeaderValue, ETAG, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE,
    LAST_MODIFIED,
};

/// What the preconditions decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Precondition {
    Proceed,
    /// 304: the client's copy is current.
    NotModified,
    /// 412: If-Match or If-Unmodified-Since failed.
    Failed,
}

/// The validators of one representation (a file, or one of its precompressed
/// siblings), from size and modification time as nginx does: no hashing of
/// contents, so a multi-GB file costs nothing to validate.
pub(crate) struct Validators {
    /// Strong (`"…"`), so that If-Range, which needs strong comparison, works.
    /// `None` when the file system gives no modification time.
    etag: Option<String>,
    /// Whole seconds since the epoch: HTTP dates have no finer resolution.
    modified: Option<u64>,
}

impl Validators {
    /// `variant` tells representations of one file apart (`br`, `gzip`): each
    /// content coding must have its own strong ETag.
    pub(super) fn new(meta: &Metadata, variant: Option<&str>) -> Validators {
        let Some(mtime) = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()) else {
            return Validators { etag: None, modified: None };
        };
        Validators::of(mtime, meta.len(), variant)
    }

    /// From a modification time (since the epoch) and a size; `new` without a file.
    pub(crate) fn of(mtime: Duration, len: u64, variant: Option<&str>) -> Validators {
        let suffix = variant.map(|v| format!("-{v}")).unwrap_or_default();
        let etag = format!("\"{:x}.{:x}-{:x}{suffix}\"", mtime.as_secs(), mtime.subsec_nanos(), len);
        Validators { etag: Some(etag), modified: Some(mtime.as_secs()) }
    }

    pub(crate) fn write(&self, headers: &mut HeaderMap) {
        if let Some(etag) = &self.etag {
            headers.insert(ETAG, HeaderValue::from_str(etag).expect("hex digits are a valid header value"));
        }
        if let Some(secs) = self.modified {
            let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
            headers.insert(LAST_MODIFIED, HeaderValue::from_str(&date).expect("an HTTP date is a valid header value"));
        }
    }

    pub(crate) fn evaluate(&self, req: &HeaderMap) -> Precondition {
        if req.contains_key(IF_MATCH) {
            if !self.etag_listed(req, IF_MATCH, Comparison::Strong) {
                return Precondition::Failed;
            }
        } else if let (Some(since), Some(modified)) = (date(req, IF_UNMODIFIED_SINCE), self.modified) {
            if modified > since {
                return Precondition::Failed;
            }
        }
        if req.contains_key(IF_NONE_MATCH) {
            // Only GET and HEAD reach here, so a match is 304, not 412.
            if self.etag_listed(req, IF_NONE_MATCH, Comparison::Weak) {
                return Precondition::NotModified;
            }
        } else if let (Some(since), Some(modified)) = (date(req, IF_MODIFIED_SINCE), self.modified) {
            if modified <= since {
                return Precondition::NotModified;
            }
        }
        Precondition::Proceed
    }

    /// Whether a Range may be honoured: true without If-Range, else only if its
    /// ETag (strongly) or date (exactly) still matches; otherwise the client's
    /// partial copy is stale and gets the whole file.
    pub(crate) fn if_range_allows(&self, req: &HeaderMap) -> bool {
        let Some(value) = req.get(IF_RANGE) else {
            return true;
        };
        let Ok(value) = value.to_str() else {
            return false;
        };
        let value = value.trim();
        if value.starts_with('"') || value.starts_with("W/") {
            let ours = self.etag.as_deref();
            return matches!(entity_tags(value).as_slice(), [Some(tag)] if !tag.weak && Some(tag.quoted) == ours);
        }
        match (httpdate::parse_http_date(value), self.modified) {
            (Ok(date), Some(modified)) => secs(date) == Some(modified),
            _ => false,
        }
    }

    /// Whether an If-Match/If-None-Match list (all lines of it) names our ETag
    /// or is `*`. The file exists, so `*` always matches.
    fn etag_listed(&self, req: &HeaderMap, name: http::header::HeaderName, how: Comparison) -> bool {
        let ours = self.etag.as_deref();
        req.get_all(name).iter().filter_map(|v| v.to_str().ok()).any(|value| {
            value.trim() == "*"
                || entity_tags(value)
                    .into_iter()
                    .map_while(|t| t)
                    .any(|tag| Some(tag.quoted) == ours && (how == Comparison::Weak || !tag.weak))
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Strong,
    Weak,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct EntityTag<'a> {
    pub(crate) weak: bool,
    /// With its quotes, without `W/`, as our own ETag is written.
    pub(crate) quoted: &'a str,
}

/// The comma-separated entity tags of a header value (RFC 9110 §8.8.3). A
/// malformed element ends the list as `None`: what follows cannot be trusted.
/// Commas inside quotes belong to the tag.
pub(crate) fn entity_tags(mut s: &str) -> Vec<Option<EntityTag<'_>>> {
    let mut tags = Vec::new();
    loop {
        s = s.trim_start_matches([' ', '\t', ',']);
        if s.is_empty() {
            return tags;
        }
        let (weak, rest) = match s.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let close = rest.strip_prefix('"').and_then(|r| r.find('"'));
        let Some(close) = close else {
            tags.push(None);
            return tags;
        };
        let (quoted, after) = rest.split_at(close + 2);
        if !after.is_empty() && !after.starts_with([' ', '\t', ',']) {
            tags.push(None);
            return tags;
        }
        tags.push(Some(EntityTag { weak, quoted }));
        s = after;
    }
}

fn date(req: &HeaderMap, name: http::header::HeaderName) -> Option<u64> {
    let mut values = req.get_all(name).iter();
    // RFC 9110 §13.1.3: more than one value, or not a date, is ignored.
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    secs(httpdate::parse_http_date(value.to_str().ok()?).ok()?)
}

fn secs(time: SystemTime) -> Option<u64> {
    time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(weak: bool, quoted: &str) -> Option<EntityTag<'_>> {
        Some(EntityTag { weak, quoted })
    }

    #[test]
    fn entity_tag_lists() {
        assert_eq!(entity_tags(r#""a""#), vec![tag(false, r#""a""#)]);
        assert_eq!(entity_tags(r#"W/"a", "b""#), vec![tag(true, r#""a""#), tag(false, r#""b""#)]);
        assert_eq!(entity_tags(r#" "a,b" ,W/"c","#), vec![tag(false, r#""a,b""#), tag(true, r#""c""#)]);
        assert_eq!(entity_tags(r#""""#), vec![tag(false, r#""""#)]);
        assert_eq!(entity_tags(""), vec![]);
    }

    #[test]
    fn malformed_entity_tags_end_the_list() {
        assert_eq!(entity_tags("a"), vec![None]);
        assert_eq!(entity_tags(r#""a"x, "b""#), vec![None]);
        assert_eq!(entity_tags(r#""a", "b"#), vec![tag(false, r#""a""#), None]);
        assert_eq!(entity_tags(r#"w/"a""#), vec![None]);
    }
}
