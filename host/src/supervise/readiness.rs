//! Which supervised upstreams are ready. Shared by the supervisor, which flips the
//! flags, and the gateway, which answers 503 for an upstream that is not ready.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct Readiness {
    /// Only supervised upstreams are listed; any other is always ready.
    flags: HashMap<String, AtomicBool>,
}

impl Readiness {
    /// Every name starts not ready.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Readiness {
        Readiness { flags: names.into_iter().map(|n| (n.to_owned(), AtomicBool::new(false))).collect() }
    }

    pub fn is_ready(&self, upstream: &str) -> bool {
        self.flags.get(upstream).is_none_or(|f| f.load(Ordering::Acquire))
    }

    pub fn set(&self, upstream: &str, ready: bool) {
        if let Some(f) = self.flags.get(upstream) {
            f.store(ready, Ordering::Release);
        }
    }

    pub fn all_ready(&self) -> bool {
        self.flags.values().all(|f| f.load(Ordering::Acquire))
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
        r.set("django", true);
        assert!(r.is_ready("django") && r.all_ready());
        r.set("other", false);
        assert!(r.is_ready("other"));
    }
}
