//! JSON objects read without building a tree: members as raw slices of the client's
//! text, written back with one member replaced, added or removed. The bridge judges and
//! rewrites every event this way instead of parsing and re-serialising all of it.
//!
//! Keys are decoded and the last of duplicate keys wins, as with Python's `json.loads`
//! (what Reflex reads events with), so the gateway judges exactly what a handler will
//! see; each key is written once.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::value::RawValue;

pub struct RawObject<'a>(BTreeMap<String, &'a RawValue>);

impl<'a> RawObject<'a> {
    /// `None` when `raw` is not a JSON object.
    pub fn parse(raw: &'a RawValue) -> Option<RawObject<'a>> {
        if !raw.get().starts_with('{') {
            return None;
        }
        serde_json::from_str(raw.get()).ok().map(RawObject)
    }

    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.get(key).copied()
    }

    /// A member's value when it is a JSON string.
    pub fn str(&self, key: &str) -> Option<Cow<'a, str>> {
        self.get(key).and_then(string)
    }

    /// Write the object with each member of `set` given the raw JSON value, or left out
    /// (`None`); the set members come last, in `set`'s order.
    pub fn write_with(&self, out: &mut String, set: &[(&str, Option<&str>)]) {
        out.push('{');
        let mut first = true;
        let mut member = |out: &mut String, k: &str, v: &str| {
            if !first {
                out.push(',');
            }
            first = false;
            push_json_string(out, k);
            out.push(':');
            out.push_str(v);
        };
        for (k, v) in &self.0 {
            if !set.iter().any(|(key, _)| key == k) {
                member(out, k, v.get());
            }
        }
        for (key, value) in set {
            if let Some(value) = value {
                member(out, key, value);
            }
        }
        out.push('}');
    }
}

/// A raw JSON value's text when it is a string, decoded (borrowed when it has no escapes).
pub fn string(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(text).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// Append `s` as a JSON string literal.
pub fn push_json_string(out: &mut String, s: &str) {
    if s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(&serde_json::to_string(s).expect("strings serialize"));
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn raw(text: &str) -> &RawValue {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn duplicate_keys_last_wins_and_escaped_keys_are_decoded() {
        let obj = RawObject::parse(raw(r#"{"name":"a","n\u0061me":"b","x":[1, 2]}"#)).unwrap();
        assert_eq!(obj.str("name").as_deref(), Some("b"), "as Python's json.loads");
        let mut out = String::new();
        obj.write_with(&mut out, &[("y", Some("true"))]);
        assert_eq!(out, r#"{"name":"b","x":[1, 2],"y":true}"#, "each key once, values as written");
        let back: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back["name"], "b");
    }

    #[test]
    fn members_are_replaced_or_removed() {
        let obj = RawObject::parse(raw(r#"{"a":1,"b":{"c":2}}"#)).unwrap();
        let mut out = String::new();
        obj.write_with(&mut out, &[("a", Some(r#""new""#))]);
        assert_eq!(out, r#"{"b":{"c":2},"a":"new"}"#);
        out.clear();
        obj.write_with(&mut out, &[("a", None)]);
        assert_eq!(out, r#"{"b":{"c":2}}"#);
        out.clear();
        RawObject::parse(raw("{}")).unwrap().write_with(&mut out, &[("k", Some("1"))]);
        assert_eq!(out, r#"{"k":1}"#);
        out.clear();
        obj.write_with(&mut out, &[("b", Some("2")), ("gone", None), ("a", Some("3"))]);
        assert_eq!(out, r#"{"b":2,"a":3}"#, "several at once, in the order given");
    }

    #[test]
    fn non_objects_and_strings() {
        for text in ["[]", "1", r#""{}""#, "null"] {
            assert!(RawObject::parse(raw(text)).is_none(), "{text}");
        }
        assert_eq!(string(raw(r#""plain""#)).unwrap(), Cow::Borrowed("plain"));
        assert_eq!(string(raw(r#""tab\tand \"quote\"""#)).unwrap(), "tab\tand \"quote\"");
        assert_eq!(string(raw("5")), None);
        let mut out = String::new();
        push_json_string(&mut out, "a\"b\n");
        push_json_string(&mut out, "plain");
        assert_eq!(out, r#""a\"b\n""plain""#);
    }
}
