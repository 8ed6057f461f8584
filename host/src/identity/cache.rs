//! The identity cache: the Django identity behind a session cookie, fetched from the companion app's
//! identity endpoint, cached per cookie value (or its digest: `keys`) for a short TTL,
//! one fetch in flight per value however many connections ask, and dropped at once when
//! Django sets or deletes that cookie (login, logout), here or through another gateway.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::keys::{Key, Keys};
use crate::limits;
use crate::metrics::{Lookup, Metrics};
use crate::policy::{Identity, Resolved};

#[derive(Debug, Clone, thiserror::Error)]
pub enum IdentityError {
    #[error("identity endpoint unreachable: {0}")]
    Unreachable(String),
    #[error("identity endpoint did not answer within {0:?}")]
    Timeout(Duration),
    #[error("identity endpoint answered {0}")]
    Status(u16),
    #[error("identity endpoint answered malformed JSON: {0}")]
    Malformed(String),
    #[error("identity endpoint failed moments ago; not asked again for {0:?}")]
    Backoff(Duration),
}

/// The origin a browser reached the site by: Django checks the Host against
/// ALLOWED_HOSTS and the scheme against SECURE_SSL_REDIRECT on the identity call too.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub host: String,
    pub scheme: String,
}

/// Where identities come from (the Django upstream in production).
pub trait IdentitySource: Send + Sync + 'static {
    fn fetch(
        &self,
        session_cookie: &str,
        origin: &Origin,
    ) -> impl Future<Output = Result<Identity, IdentityError>> + Send;
}

struct Slot {
    value: OnceCell<Arc<Resolved>>,
    born: Instant,
}

pub struct IdentityCache<S> {
    source: S,
    ttl: Duration,
    capacity: usize,
    /// What cookie values are found by.
    keys: Keys,
    slots: Mutex<HashMap<Key, Arc<Slot>>>,
    /// After a failed fetch, misses fail at once until then: a down or hanging Django
    /// must not cost every event the whole timeout, nor get a new request per event.
    down_until: Mutex<Option<Instant>>,
    /// Where lookups are counted (`measured`).
    metrics: Option<Arc<Metrics>>,
}

impl<S: IdentitySource> IdentityCache<S> {
    pub fn new(source: S, ttl: Duration, capacity: usize) -> Self {
        Self {
            source,
            ttl,
            capacity,
            keys: Keys::plain(),
            slots: Mutex::new(HashMap::new()),
            down_until: Mutex::new(None),
            metrics: None,
        }
    }

    /// Find cookie values by `keys` (their digests, for `[redis]`).
    pub fn keyed(mut self, keys: Keys) -> Self {
        self.keys = keys;
        self
    }

    /// Count every lookup of a cookie in `metrics`: a hit (cached, or another lookup's
    /// fetch shared), a miss (fetched) or an error.
    pub fn measured(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The identity for a session cookie value; `None` (no cookie) is anonymous without asking.
    /// The identity depends on the cookie alone; `origin` is only needed to ask Django.
    pub async fn get(&self, session_cookie: Option<&str>, origin: &Origin) -> Result<Arc<Resolved>, IdentityError> {
        let Some(cookie) = session_cookie else {
            return Ok(Resolved::anonymous());
        };
        let slot = self.slot(self.keys.of(cookie));
        let fetched = AtomicBool::new(false);
        // A failure is not cached per cookie; it holds every miss back for a moment.
        let result = slot
            .value
            .get_or_try_init(|| async {
                if let Some(until) = *self.down_until.lock().unwrap() {
                    if Instant::now() < until {
                        return Err(IdentityError::Backoff(limits::IDENTITY_FAILURE_BACKOFF));
                    }
                }
                fetched.store(true, Ordering::Relaxed);
                let fetched = self.source.fetch(cookie, origin).await;
                *self.down_until.lock().unwrap() =
                    fetched.is_err().then(|| Instant::now() + limits::IDENTITY_FAILURE_BACKOFF);
                fetched.map(Resolved::new)
            })
            .await
            .cloned();
        if let Some(metrics) = &self.metrics {
            metrics.identity(match (&result, fetched.load(Ordering::Relaxed)) {
                (Err(_), _) => Lookup::Error,
                (Ok(_), true) => Lookup::Miss,
                (Ok(_), false) => Lookup::Hit,
            });
        }
        result
    }

    fn slot(&self, key: Key) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap();
        let now = Instant::now();
        if let Some(slot) = slots.get(&key) {
            if now.duration_since(slot.born) < self.ttl || !slot.value.initialized() {
                return slot.clone();
            }
        }
        if slots.len() >= self.capacity {
            let ttl = self.ttl;
            slots.retain(|_, s| now.duration_since(s.born) < ttl);
            // Still full of fresh entries (many distinct cookies): drop some, any.
            let excess = (slots.len() + 1).saturating_sub(self.capacity);
            let victims: Vec<Key> = slots.keys().take(excess).cloned().collect();
            for key in victims {
                slots.remove(&key);
            }
        }
        let slot = Arc::new(Slot { value: OnceCell::new(), born: now });
        slots.insert(key, slot.clone());
        slot
    }

