//! Router policies (world `router`) behind `crate::policy::Router`.

use std::sync::Arc;

use super::bindings::{LentRequest, RouterExports, RouterPre, WitNeeds};
use super::component::{world, WasmPlugin};
use super::lend::{lend, who_for_router};
use super::store::HostState;
use crate::policy::{Decision, FailMode, Needs, PolicyFailure, Resolved, RouteRequest, Router};

world!(RouterWorld, "router", RouterPre<HostState>, RouterExports, WitNeeds);

/// A router policy component.
pub type WasmRouter = WasmPlugin<RouterWorld>;

impl Router for WasmRouter {
    fn name(&self) -> &str {
        WasmPlugin::name(self)
    }

    fn fail_mode(&self) -> FailMode {
        WasmPlugin::fail_mode(self)
    }

    fn needs(&self) -> Needs {
        // Before a version serves, the router is not called (it is starting): no user needed.
        Needs { identity: self.setup().is_some_and(|needs| needs.identity) }
    }

    fn route(&self, req: &Arc<RouteRequest>, who: Option<&Arc<Resolved>>) -> Result<Decision, PolicyFailure> {
        let who = who_for_router(self.needs().identity, who);
        let decision = self.call(|store, exports| {
            lend(store, LentRequest(req.clone()), |store, req| {
                lend(store, who, |store, who| exports.call_route(store, req, who))
            })
        })?;
        super::decision::convert(decision)
    }
}
