//! isthmus: one origin for a Django project and a Reflex app.
//!
//! A request enters `server`, its path is made canonical (`canonical_path`), the
//! router chain (`routing`, with WebAssembly routers from `plugin`) decides, and
//! `dispatch` carries the decision out: `proxy` to an upstream, `static_files`
//! from disk, or a direct reply.

pub mod body;
pub mod bridge;
pub mod canonical_path;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod init;
pub mod limits;
pub mod plugin;
pub mod proxy;
pub mod routing;
pub mod server;
pub mod static_files;
pub mod supervise;
