//! isthmus's default router policy: reflex-django's dispatch rules as a WebAssembly
//! component (world `isthmus:policy/router`), written on the `isthmus-policy` SDK. The
//! rules live in [`rules`]; see README.md for the configuration keys.

pub mod rules;

use isthmus_policy::{Decision, Needs, Request, Router, User};
use rules::{Config, Target};

pub struct PrefixRouter(Config);

impl Router for PrefixRouter {
    fn setup(config_json: &str) -> Result<Self, String> {
        Config::from_json(config_json).map(PrefixRouter)
    }

    fn needs(&self) -> Needs {
        Needs { identity: self.0.needs_identity() }
    }

    fn route(&self, req: &dyn Request, who: &dyn User) -> Decision {
        let path = req.path();
        let target = self.0.route(&path);
        if let Some(refusal) = self.0.page_refusal(target, &path, who) {
            return Decision::Refuse(refusal);
        }
        match target {
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
    use isthmus_policy::Refusal;

    #[test]
    fn the_component_routes_by_its_rules() {
        let router = PrefixRouter::setup(r#"{"django_prefixes": ["/admin"]}"#).unwrap();
        let who = FakeUser::anonymous();
        assert_eq!(router.route(&FakeRequest::get("/admin/x?y=1"), &who), Decision::forward("django"));
        assert_eq!(router.route(&FakeRequest::get("/_event/"), &who), Decision::forward("reflex"));
        assert!(PrefixRouter::setup(r#"{"nope": 1}"#).is_err());
        assert!(!router.needs().identity);
    }

    #[test]
    fn page_guards_refuse_the_first_load_of_a_guarded_page_only() {
        let router = PrefixRouter::setup(
            r#"{"pages": [{"page": "/orders*", "require": "authenticated"}, {"page": "/staff*", "require": "staff"}],
                "login_url": "/accounts/login/", "raise_exception": true}"#,
        )
        .unwrap();
        assert!(router.needs().identity);
        let anonymous = FakeUser::anonymous();
        let ann = FakeUser::named("ann");
        let login = Decision::Refuse(Refusal::LoginRequired("/accounts/login/".into()));
        assert_eq!(router.route(&FakeRequest::get("/orders/7?tab=items"), &anonymous), login);
        assert_eq!(router.route(&FakeRequest::get("/orders"), &ann), Decision::ServeStatic("frontend".into()));
        assert_eq!(router.route(&FakeRequest::get("/staff/x"), &anonymous), login);
        // raise_exception: a logged-in visitor lacking the requirement gets 403.
        assert_eq!(
            router.route(&FakeRequest::get("/staff/x"), &ann),
            Decision::Refuse(Refusal::Forbidden("staff".into()))
        );
        assert_eq!(
            router.route(&FakeRequest::get("/staff/x"), &ann.clone().staff()),
            Decision::ServeStatic("frontend".into())
        );
        // Open pages, and Django's and Reflex's own paths, are not judged here.
        assert_eq!(router.route(&FakeRequest::get("/"), &anonymous), Decision::ServeStatic("frontend".into()));
        assert_eq!(router.route(&FakeRequest::get("/admin/orders"), &anonymous), Decision::forward("django"));
        let router = PrefixRouter::setup(r#"{"pages": [{"page": "*", "require": "authenticated"}]}"#).unwrap();
        assert_eq!(router.route(&FakeRequest::get("/_event/"), &anonymous), Decision::forward("reflex"));
    }

    #[test]
    fn page_guards_cover_the_dev_frontend() {
        let router = PrefixRouter::setup(
            r#"{"frontend_upstream": "reflex_dev", "pages": [{"page": "/orders*", "require": "authenticated"}]}"#,
        )
        .unwrap();
        assert_eq!(
            router.route(&FakeRequest::get("/orders"), &FakeUser::anonymous()),
            Decision::Refuse(Refusal::LoginRequired("/admin/login/".into()))
        );
        assert_eq!(router.route(&FakeRequest::get("/orders"), &FakeUser::named("b")), Decision::forward("reflex_dev"));
    }
}
