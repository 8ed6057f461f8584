//! A guest's answer, checked and turned into the host's types (`crate::policy`).
//!
//! Refused (`PolicyFailure::Invalid`): a reply status outside 100..=599, a header name
//! or value that is not valid HTTP, a reply body, a header or field list, a reason or
//! a URL larger than `limits::PLUGIN_MAX_REPLY_BYTES`, a replacement path that is not
//! an origin-form path (`/…`, optional `?query`), an empty upstream or static mount
//! name, a login URL that is empty or not a valid `Location`. Whether the named
//! upstream or mount exists is for the dispatcher (502).

use crate::limits::PLUGIN_MAX_REPLY_BYTES;
use crate::policy::{Decision, Forward, PolicyFailure, Refusal, Reply};

use super::bindings::{WitDecision, WitForward, WitRefusal, WitReply};

pub(crate) fn convert(d: WitDecision) -> Result<Decision, PolicyFailure> {
    match d {
        WitDecision::Pass => Ok(Decision::Pass),
        WitDecision::ServeStatic(mount) => {
            if mount.is_empty() {
                return Err(invalid("serve-static names no mount"));
            }
            Ok(Decision::ServeStatic(mount))
        }
        WitDecision::Forward(WitForward { upstream, path, set_headers, remove_headers }) => {
            if upstream.is_empty() {
                return Err(invalid("forward names no upstream"));
            }
            if let Some(p) = &path {
                check_path(p)?;
            }
            check_headers("set-headers", &set_headers)?;
            let mut size = 0usize;
            for name in &remove_headers {
                check_name("remove-headers", name)?;
                size += name.len();
            }
            if size > PLUGIN_MAX_REPLY_BYTES {
                return Err(invalid(format!("remove-headers list is {size} bytes, over {PLUGIN_MAX_REPLY_BYTES}")));
            }
            Ok(Decision::Forward(Forward { upstream, path, set_headers, remove_headers }))
        }
        WitDecision::Reply(WitReply { status, headers, body }) => {
            if !(100..=599).contains(&status) {
                return Err(invalid(format!("reply status {status} is not in 100..=599")));
            }
            check_headers("reply headers", &headers)?;
            if body.len() > PLUGIN_MAX_REPLY_BYTES {
                return Err(invalid(format!("reply body is {} bytes, over {PLUGIN_MAX_REPLY_BYTES}", body.len())));
            }
            Ok(Decision::Reply(Reply { status, headers, body }))
        }
        WitDecision::Refuse(r) => Ok(Decision::Refuse(refusal(r)?)),
    }
}

pub(crate) fn refusal(r: WitRefusal) -> Result<Refusal, PolicyFailure> {
    match r {
        WitRefusal::LoginRequired(url) => {
            if url.is_empty() || http::HeaderValue::from_str(&url).is_err() {
                return Err(invalid(format!("login-required URL {:?} is not a valid Location", truncated(&url))));
            }
            Ok(Refusal::LoginRequired(bounded("login-required URL", url)?))
        }
        WitRefusal::Forbidden(reason) => Ok(Refusal::Forbidden(bounded("forbidden reason", reason)?)),
    }
}

/// `text`, unless it is over the limit.
pub(crate) fn bounded(what: &str, text: String) -> Result<String, PolicyFailure> {
    if text.len() > PLUGIN_MAX_REPLY_BYTES {
        return Err(invalid(format!("{what} of {} bytes, over {PLUGIN_MAX_REPLY_BYTES}", text.len())));
    }
    Ok(text)
}

/// A list of name/value pairs, unless it is over the limit in all.
pub(crate) fn check_fields(what: &str, fields: &[(String, String)]) -> Result<(), PolicyFailure> {
    let size: usize = fields.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > PLUGIN_MAX_REPLY_BYTES {
        return Err(invalid(format!("{what} fields of {size} bytes, over {PLUGIN_MAX_REPLY_BYTES}")));
    }
    Ok(())
}

