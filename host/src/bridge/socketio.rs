//! Client-to-server Engine.IO v4 / Socket.IO v5 text packets, as far as the bridge
//! must understand them: CONNECT (whose auth object carries Reflex's first event)
//! and EVENT / BINARY_EVENT, which the policy judges. Everything else is relayed
//! byte for byte, unparsed.
//!
//! A Socket.IO packet inside an Engine.IO message (`4`):
//! `<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("empty frame")]
    Empty,
    #[error("unknown Engine.IO packet type `{0}`")]
    EngineType(char),
    #[error("unknown Socket.IO packet type `{0}`")]
    SocketType(char),
    #[error("malformed attachment count")]
    Attachments,
    #[error("malformed namespace")]
    Namespace,
    #[error("malformed ack id")]
    AckId,
    #[error("payload is not valid JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Shape(&'static str),
}

/// Socket.IO packet types a client may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Connect,
    Disconnect,
    Event,
    Ack,
    BinaryEvent,
    BinaryAck,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Packet {
    /// Engine.IO control (ping, pong, close, noop, upgrade) or a Socket.IO packet the
    /// bridge has no opinion on (ACK, DISCONNECT): relay untouched.
    Relay,
    /// CONNECT with its auth object, if any.
    Connect { namespace: String, auth: Option<Value> },
    /// EVENT or BINARY_EVENT: `args` is the JSON array (`["event", {…}]` for Reflex).
    Event { namespace: String, ack: Option<u64>, attachments: Option<u32>, args: Vec<Value> },
}

pub fn parse(text: &str) -> Result<Packet, PacketError> {
    let mut chars = text.chars();
    match chars.next().ok_or(PacketError::Empty)? {
        '1' | '2' | '3' | '5' | '6' => return Ok(Packet::Relay),
        '4' => {}
        c => return Err(PacketError::EngineType(c)),
    }
    let rest = chars.as_str();
    let mut chars = rest.chars();
    let kind = match chars.next() {
        Some('0') => Kind::Connect,
        Some('1') => Kind::Disconnect,
        Some('2') => Kind::Event,
        Some('3') => Kind::Ack,
        Some('5') => Kind::BinaryEvent,
        Some('6') => Kind::BinaryAck,
        Some(c) => return Err(PacketError::SocketType(c)),
        // A bare Engine.IO message carries no Socket.IO packet; the server rejects it.
        None => return Err(PacketError::Shape("empty Socket.IO packet")),
    };
    if matches!(kind, Kind::Disconnect | Kind::Ack | Kind::BinaryAck) {
        return Ok(Packet::Relay);
    }
    let mut s = chars.as_str();

    let attachments = if kind == Kind::BinaryEvent {
        let dash = s.find('-').ok_or(PacketError::Attachments)?;
        let n = s[..dash].parse::<u32>().map_err(|_| PacketError::Attachments)?;
        s = &s[dash + 1..];
        Some(n)
    } else {
        None
    };

    let namespace = if s.starts_with('/') {
        let comma = s.find(',');
        let end = comma.unwrap_or(s.len());
        let ns = &s[..end];
        if ns.bytes().any(|b| b.is_ascii_control()) {
            return Err(PacketError::Namespace);
        }
        s = comma.map_or("", |c| &s[c + 1..]);
        ns.to_owned()
    } else {
        "/".to_owned()
    };

    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let ack = if digits > 0 {
        let id = s[..digits].parse::<u64>().map_err(|_| PacketError::AckId)?;
        s = &s[digits..];
        Some(id)
    } else {
        None
    };

    match kind {
        Kind::Connect => {
            let auth = if s.is_empty() {
                None
            } else {
                let v: Value = serde_json::from_str(s).map_err(|e| PacketError::Json(e.to_string()))?;
                if !v.is_object() {
                    return Err(PacketError::Shape("CONNECT payload is not an object"));
                }
                Some(v)
            };
            Ok(Packet::Connect { namespace, auth })
        }
        _ => {
            let v: Value = serde_json::from_str(s).map_err(|e| PacketError::Json(e.to_string()))?;
            let Value::Array(args) = v else {
                return Err(PacketError::Shape("EVENT payload is not an array"));
            };
            if !args.first().is_some_and(Value::is_string) {
                return Err(PacketError::Shape("EVENT has no event name"));
            }
            Ok(Packet::Event { namespace, ack, attachments, args })
        }
    }
}

fn prefix(out: &mut String, namespace: &str) {
    if namespace != "/" {
        out.push_str(namespace);
        out.push(',');
    }
}

pub fn encode_connect(namespace: &str, auth: Option<&Value>) -> String {
    let mut out = String::from("40");
    prefix(&mut out, namespace);
    if let Some(auth) = auth {
        out.push_str(&auth.to_string());
    }
    out
}

