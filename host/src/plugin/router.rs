//! Router policies (world `router`) behind `crate::routing::Router`.

use wasmtime::component::Func;
use wasmtime::Store;

use super::bindings::{RequestRef, RouteFunc, WitDecision};
use super::component::{WasmPlugin, World};
use super::error::chain;
use super::store::HostState;
use crate::routing::{Decision, FailMode, PolicyFailure, RouteRequest, Router};

pub struct RouterWorld;

impl World for RouterWorld {
    const NAME: &'static str = "router";
    const EXPORTS: &'static [&'static str] = &["route"];

    fn check_exports(store: &Store<HostState>, exports: &[Func]) -> Result<(), String> {
        exports[0]
            .typed::<(RequestRef<'_>,), (WitDecision,)>(store)
            .map(drop)
            .map_err(|e| format!("`route` does not have the router world's type: {}", chain(&e)))
    }
}

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
        let decision = self.call(|store, exports| {
            // SAFETY: `check_exports` checked this export's type on the same component;
            // `RequestRef<'_>` differs from the checked type only in its lifetime.
            let route = unsafe { RouteFunc::new_unchecked(exports[0]) };
            route.call(store, (RequestRef::from(req),)).map(|(d,)| d)
        })?;
        super::decision::convert(decision)
    }
}
