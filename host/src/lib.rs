//! isthmus: one origin for a Django project and a Reflex app.
//!
//! A request goes down these stages, each a module that only calls the ones below it:
//!
//! ```text
//! server      connection: HTTP/1.1 and HTTP/2, in the clear or over TLS (`tls`), head
//!             and stream limits, graceful shutdown
//! dispatch    runs the stages below for each request, writes the access log
//!   request     canonical request: canonical path, client view, request id
//!   identity    the Django user of the session cookie, when a router needs it
//!   policy      the policy contract and the router chain (implemented by `plugin`)
//!   targets     proxy · bridge (Reflex's event WebSocket) · static_files · reply
//! upstream    transport both proxy and bridge use: pools, header hygiene, idle, tunnels
//! ```
//!
//! Beside them: `config` and `limits` (every default in one place), `caps` (the
//! connection caps and how every cap's refusals are counted and logged), `metrics` (what
//! every layer counts, handed down to each, and the listener serving it), `plugin` (the
//! WebAssembly runtime behind `policy`), `builtin` (the default policies it ships),
//! `reload` (plugins and certificates swapped on file change and SIGHUP), `redirect`
//! (the plain-HTTP listener beside a TLS one), `peers` (the other gateways sharing a
//! Redis, told of each login and logout `identity` sees), `supervise` (`isthmus run`),
//! `init`, `cli`.

pub mod accept;
pub mod body;
pub mod bridge;
pub mod builtin;
pub mod caps;
pub mod cli;
pub mod config;
pub mod dispatch;
#[doc(hidden)]
pub mod fuzzing;
pub mod harness;
pub mod identity;
pub mod init;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod peers;
pub mod plugin;
pub mod policy;
pub mod proxy;
pub mod redirect;
pub mod reload;
pub mod reply;
pub mod request;
pub mod scaffold;
pub mod server;
pub mod static_files;
pub mod supervise;
pub mod tls;
pub mod trace;
pub mod upstream;
