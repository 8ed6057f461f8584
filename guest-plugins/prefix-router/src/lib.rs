//! isthmus's default router policy: reflex-django's dispatch rules as a WebAssembly
//! component (world `isthmus:policy/router`), written on the `isthmus-policy` SDK. The
//! rules live in [`rules`]; see README.md for the configuration keys.

pub mod rules;

use isthmus_policy::{Decision, Request, Router, User};
use rules::{Config, Target};

pub struct PrefixRouter(Config);

impl Router for PrefixRouter {
    fn setup(config_json: &str) -> Result<Self, String> {
        Config::from_json(config_json).map(PrefixRouter)
    }

    fn route(&self, req: &dyn Request, _who: &dyn User) -> Decision {
        match self.0.route(&req.path()) {
            Target::Forward(upstream) => Decision::forward(upstream),
            Target::ServeStatic(mount) => Decision::ServeStatic(mount.to_string()),
            Target::Pass => Decision::Pass,
        }
    }
}

isthmus_policy::router!(PrefixRouter);

#[cfg(test)]
mod tests {
    use super::*;
    use isthmus_policy::testing::{FakeRequest, FakeUser};

    #[test]
    fn the_component_routes_by_its_rules() {
        let router = PrefixRouter::setup(r#"{"django_prefixes": ["/admin"]}"#).unwrap();
        let who = FakeUser::anonymous();
        assert_eq!(router.route(&FakeRequest::get("/admin/x?y=1"), &who), Decision::forward("django"));
        assert_eq!(router.route(&FakeRequest::get("/_event/"), &who), Decision::forward("reflex"));
        assert!(PrefixRouter::setup(r#"{"nope": 1}"#).is_err());
    }
}
