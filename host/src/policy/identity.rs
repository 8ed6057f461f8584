//! The Django user a policy is lent (`isthmus:policy/users.identity`): what the
//! companion app's identity endpoint answers, and what every call needs of it,
//! computed once per fetch.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// What the companion app's identity endpoint answers (python/README.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub authenticated: bool,
    pub user_id: Option<String>,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub is_staff: bool,
    #[serde(default)]
    pub is_superuser: bool,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Whitelisted session keys; values are JSON texts.
    #[serde(default)]
    pub session: BTreeMap<String, String>,
    /// The language Django would activate for this browser ("" when the endpoint
    /// did not say: the Reflex companion then decides from the handshake's headers).
    #[serde(default)]
    pub language: String,
    /// The user's time zone name ("" for Django's default).
    #[serde(default)]
    pub timezone: String,
    /// Django's sealed reference to this session (`isthmus_django.session_write`): carried
    /// into the signed payload untouched, so a handler can write whitelisted keys back
    /// through Django without the Reflex process ever learning the session key. Policies
    /// are not lent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_ref: Option<String>,
}

/// An identity with what every event needs of it, computed once per fetch: its JSON
/// form (signed into events) and its permissions as a set (asked by policies).
#[derive(Debug)]
pub struct Resolved {
    pub identity: Identity,
    pub json: String,
    permissions: HashSet<String>,
}

impl Resolved {
    pub fn new(identity: Identity) -> Arc<Resolved> {
        let json = serde_json::to_string(&identity).expect("identity serializes");
        let permissions = identity.permissions.iter().cloned().collect();
        Arc::new(Resolved { identity, json, permissions })
    }

    pub fn has_permission(&self, perm: &str) -> bool {
        self.permissions.contains(perm)
    }

    pub fn anonymous() -> Arc<Resolved> {
        Resolved::new(Identity::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_without_language_and_timezone_still_parses() {
        let old = r#"{"authenticated":true,"user_id":"7","username":"alice"}"#;
        let identity: Identity = serde_json::from_str(old).unwrap();
        assert_eq!((identity.language.as_str(), identity.timezone.as_str()), ("", ""));
    }

    #[test]
    fn language_and_timezone_survive_into_the_signed_json() {
        let new = r#"{"authenticated":false,"user_id":null,"language":"fr","timezone":"Europe/Paris"}"#;
        let resolved = Resolved::new(serde_json::from_str(new).unwrap());
        let back: serde_json::Value = serde_json::from_str(&resolved.json).unwrap();
        assert_eq!(back["language"], "fr");
        assert_eq!(back["timezone"], "Europe/Paris");
    }
}
