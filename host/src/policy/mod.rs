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

pub use bridging::{or_fail_mode, BridgeEvent, BridgePolicy, EventKind, Verdict};
pub use identity::{Identity, Resolved};
pub use routing::{Decision, Forward, Needs, Outcome, Reply, RouteRequest, Router, RouterChain, Step};

/// Why a policy refuses a request or an event (`isthmus:policy/refusals.refusal`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Log in first, at this URL (`next=` the page is appended by the gateway).
    LoginRequired(String),
    /// Not allowed, for this reason (shown to the client and logged).
    Forbidden(String),
}

impl Refusal {
    /// Where a login refusal sends the browser: `login_url` with `next=<page>`, escaped
    /// as Django's `redirect_to_login` does (slashes kept).
    pub fn login_location(login_url: &str, page: &str) -> String {
        let next = percent_encoding::utf8_percent_encode(page, NEXT_ESCAPED);
        let sep = if login_url.contains('?') { '&' } else { '?' };
        format!("{login_url}{sep}next={next}")
    }
}

/// What Django's `redirect_to_login` leaves unescaped in `next=` (`quote(safe="/")`).
const NEXT_ESCAPED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'_').remove(b'.').remove(b'-').remove(b'~').remove(b'/');

/// The refusal as clients have always been told it: `login_required:<url>` or
/// `forbidden:<reason>`.
impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::LoginRequired(url) => write!(f, "login_required:{url}"),
            Refusal::Forbidden(reason) => write!(f, "forbidden:{reason}"),
        }
    }
}

/// Why a policy could not answer. Never something a guest chose to say: those are
/// decisions, verdicts or `setup` errors.
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
    /// Its first version is still compiling (start-up does not wait for it).
    #[error("is starting (still compiling)")]
    Starting,
    /// Its first version failed to load (logged then); a reload that works fixes it.
    #[error("is not loaded: its first version failed to load")]
    NotLoaded,
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
