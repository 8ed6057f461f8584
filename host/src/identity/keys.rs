//! What the identity cache and the open pages are found by: a session or browser
//! cookie's value, or, when the gateway shares Redis with others (`[redis]`), a keyed
//! digest of it. A digest is what gateways tell each other (`peers`), so Redis never
//! carries a usable session id nor a browser id: HMAC-SHA256 under
//! `bridge.identity_secret`, which every gateway of a site shares with Django anyway.
//! Keyed rather than a bare SHA-256, so that whoever reads or writes the channel can
//! neither test a guessed or stolen session value against it nor name one it does not
//! already see there.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Put before each value: the same secret signs the peers' messages under another
/// label, so no digest can pass for a signature.
const LABEL: &[u8] = b"isthmus cookie digest v1\0";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// The value itself (one gateway alone).
    Value(Box<str>),
    /// Its digest (`[redis]`).
    Digest([u8; 32]),
}

impl Key {
    /// The digest, as told to other gateways; `None` for a plain value.
    pub fn digest(&self) -> Option<[u8; 32]> {
        match self {
            Key::Digest(d) => Some(*d),
            Key::Value(_) => None,
        }
    }
}

/// How values become keys: the same way for every map of one gateway.
#[derive(Clone)]
pub struct Keys {
    mac: Option<Hmac<Sha256>>,
}

impl Keys {
    /// Values are their own keys.
    pub fn plain() -> Keys {
        Keys { mac: None }
    }

    /// Values are found by their digest under `secret`.
    pub fn digested(secret: &[u8]) -> Keys {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(LABEL);
        Keys { mac: Some(mac) }
    }

    pub fn of(&self, value: &str) -> Key {
        match &self.mac {
            None => Key::Value(value.into()),
            Some(mac) => {
                let mut mac = mac.clone();
                mac.update(value.as_bytes());
                Key::Digest(mac.finalize().into_bytes().into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_depend_on_the_value_and_the_secret_and_never_show_the_value() {
        let a = Keys::digested(b"one secret, at least thirty-two characters");
        let b = Keys::digested(b"another secret, at least thirty-two characters");
        assert_eq!(a.of("abc"), a.of("abc"));
        assert_ne!(a.of("abc"), a.of("abd"));
        assert_ne!(a.of("abc"), b.of("abc"), "keyed: another site's digest differs");
        let Key::Digest(d) = a.of("abc") else { panic!("a digest") };
        assert!(!d.windows(3).any(|w| w == b"abc"));
        assert_eq!(Keys::plain().of("abc"), Key::Value("abc".into()));
        assert_eq!(Keys::plain().of("abc").digest(), None);
    }
}
