//! isthmus's default event-bridge policy: reflex-django's auth decorators applied as
//! gateway rules, as a WebAssembly component (world `isthmus:policy/bridge`) written
//! on the `isthmus-policy` SDK (whose lent users answer the rules' questions one at a
//! time: a staff member's permissions are never copied into the guest). The rules live in [`rules`]; see README.md for the
//! configuration keys and the refusals.

pub mod rules;

use isthmus_policy::{Bridge, Event, Request, User, Verdict};
use rules::{Config, Outcome};

pub struct DjangoBridge(Config);

fn verdict(outcome: Outcome) -> Verdict {
    match outcome {
        Outcome::Allow(matched) => Verdict::Allow(vec![("rule".to_string(), matched.label())]),
        Outcome::Deny(refusal) => Verdict::Refuse(refusal),
        Outcome::Close(reason) => Verdict::Close(reason.to_string()),
    }
}

impl Bridge for DjangoBridge {
    fn setup(config_json: &str) -> Result<Self, String> {
        Config::from_json(config_json).map(DjangoBridge)
    }

    fn on_connect(&self, _handshake: &dyn Request, who: &dyn User) -> Verdict {
        verdict(self.0.on_connect(who))
    }

    fn on_event(&self, ev: &dyn Event, who: &dyn User) -> Verdict {
        verdict(self.0.on_event(&ev.name(), who))
    }
}

isthmus_policy::bridge!(DjangoBridge);

#[cfg(test)]
mod tests {
    use super::*;
    use isthmus_policy::testing::{FakeEvent, FakeRequest, FakeUser};
    use isthmus_policy::Refusal;

    #[test]
    fn the_component_judges_by_its_rules() {
        let bridge = DjangoBridge::setup(r#"{"rules": [{"event": "*.staff_state.*", "require": "staff"}]}"#).unwrap();
        let staff_event = FakeEvent::new("state.staff_state.deactivate");
        assert_eq!(
            bridge.on_event(&staff_event, &FakeUser::anonymous()),
            Verdict::Refuse(Refusal::LoginRequired("/admin/login/".into()))
        );
        assert_eq!(
            bridge.on_event(&staff_event, &FakeUser::named("s").staff()),
            Verdict::Allow(vec![("rule".into(), "0".into())])
        );
        assert!(matches!(bridge.on_connect(&FakeRequest::get("/_event/"), &FakeUser::anonymous()), Verdict::Allow(_)));
        assert!(DjangoBridge::setup(r#"{"rulez": []}"#).is_err());
    }
}
