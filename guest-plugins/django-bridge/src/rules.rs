//! reflex-django's auth decorators as gateway rules, free of any WebAssembly binding so
//! that they can be tested natively with `cargo test`.
//!
//! A rule pairs an event-name [`Glob`] with [`Requirements`] (one or more
//! [`Requirement`]s, all of which must hold). For each event the first rule whose glob
//! matches the whole handler name decides; `default` decides when none matches. The
//! WebSocket connection itself is checked against `on_connect`.
//!
//! Requirements follow Django: `perm:` holds for every superuser (Django's
//! `user.has_perm` is true for active superusers) but `group:` does not (a superuser is
//! not a member of every group).
//!
//! The refusals (see README.md):
//! - `login-required(login_url)`: logging in (as someone else) may help. Sent for
//!   anonymous users, and, as Django's `staff_member_required`, `permission_required`
//!   and `user_passes_test` do, for logged-in users who lack a requirement;
//! - `forbidden(requirement)`: logging in cannot help (`deny`, `anonymous`), or
//!   `raise_exception` is set (Django's `PermissionDenied`): `staff`,
//!   `perm:shop.delete_product`, …. Clients see them as `login_required:<url>` and
//!   `forbidden:<requirement>`.

use isthmus_policy::access::{check_keys, kind, login_url};
pub use isthmus_policy::access::{Facts, Glob, Requirement, Requirements, Who, DEFAULT_LOGIN_URL, KNOWN_REQUIREMENTS};
use isthmus_policy::Refusal;

use serde_json::{Map, Value};

/// Every key `init` accepts, in documentation order.
pub const KEYS: [&str; 5] = ["rules", "default", "login_url", "on_connect", "raise_exception"];

/// Every key of one entry of `rules`.
pub const RULE_KEYS: [&str; 2] = ["event", "require"];

/// Longest event name (in bytes) that is matched; longer ones close the connection.
pub const MAX_EVENT_NAME: usize = 512;

/// The `close` reason for an empty or over-long event name.
pub const INVALID_EVENT_NAME: &str = "invalid event name";

// ---------------------------------------------------------------------------------------
// Configuration and decisions
// ---------------------------------------------------------------------------------------

/// One entry of `rules`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub event: Glob,
    pub require: Requirements,
}

/// Which requirements let a call through; becomes the `rule` context field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    /// `rules[i]`.
    Rule(usize),
    /// `default`: no rule matched the event.
    Default,
    /// `on_connect`: the WebSocket connection itself.
    OnConnect,
}

impl Matched {
    /// The value of the `rule` context field: the rule's index, `default` or `on_connect`.
    pub fn label(&self) -> String {
        match self {
            Matched::Rule(i) => i.to_string(),
            Matched::Default => "default".to_string(),
            Matched::OnConnect => "on_connect".to_string(),
        }
    }
}

/// A decision; the component turns it into a WIT `verdict`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `allow([("rule", matched.label())])`.
    Allow(Matched),
    /// `refuse(login-required(url))` or `refuse(forbidden(requirement))`.
    Deny(Refusal),
    /// `close(reason)`: only for an empty or over-long event name.
    Close(&'static str),
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub rules: Vec<Rule>,
    pub default: Requirements,
    pub login_url: String,
    pub on_connect: Requirements,
    /// Refuse logged-in users who lack a requirement with `forbidden:<requirement>`
    /// instead of sending them to `login_url` (Django's `raise_exception=True`).
    pub raise_exception: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rules: Vec::new(),
            default: Requirements::any(),
            login_url: DEFAULT_LOGIN_URL.to_string(),
            on_connect: Requirements::any(),
            raise_exception: false,
        }
    }
}

impl Config {
    /// Parse and validate the JSON handed to `init`. Every error names the key.
    pub fn from_json(text: &str) -> Result<Config, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("config is not valid JSON: {e}"))?;
        let Value::Object(map) = value else {
            return Err(format!("config must be a JSON object, got {}", kind(&value)));
        };
        Config::from_map(&map)
    }

    fn from_map(map: &Map<String, Value>) -> Result<Config, String> {
        check_keys(map, &KEYS, "")?;
        let mut config = Config::default();
        if let Some(v) = map.get("rules") {
            let Value::Array(items) = v else {
                return Err(format!("rules: expected a list of {{\"event\", \"require\"}} objects, got {}", kind(v)));
            };
            config.rules = items.iter().enumerate().map(|(i, item)| rule(item, i)).collect::<Result<_, _>>()?;
        }
        if let Some(v) = map.get("default") {
            config.default = Requirements::from_value(v, "default")?;
        }
        if let Some(v) = map.get("login_url") {
            config.login_url = login_url(v)?;
        }
        if let Some(v) = map.get("on_connect") {
            config.on_connect = Requirements::from_value(v, "on_connect")?;
        }
        if let Some(v) = map.get("raise_exception") {
            let Value::Bool(b) = v else {
                return Err(format!("raise_exception: expected true or false, got {}", kind(v)));
            };
            config.raise_exception = *b;
        }
        Ok(config)
    }

    /// The WebSocket handshake: checked against `on_connect`.
    pub fn on_connect(&self, who: &(impl Who + ?Sized)) -> Outcome {
        self.decide(&self.on_connect, Matched::OnConnect, who)
    }

    /// One event: the first rule whose glob matches `name` decides, else `default`. An
    /// empty name or one over [`MAX_EVENT_NAME`] bytes closes the connection.
    pub fn on_event(&self, name: &str, who: &(impl Who + ?Sized)) -> Outcome {
        if name.is_empty() || name.len() > MAX_EVENT_NAME {
            return Outcome::Close(INVALID_EVENT_NAME);
        }
        let (require, matched) = self.select(name);
        self.decide(require, matched, who)
    }

    /// The requirements that apply to event `name` and where they come from.
    pub fn select(&self, name: &str) -> (&Requirements, Matched) {
        match self.rules.iter().position(|r| r.event.matches(name)) {
            Some(i) => (&self.rules[i].require, Matched::Rule(i)),
            None => (&self.default, Matched::Default),
        }
    }

    fn decide(&self, require: &Requirements, matched: Matched, who: &(impl Who + ?Sized)) -> Outcome {
        match require.refusal(who, &self.login_url, self.raise_exception) {
            None => Outcome::Allow(matched),
            Some(reason) => Outcome::Deny(reason),
        }
    }
}

