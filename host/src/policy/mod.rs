//! The policy contract, host side: what a router or a bridge policy is asked
//! (`RouteRequest`, `BridgeEvent`, the lent `Identity`), what it answers (`Decision`,
//! `Verdict`), how a policy that fails is told apart from one that answers
//! (`PolicyFailure`, `FailMode`), and the router chain. `crate::plugin` implements
//! `Router` and `BridgePolicy` with WebAssembly components (`wit/policy.wit`); the rest
//! of the gateway knows policies only through this module.

mod bridging;
mod identity;
mod routing;

use std::time::Duration;

pub use bridging::{or_fail_mode, BridgeEvent, BridgePolicy, Verdict};
pub use identity::{Identity, Resolved};
pub use routing::{Decision, Forward, Outcome, Reply, RouteRequest, Router, RouterChain, Step};

/// Why a policy could not answer. Never something a guest chose to say: those are
/// decisions, verdicts or `init` errors.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PolicyFailure {
    #[error("trapped: {0}")]
    Trap(String),
    #[error("ran past its {0:?} deadline")]
    Deadline(Duration),
    #[error("reached its memory cap of {0} bytes")]
    MemoryCap(usize),
    #[error("returned an invalid decision: {0}")]
    Invalid(String),
}

/// What to do when a policy fails (`fail` of a plugin entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Routers: answer 503 naming the router. Bridge: refuse the event.
    #[default]
    Closed,
    /// Routers: skip to the next router. Bridge: let the event through.
    Open,
}
