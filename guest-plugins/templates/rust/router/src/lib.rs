//! A router policy for isthmus (world `router` of `wit/policy.wit`).
//!
//! - `/healthz` is answered here (200 `ok`);
//! - `/staff` and below: anonymous visitors are sent to log in, logged-in users who are
//!   not staff are refused, staff go to Django;
//! - `/admin` and the configured `prefixes` go to the `upstream` (Django);
//! - everything else: `pass`, the next router in the chain decides.

use isthmus_policy::{Decision, Needs, Refusal, Reply, Request, Router, User};
use serde::Deserialize;

/// The `config` table of this plugin's entry in isthmus.toml; a misspelt key is an error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    prefixes: Vec<String>,
    #[serde(default = "default_upstream")]
    upstream: String,
    #[serde(default = "default_login_url")]
    login_url: String,
}

fn default_upstream() -> String {
    "django".into()
}

fn default_login_url() -> String {
    "/admin/login/".into()
}

pub struct Policy(Config);

/// Whether `path` is `prefix` or under it (whole segments: `/api` is not `/apix`).
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl Router for Policy {
    fn setup(config_json: &str) -> Result<Self, String> {
        let config: Config = isthmus_policy::config::parse(config_json)?;
        if let Some(bad) = config.prefixes.iter().find(|p| !p.starts_with('/') || p.len() < 2) {
            return Err(format!("config: prefixes: `{bad}` must start with `/` and not be `/`"));
        }
        Ok(Policy(config))
    }

    /// `route` looks at the user for the staff area.
    fn needs(&self) -> Needs {
        Needs { identity: true }
    }

    fn route(&self, req: &dyn Request, who: &dyn User) -> Decision {
        let path = req.path();
        if path == "/healthz" && req.method() == "GET" {
            return Decision::Reply(Reply { status: 200, headers: vec![], body: b"ok\n".to_vec() });
        }
        if under(&path, "/staff") {
            return if !who.authenticated() {
                Decision::Refuse(Refusal::LoginRequired(self.0.login_url.clone()))
            } else if !who.is_staff() {
                Decision::Refuse(Refusal::Forbidden("staff only".into()))
            } else {
                Decision::forward(&self.0.upstream)
            };
        }
        if under(&path, "/admin") || self.0.prefixes.iter().any(|p| under(&path, p)) {
            return Decision::forward(&self.0.upstream);
        }
        Decision::Pass
    }
}

isthmus_policy::router!(Policy);

#[cfg(test)]
mod tests {
    use super::*;
    use isthmus_policy::testing::{FakeRequest, FakeUser};

    fn policy() -> Policy {
        Policy::setup(r#"{"prefixes": ["/api"]}"#).unwrap()
    }

    #[test]
    fn prefixes_go_to_django_and_the_rest_passes() {
        let anon = FakeUser::anonymous();
        assert_eq!(policy().route(&FakeRequest::get("/api/items?page=2"), &anon), Decision::forward("django"));
        assert_eq!(policy().route(&FakeRequest::get("/admin/"), &anon), Decision::forward("django"));
        assert_eq!(policy().route(&FakeRequest::get("/apix"), &anon), Decision::Pass);
        assert_eq!(policy().route(&FakeRequest::get("/"), &anon), Decision::Pass);
    }

    #[test]
    fn the_staff_area_needs_staff() {
        let req = FakeRequest::get("/staff/reports");
        let login = Decision::Refuse(Refusal::LoginRequired("/admin/login/".into()));
        assert_eq!(policy().route(&req, &FakeUser::anonymous()), login);
        let forbidden = Decision::Refuse(Refusal::Forbidden("staff only".into()));
        assert_eq!(policy().route(&req, &FakeUser::named("ann")), forbidden);
        assert_eq!(policy().route(&req, &FakeUser::named("sam").staff()), Decision::forward("django"));
    }

    #[test]
    fn the_health_check_is_answered_here() {
        let got = policy().route(&FakeRequest::get("/healthz"), &FakeUser::anonymous());
        assert!(matches!(got, Decision::Reply(Reply { status: 200, .. })));
    }

    #[test]
    fn bad_config_is_refused_naming_the_key() {
        assert!(Policy::setup(r#"{"prefixs": []}"#).err().expect("refused").contains("prefixs"));
        assert!(Policy::setup(r#"{"prefixes": ["api"]}"#).err().expect("refused").contains("prefixes"));
    }
}
