//! Each client text frame of a bridged connection judged: CONNECT and EVENT packets are
//! put to the policy with the session's current identity; allowed events go upstream
//! with the signed identity spliced into their `router_data` (any copy the client sent
//! replaced); refused ones are answered with an update Reflex's frontend runs (a
//! full-page redirect to the login page, or a console error). Events are read and
//! rewritten as raw JSON (`super::raw`): the payload and the rest pass through as sent.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::inject::LastSigned;
use super::raw::{self, push_json_string, RawObject};
use super::socketio::{self, Packet};
use super::Bridge;
use crate::identity::browsers::{Control, Registration};
use crate::identity::Origin;
use crate::metrics::BridgeKind;
use crate::policy::{BridgeEvent, EventKind, Refusal, Resolved, RouteRequest, Verdict};
use crate::trace::{self, Ending, SpanContext};
use crate::upstream::headers::REBIND;

/// reflex constants.CompileVars.CONNECT_AUTH_EVENT: the CONNECT auth member holding the first event.
const CONNECT_EVENT_KEY: &str = "event";

/// One bridged connection: what its handshake said, what the policy added to its
/// context at connect, the identity it last signed, and its place among its browser's
/// open pages (the session cookie it uses follows the browser's: `identity::browsers`).
pub struct Session {
    pub bridge: Arc<Bridge>,
    pub handshake: Arc<RouteRequest>,
    pub session_cookie: Option<String>,
    pub page: Registration,
    origin: Origin,
    /// Fields of the connect verdict, added to every event's context.
    connect_context: Vec<(String, String)>,
    signed: Option<LastSigned>,
    /// Socket.IO namespace of the page's CONNECT: where the gateway's own packets go.
    namespace: Option<String>,
    /// Where the page last was (`router_data` of its last event, without the
    /// injection), for the identity-change event; kept only when one is configured.
    last_router_data: Option<String>,
    /// Who the last judged event came from, to tell whether a new session changes it.
    last_identity: Option<Arc<Resolved>>,
    /// The span of the WebSocket handshake: each event's span links to it (an event
    /// starts a trace of its own, as Reflex's do, unless it carries one).
    handshake_span: SpanContext,
}

impl Session {
    pub fn new(
        bridge: Arc<Bridge>,
        handshake: Arc<RouteRequest>,
        session_cookie: Option<String>,
        page: Registration,
        handshake_span: SpanContext,
    ) -> Session {
        let origin = Origin { host: handshake.authority.clone(), scheme: handshake.scheme.clone() };
        Session {
            bridge,
            handshake,
            session_cookie,
            page,
            origin,
            connect_context: Vec::new(),
            signed: None,
            namespace: None,
            last_router_data: None,
            last_identity: None,
            handshake_span,
        }
    }

    async fn identity(&mut self) -> Option<Arc<Resolved>> {
        let who = self.bridge.identity(self.session_cookie.as_deref(), &self.origin).await;
        if let Some(who) = &who {
            self.last_identity = Some(who.clone());
        }
        who
    }
}

/// Why the gateway closes a bridged connection.
#[derive(Debug)]
pub struct Closing {
    pub code: CloseCode,
    pub reason: String,
}

impl Closing {
    fn policy(reason: String) -> Self {
        Closing { code: CloseCode::Policy, reason }
    }
    pub(super) fn protocol(reason: String) -> Self {
        Closing { code: CloseCode::Protocol, reason }
    }
}

/// What to do with one client text frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Judged {
    /// Send this rewritten packet upstream.
    Forward(String),
    /// Send the client's frame upstream unchanged.
    Relay,
    /// Send this to the client instead of forwarding.
    Answer(String),
    /// Send the first upstream and the second to the client.
    ForwardAndAnswer(String, String),
}

