//! Host bindings of the `router` world (`wit/policy.wit`).
//!
//! `bindgen!` gives the WIT types (the decision is lifted into them). The request is
//! lowered from `RequestRef`, a borrowing twin of the WIT `request` record, so a call
//! copies the gateway's strings straight into guest memory without first cloning them
//! into an owned bindgen `Request`.

use wasmtime::component::{ComponentType, Lower};

use crate::routing::RouteRequest;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "router",
});

pub(crate) use self::isthmus::policy::routing::{Decision as WitDecision, Forward as WitForward, Reply as WitReply};

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

/// The export `route: func(req: request) -> decision`.
pub(crate) type RouteFunc<'a> = wasmtime::component::TypedFunc<(RequestRef<'a>,), (WitDecision,)>;
/// The export `init: func(config-json: string) -> result<_, string>`.
pub(crate) type InitFunc<'a> = wasmtime::component::TypedFunc<(&'a str,), (Result<(), String>,)>;
