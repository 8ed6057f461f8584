//! Host bindings of the `router` and `bridge` worlds (`wit/policy.wit`).
//!
//! `bindgen!` gives the WIT types (decisions and verdicts are lifted into them).
//! Arguments are lowered from borrowing twins of the WIT records (`RequestRef`,
//! `EventRef`), so a call copies the gateway's strings straight into guest memory
//! without first cloning them into owned bindgen values. The identity is a resource
//! (`Who`), lent for the call and answered by `super::users`.

use std::sync::Arc;

use wasmtime::component::{ComponentType, Lower, Resource};

use crate::bridge::identity::Resolved;
use crate::bridge::policy::BridgeEvent;
use crate::routing::RouteRequest;

mod router_world {
    wasmtime::component::bindgen!({ path: "../wit", world: "router" });
}

mod bridge_world {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "bridge",
        with: { "isthmus:policy/users.identity": super::Who },
        // A guest passing a handle it was not lent traps instead of getting a default.
        imports: { default: trappable },
    });
}

/// What an `isthmus:policy/users.identity` handle stands for in the store's table.
pub struct Who(pub Arc<Resolved>);

pub(crate) use bridge_world::isthmus::policy::users;

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
/// The export `on-connect: func(handshake: request, who: borrow<identity>) -> verdict`.
pub(crate) type OnConnectFunc<'a> = wasmtime::component::TypedFunc<(RequestRef<'a>, Resource<Who>), (WitVerdict,)>;
/// The export `on-event: func(ev: event, who: borrow<identity>) -> verdict`.
pub(crate) type OnEventFunc<'a> = wasmtime::component::TypedFunc<(EventRef<'a>, Resource<Who>), (WitVerdict,)>;
