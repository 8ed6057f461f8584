//! The request's host, settled before anything reads it (RFC 9112 §3.2 and §3.2.2, RFC
//! 9113 §8.3.1): an HTTP/1.1 request has exactly one valid Host; an absolute-form
//! target's authority replaces Host; an HTTP/2 request whose Host differs from its
//! `:authority` is refused. After it, the host routers decide on, the one
//! `X-Forwarded-Host` names and the one the upstream is sent are the same.

use http::header::HOST;
use http::uri::Authority;
use http::{HeaderValue, Request, Version};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("an HTTP/1.1 request needs a Host header")]
    Missing,
    #[error("more than one Host header")]
    Several,
    #[error("Host is not host[:port]")]
    Invalid,
    #[error("the target's authority holds user information")]
    UserInfo,
    #[error("Host differs from the request's :authority")]
    Conflicting,
}

/// Check and settle the host of `req` (see the module's doc).
pub fn settle<B>(req: &mut Request<B>) -> Result<(), HostError> {
    let target = req.uri().authority().cloned();
    if target.as_ref().is_some_and(|a| a.as_str().contains('@')) {
        return Err(HostError::UserInfo);
    }
    let mut fields = req.headers().get_all(HOST).iter();
    let host = fields.next().cloned();
    if fields.next().is_some() {
        return Err(HostError::Several);
    }
    if let Some(host) = &host {
        check(host)?;
    }
    match (req.version(), target, host) {
        (Version::HTTP_2 | Version::HTTP_3, Some(target), Some(host))
            if !target.as_str().eq_ignore_ascii_case(host.to_str().unwrap_or_default()) =>
        {
            return Err(HostError::Conflicting);
        }
        (Version::HTTP_2 | Version::HTTP_3, ..) => {}
        // Absolute form: the target's authority is the host, whatever Host said.
        (_, Some(target), _) => {
            let value = HeaderValue::from_str(target.as_str()).map_err(|_| HostError::Invalid)?;
            req.headers_mut().insert(HOST, value);
        }
        (Version::HTTP_11, None, None) => return Err(HostError::Missing),
        _ => {}
    }
    Ok(())
}

/// `uri-host [ ":" port ]`, nothing else: no user information, path, query or spaces.
fn check(host: &HeaderValue) -> Result<(), HostError> {
    let text = host.to_str().map_err(|_| HostError::Invalid)?;
    let authority: Authority = text.parse().map_err(|_| HostError::Invalid)?;
    let port = &text[authority.host().len()..];
    let port_ok = port.is_empty() || port.strip_prefix(':').is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if text.contains('@') || !port_ok {
        return Err(HostError::Invalid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, target: &str, hosts: &[&str]) -> Request<()> {
        let mut builder = Request::get(target).version(version);
        for host in hosts {
            builder = builder.header(HOST, *host);
        }
        builder.body(()).unwrap()
    }

    fn settled(version: Version, target: &str, hosts: &[&str]) -> Result<Option<String>, HostError> {
        let mut req = request(version, target, hosts);
        settle(&mut req)?;
        Ok(req.headers().get(HOST).map(|h| h.to_str().unwrap().to_owned()))
    }

    #[test]
    fn http1_needs_exactly_one_valid_host() {
        assert_eq!(settled(Version::HTTP_11, "/", &["app.test"]), Ok(Some("app.test".into())));
        assert_eq!(settled(Version::HTTP_11, "/", &["[::1]:3000"]), Ok(Some("[::1]:3000".into())));
        assert_eq!(settled(Version::HTTP_11, "/", &[]), Err(HostError::Missing));
        assert_eq!(settled(Version::HTTP_10, "/", &[]), Ok(None), "HTTP/1.0 may omit it");
        assert_eq!(settled(Version::HTTP_11, "/", &["app.test", "other.test"]), Err(HostError::Several));
        for bad in ["", "user@app.test", "app.test/evil", "app.test:abc", "app.test?x", "a b"] {
            assert_eq!(settled(Version::HTTP_11, "/", &[bad]), Err(HostError::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn an_absolute_target_names_the_host() {
        assert_eq!(settled(Version::HTTP_11, "http://other.test/x", &["app.test"]), Ok(Some("other.test".into())));
        assert_eq!(settled(Version::HTTP_11, "http://other.test:8080/x", &[]), Ok(Some("other.test:8080".into())));
        assert_eq!(settled(Version::HTTP_11, "http://user@app.test/x", &["app.test"]), Err(HostError::UserInfo));
    }

    #[test]
    fn http2_host_must_agree_with_the_authority() {
        assert_eq!(settled(Version::HTTP_2, "https://app.test/", &["App.Test"]), Ok(Some("App.Test".into())));
        assert_eq!(settled(Version::HTTP_2, "https://app.test/", &[]), Ok(None));
        assert_eq!(settled(Version::HTTP_2, "https://app.test/", &["other.test"]), Err(HostError::Conflicting));
    }
}
