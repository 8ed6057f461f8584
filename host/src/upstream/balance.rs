//! How a pool picks an endpoint for a request: least connections, round robin, or
//! rendezvous hashing of a request attribute. Pure choices over the endpoints' state,
//! so they are tested without a network.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::header::HeaderName;
use http::HeaderMap;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::endpoint::Endpoint;
use crate::config::Balance;

/// `upstreams.<name>.hash_key`: a request attribute whose value picks the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// A query parameter, by its name as sent (Reflex's `token` on `/_event`).
    Query(String),
    /// A request header (Reflex's `Reflex-Client-Token` on uploads).
    Header(HeaderName),
}

impl HashKey {
    pub fn parse(spec: &str) -> Result<HashKey, String> {
        match spec.split_once(':') {
            Some(("query", name)) if !name.is_empty() => Ok(HashKey::Query(name.to_owned())),
            Some(("header", name)) => HeaderName::from_bytes(name.trim().as_bytes())
                .map(HashKey::Header)
                .map_err(|_| format!("`{spec}`: `{name}` is not a header name")),
            _ => Err(format!("`{spec}` is not `query:NAME` or `header:NAME`")),
        }
    }

    /// The attribute's value in a request, if it has one (the first, if several).
    fn find<'a>(&self, query: &'a str, headers: &'a HeaderMap) -> Option<&'a [u8]> {
        match self {
            HashKey::Query(name) => query
                .split('&')
                .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
                .find(|(k, v)| k == name && !v.is_empty())
                .map(|(_, v)| v.as_bytes()),
            HashKey::Header(name) => headers.get(name).map(|v| v.as_bytes()).filter(|v| !v.is_empty()),
        }
    }
}

/// The hash of the first of `keys` the request carries; none: no affinity.
pub fn affinity(keys: &[HashKey], query: &str, headers: &HeaderMap) -> Option<u64> {
    keys.iter().find_map(|k| k.find(query, headers)).map(xxh3_64)
}

/// Turns of round robin, and the tie-breaker of least connections.
#[derive(Default)]
pub struct Turns(AtomicUsize);

