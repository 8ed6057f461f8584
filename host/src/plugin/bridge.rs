//! Bridge policies (world `bridge`) behind `crate::bridge::policy::BridgePolicy`.

use wasmtime::component::Func;
use wasmtime::Store;

use std::sync::Arc;

use wasmtime::component::Resource;

use super::bindings::{EventRef, OnConnectFunc, OnEventFunc, RequestRef, WitVerdict, Who};
use super::component::{WasmPlugin, World};
use super::error::chain;
use super::store::HostState;
use super::users::lend;
use crate::bridge::identity::Resolved;
use crate::bridge::policy::{BridgeEvent, BridgePolicy, Verdict};
use crate::limits::PLUGIN_MAX_REPLY_BYTES;
use crate::routing::{FailMode, PolicyFailure, RouteRequest};

pub struct BridgeWorld;

impl World for BridgeWorld {
    const NAME: &'static str = "bridge";
    const EXPORTS: &'static [&'static str] = &["on-connect", "on-event"];

    fn check_exports(store: &Store<HostState>, exports: &[Func]) -> Result<(), String> {
        exports[0]
            .typed::<(RequestRef<'_>, Resource<Who>), (WitVerdict,)>(store)
            .map_err(|e| format!("`on-connect` does not have the bridge world's type: {}", chain(&e)))?;
        exports[1]
            .typed::<(EventRef<'_>, Resource<Who>), (WitVerdict,)>(store)
            .map_err(|e| format!("`on-event` does not have the bridge world's type: {}", chain(&e)))?;
        Ok(())
    }
}

/// A bridge policy component.
pub type WasmBridge = WasmPlugin<BridgeWorld>;

impl BridgePolicy for WasmBridge {
    fn name(&self) -> &str {
        WasmPlugin::name(self)
    }

    fn fail_mode(&self) -> FailMode {
        WasmPlugin::fail_mode(self)
    }

    fn on_connect(&self, handshake: &RouteRequest, who: &Arc<Resolved>) -> Result<Verdict, PolicyFailure> {
        let verdict = self.call(|store, exports| {
            // SAFETY: `check_exports` checked the type; the refs differ only in lifetime.
            let f = unsafe { OnConnectFunc::new_unchecked(exports[0]) };
            lend(store, who, |store, who| f.call(store, (RequestRef::from(handshake), who)).map(|(v,)| v))
        })?;
        convert(verdict)
    }

    fn on_event(&self, event: &BridgeEvent<'_>, who: &Arc<Resolved>) -> Result<Verdict, PolicyFailure> {
        let verdict = self.call(|store, exports| {
            // SAFETY: as above.
            let f = unsafe { OnEventFunc::new_unchecked(exports[1]) };
            lend(store, who, |store, who| f.call(store, (EventRef::from(event), who)).map(|(v,)| v))
        })?;
        convert(verdict)
    }
}

/// A verdict, bounded: its context and reasons end up in every forwarded event.
fn convert(v: WitVerdict) -> Result<Verdict, PolicyFailure> {
    let size = match &v {
        WitVerdict::Allow(fields) => fields.iter().map(|(k, v)| k.len() + v.len()).sum(),
        WitVerdict::Deny(reason) | WitVerdict::Close(reason) => reason.len(),
    };
    if size > PLUGIN_MAX_REPLY_BYTES {
        return Err(PolicyFailure::Invalid(format!("verdict of {size} bytes, over {PLUGIN_MAX_REPLY_BYTES}")));
    }
    Ok(match v {
        WitVerdict::Allow(fields) => Verdict::Allow(fields),
        WitVerdict::Deny(reason) => Verdict::Deny(reason),
        WitVerdict::Close(reason) => Verdict::Close(reason),
    })
}
