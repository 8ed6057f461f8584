//! Echoes the lent identity into the verdict (see README.md); the host's tests read it.

use isthmus_policy::{Bridge, Event, User, Verdict};

pub struct Echo;

impl Bridge for Echo {
    fn setup(_config_json: &str) -> Result<Self, String> {
        Ok(Echo)
    }

    /// `payload-json` names the group, the permission and the session key to ask about.
    fn on_event(&self, ev: &dyn Event, who: &dyn User) -> Verdict {
        let asked = ev.payload_json();
        let session: Vec<String> = who.session().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        let fields = [
            ("authenticated", who.authenticated().to_string()),
            ("user-id", who.user_id().unwrap_or_else(|| "none".to_string())),
            ("username", who.username()),
            ("email", who.email()),
            ("first-name", who.first_name()),
            ("last-name", who.last_name()),
            ("is-staff", who.is_staff().to_string()),
            ("is-superuser", who.is_superuser().to_string()),
            ("groups", who.groups().join(",")),
            ("permissions", who.permissions().join(",")),
            ("session", session.join(";")),
            ("in-group", who.in_group(&asked).to_string()),
            ("has-permission", who.has_permission(&asked).to_string()),
            ("session-value", who.session_value(&asked).unwrap_or_else(|| "none".to_string())),
            ("kind", format!("{:?}", ev.kind())),
            ("event", ev.name()),
            ("route", ev.route()),
            ("query", ev.query()),
            ("traceparent", ev.traceparent().unwrap_or_else(|| "none".to_string())),
        ];
        Verdict::Allow(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }
}

isthmus_policy::bridge!(Echo);