/// Judge one client text frame of a bridged connection.
pub async fn judge(session: &mut Session, text: &str) -> Result<Judged, Closing> {
    let packet = socketio::parse(text).map_err(|e| Closing::protocol(format!("not a Socket.IO packet: {e}")))?;
    match packet {
        Packet::Relay => Ok(Judged::Relay),
        Packet::Connect { namespace, auth } => {
            // CONNECT_ERROR: the client is told the namespace refused it.
            let refuse = |refusal: &Refusal| Judged::Answer(socketio::connect_error(namespace, &refusal.to_string()));
            session.namespace = Some(namespace.to_owned());
            let Some(who) = session.identity().await else {
                return Ok(refuse(&super::identity_unavailable()));
            };
            let bridge = &session.bridge;
            match bridge.verdict(BridgeKind::Connect, |policy| policy.on_connect(&session.handshake, &who)) {
                Verdict::Allow(context) => session.connect_context = context,
                Verdict::Refuse(refusal) => return Ok(refuse(&refusal)),
                Verdict::Close(reason) => return Err(Closing::policy(reason)),
            }
            let Some(auth) = auth.and_then(RawObject::parse) else { return Ok(Judged::Relay) };
            let Some(first) = auth.get(CONNECT_EVENT_KEY) else { return Ok(Judged::Relay) };
            let event = ReflexEvent::parse(first)?;
            let mut rewritten = String::with_capacity(text.len() + 512);
            match decide(session, &who, &event, EventKind::Client)? {
                Ok(first) => {
                    auth.write_with(&mut rewritten, &[(CONNECT_EVENT_KEY, Some(&first))]);
                    Ok(Judged::Forward(socketio::encode_connect(namespace, Some(&rewritten))))
                }
                // The connection goes ahead without its first event; the client is told why.
                Err((refusal, page)) => {
                    auth.write_with(&mut rewritten, &[(CONNECT_EVENT_KEY, None)]);
                    Ok(Judged::ForwardAndAnswer(
                        socketio::encode_connect(namespace, Some(&rewritten)),
                        refusal_packet(namespace, refusal, &page),
                    ))
                }
            }
        }
        Packet::Event { namespace, ack, attachments, args } => {
            if raw::string(args[0]).as_deref() != Some("event") {
                // Reflex's other socket events (`ping`, `client_error`) reach no handler.
                return Ok(Judged::Relay);
            }
            let event = ReflexEvent::parse(args.get(1).ok_or_else(|| Closing::protocol("event without data".into()))?)?;
            if session.namespace.is_none() {
                session.namespace = Some(namespace.to_owned());
            }
            let Some(who) = session.identity().await else {
                return Ok(Judged::Answer(refusal_packet(namespace, super::identity_unavailable(), "")));
            };
            match decide(session, &who, &event, EventKind::Client)? {
                Ok(rewritten) => {
                    let mut parts: Vec<&str> = args.iter().map(|a| a.get()).collect();
                    parts[1] = &rewritten;
                    Ok(Judged::Forward(socketio::encode_event(namespace, ack, attachments, &parts)))
                }
                Err((refusal, page)) => Ok(Judged::Answer(refusal_packet(namespace, refusal, &page))),
            }
        }
    }
}

/// A Reflex event, `{"name", "payload", "router_data"}`. It must be a JSON object:
/// Reflex also accepts a JSON string and decodes it, which would slip past the
/// injection, so anything else is refused.
pub(crate) struct ReflexEvent<'a> {
    members: RawObject<'a>,
    name: Cow<'a, str>,
    /// `None` when missing or not an object (it is then replaced by one).
    router_data: Option<RawObject<'a>>,
}

impl<'a> ReflexEvent<'a> {
    pub(crate) fn parse(raw: &'a RawValue) -> Result<ReflexEvent<'a>, Closing> {
        let members =
            RawObject::parse(raw).ok_or_else(|| Closing::protocol("event data is not a JSON object".into()))?;
        let name = members.str("name").ok_or_else(|| Closing::protocol("event has no name".into()))?;
        let router_data = members.get("router_data").and_then(RawObject::parse);
        Ok(ReflexEvent { members, name, router_data })
    }

    fn payload(&self) -> &'a str {
        self.members.get("payload").map_or("{}", RawValue::get)
    }

    /// A string member of `router_data`, or "".
    fn router_text(&self, key: &str) -> Cow<'a, str> {
        self.router_data.as_ref().and_then(|r| r.str(key)).unwrap_or_default()
    }

    /// The event's W3C trace context as the client sent it: top-level `traceparent`
    /// and `tracestate` strings, where Reflex reads them.
    fn trace_context(&self) -> (Option<Cow<'a, str>>, Option<Cow<'a, str>>) {
        (self.members.str(trace::TRACEPARENT.as_str()), self.members.str(trace::TRACESTATE.as_str()))
    }

    fn query(&self) -> Option<&'a RawValue> {
        self.router_data.as_ref().and_then(|r| r.get("query"))
    }

    /// The event as sent, with `router_data[field]` set to `signed` and the trace
    /// context replaced by the gateway's span (the client's never reaches Reflex).
    pub(crate) fn forwarded(&self, field: &str, signed: &str, traceparent: &str, tracestate: Option<&str>) -> String {
        let mut router_data = String::new();
        match &self.router_data {
            Some(members) => members.write_with(&mut router_data, &[(field, Some(signed))]),
            None => {
                router_data.push('{');
                push_json_string(&mut router_data, field);
                router_data.push(':');
                router_data.push_str(signed);
                router_data.push('}');
            }
        }
        let mut traceparent_json = String::with_capacity(traceparent.len() + 2);
        push_json_string(&mut traceparent_json, traceparent);
        let mut tracestate_json = String::new();
        if let Some(state) = tracestate {
            push_json_string(&mut tracestate_json, state);
        }
        let mut out = String::with_capacity(self.payload().len() + router_data.len() + self.name.len() + 128);
        self.members.write_with(
            &mut out,
            &[
                ("router_data", Some(&router_data)),
                (trace::TRACEPARENT.as_str(), Some(&traceparent_json)),
                (trace::TRACESTATE.as_str(), tracestate.map(|_| tracestate_json.as_str())),
            ],
        );
        out
    }
}

