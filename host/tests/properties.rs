//! Property tests: the fuzz targets' oracles (`isthmus::fuzzing`) on inputs built from
//! the pieces that matter (dot segments and their escapes, Socket.IO packets from their
//! parts, events with duplicate and escaped keys), where a fuzzer starting from bytes
//! takes long to reach them; and parse∘encode = identity of Socket.IO packets.

use isthmus::bridge::socketio::{self, Packet};
use isthmus::fuzzing;
use proptest::prelude::*;
use serde_json::Value;

/// Path pieces: segments, dot segments written every way, escapes of reserved and
/// unreserved characters, separators and what must be refused.
fn path() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "/", "//", ".", "..", "%2e", "%2E", "%2e%2E", ".%2e", "a", "b", "%61", "%7E", "%20", "%3f", "%25", "%2f",
        "%5C", "\\", "%00", "%c3%a9", "\u{e9}", "%ff", "%", "%4", "~", "-", "_",
    ]);
    prop::collection::vec(piece, 0..12).prop_map(|pieces| format!("/{}", pieces.concat()))
}

/// Any JSON value, with strings that need escaping.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "[a-z\"\\\\/\u{0}-\u{1f}\u{e9}\u{2028}\u{1f600}]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z\"\\\\]{0,4}", inner), 0..4)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// A key as a client may write it: plain, with a `\u` escape for a letter, or escaped.
fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        r#""name""#,
        r#""n\u0061me""#,
        r#""router_data""#,
        r#""router\u005fdata""#,
        r#""traceparent""#,
        r#""trace\u0070arent""#,
        r#""tracestate""#,
        r#""isthmus""#,
        r#""payload""#,
        r#""x\"y""#,
    ])
    .prop_map(str::to_owned)
}

/// An event object written member by member, duplicates and escaped keys included.
fn event() -> impl Strategy<Value = String> {
    let value = || json().prop_map(|v| v.to_string());
    let router_data =
        prop::collection::vec((key(), value()), 0..4).prop_map(|members: Vec<(String, String)>| object(&members));
    let member = prop_oneof![(key(), value()), (Just(r#""router_data""#.to_owned()), router_data)];
    prop::collection::vec(member, 0..6)
        .prop_map(|members| object(&[vec![(r#""name""#.to_owned(), r#""s.h""#.to_owned())], members].concat()))
}

fn object(members: &[(String, String)]) -> String {
    let members: Vec<String> = members.iter().map(|(k, v)| format!("{k} : {v}")).collect();
    format!("{{{}}}", members.join(","))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Idempotent, no dot segment, no encoded slash (the oracle of the fuzz target).
    #[test]
    fn canonical_paths(path in path()) {
        fuzzing::canonical_path(path.as_bytes());
    }

    /// parse(encode(packet)) = packet, for events built from their parts.
    #[test]
    fn socketio_events_round_trip(
        namespace in prop_oneof![Just("/".to_owned()), "/[a-z_]{1,8}"],
        ack in prop::option::of(any::<u64>()),
        attachments in prop::option::of(any::<u32>()),
        name in "[a-z.]{1,12}",
        args in prop::collection::vec(json(), 0..3),
    ) {
        let mut texts = vec![Value::from(name).to_string()];
        texts.extend(args.iter().map(Value::to_string));
        let raw: Vec<&str> = texts.iter().map(String::as_str).collect();
        let frame = socketio::encode_event(&namespace, ack, attachments, &raw);
        let Ok(Packet::Event { namespace: n, ack: a, attachments: at, args: parsed }) = socketio::parse(&frame) else {
            panic!("{frame:?} does not parse as an event");
        };
        let parsed: Vec<&str> = parsed.iter().map(|a| a.get()).collect();
        prop_assert_eq!((n, a, at, parsed), (namespace.as_str(), ack, attachments, raw));
        fuzzing::socketio(frame.as_bytes());
    }

    /// parse(encode(CONNECT)) = CONNECT, with and without an auth object.
    #[test]
    fn socketio_connects_round_trip(
        namespace in prop_oneof![Just("/".to_owned()), "/[a-z_]{1,8}"],
        auth in prop::option::of(prop::collection::vec(("[a-z]{1,4}", json()), 0..3)),
    ) {
        let auth = auth.map(|members| Value::Object(members.into_iter().collect()).to_string());
        let frame = socketio::encode_connect(&namespace, auth.as_deref());
        let Ok(Packet::Connect { namespace: n, auth: a }) = socketio::parse(&frame) else {
            panic!("{frame:?} does not parse as a CONNECT");
        };
        prop_assert_eq!((n, a.map(|a| a.get())), (namespace.as_str(), auth.as_deref()));
    }

    /// The raw splice of the identity equals serde_json's, duplicates and escapes included.
    #[test]
    fn identity_splice(event in event(), tracestate in prop::option::of("[a-z=\"\\\\,\u{0}-\u{1f}]{0,8}")) {
        fuzzing::splice_matches_serde_json(&event, fuzzing::SPLICE_SIGNED, fuzzing::SPLICE_TRACEPARENT, tracestate.as_deref());
    }

    /// The session cookie read as Django reads it, among duplicates, spaces and quotes.
    #[test]
    fn session_cookies(
        pairs in prop::collection::vec(
            (prop::sample::select(vec!["sessionid", " sessionid", "sessionid ", "csrftoken", "other"]),
             "[a-z0-9\" ]{0,6}"),
            0..6,
        ),
        split in any::<prop::sample::Index>(),
    ) {
        let pairs: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let at = if pairs.is_empty() { 0 } else { split.index(pairs.len()) };
        let input = format!("sessionid\0{}\n{}", pairs[..at].join("; "), pairs[at..].join("; "));
        fuzzing::cookies(input.as_bytes());
    }
}
