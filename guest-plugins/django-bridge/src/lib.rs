//! isthmus's default event-bridge policy: reflex-django's auth decorators applied as
//! gateway rules, as a WebAssembly component (world `isthmus:policy/bridge`). The rules
//! live in [`rules`], which does not depend on the bindings and is unit-tested natively;
//! the bindings exist only when building for wasm32. See README.md for the
//! configuration keys and the deny-reason protocol shared with the host.

pub mod rules;

#[cfg(target_arch = "wasm32")]
// The generated export shims take one argument per flattened field.
#[allow(clippy::too_many_arguments)]
mod component {
    use std::cell::RefCell;

    use crate::rules::{Config, Outcome, Who};

    wit_bindgen::generate!({
        path: "../../wit",
        world: "bridge",
    });

    thread_local! {
        static CONFIG: RefCell<Option<Config>> = const { RefCell::new(None) };
    }

    /// Rules ask the host about the lent identity one question at a time.
    impl Who for Identity {
        fn authenticated(&self) -> bool {
            Identity::authenticated(self)
        }
        fn is_staff(&self) -> bool {
            Identity::is_staff(self)
        }
        fn is_superuser(&self) -> bool {
            Identity::is_superuser(self)
        }
        fn in_group(&self, name: &str) -> bool {
            Identity::in_group(self, name)
        }
        fn has_permission(&self, perm: &str) -> bool {
            Identity::has_permission(self, perm)
        }
    }

    fn verdict(outcome: Outcome) -> Verdict {
        match outcome {
            Outcome::Allow(matched) => Verdict::Allow(vec![("rule".to_string(), matched.label())]),
            Outcome::Deny(reason) => Verdict::Deny(reason),
            Outcome::Close(reason) => Verdict::Close(reason.to_string()),
        }
    }

    fn with_config<T>(f: impl FnOnce(&Config) -> T) -> T {
        CONFIG.with(|c| {
            let c = c.borrow();
            f(c.as_ref().expect("django-bridge: called before a successful init"))
        })
    }

    struct DjangoBridge;

    impl Guest for DjangoBridge {
        fn init(config_json: String) -> Result<(), String> {
            let config = Config::from_json(&config_json)?;
            CONFIG.with(|c| *c.borrow_mut() = Some(config));
            Ok(())
        }

        fn on_connect(_handshake: Request, who: &Identity) -> Verdict {
            with_config(|config| verdict(config.on_connect(who)))
        }

        fn on_event(ev: Event, who: &Identity) -> Verdict {
            with_config(|config| verdict(config.on_event(&ev.name, who)))
        }
    }

    export!(DjangoBridge);
}
