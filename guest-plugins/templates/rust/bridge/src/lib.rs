//! An event-bridge policy for isthmus (world `bridge` of `wit/policy.wit`).
//!
//! - handlers named in `banned` close the connection;
//! - handlers matching a `staff_only` prefix run for staff only: anonymous visitors are
//!   sent to log in, other users are refused;
//! - uploads need a logged-in user;
//! - everything else runs, with the user's name in the context the handler reads.

use isthmus_policy::{Bridge, Event, EventKind, Refusal, User, Verdict};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Handler-name prefixes, e.g. `state.admin_state.`.
    #[serde(default)]
    staff_only: Vec<String>,
    /// Whole handler names.
    #[serde(default)]
    banned: Vec<String>,
    #[serde(default = "default_login_url")]
    login_url: String,
}

fn default_login_url() -> String {
    "/admin/login/".into()
}

pub struct Policy(Config);

impl Bridge for Policy {
    fn setup(config_json: &str) -> Result<Self, String> {
        isthmus_policy::config::parse(config_json).map(Policy)
    }

    fn on_event(&self, ev: &dyn Event, who: &dyn User) -> Verdict {
        // Judge by the handler that will run; the page's route is only what it claims.
        let name = ev.name();
        if self.0.banned.contains(&name) {
            return Verdict::Close("banned handler".into());
        }
        let staff_only = self.0.staff_only.iter().any(|p| name.starts_with(p.as_str()));
        let needs_login = staff_only || ev.kind() == EventKind::Upload;
        if needs_login && !who.authenticated() {
            return Verdict::Refuse(Refusal::LoginRequired(self.0.login_url.clone()));
        }
        if staff_only && !who.is_staff() {
            return Verdict::Refuse(Refusal::Forbidden(format!("{name} is for staff only")));
        }
        Verdict::Allow(vec![("user".into(), who.username())])
    }
}

isthmus_policy::bridge!(Policy);

#[cfg(test)]
mod tests {
    use super::*;
    use isthmus_policy::testing::{FakeEvent, FakeUser};

    fn policy() -> Policy {
        Policy::setup(r#"{"staff_only": ["state.admin_state."], "banned": ["state.debug.dump"]}"#).unwrap()
    }

    #[test]
    fn staff_handlers_run_for_staff_only() {
        let ev = FakeEvent::new("state.admin_state.restock");
        let login = Verdict::Refuse(Refusal::LoginRequired("/admin/login/".into()));
        assert_eq!(policy().on_event(&ev, &FakeUser::anonymous()), login);
        assert!(matches!(policy().on_event(&ev, &FakeUser::named("ann")), Verdict::Refuse(Refusal::Forbidden(_))));
        let staff = policy().on_event(&ev, &FakeUser::named("sam").staff());
        assert_eq!(staff, Verdict::Allow(vec![("user".into(), "sam".into())]));
    }

    #[test]
    fn uploads_need_a_login_and_banned_handlers_close() {
        let upload = FakeEvent::new("state.files.upload").kind(EventKind::Upload);
        assert!(matches!(policy().on_event(&upload, &FakeUser::anonymous()), Verdict::Refuse(_)));
        assert!(matches!(policy().on_event(&upload, &FakeUser::named("ann")), Verdict::Allow(_)));
        let banned = FakeEvent::new("state.debug.dump");
        assert_eq!(policy().on_event(&banned, &FakeUser::named("sam").staff()), Verdict::Close("banned handler".into()));
    }

    #[test]
    fn bad_config_is_refused_naming_the_key() {
        assert!(Policy::setup(r#"{"staff": []}"#).err().expect("refused").contains("staff"));
    }
}
