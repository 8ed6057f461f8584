//! A guest's decision, checked and turned into `crate::policy::Decision`.
//!
//! Refused (`PolicyFailure::Invalid`): a reply status outside 100..=599, a header name
//! or value that is not valid HTTP, a reply body or a header list larger than
//! `limits::PLUGIN_MAX_REPLY_BYTES`, a replacement path that is not an origin-form
//! path (`/…`, optional `?query`), an empty upstream or static mount name. Whether
//! the named upstream or mount exists is for the dispatcher (502 / 500).

use crate::limits::PLUGIN_MAX_REPLY_BYTES;
use crate::policy::{Decision, Forward, PolicyFailure, Reply};

use super::bindings::{WitDecision, WitForward, WitReply};

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
    }
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
        let shown: String = p.chars().take(200).collect();
        return Err(invalid(format!("forward path {shown:?} is not an origin-form path")));
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
