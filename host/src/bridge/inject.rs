//! The identity the gateway vouches for, injected into an event's `router_data`
//! under one key and signed with HMAC-SHA256, so the Reflex process can tell it from
//! anything a client wrote. Any copy of the key sent by the client is removed first.
//!
//! Value: `{"payload": "<JSON text>", "sig": "<hex HMAC of the payload text>"}`;
//! payload: `{"v":1,"iat":<unix s>,"identity":{…},"query":{…},"context":{…}}`.
//! Verified by `isthmus_reflex.verify_injection` (python/).

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

pub struct Injector {
    key: Hmac<Sha256>,
    field: String,
}

impl Injector {
    pub fn new(secret: &[u8], field: &str) -> Injector {
        Injector { key: Hmac::new_from_slice(secret).expect("HMAC takes keys of any length"), field: field.to_owned() }
    }

    /// Replace whatever the client put under the key with the signed identity.
    /// `event` must be a Reflex event object (`{"name", "payload", "router_data"}`).
    pub fn apply(&self, event: &mut Map<String, Value>, identity_json: &str, context: &[(String, String)]) {
        let router_data = event.entry("router_data").or_insert_with(|| Value::Object(Map::new()));
        if !router_data.is_object() {
            *router_data = Value::Object(Map::new());
        }
        let router_data = router_data.as_object_mut().expect("made an object above");
        router_data.remove(&self.field);
        let query = query_of(router_data);
        let signed = self.sign(identity_json, &query, context, unix_now());
        router_data.insert(self.field.clone(), signed);
    }

    /// Remove the key from a client's `router_data` without injecting (refused events).
    pub fn strip(&self, event: &mut Map<String, Value>) {
        if let Some(Value::Object(router_data)) = event.get_mut("router_data") {
            router_data.remove(&self.field);
        }
    }

    pub fn sign(&self, identity_json: &str, query: &Map<String, Value>, context: &[(String, String)], iat: u64) -> Value {
        let context: Map<String, Value> = context.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        let payload = format!(
            r#"{{"v":1,"iat":{iat},"identity":{identity_json},"query":{},"context":{}}}"#,
            Value::Object(query.clone()),
            Value::Object(context)
        );
        let mut mac = self.key.clone();
        mac.update(payload.as_bytes());
        let sig = hex(&mac.finalize().into_bytes());
        let mut out = Map::new();
        out.insert("payload".into(), Value::String(payload));
        out.insert("sig".into(), Value::String(sig));
        Value::Object(out)
    }
}

/// The page's query as string → string (a list's last value wins), from `router_data.query`.
fn query_of(router_data: &Map<String, Value>) -> Map<String, Value> {
    let Some(Value::Object(query)) = router_data.get("query") else {
        return Map::new();
    };
    query
        .iter()
        .filter_map(|(k, v)| {
            let v = match v {
                Value::Array(items) => items.last()?.clone(),
                v => v.clone(),
            };
            let text = match v {
                Value::String(s) => s,
                Value::Null => return None,
                other => other.to_string(),
            };
            Some((k.clone(), Value::String(text)))
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
    use serde_json::json;

    #[test]
    fn a_client_copy_is_replaced_by_the_signed_identity() {
        let injector = Injector::new(b"secret", "isthmus");
        let mut event = json!({"name": "s.x", "payload": {}, "router_data": {
            "pathname": "/", "query": {"page": "2", "tags": ["a", "b"], "n": 3},
            "isthmus": {"payload": "{\"identity\":{\"is_superuser\":true}}", "sig": "forged"}
        }});
        injector.apply(event.as_object_mut().unwrap(), r#"{"authenticated":false}"#, &[("rule".into(), "0".into())]);
        let signed = &event["router_data"]["isthmus"];
        let payload = signed["payload"].as_str().unwrap();
        let parsed: Value = serde_json::from_str(payload).unwrap();
        assert_eq!(parsed["identity"], json!({"authenticated": false}));
        assert_eq!(parsed["query"], json!({"page": "2", "tags": "b", "n": "3"}));
        assert_eq!(parsed["context"], json!({"rule": "0"}));
        assert_eq!(parsed["v"], 1);
        assert_ne!(signed["sig"], "forged");
        assert_eq!(event["router_data"]["pathname"], "/", "other keys stay");
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_payload_text() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(hex(&mac.finalize().into_bytes()), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        let injector = Injector::new(b"k", "isthmus");
        let signed = injector.sign("{}", &Map::new(), &[], 1700000000);
        assert_eq!(signed["payload"], r#"{"v":1,"iat":1700000000,"identity":{},"query":{},"context":{}}"#);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k").unwrap();
        mac.update(signed["payload"].as_str().unwrap().as_bytes());
        assert_eq!(signed["sig"], hex(&mac.finalize().into_bytes()));
    }

    #[test]
    fn missing_or_odd_router_data_is_made_whole() {
        let injector = Injector::new(b"k", "isthmus");
        for mut event in [json!({"name": "x"}), json!({"name": "x", "router_data": 5})] {
            injector.apply(event.as_object_mut().unwrap(), "{}", &[]);
            assert!(event["router_data"]["isthmus"]["sig"].is_string());
        }
        let mut event = json!({"name": "x", "router_data": {"isthmus": 1, "pathname": "/"}});
        injector.strip(event.as_object_mut().unwrap());
        assert_eq!(event["router_data"], json!({"pathname": "/"}));
    }
}
