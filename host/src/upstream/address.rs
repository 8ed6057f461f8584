//! Where an upstream endpoint listens, a TCP address or a Unix domain socket, and the
//! one way the gateway connects to it: the proxy's pool, the active health checks and
//! `isthmus run`'s readiness waits all go through [`Address::connect`], so that every
//! behaviour over TCP (keep-alive, upgrades, probes, ejection) holds over a socket too.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::HeaderValue;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// How a Unix socket is written in the config: `unix:/run/app/django.sock`.
const UNIX_PREFIX: &str = "unix:";

/// Longest socket path the kernel takes: `sun_path` is 108 bytes on Linux, one of them
/// the terminating NUL. A longer path fails every connect, so the config refuses it.
pub const MAX_SOCKET_PATH: usize = 107;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `host` as written, IPv6 brackets included; `port` always given.
    Tcp {
        host: String,
        port: u16,
    },
    Unix(PathBuf),
}

impl Address {
    /// An upstream's `url` or `endpoints` entry: `http://host:port` or `unix:PATH`; a
    /// relative PATH is taken from `base` (the config's folder).
    pub fn parse(url: &str, base: &Path) -> Result<Address, String> {
        if let Some(path) = url.strip_prefix(UNIX_PREFIX) {
            if path.is_empty() || path.starts_with("//") {
                return Err(format!("`{url}`: write a Unix socket as `unix:/path/to/app.sock` (or a path relative to the config's folder)"));
            }
            return Address::socket(base.join(path)).map_err(|m| format!("`{url}`: {m}"));
        }
        let uri: http::Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "`{url}` must start with http:// (TLS to upstreams is not supported), or be a Unix socket `unix:/path`"
            ));
        }
        let authority = uri.authority().ok_or_else(|| format!("`{url}` has no host"))?;
        let port = authority.port_u16().ok_or_else(|| format!("`{url}` must name a port"))?;
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!("`{url}` must not have a path; use the router's path rewrite"));
        }
        Ok(Address::Tcp { host: authority.host().to_owned(), port })
    }

    /// A socket at `path`, whose length the kernel takes.
    pub fn socket(path: PathBuf) -> Result<Address, String> {
        let len = path.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(format!(
                "the socket path `{}` is {len} bytes; Unix sockets take at most {MAX_SOCKET_PATH}",
                path.display()
            ));
        }
        Ok(Address::Unix(path))
    }

    /// The port of a TCP address; a socket has none.
    pub fn port(&self) -> Option<u16> {
        match self {
            Address::Tcp { port, .. } => Some(*port),
            Address::Unix(_) => None,
        }
    }

    /// Reachable from this machine only: a loopback address, or any socket.
    pub fn is_local(&self) -> bool {
        match self {
            Address::Tcp { host, .. } if host == "localhost" => true,
            Address::Tcp { host, .. } => bare(host).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()),
            Address::Unix(_) => true,
        }
    }

    /// The Host a request without one is sent with: the authority over TCP; over a
    /// socket `localhost`, as nginx sends to a `unix:` upstream.
    pub fn host_header(&self) -> HeaderValue {
        match self {
            Address::Tcp { .. } => {
                HeaderValue::from_str(&self.to_string()).expect("a parsed authority is a valid header value")
            }
            Address::Unix(_) => HeaderValue::from_static("localhost"),
        }
    }

    /// A new connection, with Nagle off over TCP: request heads are small writes
    /// answered at once, and Nagle would hold them back.
    pub async fn connect(&self) -> io::Result<Stream> {
        match self {
            Address::Tcp { host, port } => {
                let stream = TcpStream::connect((bare(host), *port)).await?;
                let _ = stream.set_nodelay(true);
                Ok(Stream::Tcp(stream))
            }
            Address::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path).await?)),
        }
    }
}

/// IPv6 literals come bracketed in a URL; the resolver wants them bare.
fn bare(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

/// `127.0.0.1:8001` or `unix:/run/app/django.sock`: what logs and metrics labels show.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp { host, port } => write!(f, "{host}:{port}"),
            Address::Unix(path) => write!(f, "{UNIX_PREFIX}{}", path.display()),
        }
    }
}

/// A connection to an endpoint. An enum, not a boxed trait object: each read and write
/// is one match, and hyper still sees vectored writes where the stream supports them.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Address, String> {
        Address::parse(url, Path::new("/srv/site"))
    }

    #[test]
    fn parses_tcp_urls_and_unix_sockets() {
        assert_eq!(parse("http://127.0.0.1:8001").unwrap(), Address::Tcp { host: "127.0.0.1".into(), port: 8001 });
        assert_eq!(parse("http://[::1]:8001/").unwrap().to_string(), "[::1]:8001");
        assert_eq!(parse("unix:/run/app/django.sock").unwrap(), Address::Unix("/run/app/django.sock".into()));
        assert_eq!(parse("unix:run/django.sock").unwrap(), Address::Unix("/srv/site/run/django.sock".into()));
        assert_eq!(parse("unix:/run/app/django.sock").unwrap().to_string(), "unix:/run/app/django.sock");
        assert_eq!(parse("unix:/a.sock").unwrap().host_header(), "localhost");
        assert_eq!(parse("http://localhost:80").unwrap().host_header(), "localhost:80");
        assert!(parse("unix:/a.sock").unwrap().is_local() && parse("http://[::1]:1").unwrap().is_local());
        assert!(!parse("http://10.0.0.1:1").unwrap().is_local());
    }

    #[test]
    fn refuses_what_names_no_endpoint() {
        assert!(parse("unix:").unwrap_err().contains("unix:/path/to/app.sock"));
        assert!(parse("unix:///run/a.sock").unwrap_err().contains("unix:/path/to/app.sock"));
        let long = format!("unix:/{}", "d".repeat(120));
        assert!(parse(&long).unwrap_err().contains("at most 107"));
        assert!(parse("https://127.0.0.1:1").unwrap_err().contains("http://"));
        assert!(parse("http://127.0.0.1").unwrap_err().contains("must name a port"));
        assert!(parse("http://127.0.0.1:1/x").unwrap_err().contains("must not have a path"));
    }
}
