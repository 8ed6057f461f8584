//! isthmus's default router policy: reflex-django's dispatch rules as a WebAssembly
//! component (world `isthmus:policy/router`). The rules live in [`rules`], which does
//! not depend on the bindings and is unit-tested natively; the bindings exist only
//! when building for wasm32. See README.md for the configuration keys.

pub mod rules;

#[cfg(target_arch = "wasm32")]
// The generated export shims take one argument per flattened field.
#[allow(clippy::too_many_arguments)]
mod component {
    use std::cell::RefCell;

    use crate::rules::{Config, Target};

    wit_bindgen::generate!({
        path: "../../wit",
        world: "router",
    });

    use isthmus::policy::routing::Forward;

    thread_local! {
        static CONFIG: RefCell<Option<Config>> = const { RefCell::new(None) };
    }

    struct PrefixRouter;

    impl Guest for PrefixRouter {
        fn init(config_json: String) -> Result<(), String> {
            let config = Config::from_json(&config_json)?;
            CONFIG.with(|c| *c.borrow_mut() = Some(config));
            Ok(())
        }

        fn route(req: Request) -> Decision {
            CONFIG.with(|c| {
                let c = c.borrow();
                let config = c.as_ref().expect("prefix-router: route called before a successful init");
                match config.route(&req.path) {
                    Target::Forward(upstream) => Decision::Forward(Forward {
                        upstream: upstream.to_string(),
                        path: None,
                        set_headers: Vec::new(),
                        remove_headers: Vec::new(),
                    }),
                    Target::ServeStatic(mount) => Decision::ServeStatic(mount.to_string()),
                    Target::Pass => Decision::Pass,
                }
            })
        }
    }

    export!(PrefixRouter);
}