/// `rules[i]`: `{"event": glob, "require": requirements}`, both keys required.
fn rule(item: &Value, i: usize) -> Result<Rule, String> {
    let at = format!("rules[{i}]");
    let Value::Object(map) = item else {
        return Err(format!("{at}: expected an object with keys \"event\" and \"require\", got {}", kind(item)));
    };
    check_keys(map, &RULE_KEYS, &format!("{at}: "))?;
    let event = match map.get("event") {
        None => return Err(format!("{at}: missing key \"event\" (a glob over the event name)")),
        Some(Value::String(s)) if s.is_empty() => {
            return Err(format!("{at}.event: must not be empty (write \"*\" to match every event)"))
        }
        Some(Value::String(s)) => Glob::new(s),
        Some(v) => return Err(format!("{at}.event: expected a string, got {}", kind(v))),
    };
    let require = match map.get("require") {
        None => return Err(format!("{at}: missing key \"require\" (e.g. \"authenticated\")")),
        Some(v) => Requirements::from_value(v, &format!("{at}.require"))?,
    };
    Ok(Rule { event, require })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"rules": [
        {"event": "state.admin_state.*", "require": "staff"},
        {"event": "*.delete_product", "require": ["authenticated", "perm:shop.delete_product"]},
        {"event": "state.reports_state.export", "require": "group:analysts"},
        {"event": "reflex___state____state.*", "require": "any"}
      ],
      "default": "any",
      "login_url": "/admin/login/",
      "on_connect": "any"}"#;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// Owns what a `User` borrows.
    struct Person {
        authenticated: bool,
        staff: bool,
        superuser: bool,
        groups: Vec<String>,
        perms: Vec<String>,
    }

    impl Person {
        fn user(&self) -> Facts<'_> {
            Facts {
                authenticated: self.authenticated,
                is_staff: self.staff,
                is_superuser: self.superuser,
                groups: &self.groups,
                permissions: &self.perms,
            }
        }
    }

    fn anonymous() -> Person {
        Person { authenticated: false, staff: false, superuser: false, groups: vec![], perms: vec![] }
    }

    fn member() -> Person {
        Person { authenticated: true, ..anonymous() }
    }

    fn staff() -> Person {
        Person { staff: true, ..member() }
    }

    fn superuser() -> Person {
        Person { staff: true, superuser: true, ..member() }
    }

    fn with_groups(groups: &[&str]) -> Person {
        Person { groups: strings(groups), ..member() }
    }

    fn with_perms(perms: &[&str]) -> Person {
        Person { perms: strings(perms), ..member() }
    }

    fn cfg(json: &str) -> Config {
        Config::from_json(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    /// A config with one rule matching every event, refusing with the requirement
    /// (`raise_exception`) so that each reason can be checked.
    fn only(require: &str) -> Config {
        cfg(&format!(r#"{{"rules":[{{"event":"*","require":{require}}}],"raise_exception":true}}"#))
    }

    fn err(json: &str) -> String {
        match Config::from_json(json) {
            Ok(c) => panic!("{json} was accepted: {c:?}"),
            Err(e) => e,
        }
    }

    fn assert_err(json: &str, needles: &[&str]) {
        let e = err(json);
        for n in needles {
            assert!(e.contains(n), "error for {json} is {e:?}, expected it to contain {n:?}");
        }
    }

    fn allow(i: usize) -> Outcome {
        Outcome::Allow(Matched::Rule(i))
    }

    /// A refusal in the notation clients see (`login_required:<url>`, `forbidden:<why>`).
    fn deny(reason: &str) -> Outcome {
        Outcome::Deny(match reason.split_once(':') {
            Some(("login_required", url)) => Refusal::LoginRequired(url.to_string()),
            Some(("forbidden", why)) => Refusal::Forbidden(why.to_string()),
            _ => panic!("not a refusal: {reason}"),
        })
    }

    const EV: &str = "state.counter_state.increment";
    const LOGIN: &str = "login_required:/admin/login/";

    // ---- requirements, one by one ----

    #[test]
    fn any_allows_everyone() {
        let c = only(r#""any""#);
        for p in [anonymous(), member(), staff(), superuser()] {
            assert_eq!(c.on_event(EV, &p.user()), allow(0));
        }
    }

    #[test]
    fn authenticated_allows_members_and_sends_anonymous_to_login() {
        let c = only(r#""authenticated""#);
        assert_eq!(c.on_event(EV, &anonymous().user()), deny(LOGIN));
        for p in [member(), staff(), superuser()] {
            assert_eq!(c.on_event(EV, &p.user()), allow(0));
        }
    }

    #[test]
    fn anonymous_allows_only_logged_out_users() {
        let c = only(r#""anonymous""#);
        assert_eq!(c.on_event(EV, &anonymous().user()), allow(0));
        for p in [member(), staff(), superuser()] {
            assert_eq!(c.on_event(EV, &p.user()), deny("forbidden:anonymous"));
        }
    }

    #[test]
    fn staff_requires_is_staff() {
        let c = only(r#""staff""#);
        assert_eq!(c.on_event(EV, &anonymous().user()), deny(LOGIN));
        assert_eq!(c.on_event(EV, &member().user()), deny("forbidden:staff"));
        assert_eq!(c.on_event(EV, &staff().user()), allow(0));
        assert_eq!(c.on_event(EV, &superuser().user()), allow(0));
        // A superuser without is_staff is not staff, as in Django's staff_member_required.
        let su_only = Person { superuser: true, ..member() };
        assert_eq!(c.on_event(EV, &su_only.user()), deny("forbidden:staff"));
    }

    #[test]
    fn superuser_requires_is_superuser() {
        let c = only(r#""superuser""#);
        assert_eq!(c.on_event(EV, &anonymous().user()), deny(LOGIN));
        assert_eq!(c.on_event(EV, &member().user()), deny("forbidden:superuser"));
        assert_eq!(c.on_event(EV, &staff().user()), deny("forbidden:superuser"));
        assert_eq!(c.on_event(EV, &superuser().user()), allow(0));
    }

    #[test]
    fn group_requires_membership() {
        let c = only(r#""group:analysts""#);
        assert_eq!(c.on_event(EV, &anonymous().user()), deny(LOGIN));
        assert_eq!(c.on_event(EV, &member().user()), deny("forbidden:group:analysts"));
        assert_eq!(c.on_event(EV, &with_groups(&["editors"]).user()), deny("forbidden:group:analysts"));
        assert_eq!(c.on_event(EV, &with_groups(&["editors", "analysts"]).user()), allow(0));
        // Exact, case-sensitive names.
        assert_eq!(c.on_event(EV, &with_groups(&["Analysts"]).user()), deny("forbidden:group:analysts"));
        assert_eq!(c.on_event(EV, &with_groups(&["analysts2"]).user()), deny("forbidden:group:analysts"));
    }

    #[test]
    fn group_names_may_hold_spaces_colons_and_unicode() {
        let c = only(r#""group:Data team: EU/é""#);
        assert_eq!(c.on_event(EV, &with_groups(&["Data team: EU/é"]).user()), allow(0));
        assert_eq!(c.on_event(EV, &member().user()), deny("forbidden:group:Data team: EU/é"));
    }

    #[test]
    fn perm_requires_the_permission() {
        let c = only(r#""perm:shop.delete_product""#);
        assert_eq!(c.on_event(EV, &anonymous().user()), deny(LOGIN));
        assert_eq!(c.on_event(EV, &member().user()), deny("forbidden:perm:shop.delete_product"));
        assert_eq!(c.on_event(EV, &staff().user()), deny("forbidden:perm:shop.delete_product"));
        assert_eq!(
            c.on_event(EV, &with_perms(&["shop.add_product", "blog.delete_product"]).user()),
            deny("forbidden:perm:shop.delete_product")
        );
        assert_eq!(c.on_event(EV, &with_perms(&["shop.add_product", "shop.delete_product"]).user()), allow(0));
    }

    #[test]
    fn deny_refuses_everyone() {
        let c = only(r#""deny""#);
        for p in [anonymous(), member(), staff(), superuser()] {
            assert_eq!(c.on_event(EV, &p.user()), deny("forbidden:deny"));
        }
    }

    #[test]
    fn superusers_pass_perm_but_not_group() {
        let su = superuser();
        assert_eq!(only(r#""perm:shop.delete_product""#).on_event(EV, &su.user()), allow(0));
        assert_eq!(only(r#""perm:any.thing_that_does_not_exist""#).on_event(EV, &su.user()), allow(0));
        assert_eq!(only(r#""group:analysts""#).on_event(EV, &su.user()), deny("forbidden:group:analysts"));
        let su_in_group = Person { groups: strings(&["analysts"]), ..superuser() };
        assert_eq!(only(r#""group:analysts""#).on_event(EV, &su_in_group.user()), allow(0));
        // A superuser is still refused by `deny` and `anonymous`.
        assert_eq!(only(r#""deny""#).on_event(EV, &su.user()), deny("forbidden:deny"));
        assert_eq!(only(r#""anonymous""#).on_event(EV, &su.user()), deny("forbidden:anonymous"));
    }

    #[test]
    fn flags_of_an_unauthenticated_identity_are_ignored() {
        // An inconsistent identity (flags set but not authenticated) is anonymous.
        let odd = Person {
            authenticated: false,
            staff: true,
            superuser: true,
            groups: strings(&["analysts"]),
            perms: strings(&["shop.delete_product"]),
        };
        for req in [
            r#""authenticated""#,
            r#""staff""#,
            r#""superuser""#,
            r#""group:analysts""#,
            r#""perm:shop.delete_product""#,
        ] {
            assert_eq!(only(req).on_event(EV, &odd.user()), deny(LOGIN), "{req}");
        }
        assert_eq!(only(r#""anonymous""#).on_event(EV, &odd.user()), allow(0));
    }

    #[test]
    fn anonymous_constant_is_anonymous() {
        let c = only(r#""authenticated""#);
        assert_eq!(c.on_event(EV, &Facts::ANONYMOUS), deny(LOGIN));
        assert_eq!(only(r#""anonymous""#).on_event(EV, &Facts::ANONYMOUS), allow(0));
    }

    // ---- lists of requirements ----

    #[test]
    fn a_list_needs_every_requirement() {
        let c = only(r#"["staff", "perm:shop.delete_product"]"#);
        assert_eq!(c.on_event(EV, &anonymous().user()), deny(LOGIN));
        assert_eq!(c.on_event(EV, &member().user()), deny("forbidden:staff"));
        assert_eq!(c.on_event(EV, &staff().user()), deny("forbidden:perm:shop.delete_product"));
        let both = Person { perms: strings(&["shop.delete_product"]), ..staff() };
        assert_eq!(c.on_event(EV, &both.user()), allow(0));
        assert_eq!(c.on_event(EV, &superuser().user()), allow(0));
    }

    #[test]
    fn the_first_failing_requirement_is_reported() {
        let c = only(r#"["group:a", "group:b"]"#);
        assert_eq!(c.on_event(EV, &member().user()), deny("forbidden:group:a"));
        assert_eq!(c.on_event(EV, &with_groups(&["a"]).user()), deny("forbidden:group:b"));
        assert_eq!(c.on_event(EV, &with_groups(&["b"]).user()), deny("forbidden:group:a"));
        assert_eq!(c.on_event(EV, &with_groups(&["b", "a"]).user()), allow(0));
    }

    #[test]
    fn an_anonymous_user_failing_any_login_requirement_goes_to_login() {
        let c = only(r#"["any", "authenticated", "perm:shop.delete_product"]"#);
        assert_eq!(c.on_event(EV, &anonymous().user()), deny(LOGIN));
        let c = only(r#"["perm:shop.delete_product", "authenticated"]"#);
        assert_eq!(c.on_event(EV, &anonymous().user()), deny(LOGIN));
    }

    #[test]
    fn deny_anywhere_in_a_list_wins() {
        let c = only(r#"["staff", "deny"]"#);
        assert_eq!(c.on_event(EV, &anonymous().user()), deny("forbidden:deny"));
        assert_eq!(c.on_event(EV, &member().user()), deny("forbidden:deny"));
        assert_eq!(c.on_event(EV, &superuser().user()), deny("forbidden:deny"));
        let c = only(r#"["any", "deny", "any"]"#);
        assert_eq!(c.on_event(EV, &anonymous().user()), deny("forbidden:deny"));
    }

    #[test]
    fn anonymous_in_a_list() {
        let c = only(r#"["any", "anonymous"]"#);
        assert_eq!(c.on_event(EV, &anonymous().user()), allow(0));
        assert_eq!(c.on_event(EV, &member().user()), deny("forbidden:anonymous"));
        // Contradictory lists refuse everyone, each for the first reason that applies.
        let c = only(r#"["anonymous", "staff"]"#);
        assert_eq!(c.on_event(EV, &anonymous().user()), deny(LOGIN));
        assert_eq!(c.on_event(EV, &staff().user()), deny("forbidden:anonymous"));
    }

    #[test]
    fn a_single_element_list_equals_the_string() {
        assert_eq!(only(r#"["staff"]"#), only(r#""staff""#));
        assert_eq!(only(r#"["staff","staff"]"#).on_event(EV, &staff().user()), allow(0));
    }

    // ---- rule selection ----

    #[test]
    fn the_example_config() {
        let c = cfg(EXAMPLE);
        assert_eq!(c.rules.len(), 4);
        let admin = "state.admin_state.save";
        let delete = "reflex___state____state.shop___pages___index____product_state.delete_product";
        let export = "state.reports_state.export";
        let load = "reflex___state____state.shop___pages___index____product_state.load_products";
        let other = "state.counter_state.increment";

        let anon = anonymous();
        assert_eq!(c.on_event(admin, &anon.user()), deny(LOGIN));
        assert_eq!(c.on_event(delete, &anon.user()), deny(LOGIN));
        assert_eq!(c.on_event(export, &anon.user()), deny(LOGIN));
        assert_eq!(c.on_event(load, &anon.user()), allow(3));
        assert_eq!(c.on_event(other, &anon.user()), Outcome::Allow(Matched::Default));

        let m = member();
        assert_eq!(c.on_event(admin, &m.user()), deny(LOGIN));
        assert_eq!(c.on_event(delete, &m.user()), deny(LOGIN));
        assert_eq!(c.on_event(export, &m.user()), deny(LOGIN));

        assert_eq!(c.on_event(admin, &staff().user()), allow(0));
        assert_eq!(c.on_event(delete, &with_perms(&["shop.delete_product"]).user()), allow(1));
        assert_eq!(c.on_event(delete, &superuser().user()), allow(1));
        assert_eq!(c.on_event(export, &with_groups(&["analysts"]).user()), allow(2));
        assert_eq!(c.on_event(export, &superuser().user()), deny(LOGIN));
        assert_eq!(c.on_connect(&anon.user()), Outcome::Allow(Matched::OnConnect));
    }

    #[test]
    fn the_readme_example_on_reflex_0_10_names() {
        let c = cfg(r#"{"rules": [
           {"event": "reflex___state____state.hydrate_and_load", "require": "any"},
           {"event": "reflex___state____state.reflex___state____*", "require": "any"},
           {"event": "*____admin_state.*", "require": "staff"},
           {"event": "*.delete_product", "require": ["authenticated", "perm:shop.delete_product"]},
           {"event": "*____reports_state.export", "require": "group:analysts"},
           {"event": "*____catalog_state.*", "require": "any"}
         ],
         "default": "authenticated",
         "login_url": "/accounts/login/",
         "on_connect": "any"}"#);
        let anon = anonymous();
        let login = deny("login_required:/accounts/login/");
        let root = "reflex___state____state";
        assert_eq!(c.on_event(&format!("{root}.hydrate_and_load"), &anon.user()), allow(0));
        let on_load = format!("{root}.reflex___state____on_load_internal_state.on_load_internal");
        assert_eq!(c.on_event(&on_load, &anon.user()), allow(1));
        let admin = format!("{root}.app___admin____admin_state.save");
        assert_eq!(c.on_event(&admin, &anon.user()), login);
        assert_eq!(c.on_event(&admin, &member().user()), login.clone());
        assert_eq!(c.on_event(&admin, &staff().user()), allow(2));
        let super_admin = format!("{root}.app___admin____super_admin_state.save");
        assert_eq!(c.on_event(&super_admin, &member().user()), Outcome::Allow(Matched::Default));
        let delete = format!("{root}.shop___pages___index____product_state.delete_product");
        assert_eq!(c.on_event(&delete, &member().user()), login.clone());
        let export = format!("{root}.app____reports_state.export");
        assert_eq!(c.on_event(&export, &with_groups(&["analysts"]).user()), allow(4));
        let browse = format!("{root}.shop____catalog_state.load");
        assert_eq!(c.on_event(&browse, &anon.user()), allow(5));
        let other = format!("{root}.shop____cart_state.add");
        assert_eq!(c.on_event(&other, &anon.user()), login);
    }

    #[test]
    fn first_matching_rule_wins() {
        let c = cfg(r#"{"rules":[
            {"event":"state.admin_state.public_*","require":"any"},
            {"event":"state.admin_state.*","require":"staff"},
            {"event":"*","require":"deny"}]}"#);
        let anon = anonymous();
        assert_eq!(c.on_event("state.admin_state.public_info", &anon.user()), allow(0));
        assert_eq!(c.on_event("state.admin_state.save", &anon.user()), deny(LOGIN));
        assert_eq!(c.on_event("state.admin_state.save", &staff().user()), allow(1));
        assert_eq!(c.on_event("state.other.x", &superuser().user()), deny("forbidden:deny"));
        // A later, more permissive rule never applies once an earlier one matched.
        let c = cfg(r#"{"rules":[
            {"event":"*.save","require":"superuser"},
            {"event":"state.admin_state.save","require":"any"}]}"#);
        assert_eq!(c.on_event("state.admin_state.save", &staff().user()), deny(LOGIN));
        assert_eq!(c.select("state.admin_state.save").1, Matched::Rule(0));
    }

    #[test]
    fn default_applies_when_no_rule_matches() {
        let c = cfg(r#"{"rules":[{"event":"state.open.*","require":"any"}],"default":"authenticated"}"#);
        assert_eq!(c.on_event("state.open.x", &anonymous().user()), allow(0));
        assert_eq!(c.on_event("state.closed.x", &anonymous().user()), deny(LOGIN));
        assert_eq!(c.on_event("state.closed.x", &member().user()), Outcome::Allow(Matched::Default));
        // "state.open" is not matched by "state.open.*".
        assert_eq!(c.on_event("state.open", &anonymous().user()), deny(LOGIN));
    }

    #[test]
    fn default_can_be_a_list_or_deny() {
        let c = cfg(r#"{"default":["authenticated","group:staffers"]}"#);
        assert_eq!(c.on_event(EV, &anonymous().user()), deny(LOGIN));
        assert_eq!(c.on_event(EV, &member().user()), deny(LOGIN));
        assert_eq!(c.on_event(EV, &with_groups(&["staffers"]).user()), Outcome::Allow(Matched::Default));
        let c = cfg(r#"{"default":"deny"}"#);
        assert_eq!(c.on_event(EV, &superuser().user()), deny("forbidden:deny"));
    }

    #[test]
    fn no_rules_and_no_default_allow_everything() {
        let c = cfg("{}");
        assert_eq!(c, Config::default());
        assert!(c.rules.is_empty());
        assert_eq!(c.default, Requirements::any());
        assert_eq!(c.on_connect, Requirements::any());
        assert_eq!(c.login_url, DEFAULT_LOGIN_URL);
        assert_eq!(c.on_event(EV, &anonymous().user()), Outcome::Allow(Matched::Default));
        assert_eq!(c.on_connect(&anonymous().user()), Outcome::Allow(Matched::OnConnect));
        let c = cfg(r#"{"rules":[]}"#);
        assert_eq!(c.on_event(EV, &anonymous().user()), Outcome::Allow(Matched::Default));
    }

    #[test]
    fn login_url_is_used_in_the_reason() {
        let c = cfg(r#"{"default":"authenticated","login_url":"/accounts/login/"}"#);
        assert_eq!(c.on_event(EV, &anonymous().user()), deny("login_required:/accounts/login/"));
        let c = cfg(r#"{"default":"staff","login_url":"/connexion/é:x"}"#);
        assert_eq!(c.on_event(EV, &anonymous().user()), deny("login_required:/connexion/é:x"));
        assert_eq!(cfg(r#"{"login_url":"/"}"#).login_url, "/");
    }

    #[test]
    fn logged_in_users_lacking_a_requirement_go_to_login_unless_raise_exception() {
        let rules = r#""rules":[{"event":"*","require":"staff"}]"#;
        let c = cfg(&format!("{{{rules}}}"));
        assert!(!c.raise_exception);
        assert_eq!(c.on_event(EV, &member().user()), deny(LOGIN));
        assert_eq!(c.on_event(EV, &anonymous().user()), deny(LOGIN));
        let c = cfg(&format!(r#"{{{rules},"raise_exception":true}}"#));
        assert_eq!(c.on_event(EV, &member().user()), deny("forbidden:staff"));
        // Anonymous users are still sent to log in: that may help them.
        assert_eq!(c.on_event(EV, &anonymous().user()), deny(LOGIN));
        // Where logging in cannot help, no setting sends anyone to the login page.
        let c = cfg(r#"{"default":"deny"}"#);
        assert_eq!(c.on_event(EV, &member().user()), deny("forbidden:deny"));
        assert_err(r#"{"raise_exception":"yes"}"#, &["raise_exception", "expected true or false"]);
    }

    // ---- on_connect ----

    #[test]
    fn on_connect_uses_its_own_requirement() {
        let c = cfg(r#"{"on_connect":"authenticated","default":"any"}"#);
        assert_eq!(c.on_connect(&anonymous().user()), deny(LOGIN));
        assert_eq!(c.on_connect(&member().user()), Outcome::Allow(Matched::OnConnect));
        // Events still follow the rules and default.
        assert_eq!(c.on_event(EV, &anonymous().user()), Outcome::Allow(Matched::Default));
        let c = cfg(r#"{"on_connect":["staff","group:ops"],"rules":[{"event":"*","require":"deny"}]}"#);
        assert_eq!(c.on_connect(&staff().user()), deny(LOGIN));
        let ops = Person { groups: strings(&["ops"]), ..staff() };
        assert_eq!(c.on_connect(&ops.user()), Outcome::Allow(Matched::OnConnect));
        assert_eq!(cfg(r#"{"on_connect":"deny"}"#).on_connect(&superuser().user()), deny("forbidden:deny"));
        assert_eq!(cfg(r#"{"on_connect":"anonymous"}"#).on_connect(&member().user()), deny("forbidden:anonymous"));
    }

    #[test]
    fn on_connect_ignores_the_rules_and_default() {
        let c = cfg(r#"{"rules":[{"event":"*","require":"deny"}],"default":"deny"}"#);
        assert_eq!(c.on_connect(&anonymous().user()), Outcome::Allow(Matched::OnConnect));
    }

    // ---- event names ----

    #[test]
    fn empty_or_overlong_event_names_close() {
        let c = cfg(EXAMPLE);
        assert_eq!(c.on_event("", &superuser().user()), Outcome::Close(INVALID_EVENT_NAME));
        let long = "a".repeat(MAX_EVENT_NAME + 1);
        assert_eq!(c.on_event(&long, &superuser().user()), Outcome::Close("invalid event name"));
        let exact = "a".repeat(MAX_EVENT_NAME);
        assert_eq!(c.on_event(&exact, &anonymous().user()), Outcome::Allow(Matched::Default));
        // The limit is in bytes: 257 two-byte characters are 514 bytes.
        let wide = "é".repeat(257);
        assert_eq!(c.on_event(&wide, &anonymous().user()), Outcome::Close(INVALID_EVENT_NAME));
        let wide = "é".repeat(256);
        assert_eq!(c.on_event(&wide, &anonymous().user()), Outcome::Allow(Matched::Default));
        // Even a rule that would match everything does not see them.
        let c = only(r#""any""#);
        assert_eq!(c.on_event("", &anonymous().user()), Outcome::Close(INVALID_EVENT_NAME));
    }

    #[test]
    fn matched_labels() {
        assert_eq!(Matched::Rule(0).label(), "0");
        assert_eq!(Matched::Rule(12).label(), "12");
        assert_eq!(Matched::Default.label(), "default");
        assert_eq!(Matched::OnConnect.label(), "on_connect");
    }

    // ---- parsing ----

    #[test]
    fn every_requirement_parses_and_prints_back() {
        for text in [
            "any",
            "authenticated",
            "anonymous",
            "staff",
            "superuser",
            "deny",
            "group:analysts",
            "group:a b",
            "group:x:y",
            "perm:shop.delete_product",
            "perm:a.b.c",
        ] {
            let r = Requirement::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(r.to_string(), text);
        }
        assert_eq!(Requirement::parse("group:analysts"), Ok(Requirement::Group("analysts".into())));
        assert_eq!(Requirement::parse("perm:shop.x"), Ok(Requirement::Perm("shop.x".into())));
        let reqs = Requirements::from_value(&serde_json::json!(["staff", "perm:a.b"]), "k").unwrap();
        assert_eq!(reqs.list(), &[Requirement::Staff, Requirement::Perm("a.b".into())]);
        assert_eq!(reqs.to_string(), "staff, perm:a.b");
    }

    #[test]
    fn every_key_is_read() {
        let c = cfg(r#"{"rules":[{"event":"a.*","require":["staff"]},{"require":"any","event":"b"}],
            "default":"authenticated","login_url":"/login/","on_connect":"anonymous"}"#);
        assert_eq!(c.rules.len(), 2);
        assert_eq!(c.rules[0].event.as_str(), "a.*");
        assert_eq!(c.rules[0].require.list(), &[Requirement::Staff]);
        assert_eq!(c.rules[1].event.as_str(), "b");
        assert_eq!(c.rules[1].require.list(), &[Requirement::Any]);
        assert_eq!(c.default.list(), &[Requirement::Authenticated]);
        assert_eq!(c.login_url, "/login/");
        assert_eq!(c.on_connect.list(), &[Requirement::Anonymous]);
    }

    // ---- init errors ----

    #[test]
    fn malformed_json_is_refused() {
        for bad in ["", "{", r#"{"rules":[}"#, "not json", "{'rules':[]}", r#"{"rules":[],}"#] {
            assert_err(bad, &["config is not valid JSON"]);
        }
    }

    #[test]
    fn non_object_is_refused() {
        assert_err("[]", &["must be a JSON object", "a list"]);
        assert_err("null", &["must be a JSON object", "null"]);
        assert_err("\"any\"", &["must be a JSON object", "a string"]);
        assert_err("1", &["must be a JSON object", "a number"]);
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert_err(r#"{"rule":[]}"#, &[r#"unknown key "rule""#, r#""rules", "default", "login_url", "on_connect""#]);
        assert_err(r#"{"Default":"any"}"#, &[r#"unknown key "Default""#]);
        assert_err(r#"{"loginUrl":"/x/"}"#, &[r#"unknown key "loginUrl""#]);
        assert_err(
            r#"{"rules":[{"event":"*","require":"any","requires":"staff"}]}"#,
            &[r#"rules[0]: unknown key "requires""#, r#""event", "require""#],
        );
        assert_err(
            r#"{"rules":[{"event":"a","require":"any"},{"events":"*","require":"any"}]}"#,
            &[r#"rules[1]: unknown key "events""#],
        );
    }

    #[test]
    fn rules_must_be_a_list_of_objects() {
        assert_err(r#"{"rules":{"event":"*","require":"any"}}"#, &["rules: expected a list", "an object"]);
        assert_err(r#"{"rules":"*"}"#, &["rules: expected a list", "a string"]);
        assert_err(r#"{"rules":null}"#, &["rules: expected a list", "null"]);
        assert_err(r#"{"rules":[["*","any"]]}"#, &["rules[0]: expected an object", "a list"]);
        assert_err(r#"{"rules":[{"event":"a","require":"any"},"b"]}"#, &["rules[1]: expected an object", "a string"]);
    }

    #[test]
    fn missing_event_or_require_is_refused() {
        assert_err(r#"{"rules":[{"require":"any"}]}"#, &[r#"rules[0]: missing key "event""#]);
        assert_err(
            r#"{"rules":[{"event":"a","require":"any"},{"require":"any"}]}"#,
            &[r#"rules[1]: missing key "event""#],
        );
        assert_err(r#"{"rules":[{"event":"*"}]}"#, &[r#"rules[0]: missing key "require""#]);
        assert_err(r#"{"rules":[{}]}"#, &["rules[0]: missing key"]);
    }

    #[test]
    fn bad_event_globs_are_refused() {
        assert_err(r#"{"rules":[{"event":"","require":"any"}]}"#, &["rules[0].event: must not be empty", "\"*\""]);
        assert_err(r#"{"rules":[{"event":3,"require":"any"}]}"#, &["rules[0].event: expected a string", "a number"]);
        assert_err(r#"{"rules":[{"event":null,"require":"any"}]}"#, &["rules[0].event: expected a string", "null"]);
        assert_err(r#"{"rules":[{"event":["a"],"require":"any"}]}"#, &["rules[0].event", "a list"]);
    }

    #[test]
    fn unknown_requirements_are_refused() {
        assert_err(
            r#"{"rules":[{"event":"a","require":"any"},{"event":"b","require":"any"},{"event":"c","require":"staf"}]}"#,
            &[r#"rules[2].require: unknown requirement "staf""#, "known: any, authenticated"],
        );
        assert_err(
            r#"{"rules":[{"event":"a","require":["authenticated","perms:a.b"]}]}"#,
            &[r#"rules[0].require[1]: unknown requirement "perms:a.b""#],
        );
        assert_err(
            r#"{"rules":[{"event":"a","require":"Staff"}]}"#,
            &[r#"unknown requirement "Staff""#, r#"did you mean "staff"?"#],
        );
        assert_err(r#"{"rules":[{"event":"a","require":"Group:x"}]}"#, &[r#"unknown requirement "Group:x""#]);
        assert!(!err(r#"{"default":"Group:X"}"#).contains("did you mean"));
        assert_err(r#"{"rules":[{"event":"a","require":" staff"}]}"#, &[r#"unknown requirement " staff""#]);
        assert_err(r#"{"rules":[{"event":"a","require":"login_required"}]}"#, &["unknown requirement"]);
        assert_err(r#"{"rules":[{"event":"a","require":""}]}"#, &["rules[0].require: empty requirement"]);
        assert_err(r#"{"default":"allow"}"#, &[r#"default: unknown requirement "allow""#]);
        assert_err(r#"{"default":["any","nobody"]}"#, &[r#"default[1]: unknown requirement "nobody""#]);
        assert_err(r#"{"on_connect":"everyone"}"#, &[r#"on_connect: unknown requirement "everyone""#]);
        assert_err(r#"{"on_connect":["any",""]}"#, &["on_connect[1]: empty requirement"]);
    }

    #[test]
    fn wrong_requirement_types_are_refused() {
        assert_err(
            r#"{"rules":[{"event":"a","require":1}]}"#,
            &["rules[0].require: expected a requirement", "a number"],
        );
        assert_err(r#"{"rules":[{"event":"a","require":null}]}"#, &["rules[0].require", "null"]);
        assert_err(r#"{"rules":[{"event":"a","require":{"staff":true}}]}"#, &["rules[0].require", "an object"]);
        assert_err(
            r#"{"rules":[{"event":"a","require":["staff",true]}]}"#,
            &["rules[0].require[1]: expected a string", "a boolean"],
        );
        assert_err(r#"{"rules":[{"event":"a","require":[["staff"]]}]}"#, &["rules[0].require[0]", "a list"]);
        assert_err(
            r#"{"rules":[{"event":"a","require":[]}]}"#,
            &["rules[0].require: must not be an empty list", "\"any\""],
        );
        assert_err(r#"{"default":[]}"#, &["default: must not be an empty list"]);
        assert_err(r#"{"default":null}"#, &["default: expected a requirement", "null"]);
        assert_err(r#"{"on_connect":false}"#, &["on_connect: expected a requirement", "a boolean"]);
        assert_err(r#"{"on_connect":[]}"#, &["on_connect: must not be an empty list"]);
    }

    #[test]
    fn empty_group_or_permission_names_are_refused() {
        assert_err(
            r#"{"rules":[{"event":"a","require":"group:"}]}"#,
            &["rules[0].require: empty group name", "\"group:\""],
        );
        assert_err(
            r#"{"rules":[{"event":"a","require":"perm:"}]}"#,
            &["rules[0].require: empty permission", "\"perm:\""],
        );
        assert_err(r#"{"default":["staff","group:"]}"#, &["default[1]: empty group name"]);
        assert_err(r#"{"on_connect":"perm:"}"#, &["on_connect: empty permission"]);
    }

    #[test]
    fn names_with_surrounding_whitespace_are_refused() {
        assert_err(r#"{"default":"group: analysts"}"#, &["default:", "\"group: analysts\"", "whitespace"]);
        assert_err(r#"{"default":"group:analysts "}"#, &["default:", "whitespace"]);
        assert_err(r#"{"default":"perm: shop.x"}"#, &["default:", "permission has leading or trailing whitespace"]);
        assert_err(r#"{"default":"group: "}"#, &["default:", "whitespace"]);
    }

    #[test]
    fn permissions_need_app_label_dot_codename() {
        assert_err(
            r#"{"rules":[{"event":"a","require":"perm:delete_product"}]}"#,
            &["rules[0].require", r#""perm:delete_product" has no ".""#, "perm:app_label.codename"],
        );
        assert_err(r#"{"default":"perm:.delete_product"}"#, &["default:", "empty app label"]);
        assert_err(r#"{"default":"perm:shop."}"#, &["default:", "empty codename"]);
        assert_err(r#"{"default":"perm:."}"#, &["default:", "empty app label"]);
    }

    #[test]
    fn bad_login_urls_are_refused() {
        assert_err(r#"{"login_url":"admin/login/"}"#, &["login_url", "must start with \"/\""]);
        assert_err(r#"{"login_url":"https://example.com/login/"}"#, &["login_url", "must start with \"/\""]);
        assert_err(r#"{"login_url":""}"#, &["login_url", "must start with \"/\""]);
        assert_err(r#"{"login_url":"//evil.example/login"}"#, &["login_url", "must not start with \"//\""]);
        assert_err(r#"{"login_url":"/\\evil.example"}"#, &["login_url", "must not contain '\\\\'"]);
        assert_err(r#"{"login_url":"/login/?x=1"}"#, &["login_url", "must not contain '?'", "?next="]);
        assert_err(r#"{"login_url":"/login/#top"}"#, &["login_url", "must not contain '#'"]);
        assert_err(r#"{"login_url":"/log in/"}"#, &["login_url", "must not contain ' '"]);
        assert_err(r#"{"login_url":"/login/\n"}"#, &["login_url", "must not contain '\\n'"]);
        assert_err(r#"{"login_url":3}"#, &["login_url: expected a string", "a number"]);
        assert_err(r#"{"login_url":null}"#, &["login_url: expected a string", "null"]);
    }

    #[test]
    fn the_first_error_in_rule_order_is_reported() {
        let e = err(r#"{"rules":[{"event":"a","require":"any"},{"event":"","require":"nope"},{"event":"c"}]}"#);
        assert!(e.starts_with("rules[1].event"), "{e}");
    }
}
