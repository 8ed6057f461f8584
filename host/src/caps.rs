//! Caps on what clients may hold open: connections, in total and per address (the
//! listener asks at accept), and the refusals every cap counts and logs. The other
//! caps live with what they count: WebSockets in `upstream::Tunnels`, connections to
//! an upstream in its pool.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use tokio::net::TcpStream;

use crate::config::Listen;
use crate::limits::REFUSAL_LOG_EVERY;
use crate::metrics::Metrics;

/// Refusals by one cap: each counted, logged at most once per `REFUSAL_LOG_EVERY`
/// with the number left unlogged since, so an attack cannot flood the log.
pub struct Refusals {
    /// The cap's config key, in the log line and the metric's label.
    limit: String,
    counter: Counter,
    last_logged: Mutex<Option<Instant>>,
    unlogged: AtomicU64,
}

impl Refusals {
    pub fn new(limit: impl Into<String>, metrics: &Metrics) -> Refusals {
        let limit = limit.into();
        Refusals {
            counter: metrics.refusals(&limit),
            limit,
            last_logged: Mutex::new(None),
            unlogged: AtomicU64::new(0),
        }
    }

    /// The cap's config key.
    pub fn limit(&self) -> &str {
        &self.limit
    }

    /// One refusal; `what` says who was refused.
    pub fn refused(&self, what: impl Display) {
        self.counter.inc();
        let mut last = self.last_logged.lock().expect("refusal log lock");
        if last.is_some_and(|at| at.elapsed() < REFUSAL_LOG_EVERY) {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(Instant::now());
        drop(last);
        let unlogged = self.unlogged.swap(0, Ordering::Relaxed);
        tracing::warn!(limit = %self.limit, unlogged, "refused {what}: {} reached", self.limit);
    }
}

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Total,
    PerIp,
}

impl Refused {
    /// What a plain-HTTP client is told before the close: written without reading its
    /// request (HTTP/1.1 lets a server answer early), in one non-blocking write.
    pub fn response(self) -> &'static [u8] {
        match self {
            Refused::Total => b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 1\r\ncontent-type: text/plain\r\ncontent-length: 30\r\n\r\ntoo many connections, retry 1s",
            Refused::PerIp => b"HTTP/1.1 429 Too Many Requests\r\nconnection: close\r\nretry-after: 1\r\ncontent-type: text/plain\r\ncontent-length: 38\r\n\r\ntoo many connections from your address",
        }
    }
}

/// The connection caps of the client-facing listeners (the public one and the plain-HTTP
/// redirect beside TLS, together): `listen.max_connections` and
/// `listen.max_connections_per_ip`. One short lock per accept and per close.
pub struct ConnectionCaps {
    max: usize,
    per_ip: Option<usize>,
    open: Mutex<Open>,
    total_refusals: Refusals,
    per_ip_refusals: Refusals,
}

#[derive(Default)]
struct Open {
    total: usize,
    /// Only addresses with a connection open: the map never outgrows `max`.
    by_ip: HashMap<IpAddr, usize>,
}

impl ConnectionCaps {
    pub fn from_config(listen: &Listen, metrics: &Metrics) -> Arc<ConnectionCaps> {
        ConnectionCaps::new(listen.max_connections, listen.per_ip_cap(), metrics)
    }

    /// `per_ip`: `None` for no per-address cap.
    pub fn new(max: usize, per_ip: Option<usize>, metrics: &Metrics) -> Arc<ConnectionCaps> {
        Arc::new(ConnectionCaps {
            max,
            per_ip,
            open: Mutex::new(Open::default()),
            total_refusals: Refusals::new("listen.max_connections", metrics),
            per_ip_refusals: Refusals::new("listen.max_connections_per_ip", metrics),
        })
    }

    /// A slot for a new connection from `ip`, held until the connection ends; or why
    /// not (counted and logged).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, Refused> {
        // An IPv4 client of a dual-stack listener arrives as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        let mut open = self.open.lock().expect("connection caps lock");
        let refused = if open.total >= self.max {
            Refused::Total
        } else if self.per_ip.is_some_and(|cap| open.by_ip.get(&ip).is_some_and(|&n| n >= cap)) {
            Refused::PerIp
        } else {
            open.total += 1;
            if self.per_ip.is_some() {
                *open.by_ip.entry(ip).or_default() += 1;
            }
            return Ok(ConnectionSlot { caps: self.clone(), ip });
        };
        drop(open);
        match refused {
            Refused::Total => self.total_refusals.refused(format_args!("a connection from {ip}")),
            Refused::PerIp => self.per_ip_refusals.refused(format_args!("a connection from {ip}")),
        }
        Err(refused)
    }
}

