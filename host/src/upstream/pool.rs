//! One upstream: its endpoints (one per address) and how a request picks one. A
//! request goes to an endpoint that takes new work (`Endpoint::available`), chosen by
//! the upstream's `balance` (`super::balance`); one whose connect fails is ejected and
//! the request, unsent, goes to the next. Endpoints with a `health` path are probed
//! while serving (`super::health::check`). A pool of several Reflex endpoints that do
//! not share their state through Redis is refused (`super::health::await_shared_state`).

use std::sync::{Arc, OnceLock, Weak};

use http::{HeaderMap, Request, Response};
use tokio::sync::Notify;

use super::address::Address;
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
    /// Why the pool may not serve (Reflex replicas without Redis), once known.
    refused: Arc<OnceLock<String>>,
}

impl Pool {
    /// `refusal` is told when the pool finds it may not serve.
    pub fn new(
        name: &str,
        upstream: &config::Upstream,
        settings: PoolSettings,
        metrics: &Metrics,
        refusal: &Arc<Notify>,
    ) -> Pool {
        let several = upstream.addresses.len() > 1;
        let endpoints: Vec<_> = upstream
            .addresses
            .iter()
            .map(|address| {
                Endpoint::new(name, address.clone(), several, settings, metrics.connect_errors(name), metrics)
            })
            .collect();
        // Without a runtime (`isthmus check`) nothing is served, so nothing is probed.
        let refused = Arc::new(OnceLock::new());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            if let Some(check) = &upstream.health {
                for (endpoint, address) in endpoints.iter().zip(&upstream.addresses) {
                    runtime.spawn(health::check(Arc::downgrade(endpoint), address.clone(), check.clone()));
                }
            }
            if several {
                runtime.spawn(refuse_unshared_state(
                    name.to_owned(),
                    upstream.addresses.clone(),
                    Arc::downgrade(&refused),
                    refusal.clone(),
                ));
            }
        }
        Pool {
            name: name.to_owned(),
            endpoints,
            balance: upstream.balance,
            hash_keys: upstream.hash_keys.clone(),
            turns: Turns::default(),
            refused,
        }
    }

    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    /// Why the pool may not serve, if it may not.
    pub fn refused(&self) -> Option<&str> {
        self.refused.get().map(String::as_str)
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
        if self.refused().is_some() {
            return Err(UpstreamError::Refused { upstream: self.name.clone() });
        }
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
        if let [only] = self.endpoints.as_slice() {
            return (tried.is_empty() && only.serving()).then_some(only);
        }
        let untried = |e: &&Arc<Endpoint>| !tried.iter().any(|t| Arc::ptr_eq(t, e));
        let available = |e: &&Arc<Endpoint>| untried(e) && e.available();
        let serving = |e: &&Arc<Endpoint>| untried(e) && e.serving();
        let (balance, turns) = (self.balance, &self.turns);
        if self.endpoints.iter().any(|e| available(&e)) {
            return Some(balance::choose(balance, self.endpoints.iter().filter(available), affinity, turns));
        }
        if self.endpoints.iter().any(|e| serving(&e)) {
            tracing::debug!(upstream = %self.name, "no endpoint passes its checks: trying those running");
            return Some(balance::choose(balance, self.endpoints.iter().filter(serving), affinity, turns));
        }
        None
    }
}

/// Reflex replicas keep each client's state in their own memory unless they share
/// Redis: behind one pool, a client reconnecting to another replica would find none.
async fn refuse_unshared_state(
    name: String,
    addresses: Vec<Address>,
    refused: Weak<OnceLock<String>>,
    refusal: Arc<Notify>,
) {
    if health::await_shared_state(&addresses).await != health::SharedState::Missing {
        return;
    }
    let why = format!(
        "upstreams.{name}: its {} endpoints are Reflex backends without Redis (their /_health names no `redis`): \
         each would keep its own clients' state, lost when a client reconnects to another. Give every replica \
         REFLEX_REDIS_URL (Reflex then keeps state in Redis), or give the upstream one endpoint",
        addresses.len()
    );
    tracing::error!("{why}");
    if let Some(refused) = refused.upgrade() {
        let _ = refused.set(why);
        refusal.notify_one();
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
    Pool::new("a", &config.upstreams["a"], settings, &Metrics::new(&config), &Arc::new(Notify::new()))
}