/// Ask the policy about one event: `Ok` with the event to forward (identity signed in),
/// or the refusal to answer with and the page (path and query) the event came from.
fn decide(
    session: &mut Session,
    who: &Arc<Resolved>,
    event: &ReflexEvent<'_>,
    kind: EventKind,
) -> Result<Result<String, (Refusal, String)>, Closing> {
    let Session { bridge, signed, connect_context, last_router_data, handshake_span, .. } = session;
    if bridge.on_identity_change.is_some() {
        *last_router_data = event.members.get("router_data").map(|r| r.get().to_owned());
    }
    let route = event.router_text("pathname");
    let as_path = event.router_text("asPath");
    let (traceparent, tracestate) = event.trace_context();
    let span = bridge.tracer.event(traceparent.as_deref(), tracestate.as_deref());
    let span_traceparent = span.context.traceparent();
    let span_traceparent = std::str::from_utf8(&span_traceparent).expect("hex and dashes");
    let ev = Arc::new(BridgeEvent {
        kind,
        name: event.name.clone().into_owned(),
        payload_json: event.payload().to_owned(),
        route: route.clone().into_owned(),
        query: as_path.split_once('?').map_or("", |(_, q)| q).to_owned(),
        // The gateway's span, which Reflex's will be a child of.
        traceparent: Some(span_traceparent.to_owned()),
    });
    let counted_as = match kind {
        EventKind::Client => BridgeKind::Event,
        EventKind::IdentityChange => BridgeKind::IdentityChange,
        EventKind::Upload => BridgeKind::Upload,
    };
    let verdict = bridge.verdict(counted_as, |policy| policy.on_event(&ev, who));
    if bridge.tracer.records(&span) {
        let outcome = match &verdict {
            Verdict::Allow(_) => "allow",
            Verdict::Refuse(_) => "refuse",
            Verdict::Close(_) => "close",
        };
        let attributes = vec![
            ("reflex.event.name", trace::Value::Str(ev.name.clone())),
            ("isthmus.event.kind", trace::Value::Str(format!("{kind:?}").to_lowercase())),
            ("isthmus.verdict", trace::Value::Str(outcome.into())),
        ];
        let ending =
            Ending { name: format!("event {}", ev.name), attributes, link: Some(&*handshake_span), error: false };
        // Ended before forwarding: the span covers the gateway's judging of the event.
        bridge.tracer.end(&span, false, ending);
    }
    match verdict {
        Verdict::Allow(mut context) => {
            // The connection's fields first: an event's own fields of the same name win.
            if !connect_context.is_empty() {
                let own: Vec<(String, String)> = std::mem::take(&mut context);
                context = connect_context.iter().filter(|(k, _)| !own.iter().any(|(o, _)| o == k)).cloned().collect();
                context.extend(own);
            }
            let injector = &bridge.injector;
            let signed = injector.signed(signed, who, event.query(), context);
            Ok(Ok(event.forwarded(injector.field(), signed, span_traceparent, span.tracestate.as_deref())))
        }
        Verdict::Refuse(refusal) => {
            tracing::info!(target: "isthmus::bridge", event = %ev.name, user = %who.identity.username, %refusal, "event refused");
            // The page to come back to after logging in, query included.
            let page = if as_path.starts_with('/') { as_path.into_owned() } else { route.into_owned() };
            Ok(Err((refusal, page)))
        }
        Verdict::Close(reason) => Err(Closing::policy(reason)),
    }
}

/// The update answering a refused event from `page`: a full page load of the login
/// page (Reflex's own `_redirect` only moves inside the SPA, which would show its 404
/// for a Django page), or a console error for other refusals.
fn refusal_packet(namespace: &str, refusal: Refusal, page: &str) -> String {
    let script = match &refusal {
        Refusal::LoginRequired(login_url) => {
            let location = Refusal::login_location(login_url, if page.is_empty() { "/" } else { page });
            format!("window.location.assign({})", Value::String(location))
        }
        Refusal::Forbidden(_) => {
            format!("console.error({})", Value::String(format!("isthmus: event refused ({refusal})")))
        }
    };
    script_packet(namespace, &script)
}