/// A server-to-client CONNECT_ERROR: the namespace refused the connection.
pub fn connect_error(namespace: &str, message: &str) -> String {
    let mut out = String::from("44");
    prefix(&mut out, namespace);
    out.push_str(&serde_json::json!({ "message": message }).to_string());
    out
}

pub fn encode_event(namespace: &str, ack: Option<u64>, attachments: Option<u32>, args: &[Value]) -> String {
    let mut out = String::with_capacity(64);
    match attachments {
        Some(n) => {
            out.push_str("45");
            out.push_str(&n.to_string());
            out.push('-');
        }
        None => out.push_str("42"),
    }
    prefix(&mut out, namespace);
    if let Some(id) = ack {
        out.push_str(&id.to_string());
    }
    out.push_str(&serde_json::to_string(args).expect("JSON values serialize"));
    out
}

/// A server-to-client EVENT on `namespace` (used to answer refused events).
pub fn server_event(namespace: &str, args: &[Value]) -> String {
    encode_event(namespace, None, None, args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn control_packets_are_relayed() {
        for p in ["2", "3", "1", "6", "5", "41/_event,", "43/_event,1[]", "46/_event,1-1[]"] {
            assert_eq!(parse(p).unwrap(), Packet::Relay, "{p}");
        }
    }

    #[test]
    fn connect_with_the_first_event_in_auth() {
        let p = parse(r#"40/_event,{"event":{"name":"s.hydrate","payload":{},"router_data":{"pathname":"/"}}}"#).unwrap();
        let Packet::Connect { namespace, auth } = p else { panic!() };
        assert_eq!(namespace, "/_event");
        assert_eq!(auth.unwrap()["event"]["name"], "s.hydrate");
        assert_eq!(parse("40").unwrap(), Packet::Connect { namespace: "/".into(), auth: None });
        assert_eq!(parse("40/_event,").unwrap(), Packet::Connect { namespace: "/_event".into(), auth: None });
    }

    #[test]
    fn events_with_namespace_ack_and_attachments() {
        let p = parse(r#"42/_event,["event",{"name":"s.inc","payload":{"by":1}}]"#).unwrap();
        let Packet::Event { namespace, ack, attachments, args } = p else { panic!() };
        assert_eq!((namespace.as_str(), ack, attachments), ("/_event", None, None));
        assert_eq!(args[1]["payload"]["by"], 1);
        let Packet::Event { ack, .. } = parse(r#"42/_event,17["event",{}]"#).unwrap() else { panic!() };
        assert_eq!(ack, Some(17));
        let Packet::Event { namespace, attachments, .. } = parse(r#"452-["event",{"_placeholder":true,"num":0}]"#).unwrap() else { panic!() };
        assert_eq!((namespace.as_str(), attachments), ("/", Some(2)));
    }

    #[test]
    fn encoding_round_trips() {
        for text in [
            r#"42/_event,["event",{"name":"s.inc"}]"#,
            r#"42/_event,5["event",{}]"#,
            r#"42["event",{}]"#,
            r#"451-/_event,["event",{"_placeholder":true,"num":0}]"#,
        ] {
            let Packet::Event { namespace, ack, attachments, args } = parse(text).unwrap() else { panic!("{text}") };
            assert_eq!(encode_event(&namespace, ack, attachments, &args), text);
        }
        let auth = json!({"event": {"name": "x"}});
        assert_eq!(encode_connect("/_event", Some(&auth)), r#"40/_event,{"event":{"name":"x"}}"#);
        assert_eq!(encode_connect("/_event", None), "40/_event,");
        assert_eq!(encode_connect("/", None), "40");
        assert_eq!(connect_error("/_event", "no"), r#"44/_event,{"message":"no"}"#);
    }

    #[test]
    fn malformed_packets_are_errors() {
        assert_eq!(parse(""), Err(PacketError::Empty));
        assert_eq!(parse("9"), Err(PacketError::EngineType('9')));
        assert_eq!(parse("47"), Err(PacketError::SocketType('7')));
        assert!(matches!(parse("4"), Err(PacketError::Shape(_))));
        assert!(matches!(parse("42/_event,[\"event\","), Err(PacketError::Json(_))));
        assert!(matches!(parse(r#"42/_event,{"event":1}"#), Err(PacketError::Shape(_))));
        assert!(matches!(parse(r#"42/_event,[1,2]"#), Err(PacketError::Shape(_))));
        assert!(matches!(parse(r#"42/_event,[]"#), Err(PacketError::Shape(_))));
        assert!(matches!(parse(r#"40/_event,[1]"#), Err(PacketError::Shape(_))));
        assert_eq!(parse("45x-[]"), Err(PacketError::Attachments));
        assert_eq!(parse("42/_e\u{1}v,[\"e\"]"), Err(PacketError::Namespace));
        assert_eq!(parse("42/_event,99999999999999999999999[\"e\"]"), Err(PacketError::AckId));
    }
}
