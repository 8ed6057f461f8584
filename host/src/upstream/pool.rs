//! One upstream: its endpoints (one per address) and how a request picks one. A
//! request goes to an endpoint that takes new work (`Endpoint::available`), chosen by
//! the upstream's `balance` (`super::balance`); one whose connect fails is ejected and
//! the request, unsent, goes to the next. Endpoints with a `health` path are probed
//! while serving (`super::health::check`).

use std::sync::Arc;

use http::uri::Authority;
use http::{Request, Response};

use http::HeaderMap;

use super::balance::{self, HashKey, Turns};
use super::endpoint::{Endpoint, Failure, PoolSettings, PooledBody};
use super::{health, UpstreamError};
use crate::body::Body;
use crate::config::{self, Balance};
use crate::metrics::Metrics;

pub struct Pool {
    name: String,
    endpoints: Vec<Arc<Endpoint>>,
    balance: Balance,
    hash_keys: Vec<HashKey>,
    turns: Turns,
}

impl Pool {
    pub fn new(name: &str, upstream: &config::Upstream, settings: PoolSettings, metrics: &Metrics) -> Pool {
        let several = upstream.uris.len() > 1;
        let endpoints: Vec<_> = upstream
            .uris
            .iter()
            .map(|uri| {
                let authority: &Authority = uri.authority().expect("validated by config");
                Endpoint::new(name, authority, several, settings, metrics.connect_errors(name), metrics)
            })
            .collect();
        // Without a runtime (`isthmus check`) nothing is served, so nothing is probed.
        if let (Some(check), Ok(runtime)) = (&upstream.health, tokio::runtime::Handle::try_current()) {
            for (endpoint, uri) in endpoints.iter().zip(&upstream.uris) {
                runtime.spawn(health::check(Arc::downgrade(endpoint), uri.clone(), check.clone()));
            }
        }
        Pool {
            name: name.to_owned(),
            endpoints,
            balance: upstream.balance,
            hash_keys: upstream.hash_keys.clone(),
            turns: Turns::default(),
        }
    }

    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    /// The hash of the request's `hash_key` attribute, with `balance = "hash"`.
    pub fn affinity(&self, query: &str, headers: &HeaderMap) -> Option<u64> {
        match self.balance {
            Balance::Hash => balance::affinity(&self.hash_keys, query, headers),
            _ => None,
        }
    }

    /// Send `req` to an endpoint of the pool (`affinity`: the request's hash key, if
    /// any) and return the response. A request no endpoint could take is refused with
    /// the last endpoint's error.
    pub async fn send(
        &self,
        mut req: Request<Body>,
        affinity: Option<u64>,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        let mut tried: Vec<&Arc<Endpoint>> = Vec::new();
        loop {
            let Some(endpoint) = self.pick(affinity, &tried) else {
                return Err(UpstreamError::NoEndpoint { upstream: self.name.clone() });
            };
            match endpoint.send(req, endpoint.enter()).await {
                Ok(res) => return Ok(res),
                Err(Failure { error, unsent }) => {
                    if !error.is_connect_failure() {
                        return Err(error);
                    }
                    endpoint.eject();
                    tried.push(endpoint);
                    match unsent {
                        Some(unsent) if tried.len() < self.endpoints.len() => req = unsent,
                        _ => return Err(error),
                    }
                }
            }
        }
    }

    /// An endpoint not tried yet that takes new work; if none does, one that is at
    /// least running (see `Endpoint::serving`).
    fn pick(&self, affinity: Option<u64>, tried: &[&Arc<Endpoint>]) -> Option<&Arc<Endpoint>> {
        let untried = || self.endpoints.iter().filter(|e| !tried.iter().any(|t| Arc::ptr_eq(t, e)));
        let mut candidates: Vec<&Arc<Endpoint>> = untried().filter(|e| e.available()).collect();
        if candidates.is_empty() {
            candidates = untried().filter(|e| e.serving()).collect();
            if !candidates.is_empty() {
                tracing::debug!(upstream = %self.name, "no endpoint passes its checks: trying those running");
            }
        }
        (!candidates.is_empty()).then(|| balance::choose(self.balance, &candidates, affinity, &self.turns))
    }
}

/// A pool of upstream `a` configured by `fields` (the lines of `[upstreams.a]`), for tests.
#[cfg(test)]
pub(crate) fn for_tests(fields: &str) -> Pool {
    let text = format!(
        "[listen]\naddr = \"127.0.0.1:0\"\n[upstreams.a]\n{fields}\n\
         [routing]\nrouters = [{{ plugin = \"builtin:prefix-router\" }}]\n"
    );
    let config = config::Config::parse(&text, std::path::Path::new("isthmus.toml")).expect("config");
    let settings = PoolSettings {
        connect_timeout: config.timeouts.connect,
        idle_timeout: config.timeouts.pool_idle,
        max_idle: crate::limits::POOL_MAX_IDLE_PER_HOST,
        max_connections: config.upstreams["a"].max_connections,
    };
    Pool::new("a", &config.upstreams["a"], settings, &Metrics::new(&config))
}
