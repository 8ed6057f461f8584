//! Routers: what a router sees of a request, the decision it returns, and the chain
//! that asks routers in config order until one decides.

use std::sync::Arc;

use super::{FailMode, PolicyFailure, Refusal, Resolved};

/// A request as routers see it (lent to them as `isthmus:policy/http.request`). `path`
/// is already canonical (see `crate::request`): the same path the upstream will be sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteRequest {
    pub method: String,
    pub scheme: String,
    pub authority: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub client_ip: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// Name of an upstream in `[upstreams]`.
    pub upstream: String,
    /// Replacement path (and optional `?query`) sent upstream; `None` keeps the request's.
    pub path: Option<String>,
    pub set_headers: Vec<(String, String)>,
    pub remove_headers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Forward(Forward),
    /// Serve from the named `[static]` mount.
    ServeStatic(String),
    Reply(Reply),
    /// Refuse the request: a login redirect or 403.
    Refuse(Refusal),
    /// Hand on to the next router in the chain.
    Pass,
}

/// What a router asks of the gateway (`isthmus:policy/routing.needs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// The Django user of each request, resolved before the router is asked.
    pub identity: bool,
}

pub trait Router: Send + Sync {
    fn name(&self) -> &str;
    fn fail_mode(&self) -> FailMode;
    fn needs(&self) -> Needs;
    /// `who` is the request's user when some router of the chain needs it.
    fn route(&self, req: &Arc<RouteRequest>, who: Option<&Arc<Resolved>>) -> Result<Decision, PolicyFailure>;
}

/// What one router in the chain did with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Decided(Decision),
    Passed,
    FailedOpen(PolicyFailure),
    FailedClosed(PolicyFailure),
}

/// The chain's answer for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Decided {
        router: String,
        decision: Decision,
    },
    /// A fail-closed router failed: the gateway answers 503 naming it.
    Failed {
        router: String,
        failure: PolicyFailure,
    },
    /// Every router passed (or failed open): the gateway answers 404.
    NoRoute,
}

#[derive(Clone, Default)]
pub struct RouterChain {
    routers: Vec<Arc<dyn Router>>,
}

impl RouterChain {
    pub fn new(routers: Vec<Arc<dyn Router>>) -> Self {
        Self { routers }
    }

    pub fn routers(&self) -> &[Arc<dyn Router>] {
        &self.routers
    }

    /// Whether any router needs the request's user (it is then resolved before routing).
    pub fn needs_identity(&self) -> bool {
        self.routers.iter().any(|r| r.needs().identity)
    }

    /// Ask each router in order, lending `who` to those that need it. With `trace`,
    /// record every router's step (for `isthmus route`).
    pub fn route(
        &self,
        req: &Arc<RouteRequest>,
        who: Option<&Arc<Resolved>>,
        mut trace: Option<&mut Vec<(String, Step)>>,
    ) -> Outcome {
        for router in &self.routers {
            let result = router.route(req, who);
            match &result {
                Err(PolicyFailure::Starting) => {
                    tracing::debug!(plugin = router.name(), path = %req.path, "router is starting")
                }
                Err(failure) => tracing::warn!(plugin = router.name(), path = %req.path, %failure, "router failed"),
                Ok(_) => {}
            }
            let fail_open = router.fail_mode() == FailMode::Open;
            if let Some(trace) = trace.as_deref_mut() {
                let step = match &result {
                    Ok(Decision::Pass) => Step::Passed,
                    Ok(decision) => Step::Decided(decision.clone()),
                    Err(failure) if fail_open => Step::FailedOpen(failure.clone()),
                    Err(failure) => Step::FailedClosed(failure.clone()),
                };
                trace.push((router.name().to_owned(), step));
            }
            match result {
                Ok(Decision::Pass) => {}
                Ok(decision) => return Outcome::Decided { router: router.name().to_owned(), decision },
                Err(_) if fail_open => {}
                Err(failure) => return Outcome::Failed { router: router.name().to_owned(), failure },
            }
        }
        Outcome::NoRoute
    }
}
