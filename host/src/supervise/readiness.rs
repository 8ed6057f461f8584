//! Which supervised upstreams are ready. Shared by the supervisor, which flips the
//! flags, and the gateway, which answers 503 for an upstream that is not ready.

use std::collections::HashMap;
use std::sync::Arc;

use crate::metrics::Metrics;
use crate::upstream::Endpoint;

#[derive(Default)]
pub struct Readiness {
    /// Only supervised upstreams are listed, with their started (or watched) endpoints;
    /// any other upstream is always ready.
    upstreams: HashMap<String, Vec<Arc<Endpoint>>>,
    /// Where each upstream's readiness is mirrored (`isthmus_upstream_ready`), once `measured`.
    metrics: Option<Arc<Metrics>>,
}

impl Readiness {
    /// Every endpoint starts not ready: the pool sends it nothing until it is.
    pub fn new(upstreams: impl IntoIterator<Item = (String, Vec<Arc<Endpoint>>)>) -> Readiness {
        let upstreams: HashMap<_, _> = upstreams.into_iter().collect();
        for endpoint in upstreams.values().flatten() {
            endpoint.set_running(false);
        }
        Readiness { upstreams, metrics: None }
    }

    /// Mirror every upstream's readiness in `metrics` from now on.
    pub fn measured(mut self, metrics: Arc<Metrics>) -> Readiness {
        for name in self.upstreams.keys() {
            metrics.upstream_ready(name, false);
        }
        self.metrics = Some(metrics);
        self
    }

    /// Ready: at least one of its endpoints is.
    pub fn is_ready(&self, upstream: &str) -> bool {
        self.upstreams.get(upstream).is_none_or(|endpoints| endpoints.iter().any(|e| e.is_running()))
    }

    pub fn set(&self, upstream: &str, endpoint: &Endpoint, ready: bool) {
        endpoint.set_running(ready);
        if let Some(metrics) = &self.metrics {
            metrics.upstream_ready(upstream, self.is_ready(upstream));
        }
    }

    pub fn all_ready(&self) -> bool {
        self.waiting().next().is_none()
    }

    /// The supervised upstreams not ready now.
    pub fn waiting(&self) -> impl Iterator<Item = &str> {
        self.upstreams.keys().filter(|name| !self.is_ready(name)).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_is_ready_with_one_endpoint_ready_and_unsupervised_ones_always_are() {
        let pool =
            crate::upstream::pool::for_tests("endpoints = [\"http://127.0.0.1:8001\", \"http://127.0.0.1:8002\"]");
        let (a, b) = (pool.endpoints()[0].clone(), pool.endpoints()[1].clone());
        let r = Readiness::new([("django".to_owned(), vec![a.clone(), b.clone()])]);
        assert!(!a.is_running() && !b.is_running());
        assert!(!r.is_ready("django"));
        assert!(r.is_ready("other"));
        assert!(!r.all_ready());
        assert_eq!(r.waiting().collect::<Vec<_>>(), ["django"]);
        r.set("django", &b, true);
        assert!(r.is_ready("django") && r.all_ready() && b.is_running() && !a.is_running());
        r.set("django", &b, false);
        assert!(!r.is_ready("django"));
    }
}