/// An update that has Reflex's frontend run `script`.
fn script_packet(namespace: &str, script: &str) -> String {
    let event = json!({"name": "_call_script", "payload": {"javascript_code": script}});
    socketio::server_event(namespace, &[r#""event""#, &json!({ "events": [event] }).to_string()])
}

/// What a page runs to re-read its browser's session: a same-origin POST to the rebind
/// path with its token; the browser adds its cookies.
fn rebind_script(path: &str, token: &str) -> String {
    format!(
        "fetch({}, {{method: \"POST\", credentials: \"same-origin\", headers: {{{}: {}}}}})",
        Value::String(path.to_owned()),
        Value::String(REBIND.as_str().to_owned()),
        Value::String(token.to_owned())
    )
}

/// A message for this page from the gateway (`identity::browsers`): the packets to send.
pub async fn control(session: &mut Session, control: Control) -> Result<Option<Judged>, Closing> {
    let Some(namespace) = session.namespace.clone() else {
        // Not connected yet: nothing to tell the page; a session it must use, it uses.
        match control {
            Control::Rebound(cookie) => session.session_cookie = cookie,
            Control::Rebind { drop_session: true } => session.session_cookie = None,
            Control::Rebind { .. } | Control::Script(_) => {}
        }
        return Ok(None);
    };
    Ok(match control {
        Control::Script(script) => Some(Judged::Answer(script_packet(&namespace, &script))),
        Control::Rebind { drop_session } => {
            let ask =
                script_packet(&namespace, &rebind_script(&session.bridge.rebind_path, &session.page.rebind_token));
            match if drop_session { adopt(session, None, &namespace).await? } else { None } {
                Some(event) => Some(Judged::ForwardAndAnswer(event, ask)),
                None => Some(Judged::Answer(ask)),
            }
        }
        Control::Rebound(cookie) => adopt(session, cookie, &namespace).await?.map(Judged::Forward),
    })
}

/// Use session `cookie` from now on. Returns the identity-change event to send Reflex,
/// when one is configured, the user is another now, and the policy allows it.
async fn adopt(session: &mut Session, cookie: Option<String>, namespace: &str) -> Result<Option<String>, Closing> {
    let before = session.last_identity.clone();
    session.session_cookie = cookie;
    let Some(handler) = session.bridge.on_identity_change.clone() else { return Ok(None) };
    let Some(who) = session.identity().await else { return Ok(None) };
    if before.is_some_and(|before| before.identity == who.identity) {
        return Ok(None);
    }
    let router_data = session.last_router_data.as_deref().unwrap_or("{}");
    let text = format!(r#"{{"name":{},"payload":{{}},"router_data":{router_data}}}"#, Value::String(handler));
    let raw = RawValue::from_string(text).map_err(|e| Closing::protocol(format!("identity-change event: {e}")))?;
    let event = ReflexEvent::parse(&raw)?;
    Ok(match decide(session, &who, &event, EventKind::IdentityChange)? {
        Ok(rewritten) => Some(socketio::encode_event(namespace, None, None, &[r#""event""#, &rewritten])),
        // Logged by `decide`; the page simply does not hear of it.
        Err(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::splice_matches_serde_json;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01";

    #[test]
    fn the_splice_matches_serde_json_and_replaces_the_clients_trace_context() {
        let signed = r#"{"payload":"{\"v\":1}","sig":"ab"}"#;
        for input in [
            r#"{"name":"s.h","payload":{"x":[1,{"y":null}]},"router_data":{"pathname":"/"}}"#,
            r#"{"name":"s.h","payload":{},"traceparent":"00-ffffffffffffffffffffffffffffffff-2222222222222222-01","tracestate":"evil=1"}"#,
            r#"{"name":"s.h","traceparent":{"not":"a string"},"tracestate":7,"router_data":"not an object"}"#,
            r#"{"name":"s.h","trace\u0070arent":"smuggled","traceparent":"x","router_data":{"isthmus":"forged","q":"\u00e9\n"}}"#,
            r#"{"name":"s.h","tracestate":"a","tracestate":"b","payload":"caf\u00e9 \"quoted\""}"#,
            r#"{"name":"s.h"}"#,
        ] {
            for tracestate in [None, Some("vendor=x"), Some("odd=\"quote\"")] {
                let event = ReflexEvent::parse(serde_json::from_str(input).unwrap()).unwrap();
                let out = event.forwarded("isthmus", signed, TP, tracestate);
                splice_matches_serde_json(input, signed, TP, tracestate);
                assert_eq!(out.matches("\"traceparent\"").count(), 1, "each key once: {out}");
                assert!(!out.contains("smuggled") && !out.contains("evil") && !out.contains("forged"), "{out}");
            }
        }
    }
}