    /// Forget a cookie value at once (Django set or deleted the session cookie), by its
    /// key under the cache's `keys`.
    pub fn invalidate(&self, key: &Key) {
        self.slots.lock().unwrap().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting {
        calls: Arc<AtomicUsize>,
        fail: bool,
    }

    impl IdentitySource for Counting {
        async fn fetch(&self, cookie: &str, _origin: &Origin) -> Result<Identity, IdentityError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            if self.fail {
                return Err(IdentityError::Status(500));
            }
            Ok(Identity { authenticated: true, username: format!("{cookie}#{n}"), ..Identity::default() })
        }
    }

    fn cache(fail: bool, ttl: Duration) -> (Arc<IdentityCache<Counting>>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        (Arc::new(IdentityCache::new(Counting { calls: calls.clone(), fail }, ttl, 1000)), calls)
    }

    #[tokio::test]
    async fn no_cookie_is_anonymous_without_a_fetch() {
        let (cache, calls) = cache(false, Duration::from_secs(5));
        assert!(!cache.get(None, &Origin::default()).await.unwrap().identity.authenticated);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_fetch() {
        let (cache, calls) = cache(false, Duration::from_secs(5));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move {
                    cache.get(Some("abc"), &Origin::default()).await.unwrap().identity.username.clone()
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), "abc#0");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        cache.get(Some("other"), &Origin::default()).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2, "cached per cookie value");
    }

    #[tokio::test]
    async fn entries_expire_and_can_be_dropped() {
        let (cache, calls) = cache(false, Duration::from_millis(100));
        assert_eq!(cache.get(Some("a"), &Origin::default()).await.unwrap().identity.username, "a#0");
        assert_eq!(cache.get(Some("a"), &Origin::default()).await.unwrap().identity.username, "a#0");
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(cache.get(Some("a"), &Origin::default()).await.unwrap().identity.username, "a#1", "expired");
        cache.invalidate(&Keys::plain().of("a"));
        assert_eq!(cache.get(Some("a"), &Origin::default()).await.unwrap().identity.username, "a#2", "invalidated");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn keyed_by_digest_an_entry_is_dropped_by_its_digest_alone() {
        let keys = Keys::digested(b"a site's identity secret, 32 chars or more");
        let calls = Arc::new(AtomicUsize::new(0));
        let cache =
            IdentityCache::new(Counting { calls, fail: false }, Duration::from_secs(60), 1000).keyed(keys.clone());
        assert_eq!(cache.get(Some("a"), &Origin::default()).await.unwrap().identity.username, "a#0");
        cache.invalidate(&Keys::plain().of("a"));
        assert_eq!(cache.get(Some("a"), &Origin::default()).await.unwrap().identity.username, "a#0", "not its key");
        cache.invalidate(&keys.of("a"));
        assert_eq!(cache.get(Some("a"), &Origin::default()).await.unwrap().identity.username, "a#1", "dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_holds_misses_back_briefly_then_asks_again() {
        let (cache, calls) = cache(true, Duration::from_secs(5));
        assert!(matches!(cache.get(Some("a"), &Origin::default()).await, Err(IdentityError::Status(500))));
        assert!(matches!(cache.get(Some("b"), &Origin::default()).await, Err(IdentityError::Backoff(_))), "fails fast");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(limits::IDENTITY_FAILURE_BACKOFF).await;
        assert!(
            matches!(cache.get(Some("a"), &Origin::default()).await, Err(IdentityError::Status(500))),
            "asks again"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_cache_is_bounded() {
        let calls = Arc::new(AtomicUsize::new(0));
        let cache = IdentityCache::new(Counting { calls, fail: false }, Duration::from_millis(10), 4);
        for i in 0..4 {
            cache.get(Some(&i.to_string()), &Origin::default()).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        cache.get(Some("new"), &Origin::default()).await.unwrap();
        assert_eq!(cache.slots.lock().unwrap().len(), 1, "expired entries swept when full");
        for i in 0..10 {
            cache.get(Some(&format!("fresh{i}")), &Origin::default()).await.unwrap();
        }
        assert!(cache.slots.lock().unwrap().len() <= 4, "never more than the capacity");
    }
}
