//! Which supervised upstreams are ready. Shared by the supervisor, which flips the
//! flags, and the gateway, which answers 503 for an upstream that is not ready.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::metrics::Metrics;

#[derive(Default)]
pub struct Readiness {
    /// Only supervised upstreams are listed; any other is always ready.
    flags: HashMap<String, AtomicBool>,
    /// Where each flag is mirrored (`isthmus_upstream_ready`), once `measured`.
    metrics: Option<Arc<Metrics>>,
}

impl Readiness {
    /// Every name starts not ready.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Readiness {
        Readiness { flags: names.into_iter().map(|n| (n.to_owned(), AtomicBool::new(false))).collect(), metrics: None }
    }

    /// Mirror every flag in `metrics` from now on.
    pub fn measured(mut self, metrics: Arc<Metrics>) -> Readiness {
        for name in self.flags.keys() {
            metrics.upstream_ready(name, false);
        }
        self.metrics = Some(metrics);
        self
    }

    pub fn is_ready(&self, upstream: &str) -> bool {
        self.flags.get(upstream).is_none_or(|f| f.load(Ordering::Acquire))
    }

    pub fn set(&self, upstream: &str, ready: bool) {
        if let Some(f) = self.flags.get(upstream) {
            f.store(ready, Ordering::Release);
            if let Some(metrics) = &self.metrics {
                metrics.upstream_ready(upstream, ready);
            }
        }
    }

    pub fn all_ready(&self) -> bool {
        self.waiting().next().is_none()
    }

    /// The supervised upstreams not ready now.
    pub fn waiting(&self) -> impl Iterator<Item = &str> {
        self.flags.iter().filter(|(_, f)| !f.load(Ordering::Acquire)).map(|(name, _)| name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupervised_upstreams_are_always_ready() {
        let r = Readiness::new(["django"]);
        assert!(!r.is_ready("django"));
        assert!(r.is_ready("other"));
        assert!(!r.all_ready());
        assert_eq!(r.waiting().collect::<Vec<_>>(), ["django"]);
        r.set("django", true);
        assert!(r.is_ready("django") && r.all_ready());
        r.set("other", false);
        assert!(r.is_ready("other"));
    }
}
