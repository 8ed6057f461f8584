//! Bridge policies (world `bridge`) behind `crate::policy::BridgePolicy`.

use std::sync::Arc;

use super::bindings::{BridgeExports, BridgePre, Event, Request, WitVerdict};
use super::component::{world, WasmPlugin};
use super::store::HostState;
use super::users::lend;
use crate::limits::PLUGIN_MAX_REPLY_BYTES;
use crate::policy::{BridgeEvent, BridgePolicy, FailMode, PolicyFailure, Resolved, RouteRequest, Verdict};

world!(BridgeWorld, "bridge", BridgePre<HostState>, BridgeExports);

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
            lend(store, who, |store, who| exports.call_on_connect(store, Request::from(handshake), who))
        })?;
        convert(verdict)
    }

    fn on_event(&self, event: &BridgeEvent<'_>, who: &Arc<Resolved>) -> Result<Verdict, PolicyFailure> {
        let verdict = self.call(|store, exports| {
            lend(store, who, |store, who| exports.call_on_event(store, Event::from(event), who))
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