fn truncated(s: &str) -> String {
    s.chars().take(200).collect()
}

fn invalid(msg: impl Into<String>) -> PolicyFailure {
    PolicyFailure::Invalid(msg.into())
}

fn check_name(what: &str, name: &str) -> Result<(), PolicyFailure> {
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(invalid(format!("{what}: {name:?} is not a valid header name")));
    }
    Ok(())
}

fn check_headers(what: &str, headers: &[(String, String)]) -> Result<(), PolicyFailure> {
    let mut size = 0usize;
    for (name, value) in headers {
        check_name(what, name)?;
        if http::HeaderValue::from_str(value).is_err() {
            return Err(invalid(format!("{what}: the value of {name:?} is not a valid header value")));
        }
        size += name.len() + value.len();
    }
    if size > PLUGIN_MAX_REPLY_BYTES {
        return Err(invalid(format!("{what} are {size} bytes, over {PLUGIN_MAX_REPLY_BYTES}")));
    }
    Ok(())
}

fn check_path(p: &str) -> Result<(), PolicyFailure> {
    let ok = p.starts_with('/')
        && !p.starts_with("//")
        && p.len() <= PLUGIN_MAX_REPLY_BYTES
        && p.parse::<http::uri::PathAndQuery>().is_ok_and(|pq| pq.as_str() == p);
    if !ok {
        return Err(invalid(format!("forward path {:?} is not an origin-form path", truncated(p))));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, headers: Vec<(&str, &str)>, body: usize) -> WitDecision {
        WitDecision::Reply(WitReply {
            status,
            headers: headers.into_iter().map(|(a, b)| (a.to_owned(), b.to_owned())).collect(),
            body: vec![b'x'; body],
        })
    }

    fn forward(path: Option<&str>, set: Vec<(&str, &str)>, remove: Vec<&str>) -> WitDecision {
        WitDecision::Forward(WitForward {
            upstream: "django".into(),
            path: path.map(str::to_owned),
            set_headers: set.into_iter().map(|(a, b)| (a.to_owned(), b.to_owned())).collect(),
            remove_headers: remove.into_iter().map(str::to_owned).collect(),
        })
    }

    #[test]
    fn checks() {
        let login = |url: &str| WitDecision::Refuse(WitRefusal::LoginRequired(url.into()));
        assert_eq!(
            convert(login("/admin/login/")),
            Ok(Decision::Refuse(Refusal::LoginRequired("/admin/login/".into())))
        );
        assert!(convert(login("")).is_err());
        assert!(convert(login("/login\r\nSet-Cookie: x=1")).is_err());
        assert!(convert(WitDecision::Refuse(WitRefusal::Forbidden("x".repeat(PLUGIN_MAX_REPLY_BYTES + 1)))).is_err());
        assert!(convert(reply(200, vec![("content-type", "text/plain")], 10)).is_ok());
        assert!(convert(reply(99, vec![], 0)).is_err());
        assert!(convert(reply(600, vec![], 0)).is_err());
        assert!(convert(reply(599, vec![], 0)).is_ok());
        assert!(convert(reply(200, vec![("bad name", "x")], 0)).is_err());
        assert!(convert(reply(200, vec![("x", "a\r\nb")], 0)).is_err());
        assert!(convert(reply(200, vec![], PLUGIN_MAX_REPLY_BYTES + 1)).is_err());
        assert!(convert(forward(Some("/api/x?y=1"), vec![("x-a", "1")], vec!["cookie"])).is_ok());
        assert!(convert(forward(Some("api"), vec![], vec![])).is_err());
        assert!(convert(forward(Some("//evil.example/"), vec![], vec![])).is_err());
        assert!(convert(forward(Some("/a b"), vec![], vec![])).is_err());
        assert!(convert(forward(None, vec![], vec!["bad name"])).is_err());
        assert!(convert(WitDecision::ServeStatic(String::new())).is_err());
        assert_eq!(convert(WitDecision::Pass), Ok(Decision::Pass));
    }
}
