//! One message on the channel: a login or logout one gateway saw, as a line of text
//! (readable with `redis-cli SUBSCRIBE`):
//!
//! `isthmus1 FROM SESSION BROWSER DELETED MAC`
//!
//! FROM is the sender's id (16 random bytes at start: each gateway skips its own
//! messages). SESSION and BROWSER are the digests of the session value the request
//! carried and of its browser id (`identity::keys`), `-` when it had none. DELETED is
//! `1` when the response only deleted the session cookie (a logout), else `0`. MAC signs
//! everything before it with HMAC-SHA256 under `bridge.identity_secret`, labelled apart
//! from the digests: a message from outside the site's gateways is refused, and a real
//! one cannot be altered. Binary fields are base64url without padding.
//!
//! Replaying a real message is possible for whoever can publish; it only does again
//! what it did: cached identities of a session that already changed are fetched anew,
//! and pages are asked to re-read the session their own browser holds.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::PeersError;

const VERSION: &str = "isthmus1";
/// Put before the signed text: the same secret keys the digests under another label.
const LABEL: &[u8] = b"isthmus peer message v1\0";

/// A login or logout, by digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub session: Option<[u8; 32]>,
    pub browser: Option<[u8; 32]>,
    pub deleted: bool,
}

/// Writes and reads this gateway's messages.
pub struct Wire {
    from: String,
    mac: Hmac<Sha256>,
}

impl Wire {
    /// A fresh gateway id; messages signed under `secret`.
    pub fn new(secret: &[u8]) -> Wire {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).expect("the OS random source");
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(LABEL);
        Wire { from: URL_SAFE_NO_PAD.encode(id), mac }
    }

    pub fn seal(&self, change: &Change) -> String {
        let digest = |d: Option<[u8; 32]>| d.map_or_else(|| "-".to_owned(), |d| URL_SAFE_NO_PAD.encode(d));
        let signed = format!(
            "{VERSION} {} {} {} {}",
            self.from,
            digest(change.session),
            digest(change.browser),
            u8::from(change.deleted)
        );
        let mut mac = self.mac.clone();
        mac.update(signed.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signed} {tag}")
    }

    /// The change a message tells; `None` when it is this gateway's own.
    pub fn open(&self, message: &[u8]) -> Result<Option<Change>, PeersError> {
        let text = std::str::from_utf8(message).map_err(|_| PeersError::Malformed)?;
        let (signed, tag) = text.rsplit_once(' ').ok_or(PeersError::Malformed)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| PeersError::Malformed)?;
        let mut mac = self.mac.clone();
        mac.update(signed.as_bytes());
        mac.verify_slice(&tag).map_err(|_| PeersError::Forged)?;
        let fields: Vec<&str> = signed.split(' ').collect();
        let [VERSION, from, session, browser, deleted] = fields[..] else { return Err(PeersError::Malformed) };
        if from == self.from {
            return Ok(None);
        }
        let digest = |field: &str| -> Result<Option<[u8; 32]>, PeersError> {
            if field == "-" {
                return Ok(None);
            }
            let bytes = URL_SAFE_NO_PAD.decode(field).map_err(|_| PeersError::Malformed)?;
            bytes.try_into().map(Some).map_err(|_| PeersError::Malformed)
        };
        let deleted = match deleted {
            "0" => false,
            "1" => true,
            _ => return Err(PeersError::Malformed),
        };
        Ok(Some(Change { session: digest(session)?, browser: digest(browser)?, deleted }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a site's identity secret, 32 chars or more";

    #[test]
    fn a_message_reads_back_on_another_gateway_and_is_skipped_by_its_sender() {
        let (a, b) = (Wire::new(SECRET), Wire::new(SECRET));
        let change = Change { session: Some([7; 32]), browser: None, deleted: true };
        let sealed = a.seal(&change);
        assert!(sealed.starts_with("isthmus1 ") && sealed.contains(" - 1 "), "{sealed}");
        assert_eq!(b.open(sealed.as_bytes()).unwrap(), Some(change));
        assert_eq!(a.open(sealed.as_bytes()).unwrap(), None, "its own");
    }

    #[test]
    fn altered_foreign_and_malformed_messages_are_refused() {
        let (a, b) = (Wire::new(SECRET), Wire::new(SECRET));
        let sealed = a.seal(&Change { session: Some([7; 32]), browser: Some([9; 32]), deleted: false });
        let flipped = sealed.replacen(" 0 ", " 1 ", 1);
        assert!(matches!(b.open(flipped.as_bytes()), Err(PeersError::Forged)), "a logout made of a login");
        let other_site = Wire::new(b"another site's secret, 32 chars or more");
        assert!(matches!(other_site.open(sealed.as_bytes()), Err(PeersError::Forged)));
        for junk in [&b""[..], b"hello", b"isthmus1 x", b"\xff\xfe", b"isthmus1 a b c d e f"] {
            assert!(matches!(b.open(junk), Err(PeersError::Malformed | PeersError::Forged)), "{junk:?}");
        }
    }
}
