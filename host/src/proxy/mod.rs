//! The proxy target: a request forwarded to an upstream as the router decided, its
//! response streamed back; an upgraded connection (WebSocket and other `Upgrade:`
//! protocols) becomes a plain byte tunnel (`tunnel`).

mod tunnel;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::body::Body;
use crate::metrics::TunnelKind;
use crate::upstream::{Exchanged, Hop, Outbound, UpstreamError, Upstreams};

/// Forward `req` as `outbound` says. `Ok` is the upstream's answer (a 101 once the
/// tunnel is set up); `Err` is for the gateway to answer.
pub async fn forward(
    upstreams: &Upstreams,
    req: Request<Incoming>,
    outbound: Outbound<'_>,
    hop: &Hop<'_>,
) -> Result<Response<Body>, UpstreamError> {
    let name = outbound.upstream_name();
    match upstreams.exchange(req, outbound, hop).await? {
        Exchanged::Response(response) => Ok(response),
        Exchanged::Switched { response, client, upstream, slot } => {
            let (idle, name) = (upstreams.timeouts().idle, name.to_owned());
            upstreams
                .tunnels()
                .spawn(TunnelKind::Plain, slot, move |shutdown| tunnel::run(client, upstream, idle, shutdown, name));
            Ok(response)
        }
    }
}
