//! The identity the gateway vouches for, injected into an event's `router_data`
//! under one key and signed with HMAC-SHA256, so the Reflex process can tell it from
//! anything a client wrote. Any copy of the key sent by the client is removed first.
//!
//! Value: `{"payload": "<JSON text>", "sig": "<hex HMAC of the payload text>"}`;
//! payload: `{"v":1,"iat":<unix s>,"identity":{…},"query":{…},"context":{…}}`.
//! Verified by `isthmus_reflex.verify_injection` (python/).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::Sha256;

use super::raw::push_json_string;
use crate::policy::Resolved;

pub struct Injector {
    key: Hmac<Sha256>,
    field: String,
}

/// The value a connection last injected, reused for its next events while the identity,
/// the page's query, the policy's context and the second are the same: signing a staff
/// member's identity (hundreds of permissions) is a few kilobytes to escape and hash.
pub struct LastSigned {
    who: Arc<Resolved>,
    query: String,
    context: Vec<(String, String)>,
    iat: u64,
    text: String,
}

impl Injector {
    pub fn new(secret: &[u8], field: &str) -> Injector {
        Injector { key: Hmac::new_from_slice(secret).expect("HMAC takes keys of any length"), field: field.to_owned() }
    }

    /// The `router_data` key the signed identity goes under (and client copies are removed from).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The JSON text to inject for `who` on a page with `router_data.query` = `query`.
    pub fn signed<'l>(
        &self,
        last: &'l mut Option<LastSigned>,
        who: &Arc<Resolved>,
        query: Option<&RawValue>,
        context: Vec<(String, String)>,
    ) -> &'l str {
        let iat = unix_now();
        let query_text = query.map_or("", RawValue::get);
        let reusable = last
            .as_ref()
            .is_some_and(|l| l.iat == iat && Arc::ptr_eq(&l.who, who) && l.query == query_text && l.context == context);
        if !reusable {
            let text = self.sign(&who.json, &query_of(query), &context, iat);
            *last = Some(LastSigned { who: who.clone(), query: query_text.to_owned(), context, iat, text });
        }
        &last.as_ref().expect("set above").text
    }

    /// `{"payload":"<payload JSON text>","sig":"<hex HMAC-SHA256 of it>"}`.
    pub fn sign(
        &self,
        identity_json: &str,
        query: &Map<String, Value>,
        context: &[(String, String)],
        iat: u64,
    ) -> String {
        let context: Map<String, Value> = context.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        let payload = format!(
            r#"{{"v":1,"iat":{iat},"identity":{identity_json},"query":{},"context":{}}}"#,
            Value::Object(query.clone()),
            Value::Object(context)
        );
        let mut mac = self.key.clone();
        mac.update(payload.as_bytes());
        let sig = hex(&mac.finalize().into_bytes());
        let mut out = String::with_capacity(payload.len() * 5 / 4 + sig.len() + 24);
        out.push_str(r#"{"payload":"#);
        push_json_string(&mut out, &payload);
        out.push_str(r#","sig":""#);
        out.push_str(&sig);
        out.push_str(r#""}"#);
        out
    }
}

/// The page's query as string → string (a list's last value wins), from `router_data.query`.
fn query_of(query: Option<&RawValue>) -> Map<String, Value> {
    let Some(Ok(Value::Object(query))) = query.map(|q| serde_json::from_str(q.get())) else {
        return Map::new();
    };
    query
        .into_iter()
        .filter_map(|(k, v)| {
            let v = match v {
                Value::Array(mut items) => items.pop()?,
                v => v,
            };
            let text = match v {
                Value::String(s) => s,
                Value::Null => return None,
                other => other.to_string(),
            };
            Some((k, Value::String(text)))
        })
        .collect()
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Identity;
    use serde_json::json;

    fn raw(text: &str) -> &RawValue {
        serde_json::from_str(text).unwrap()
    }

    fn user(name: &str) -> Arc<Resolved> {
        Resolved::new(Identity { authenticated: true, username: name.into(), ..Identity::default() })
    }

    #[test]
    fn the_payload_carries_identity_query_and_context() {
        let injector = Injector::new(b"secret", "isthmus");
        let query = raw(r#"{"page": "2", "tags": ["a", "b"], "n": 3, "gone": null}"#);
        let mut last = None;
        let signed: Value = serde_json::from_str(injector.signed(
            &mut last,
            &user("ann"),
            Some(query),
            vec![("rule".into(), "0".into())],
        ))
        .unwrap();
        let parsed: Value = serde_json::from_str(signed["payload"].as_str().unwrap()).unwrap();
        assert_eq!(parsed["identity"]["username"], "ann");
        assert_eq!(parsed["query"], json!({"page": "2", "tags": "b", "n": "3"}));
        assert_eq!(parsed["context"], json!({"rule": "0"}));
        assert_eq!(parsed["v"], 1);
        assert!(signed["sig"].as_str().unwrap().len() == 64);
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_payload_text() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let injector = Injector::new(b"k", "isthmus");
        let signed: Value = serde_json::from_str(&injector.sign("{}", &Map::new(), &[], 1700000000)).unwrap();
        assert_eq!(signed["payload"], r#"{"v":1,"iat":1700000000,"identity":{},"query":{},"context":{}}"#);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k").unwrap();
        mac.update(signed["payload"].as_str().unwrap().as_bytes());
        assert_eq!(signed["sig"], hex(&mac.finalize().into_bytes()));
    }

    #[test]
    fn django_s_session_reference_is_carried_as_it_came_and_only_when_there_is_one() {
        let injector = Injector::new(b"k", "isthmus");
        let payload_of = |who: Identity| -> Value {
            let signed: Value =
                serde_json::from_str(injector.signed(&mut None, &Resolved::new(who), None, vec![])).unwrap();
            serde_json::from_str(signed["payload"].as_str().unwrap()).unwrap()
        };
        let from_django: Identity =
            serde_json::from_str(r#"{"authenticated":false,"user_id":null,"session_ref":"v1.sealed-by-django"}"#)
                .unwrap();
        assert_eq!(payload_of(from_django)["identity"]["session_ref"], "v1.sealed-by-django");
        let without = payload_of(Identity::default());
        assert!(without["identity"].get("session_ref").is_none(), "no member when Django sent none");
    }

    #[test]
    fn a_signature_is_reused_only_while_everything_it_covers_is_unchanged() {
        let injector = Injector::new(b"k", "isthmus");
        let (ann, bob) = (user("ann"), user("bob"));
        let q1 = raw(r#"{"p":"1"}"#);
        let mut last = None;
        let mut sign = |who: &Arc<Resolved>, q: &RawValue, rule: &str| -> String {
            injector.signed(&mut last, who, Some(q), vec![("rule".into(), rule.into())]).to_owned()
        };
        let first = sign(&ann, q1, "0");
        // The second may have turned between two calls: retry until both land in one.
        let same = (0..5).any(|_| sign(&ann, q1, "0") == sign(&ann, q1, "0"));
        assert!(same, "reused within a second");
        let payload = |text: &str| serde_json::from_str::<Value>(text).unwrap()["payload"].as_str().unwrap().to_owned();
        assert!(payload(&sign(&bob, q1, "0")).contains(r#""username":"bob""#), "another identity is signed afresh");
        assert!(payload(&sign(&ann, raw(r#"{"p":"2"}"#), "0")).contains(r#""query":{"p":"2"}"#), "another query too");
        assert!(payload(&sign(&ann, q1, "3")).contains(r#""context":{"rule":"3"}"#), "and another context");
        assert!(payload(&first).contains(r#""username":"ann""#));
    }
}
