//! Client-to-server Engine.IO v4 / Socket.IO v5 text packets, as far as the bridge
//! must understand them: CONNECT (whose auth object carries Reflex's first event)
//! and EVENT / BINARY_EVENT, which the policy judges. Everything else is relayed
//! byte for byte, unparsed.
//!
//! A Socket.IO packet inside an Engine.IO message (`4`):
//! `<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]`.

use serde_json::value::RawValue;

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

/// A packet borrowing from the frame's text; JSON is left raw (see `super::raw`).
#[derive(Debug, Clone)]
pub enum Packet<'a> {
    /// Engine.IO control (ping, pong, close, noop, upgrade) or a Socket.IO packet the
    /// bridge has no opinion on (ACK, DISCONNECT): relay untouched.
    Relay,
    /// CONNECT with its auth object, if any.
    Connect { namespace: &'a str, auth: Option<&'a RawValue> },
    /// EVENT or BINARY_EVENT: `args` is the JSON array (`["event", {…}]` for Reflex).
    Event { namespace: &'a str, ack: Option<u64>, attachments: Option<u32>, args: Vec<&'a RawValue> },
}

pub fn parse(text: &str) -> Result<Packet<'_>, PacketError> {
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
        ns
    } else {
        "/"
    };

    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let ack = if digits > 0 {
        let id = s[..digits].parse::<u64>().map_err(|_| PacketError::AckId)?;
        s = &s[digits..];
        Some(id)
    } else {
        None
    };

    let json = |s| serde_json::from_str::<&RawValue>(s).map_err(|e| PacketError::Json(e.to_string()));
    match kind {
        Kind::Connect => {
            let auth = if s.is_empty() { None } else { Some(json(s)?) };
            if auth.is_some_and(|a| !a.get().starts_with('{')) {
                return Err(PacketError::Shape("CONNECT payload is not an object"));
            }
            Ok(Packet::Connect { namespace, auth })
        }
        _ => {
            if !s.trim_start().starts_with('[') {
                json(s)?;
                return Err(PacketError::Shape("EVENT payload is not an array"));
            }
            let args: Vec<&RawValue> = serde_json::from_str(s).map_err(|e| PacketError::Json(e.to_string()))?;
            if !args.first().is_some_and(|a| a.get().starts_with('"')) {
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

/// A CONNECT with `auth`, raw JSON.
pub fn encode_connect(namespace: &str, auth: Option<&str>) -> String {
    let mut out = String::with_capacity(3 + namespace.len() + auth.map_or(0, str::len));
    out.push_str("40");
    prefix(&mut out, namespace);
    if let Some(auth) = auth {
        out.push_str(auth);
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

/// An EVENT (BINARY_EVENT with `attachments`) whose arguments are raw JSON texts.
pub fn encode_event(namespace: &str, ack: Option<u64>, attachments: Option<u32>, args: &[&str]) -> String {
    let mut out = String::with_capacity(32 + namespace.len() + args.iter().map(|a| a.len() + 1).sum::<usize>());
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
    out.push('[');
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(arg);
    }
    out.push(']');
    out
}

/// A server-to-client EVENT on `namespace` (used to answer refused events).
pub fn server_event(namespace: &str, args: &[&str]) -> String {
    encode_event(namespace, None, None, args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn is_relay(p: &str) -> bool {
        matches!(parse(p), Ok(Packet::Relay))
    }

    #[test]
    fn control_packets_are_relayed() {
        for p in ["2", "3", "1", "6", "5", "41/_event,", "43/_event,1[]", "46/_event,1-1[]"] {
            assert!(is_relay(p), "{p}");
        }
    }

    #[test]
    fn connect_with_the_first_event_in_auth() {
        let p =
            parse(r#"40/_event,{"event":{"name":"s.hydrate","payload":{},"router_data":{"pathname":"/"}}}"#).unwrap();
        let Packet::Connect { namespace, auth } = p else { panic!() };
        assert_eq!(namespace, "/_event");
        let auth: Value = serde_json::from_str(auth.unwrap().get()).unwrap();
        assert_eq!(auth["event"]["name"], "s.hydrate");
        assert!(matches!(parse("40"), Ok(Packet::Connect { namespace: "/", auth: None })));
        assert!(matches!(parse("40/_event,"), Ok(Packet::Connect { namespace: "/_event", auth: None })));
    }

    #[test]
    fn events_with_namespace_ack_and_attachments() {
        let p = parse(r#"42/_event, [ "event" , {"name":"s.inc","payload":{"by":1}} ]"#).unwrap();
        let Packet::Event { namespace, ack, attachments, args } = p else { panic!() };
        assert_eq!((namespace, ack, attachments), ("/_event", None, None));
        assert_eq!(args[0].get(), r#""event""#, "raw values come without the whitespace around them");
        assert_eq!(args[1].get(), r#"{"name":"s.inc","payload":{"by":1}}"#);
        let Packet::Event { ack, .. } = parse(r#"42/_event,17["event",{}]"#).unwrap() else { panic!() };
        assert_eq!(ack, Some(17));
        let Packet::Event { namespace, attachments, .. } =
            parse(r#"452-["event",{"_placeholder":true,"num":0}]"#).unwrap()
        else {
            panic!()
        };
        assert_eq!((namespace, attachments), ("/", Some(2)));
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
            let args: Vec<&str> = args.iter().map(|a| a.get()).collect();
            assert_eq!(encode_event(namespace, ack, attachments, &args), text);
        }
        assert_eq!(encode_connect("/_event", Some(r#"{"event":{"name":"x"}}"#)), r#"40/_event,{"event":{"name":"x"}}"#);
        assert_eq!(encode_connect("/_event", None), "40/_event,");
        assert_eq!(encode_connect("/", None), "40");
        assert_eq!(connect_error("/_event", "no"), r#"44/_event,{"message":"no"}"#);
    }

    #[test]
    fn malformed_packets_are_errors() {
        let err = |p| parse(p).err();
        assert_eq!(err(""), Some(PacketError::Empty));
        assert_eq!(err("9"), Some(PacketError::EngineType('9')));
        assert_eq!(err("47"), Some(PacketError::SocketType('7')));
        assert!(matches!(parse("4"), Err(PacketError::Shape(_))));
        assert!(matches!(parse("42/_event,[\"event\","), Err(PacketError::Json(_))));
        assert!(matches!(parse(r#"42/_event,{"event":1}"#), Err(PacketError::Shape(_))));
        assert!(matches!(parse(r#"42/_event,[1,2]"#), Err(PacketError::Shape(_))));
        assert!(matches!(parse(r#"42/_event,[]"#), Err(PacketError::Shape(_))));
        assert!(matches!(parse(r#"40/_event,[1]"#), Err(PacketError::Shape(_))));
        assert!(matches!(parse(r#"42/_event,["event",{"a":1]"#), Err(PacketError::Json(_))));
        assert_eq!(err("45x-[]"), Some(PacketError::Attachments));
        assert_eq!(err("42/_e\u{1}v,[\"e\"]"), Some(PacketError::Namespace));
        assert_eq!(err("42/_event,99999999999999999999999[\"e\"]"), Some(PacketError::AckId));
    }
}
