//! Host bindings of the `router` and `bridge` worlds (`wit/policy.wit`).
//!
//! `bindgen!` gives the WIT types (decisions and verdicts are lifted into them).
//! Arguments are lowered from borrowing twins of the WIT records (`RequestRef`,
//! `IdentityRef`, `EventRef`), so a call copies the gateway's strings straight into
//! guest memory without first cloning them into owned bindgen values.

use wasmtime::component::{ComponentType, Lower};

use crate::bridge::identity::Identity;
use crate::bridge::policy::BridgeEvent;
use crate::routing::RouteRequest;

mod router_world {
    wasmtime::component::bindgen!({ path: "../wit", world: "router" });
}

mod bridge_world {
    wasmtime::component::bindgen!({ path: "../wit", world: "bridge" });
}

pub(crate) use bridge_world::isthmus::policy::bridging::Verdict as WitVerdict;
pub(crate) use router_world::isthmus::policy::routing::{Decision as WitDecision, Forward as WitForward, Reply as WitReply};

/// `isthmus:policy/types.request`, borrowed.
#[derive(ComponentType, Lower)]
#[component(record)]
pub(crate) struct RequestRef<'a> {
    pub method: &'a str,
    pub scheme: &'a str,
    pub authority: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(String, String)],
    #[component(name = "client-ip")]
    pub client_ip: &'a str,
}

impl<'a> From<&'a RouteRequest> for RequestRef<'a> {
    fn from(r: &'a RouteRequest) -> Self {
        RequestRef {
            method: &r.method,
            scheme: &r.scheme,
            authority: &r.authority,
            path: &r.path,
            query: &r.query,
            headers: &r.headers,
            client_ip: &r.client_ip,
        }
    }
}

/// `isthmus:policy/types.identity`, borrowed (the session map as a field list).
#[derive(ComponentType, Lower)]
#[component(record)]
pub(crate) struct IdentityRef<'a> {
    pub authenticated: bool,
    #[component(name = "user-id")]
    pub user_id: Option<&'a str>,
    pub username: &'a str,
    pub email: &'a str,
    #[component(name = "is-staff")]
    pub is_staff: bool,
    #[component(name = "is-superuser")]
    pub is_superuser: bool,
    pub groups: &'a [String],
    pub permissions: &'a [String],
    pub session: Vec<(&'a str, &'a str)>,
}

impl<'a> From<&'a Identity> for IdentityRef<'a> {
    fn from(i: &'a Identity) -> Self {
        IdentityRef {
            authenticated: i.authenticated,
            user_id: i.user_id.as_deref(),
            username: &i.username,
            email: &i.email,
            is_staff: i.is_staff,
            is_superuser: i.is_superuser,
            groups: &i.groups,
            permissions: &i.permissions,
            session: i.session.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
        }
    }
}

/// `isthmus:policy/bridging.event`, borrowed.
#[derive(ComponentType, Lower)]
#[component(record)]
pub(crate) struct EventRef<'a> {
    pub name: &'a str,
    #[component(name = "payload-json")]
    pub payload_json: &'a str,
    pub route: &'a str,
    pub query: &'a str,
}

impl<'a> From<&BridgeEvent<'a>> for EventRef<'a> {
    fn from(e: &BridgeEvent<'a>) -> Self {
        EventRef { name: e.name, payload_json: e.payload_json, route: e.route, query: e.query }
    }
}

/// The export `route: func(req: request) -> decision`.
pub(crate) type RouteFunc<'a> = wasmtime::component::TypedFunc<(RequestRef<'a>,), (WitDecision,)>;
/// The export `on-connect: func(handshake: request, who: identity) -> verdict`.
pub(crate) type OnConnectFunc<'a> = wasmtime::component::TypedFunc<(RequestRef<'a>, IdentityRef<'a>), (WitVerdict,)>;
/// The export `on-event: func(ev: event, who: identity) -> verdict`.
pub(crate) type OnEventFunc<'a> = wasmtime::component::TypedFunc<(EventRef<'a>, IdentityRef<'a>), (WitVerdict,)>;