/// `admit` for a connection just accepted from `peer`; a refused one is closed at once,
/// without a task: a flood of them costs an accept and a close each, never a wait. A
/// `plain`-HTTP client is first told why in one non-blocking write; a TLS one is not
/// (the handshake would cost what the cap saves). What the client already sent is read
/// first, so that the close is a FIN and not a reset that could discard the answer
/// before the client reads it.
pub fn admit_or_refuse(
    caps: &Arc<ConnectionCaps>,
    stream: TcpStream,
    peer: SocketAddr,
    plain: bool,
) -> Option<(TcpStream, ConnectionSlot)> {
    match caps.admit(peer.ip()) {
        Ok(slot) => Some((stream, slot)),
        Err(refused) => {
            if plain {
                let _ = stream.try_write(refused.response());
                let _ = stream.try_read(&mut [0; 4096]);
            }
            None
        }
    }
}

/// One admitted connection; gives its slot back when dropped.
pub struct ConnectionSlot {
    caps: Arc<ConnectionCaps>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.caps.open.lock().expect("connection caps lock");
        open.total -= 1;
        if self.caps.per_ip.is_some() {
            if let Some(n) = open.by_ip.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    open.by_ip.remove(&self.ip);
                }
            }
        }
    }
}

/// Raise the soft limit on open files to the hard one (systemd's default soft limit,
/// 1024, would refuse connections long before `listen.max_connections`), and warn when
/// even the hard one is below what the caps allow: two descriptors per proxied connection.
pub fn raise_file_limit(max_connections: usize) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    if get_file_limit(&mut limit).is_err() {
        return;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        if set_file_limit(&raised).is_ok() {
            limit = raised;
        }
    }
    let needed = 2 * max_connections as u64 + 256;
    if limit.rlim_cur < needed {
        tracing::warn!(
            open_files = limit.rlim_cur,
            needed,
            "the open-file limit (ulimit -n) is below what listen.max_connections allows: past it, accepts fail; raise LimitNOFILE or lower listen.max_connections"
        );
    }
}

#[allow(unsafe_code)]
fn get_file_limit(limit: &mut libc::rlimit) -> std::io::Result<()> {
    // SAFETY: `limit` is a valid, writable rlimit.
    match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, limit) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[allow(unsafe_code)]
fn set_file_limit(limit: &libc::rlimit) -> std::io::Result<()> {
    // SAFETY: `limit` is a valid rlimit; raising the soft limit up to the hard one needs no privilege.
    match unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, limit) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(max: usize, per_ip: usize) -> Arc<ConnectionCaps> {
        let text = format!(
            "[listen]\naddr = \"127.0.0.1:0\"\nmax_connections = {max}\nmax_connections_per_ip = {per_ip}\n\
             [upstreams.a]\nurl = \"http://127.0.0.1:1\"\n\
             [routing]\nrouters = [{{ plugin = \"builtin:prefix-router\" }}]\n"
        );
        let config = crate::config::Config::parse(&text, std::path::Path::new("isthmus.toml")).expect("config");
        ConnectionCaps::from_config(&config.listen, &Metrics::new(&config))
    }

    #[test]
    fn per_address_and_total_caps_are_held_and_given_back() {
        let caps = caps(3, 2);
        let (a, b) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        let first = caps.admit(a).expect("first");
        let _second = caps.admit(a).expect("second");
        assert_eq!(caps.admit(a).err(), Some(Refused::PerIp));
        let _third = caps.admit(b).expect("another address");
        assert_eq!(caps.admit(b).err(), Some(Refused::Total));
        drop(first);
        let _again = caps.admit(a).expect("a slot given back is free again");
        assert!(caps.open.lock().unwrap().by_ip.len() == 2);
    }

    #[test]
    fn an_ipv4_mapped_address_counts_as_its_ipv4_address() {
        let caps = caps(10, 1);
        let _v4 = caps.admit("127.0.0.1".parse().unwrap()).expect("first");
        assert_eq!(caps.admit("::ffff:127.0.0.1".parse().unwrap()).err(), Some(Refused::PerIp));
    }
}
