//! A Django response saying "I wrote this session": the companion's session-write view
//! (`isthmus_django.session_write`, a Reflex handler's `update_session`) answers with
//! `X-Isthmus-Session-Written: <the session key, sealed>`, so the gateway that passed
//! the write drops the identity it cached for that session (and tells the other
//! gateways) and the next event sees the new values. The key is sealed under
//! `bridge.identity_secret` (which only Django and the gateways hold): the Reflex process
//! that made the write never reads a session key, and no upstream but Django can name a
//! session here. The header is taken out of every response.
//!
//! The seal (`isthmus_django/session_ref.py`): HMAC-SHA256 as a PRF, a keystream in
//! counter mode and a tag over nonce and ciphertext, each under a key derived from the
//! secret with a label; `v1.` + base64url(16-byte nonce ‖ ciphertext ‖ 32-byte tag) of
//! `"<unix seconds>:<session key>"`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::header::HeaderName;
use sha2::Sha256;

/// The response header (removed from every response, also when it does not open).
pub static SESSION_WRITTEN: HeaderName = HeaderName::from_static("x-isthmus-session-written");

const NONCE_BYTES: usize = 16;
const TAG_BYTES: usize = 32;
/// Django seals it as it answers: an older one is a replayed response, not news.
const MAX_AGE_SECS: u64 = 120;
const MAX_FUTURE_SECS: u64 = 60;

fn derived(secret: &[u8], label: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(label);
    Hmac::new_from_slice(&mac.finalize().into_bytes()).expect("HMAC takes keys of any length")
}

/// The session key sealed in `sealed` under `secret`, if it is one and was sealed within
/// the last two minutes (`now`: unix seconds).
pub fn open(secret: &[u8], sealed: &str, now: u64) -> Option<String> {
    let raw = URL_SAFE_NO_PAD.decode(sealed.strip_prefix("v1.")?.trim_end_matches('=')).ok()?;
    if raw.len() <= NONCE_BYTES + TAG_BYTES {
        return None;
    }
    let (nonce, rest) = raw.split_at(NONCE_BYTES);
    let (cipher, tag) = rest.split_at(rest.len() - TAG_BYTES);
    let mut mac = derived(secret, b"isthmus session ref mac v1");
    mac.update(nonce);
    mac.update(cipher);
    mac.verify_slice(tag).ok()?;
    let enc = derived(secret, b"isthmus session ref enc v1");
    let mut plain = Vec::with_capacity(cipher.len());
    for (counter, chunk) in cipher.chunks(32).enumerate() {
        let mut block = enc.clone();
        block.update(nonce);
        block.update(&u32::try_from(counter).ok()?.to_be_bytes());
        plain.extend(chunk.iter().zip(block.finalize().into_bytes()).map(|(c, k)| c ^ k));
    }
    let plain = String::from_utf8(plain).ok()?;
    let (iat, key) = plain.split_once(':')?;
    let iat: u64 = iat.parse().ok()?;
    let fresh = now.saturating_sub(iat) <= MAX_AGE_SECS && iat.saturating_sub(now) <= MAX_FUTURE_SECS;
    (fresh && !key.is_empty()).then(|| key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-identity-secret-0123456789abcdefghijklmnop";
    /// `isthmus_django.session_ref.seal_session_ref("q1w2e3r4t5y6u7i8o9p0asdfghjklzxc", SECRET,
    /// now=1750000000)` with the nonce fixed to bytes 0..16 (python/tests/test_session_write.py
    /// checks the same vector).
    const VECTOR: &str = "v1.AAECAwQFBgcICQoLDA0OD0T9LK-Yp-n2KNRSFitdr98TdLsIL_M5Pv7isjHiiFa5Gl1pUuZKkyXEu_ovK3JOk1jdZ79IacKWNOcZaqpo4ZSUZFVU1JWHFTXEdg";

    #[test]
    fn django_s_seal_opens_to_the_session_key_within_its_time() {
        assert_eq!(open(SECRET, VECTOR, 1_750_000_000).as_deref(), Some("q1w2e3r4t5y6u7i8o9p0asdfghjklzxc"));
        assert_eq!(open(SECRET, VECTOR, 1_750_000_120).as_deref(), Some("q1w2e3r4t5y6u7i8o9p0asdfghjklzxc"));
        assert_eq!(open(SECRET, VECTOR, 1_750_000_121), None, "too old");
        assert_eq!(open(SECRET, VECTOR, 1_749_999_900), None, "from the future");
    }

    #[test]
    fn anything_else_opens_to_nothing() {
        let now = 1_750_000_000;
        assert_eq!(open(b"another secret, at least thirty-two characters", VECTOR, now), None);
        let mut tampered = VECTOR.to_owned();
        tampered.replace_range(40..41, if &VECTOR[40..41] == "A" { "B" } else { "A" });
        assert_eq!(open(SECRET, &tampered, now), None);
        for junk in ["", "v1.", "v2.AAAA", "v1.!!!!", "v1.AAECAwQFBgcICQoLDA0ODw", &VECTOR[3..]] {
            assert_eq!(open(SECRET, junk, now), None, "{junk}");
        }
    }
}
