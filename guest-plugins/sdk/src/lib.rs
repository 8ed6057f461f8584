//! Write isthmus policies in Rust.
//!
//! A policy is a type implementing [`Router`] (where each HTTP request goes) or
//! [`Bridge`] (whether each Reflex event may run), exported with [`router!`] or
//! [`bridge!`]. Its logic sees the lent request, user and event through the traits
//! [`Request`], [`User`] and [`Event`], so that the same code runs in the component
//! (on the gateway's handles) and in native unit tests (on the doubles of
//! [`testing`]), without WebAssembly:
//!
//! ```
//! use isthmus_policy::{Decision, Needs, Refusal, Request, Router, User};
//!
//! struct Staff;
//!
//! impl Router for Staff {
//!     fn setup(_config_json: &str) -> Result<Self, String> {
//!         Ok(Staff)
//!     }
//!     fn needs(&self) -> Needs {
//!         Needs { identity: true }
//!     }
//!     fn route(&self, req: &dyn Request, who: &dyn User) -> Decision {
//!         match req.path().starts_with("/staff/") {
//!             true if !who.authenticated() => Decision::Refuse(Refusal::LoginRequired("/admin/login/".into())),
//!             true if !who.is_staff() => Decision::Refuse(Refusal::Forbidden("staff only".into())),
//!             _ => Decision::Pass,
//!         }
//!     }
//! }
//!
//! isthmus_policy::router!(Staff);
//!
//! use isthmus_policy::testing::{FakeRequest, FakeUser};
//! let staff = Staff::setup("{}").unwrap();
//! assert_eq!(staff.route(&FakeRequest::get("/staff/x"), &FakeUser::anonymous()),
//!            Decision::Refuse(Refusal::LoginRequired("/admin/login/".into())));
//! assert_eq!(staff.route(&FakeRequest::get("/staff/x"), &FakeUser::named("ann").staff()), Decision::Pass);
//! ```
//!
//! The contract itself, with everything the gateway does with each answer, is
//! `wit/policy.wit` (`isthmus:policy@0.3.0`).

pub mod access;
pub mod config;
pub mod testing;
mod types;
mod views;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod wit;

pub use types::{Decision, EventKind, Forward, Needs, Refusal, Reply, Verdict};
pub use views::{Event, Request, User};

/// The paths Reflex's backend serves (each path itself and anything under it), which a
/// router must send to Reflex: the event WebSocket, uploads, health and ping.
pub const REFLEX_PATHS: [&str; 6] = ["/_event", "/_upload", "/_health", "/ping", "/_all_routes", "/auth-codespace"];

/// A router policy (world `router`).
pub trait Router: Sized + 'static {
    /// Build the policy from the plugin's `config` table (as JSON text); an `Err` is
    /// shown to the operator and the plugin is not used. [`config::parse`] reads it
    /// into a typed struct, refusing unknown keys.
    fn setup(config_json: &str) -> Result<Self, String>;
    /// What the router asks of the gateway; without `identity`, `route` gets a user
    /// whose methods trap.
    fn needs(&self) -> Needs {
        Needs::default()
    }
    fn route(&self, req: &dyn Request, who: &dyn User) -> Decision;
}

/// An event-bridge policy (world `bridge`).
pub trait Bridge: Sized + 'static {
    /// As [`Router::setup`].
    fn setup(config_json: &str) -> Result<Self, String>;
    /// The WebSocket handshake; `allow`'s fields go into every event's context.
    fn on_connect(&self, handshake: &dyn Request, who: &dyn User) -> Verdict {
        let _ = (handshake, who);
        Verdict::Allow(Vec::new())
    }
    fn on_event(&self, ev: &dyn Event, who: &dyn User) -> Verdict;
}

/// Export `$ty` (a [`Router`]) as the component's `router` world. Outside wasm32 it
/// expands to nothing, so the crate still builds and tests natively.
#[macro_export]
macro_rules! router {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::wit::router as w;
            ::std::thread_local! {
                static POLICY: ::core::cell::RefCell<::core::option::Option<$ty>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }
            struct Export;
            impl w::Guest for Export {
                fn setup(config_json: String) -> Result<w::Needs, String> {
                    let policy = <$ty as $crate::Router>::setup(&config_json)?;
                    let needs = $crate::Router::needs(&policy);
                    POLICY.with(|p| *p.borrow_mut() = Some(policy));
                    Ok($crate::wit::needs(needs))
                }
                fn route(req: &w::Request, who: &w::Identity) -> w::Decision {
                    POLICY.with(|p| {
                        let p = p.borrow();
                        let policy = p.as_ref().expect("route before a successful setup");
                        $crate::wit::decision($crate::Router::route(policy, req, who))
                    })
                }
            }
    w::export_router_world!(Export with_types_in w);
        };
    };
}

/// Export `$ty` (a [`Bridge`]) as the component's `bridge` world; see [`router!`].
#[macro_export]
macro_rules! bridge {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::wit::bridge as w;
            ::std::thread_local! {
                static POLICY: ::core::cell::RefCell<::core::option::Option<$ty>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }
            fn with<T>(f: impl FnOnce(&$ty) -> T) -> T {
                POLICY.with(|p| f(p.borrow().as_ref().expect("called before a successful setup")))
            }
            struct Export;
            impl w::Guest for Export {
                fn setup(config_json: String) -> Result<(), String> {
                    let policy = <$ty as $crate::Bridge>::setup(&config_json)?;
                    POLICY.with(|p| *p.borrow_mut() = Some(policy));
                    Ok(())
                }
                fn on_connect(handshake: &w::Request, who: &w::Identity) -> w::Verdict {
                    with(|policy| $crate::wit::verdict($crate::Bridge::on_connect(policy, handshake, who)))
                }
                fn on_event(ev: &w::Event, who: &w::Identity) -> w::Verdict {
                    with(|policy| $crate::wit::verdict($crate::Bridge::on_event(policy, ev, who)))
                }
            }
    w::export_bridge_world!(Export with_types_in w);
        };
    };
}
