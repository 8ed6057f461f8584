//! The generated bindings (`wit/policy.wit`), the views implemented on the gateway's
//! handles, and the answers converted into the WIT's types. Used by the macros only.

pub mod router {
    wit_bindgen::generate!({
        path: "wit",
        world: "router",
        pub_export_macro: true,
        export_macro_name: "export_router_world",
        default_bindings_module: "isthmus_policy::wit::router",
    });
}

pub mod bridge {
    wit_bindgen::generate!({
        path: "wit",
        world: "bridge",
        with: {
            "isthmus:policy/http@0.3.0": crate::wit::router::isthmus::policy::http,
            "isthmus:policy/users@0.3.0": crate::wit::router::isthmus::policy::users,
            "isthmus:policy/refusals@0.3.0": crate::wit::router::isthmus::policy::refusals,
        },
        pub_export_macro: true,
        export_macro_name: "export_bridge_world",
        default_bindings_module: "isthmus_policy::wit::bridge",
    });
}

use router::isthmus::policy::{http, refusals, routing, users};

pub fn needs(n: crate::Needs) -> routing::Needs {
    routing::Needs { identity: n.identity }
}

fn refusal(r: crate::Refusal) -> refusals::Refusal {
    match r {
        crate::Refusal::LoginRequired(url) => refusals::Refusal::LoginRequired(url),
        crate::Refusal::Forbidden(reason) => refusals::Refusal::Forbidden(reason),
    }
}

pub fn decision(d: crate::Decision) -> routing::Decision {
    match d {
        crate::Decision::Forward(f) => routing::Decision::Forward(routing::Forward {
            upstream: f.upstream,
            path: f.path,
            set_headers: f.set_headers,
            remove_headers: f.remove_headers,
        }),
        crate::Decision::ServeStatic(mount) => routing::Decision::ServeStatic(mount),
        crate::Decision::Reply(r) => {
            routing::Decision::Reply(routing::Reply { status: r.status, headers: r.headers, body: r.body })
        }
        crate::Decision::Refuse(r) => routing::Decision::Refuse(refusal(r)),
        crate::Decision::Pass => routing::Decision::Pass,
    }
}

pub fn verdict(v: crate::Verdict) -> bridge::Verdict {
    match v {
        crate::Verdict::Allow(fields) => bridge::Verdict::Allow(fields),
        crate::Verdict::Refuse(r) => bridge::Verdict::Refuse(refusal(r)),
        crate::Verdict::Close(reason) => bridge::Verdict::Close(reason),
    }
}

impl crate::Request for http::Request {
    fn method(&self) -> String {
        http::Request::method(self)
    }
    fn scheme(&self) -> String {
        http::Request::scheme(self)
    }
    fn authority(&self) -> String {
        http::Request::authority(self)
    }
    fn path(&self) -> String {
        http::Request::path(self)
    }
    fn query(&self) -> String {
        http::Request::query(self)
    }
    fn header(&self, name: &str) -> Option<String> {
        http::Request::header(self, name)
    }
    fn headers(&self) -> Vec<(String, String)> {
        http::Request::headers(self)
    }
    fn cookie(&self, name: &str) -> Option<String> {
        http::Request::cookie(self, name)
    }
    fn client_ip(&self) -> String {
        http::Request::client_ip(self)
    }
    fn traceparent(&self) -> Option<String> {
        http::Request::traceparent(self)
    }
}

impl crate::User for users::Identity {
    fn authenticated(&self) -> bool {
        users::Identity::authenticated(self)
    }
    fn user_id(&self) -> Option<String> {
        users::Identity::user_id(self)
    }
    fn username(&self) -> String {
        users::Identity::username(self)
    }
    fn email(&self) -> String {
        users::Identity::email(self)
    }
    fn first_name(&self) -> String {
        users::Identity::first_name(self)
    }
    fn last_name(&self) -> String {
        users::Identity::last_name(self)
    }
    fn is_staff(&self) -> bool {
        users::Identity::is_staff(self)
    }
    fn is_superuser(&self) -> bool {
        users::Identity::is_superuser(self)
    }
    fn groups(&self) -> Vec<String> {
        users::Identity::groups(self)
    }
    fn in_group(&self, name: &str) -> bool {
        users::Identity::in_group(self, name)
    }
    fn permissions(&self) -> Vec<String> {
        users::Identity::permissions(self)
    }
    fn has_permission(&self, perm: &str) -> bool {
        users::Identity::has_permission(self, perm)
    }
    fn session(&self) -> Vec<(String, String)> {
        users::Identity::session(self)
    }
    fn session_value(&self, key: &str) -> Option<String> {
        users::Identity::session_value(self, key)
    }
}

impl crate::Event for bridge::Event {
    fn kind(&self) -> crate::EventKind {
        use bridge::isthmus::policy::bridging::EventKind as K;
        match bridge::Event::kind(self) {
            K::Client => crate::EventKind::Client,
            K::Upload => crate::EventKind::Upload,
            K::IdentityChange => crate::EventKind::IdentityChange,
        }
    }
    fn name(&self) -> String {
        bridge::Event::name(self)
    }
    fn payload_json(&self) -> String {
        bridge::Event::payload_json(self)
    }
    fn route(&self) -> String {
        bridge::Event::route(self)
    }
    fn query(&self) -> String {
        bridge::Event::query(self)
    }
    fn traceparent(&self) -> Option<String> {
        bridge::Event::traceparent(self)
    }
}
