//! What a policy is lent, as traits: the component implements them on the gateway's
//! handles (each method one question to the host), [`crate::testing`] on plain data.

use crate::EventKind;

/// The HTTP request (`isthmus:policy/http.request`).
pub trait Request {
    fn method(&self) -> String;
    fn scheme(&self) -> String;
    fn authority(&self) -> String;
    /// The canonical path, exactly what the upstream receives.
    fn path(&self) -> String;
    fn query(&self) -> String;
    /// Header `name` (any case), several fields joined with `, ` (`; ` for cookie).
    fn header(&self, name: &str) -> Option<String>;
    fn headers(&self) -> Vec<(String, String)>;
    /// Cookie `name`, as Django reads it (the last of duplicates).
    fn cookie(&self, name: &str) -> Option<String>;
    fn client_ip(&self) -> String;
    fn traceparent(&self) -> Option<String>;
}

/// The Django user (`isthmus:policy/users.identity`).
pub trait User {
    fn authenticated(&self) -> bool;
    fn user_id(&self) -> Option<String>;
    fn username(&self) -> String;
    fn email(&self) -> String;
    fn first_name(&self) -> String;
    fn last_name(&self) -> String;
    fn is_staff(&self) -> bool;
    fn is_superuser(&self) -> bool;
    fn groups(&self) -> Vec<String>;
    fn in_group(&self, name: &str) -> bool;
    fn permissions(&self) -> Vec<String>;
    fn has_permission(&self, perm: &str) -> bool;
    /// Whitelisted session keys; values are JSON texts.
    fn session(&self) -> Vec<(String, String)>;
    fn session_value(&self, key: &str) -> Option<String>;
}

/// One Reflex event (`isthmus:policy/bridging.event`): all but `kind` is what the page claims.
pub trait Event {
    fn kind(&self) -> EventKind;
    /// The handler that will run, e.g. `state.counter_state.increment`.
    fn name(&self) -> String;
    fn payload_json(&self) -> String;
    fn route(&self) -> String;
    fn query(&self) -> String;
    fn traceparent(&self) -> Option<String>;
}
