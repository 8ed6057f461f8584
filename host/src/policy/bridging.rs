//! Bridge policies: what one is asked of a Reflex WebSocket and its events, and the
//! verdict it returns.

use std::sync::Arc;

use super::{FailMode, PolicyFailure, Refusal, Resolved, RouteRequest};

/// Where an event comes from (`isthmus:policy/bridging.event-kind`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EventKind {
    /// Sent by the page over the WebSocket.
    #[default]
    Client,
    /// An upload to Reflex's upload endpoint.
    Upload,
    /// Sent by the gateway after the browser's Django session changed.
    IdentityChange,
}

/// One Reflex event as the policy sees it (lent as `isthmus:policy/bridging.event`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeEvent {
    pub kind: EventKind,
    pub name: String,
    /// The event's `payload` as the client sent it (JSON).
    pub payload_json: String,
    /// The page the event came from (`router_data.pathname`).
    pub route: String,
    /// That page's query string, without `?`.
    pub query: String,
    /// The event's W3C `traceparent` (top-level key of the event), if any.
    pub traceparent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Forward, adding these fields to the signed context.
    Allow(Vec<(String, String)>),
    /// Do not forward; the page is sent to the login page or shown the reason.
    Refuse(Refusal),
    /// Close the WebSocket with this reason.
    Close(String),
}

pub trait BridgePolicy: Send + Sync {
    fn name(&self) -> &str;
    fn fail_mode(&self) -> FailMode;
    fn on_connect(&self, handshake: &Arc<RouteRequest>, who: &Arc<Resolved>) -> Result<Verdict, PolicyFailure>;
    fn on_event(&self, event: &Arc<BridgeEvent>, who: &Arc<Resolved>) -> Result<Verdict, PolicyFailure>;
}

/// A policy failure turned into a verdict by the policy's failure mode: closed
/// refuses the event, open lets it through (the identity is still injected, so
/// handler-side checks keep working). The failure itself is only logged.
pub fn or_fail_mode(policy: &dyn BridgePolicy, result: Result<Verdict, PolicyFailure>) -> Verdict {
    match result {
        Ok(v) => v,
        Err(failure) => {
            let what = if failure == PolicyFailure::Starting {
                tracing::debug!(plugin = policy.name(), "bridge policy is starting");
                "is starting; retry shortly"
            } else {
                tracing::warn!(plugin = policy.name(), %failure, "bridge policy failed");
                "failed"
            };
            match policy.fail_mode() {
                FailMode::Closed => Verdict::Refuse(Refusal::Forbidden(format!("policy `{}` {what}", policy.name()))),
                FailMode::Open => Verdict::Allow(vec![("policy".into(), "failed-open".into())]),
            }
        }
    }
}