impl Turns {
    fn next(&self) -> usize {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// The endpoint for a request among `candidates` (never empty), by `balance`.
/// `affinity` without `Hash` is ignored; `Hash` without one falls back to least connections.
/// An iterator, not a collected list: a pick allocates nothing.
pub fn choose<'a, I>(balance: Balance, candidates: I, affinity: Option<u64>, turns: &Turns) -> &'a Arc<Endpoint>
where
    I: Iterator<Item = &'a Arc<Endpoint>> + Clone,
{
    let n = candidates.clone().count();
    let picked = match (balance, affinity) {
        (Balance::Hash, Some(key)) => candidates.max_by_key(|e| xxh3_64_with_seed(&key.to_le_bytes(), e.seed)),
        (Balance::RoundRobin, _) => candidates.clone().nth(turns.next() % n),
        // The fewest in progress; among equals, the next in turn, so that an idle pool
        // spreads its first requests instead of sending them all to the first endpoint.
        _ => {
            let start = turns.next() % n;
            candidates.clone().skip(start).chain(candidates.take(start)).min_by_key(|e| e.in_flight())
        }
    };
    picked.expect("not empty")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn endpoints(n: usize) -> Vec<Arc<Endpoint>> {
        let pool = crate::upstream::pool::for_tests(&format!(
            "url = \"http://127.0.0.1:8000\"\nreplicas = {n}\nrun = \"serve {{port}}\""
        ));
        pool.endpoints().to_vec()
    }

    #[test]
    fn hash_keys_parse_and_name_what_is_wrong() {
        assert_eq!(HashKey::parse("query:token"), Ok(HashKey::Query("token".into())));
        assert_eq!(
            HashKey::parse("header:Reflex-Client-Token"),
            Ok(HashKey::Header(HeaderName::from_static("reflex-client-token")))
        );
        assert!(HashKey::parse("cookie:sessionid").unwrap_err().contains("query:NAME"));
        assert!(HashKey::parse("query:").is_err());
        assert!(HashKey::parse("header:bad header").unwrap_err().contains("not a header name"));
    }

    #[test]
    fn affinity_is_the_first_attribute_present() {
        let keys = [HashKey::parse("query:token").unwrap(), HashKey::parse("header:reflex-client-token").unwrap()];
        let mut headers = HeaderMap::new();
        headers.insert("reflex-client-token", "abc".parse().unwrap());
        assert_eq!(affinity(&keys, "EIO=4&token=abc", &HeaderMap::new()), Some(xxh3_64(b"abc")));
        assert_eq!(affinity(&keys, "EIO=4&token=", &headers), Some(xxh3_64(b"abc")));
        assert_eq!(affinity(&keys, "EIO=4&transport=websocket", &HeaderMap::new()), None);
        assert_eq!(affinity(&keys, "tokens=abc&xtoken=abc", &HeaderMap::new()), None);
    }

    #[test]
    fn rendezvous_is_stable_spreads_evenly_and_moves_only_the_leaving_endpoints_keys() {
        let all = endpoints(3);
        let turns = Turns::default();
        let refs: Vec<_> = all.iter().collect();
        let pick = |cands: &[&Arc<Endpoint>], key: u64| {
            choose(Balance::Hash, cands.iter().copied(), Some(key), &turns).address().to_owned()
        };
        let mut counts = HashMap::new();
        let mut moved = 0;
        for k in 0..3000u64 {
            let key = xxh3_64(&k.to_le_bytes());
            let first = pick(&refs, key);
            assert_eq!(first, pick(&refs, key), "same key, same endpoint");
            *counts.entry(first.clone()).or_insert(0) += 1;
            // Endpoint 8001 leaves: only its keys move.
            let without: Vec<_> = refs.iter().copied().filter(|e| e.address() != "127.0.0.1:8001").collect();
            let second = pick(&without, key);
            if first != "127.0.0.1:8001" {
                assert_eq!(first, second, "a key of a remaining endpoint stays");
            } else {
                moved += 1;
            }
        }
        assert_eq!(counts.len(), 3);
        for (address, n) in &counts {
            assert!((850..=1150).contains(n), "{address} got {n} of 3000 keys");
        }
        assert_eq!(moved, counts["127.0.0.1:8001"]);
    }

    #[test]
    fn least_conn_takes_the_idlest_and_spreads_ties() {
        let all = endpoints(3);
        let refs: Vec<_> = all.iter().collect();
        let turns = Turns::default();
        let _busy = [all[0].enter(), all[0].enter(), all[1].enter()];
        assert_eq!(choose(Balance::LeastConn, refs.iter().copied(), None, &turns).address(), "127.0.0.1:8002");
        let _more = [all[2].enter(), all[2].enter()];
        assert_eq!(choose(Balance::LeastConn, refs.iter().copied(), None, &turns).address(), "127.0.0.1:8001");
        // Hash without a key: least connections too.
        assert_eq!(choose(Balance::Hash, refs.iter().copied(), None, &turns).address(), "127.0.0.1:8001");
        drop(_busy);
        let firsts: std::collections::HashSet<_> = (0..6)
            .map(|_| choose(Balance::LeastConn, refs[..2].iter().copied(), None, &turns).address().to_owned())
            .collect();
        assert_eq!(firsts.len(), 2, "ties go round");
    }

    #[test]
    fn round_robin_takes_turns() {
        let all = endpoints(3);
        let refs: Vec<_> = all.iter().collect();
        let turns = Turns::default();
        let picked: Vec<_> =
            (0..6).map(|_| choose(Balance::RoundRobin, refs.iter().copied(), None, &turns).address()).collect();
        assert_eq!(picked[..3], picked[3..]);
        assert_eq!(picked[..3].iter().collect::<std::collections::HashSet<_>>().len(), 3);
    }
}
