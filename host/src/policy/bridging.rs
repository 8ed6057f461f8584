//! Bridge policies: what one is asked of a Reflex WebSocket and its events, and the
//! verdict it returns.

use std::sync::Arc;

use super::{FailMode, PolicyFailure, Resolved, RouteRequest};

/// One Reflex event as the policy sees it, borrowed from the frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgeEvent<'a> {
    pub name: &'a str,
    /// The event's `payload` as the client sent it (JSON).
    pub payload_json: &'a str,
    /// The page the event came from (`router_data.pathname`).
    pub route: &'a str,
    /// That page's query string, without `?`.
    pub query: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Forward, adding these fields to the signed context.
    Allow(Vec<(String, String)>),
    /// Do not forward. `login_required:<url>` redirects to the login page; anything
    /// else (`forbidden:<why>`) is answered as an error.
    Deny(String),
    /// Close the WebSocket with this reason.
    Close(String),
}

pub trait BridgePolicy: Send + Sync {
    fn name(&self) -> &str;
    fn fail_mode(&self) -> FailMode;
    fn on_connect(&self, handshake: &RouteRequest, who: &Arc<Resolved>) -> Result<Verdict, PolicyFailure>;
    fn on_event(&self, event: &BridgeEvent<'_>, who: &Arc<Resolved>) -> Result<Verdict, PolicyFailure>;
}

/// A policy failure turned into a verdict by the policy's failure mode: closed
/// refuses the event, open lets it through (the identity is still injected, so
/// handler-side checks keep working).
pub fn or_fail_mode(policy: &dyn BridgePolicy, result: Result<Verdict, PolicyFailure>) -> Verdict {
    match result {
        Ok(v) => v,
        Err(failure) => {
            tracing::warn!(plugin = policy.name(), %failure, "bridge policy failed");
            match policy.fail_mode() {
                FailMode::Closed => Verdict::Deny(format!("forbidden:policy `{}` failed", policy.name())),
                FailMode::Open => Verdict::Allow(vec![("policy".into(), "failed-open".into())]),
            }
        }
    }
}
