//! Bridge policies (world `bridge`) behind `crate::policy::BridgePolicy`.

use std::sync::Arc;

use super::bindings::{BridgeExports, BridgePre, LentEvent, LentRequest, Who, WitVerdict};
use super::component::{world, WasmPlugin};
use super::decision::{check_fields, refusal};
use super::lend::lend;
use super::store::HostState;
use crate::policy::{BridgeEvent, BridgePolicy, FailMode, PolicyFailure, Resolved, RouteRequest, Verdict};

world!(BridgeWorld, "bridge", BridgePre<HostState>, BridgeExports, ());

/// A bridge policy component.
pub type WasmBridge = WasmPlugin<BridgeWorld>;

impl BridgePolicy for WasmBridge {
    fn name(&self) -> &str {
        WasmPlugin::name(self)
    }

    fn fail_mode(&self) -> FailMode {
        WasmPlugin::fail_mode(self)
    }

    fn on_connect(&self, handshake: &Arc<RouteRequest>, who: &Arc<Resolved>) -> Result<Verdict, PolicyFailure> {
        let verdict = self.call(|store, exports| {
            lend(store, LentRequest(handshake.clone()), |store, req| {
                lend(store, Who(Some(who.clone())), |store, who| exports.call_on_connect(store, req, who))
            })
        })?;
        convert(verdict)
    }

    fn on_event(&self, event: &Arc<BridgeEvent>, who: &Arc<Resolved>) -> Result<Verdict, PolicyFailure> {
        let verdict = self.call(|store, exports| {
            lend(store, LentEvent(event.clone()), |store, ev| {
                lend(store, Who(Some(who.clone())), |store, who| exports.call_on_event(store, ev, who))
            })
        })?;
        convert(verdict)
    }
}

/// A verdict, checked and bounded: its context and reasons end up in every forwarded event.
fn convert(v: WitVerdict) -> Result<Verdict, PolicyFailure> {
    Ok(match v {
        WitVerdict::Allow(fields) => {
            check_fields("allow", &fields)?;
            Verdict::Allow(fields)
        }
        WitVerdict::Refuse(r) => Verdict::Refuse(refusal(r)?),
        WitVerdict::Close(reason) => Verdict::Close(super::decision::bounded("close reason", reason)?),
    })
}
