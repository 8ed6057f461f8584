//! Router policies (world `router`) behind `crate::policy::Router`.

use super::bindings::{Request, RouterExports, RouterPre};
use super::component::{world, WasmPlugin};
use super::store::HostState;
use crate::policy::{Decision, FailMode, PolicyFailure, RouteRequest, Router};

world!(RouterWorld, "router", RouterPre<HostState>, RouterExports);

/// A router policy component.
pub type WasmRouter = WasmPlugin<RouterWorld>;

impl Router for WasmRouter {
    fn name(&self) -> &str {
        WasmPlugin::name(self)
    }

    fn fail_mode(&self) -> FailMode {
        WasmPlugin::fail_mode(self)
    }

    fn route(&self, req: &RouteRequest) -> Result<Decision, PolicyFailure> {
        let decision = self.call(|store, exports| exports.call_route(store, Request::from(req)))?;
        super::decision::convert(decision)
    }
}
