//! Test doubles of what the gateway lends: build a request, a user or an event as
//! plain data and call your policy with them, natively, in `cargo test`.

use crate::{Event, EventKind, Request, User};

/// A request: `FakeRequest::get("/admin/").with_header("cookie", "sessionid=x")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeRequest {
    pub method: String,
    pub scheme: String,
    pub authority: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub client_ip: String,
}

impl FakeRequest {
    /// A request with this method and path (`?query` split off).
    pub fn new(method: &str, target: &str) -> FakeRequest {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        FakeRequest {
            method: method.to_ascii_uppercase(),
            scheme: "http".into(),
            authority: "localhost".into(),
            path: path.into(),
            query: query.into(),
            headers: Vec::new(),
            client_ip: "127.0.0.1".into(),
        }
    }

    pub fn get(target: &str) -> FakeRequest {
        FakeRequest::new("GET", target)
    }

    /// One more header field (names are lower-cased, as the gateway's are).
    pub fn with_header(mut self, name: &str, value: &str) -> FakeRequest {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }
}

impl Request for FakeRequest {
    fn method(&self) -> String {
        self.method.clone()
    }
    fn scheme(&self) -> String {
        self.scheme.clone()
    }
    fn authority(&self) -> String {
        self.authority.clone()
    }
    fn path(&self) -> String {
        self.path.clone()
    }
    fn query(&self) -> String {
        self.query.clone()
    }
    fn header(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        let separator = if name == "cookie" { "; " } else { ", " };
        let values: Vec<&str> = self.headers.iter().filter(|(k, _)| *k == name).map(|(_, v)| v.as_str()).collect();
        (!values.is_empty()).then(|| values.join(separator))
    }
    fn headers(&self) -> Vec<(String, String)> {
        self.headers.clone()
    }
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "cookie")
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .rfind(|(k, _)| *k == name)
            .map(|(_, v)| v.trim_matches('"').to_owned())
            .filter(|v| !v.is_empty())
    }
    fn client_ip(&self) -> String {
        self.client_ip.clone()
    }
    fn traceparent(&self) -> Option<String> {
        Request::header(self, "traceparent")
    }
}

/// A user: `FakeUser::named("ann").staff().groups(["editors"])`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeUser {
    pub authenticated: bool,
    pub user_id: Option<String>,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub groups: Vec<String>,
    pub permissions: Vec<String>,
    pub session: Vec<(String, String)>,
}

impl FakeUser {
    /// A visitor who is not logged in.
    pub fn anonymous() -> FakeUser {
        FakeUser::default()
    }

    /// A logged-in user.
    pub fn named(username: &str) -> FakeUser {
        FakeUser { authenticated: true, user_id: Some("1".into()), username: username.into(), ..FakeUser::default() }
    }

    pub fn staff(mut self) -> FakeUser {
        self.is_staff = true;
        self
    }

    pub fn superuser(mut self) -> FakeUser {
        self.is_superuser = true;
        self
    }

    pub fn groups<const N: usize>(mut self, names: [&str; N]) -> FakeUser {
        self.groups = names.iter().map(|n| n.to_string()).collect();
        self
    }

    pub fn permissions<const N: usize>(mut self, perms: [&str; N]) -> FakeUser {
        self.permissions = perms.iter().map(|p| p.to_string()).collect();
        self
    }
}

impl User for FakeUser {
    fn authenticated(&self) -> bool {
        self.authenticated
    }
    fn user_id(&self) -> Option<String> {
        self.user_id.clone()
    }
    fn username(&self) -> String {
        self.username.clone()
    }
    fn email(&self) -> String {
        self.email.clone()
    }
    fn first_name(&self) -> String {
        self.first_name.clone()
    }
    fn last_name(&self) -> String {
        self.last_name.clone()
    }
    fn is_staff(&self) -> bool {
        self.is_staff
    }
    fn is_superuser(&self) -> bool {
        self.is_superuser
    }
    fn groups(&self) -> Vec<String> {
        self.groups.clone()
    }
    fn in_group(&self, name: &str) -> bool {
        self.groups.iter().any(|g| g == name)
    }
    fn permissions(&self) -> Vec<String> {
        self.permissions.clone()
    }
    fn has_permission(&self, perm: &str) -> bool {
        self.permissions.iter().any(|p| p == perm)
    }
    fn session(&self) -> Vec<(String, String)> {
        self.session.clone()
    }
    fn session_value(&self, key: &str) -> Option<String> {
        self.session.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }
}

/// An event: `FakeEvent::new("state.cart_state.add").route("/cart")`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeEvent {
    pub kind: EventKind,
    pub name: String,
    pub payload_json: String,
    pub route: String,
    pub query: String,
    pub traceparent: Option<String>,
}

impl FakeEvent {
    /// A client event of handler `name` from `/`, payload `{}`.
    pub fn new(name: &str) -> FakeEvent {
        FakeEvent { name: name.into(), payload_json: "{}".into(), route: "/".into(), ..FakeEvent::default() }
    }

    pub fn kind(mut self, kind: EventKind) -> FakeEvent {
        self.kind = kind;
        self
    }

    pub fn route(mut self, route: &str) -> FakeEvent {
        self.route = route.into();
        self
    }

    pub fn payload(mut self, json: &str) -> FakeEvent {
        self.payload_json = json.into();
        self
    }
}

impl Event for FakeEvent {
    fn kind(&self) -> EventKind {
        self.kind
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    fn payload_json(&self) -> String {
        self.payload_json.clone()
    }
    fn route(&self) -> String {
        self.route.clone()
    }
    fn query(&self) -> String {
        self.query.clone()
    }
    fn traceparent(&self) -> Option<String> {
        self.traceparent.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_answer_as_the_gateway_does() {
        let req = FakeRequest::get("/a?b=1")
            .with_header("Cookie", "sessionid=x; t=1")
            .with_header("cookie", "sessionid=\"y\"");
        assert_eq!((req.path(), req.query(), req.method()), ("/a".into(), "b=1".into(), "GET".into()));
        assert_eq!(req.header("COOKIE").as_deref(), Some("sessionid=x; t=1; sessionid=\"y\""));
        assert_eq!(req.cookie("sessionid").as_deref(), Some("y"), "the last of duplicates, unquoted");
        assert_eq!(req.header("accept"), None);
    }

    #[test]
    fn users_answer_from_their_fields() {
        let ann = FakeUser::named("ann").staff().groups(["editors"]).permissions(["shop.change_product"]);
        assert!(ann.authenticated() && ann.is_staff() && !ann.is_superuser());
        assert!(ann.in_group("editors") && !ann.in_group("Editors"));
        assert!(ann.has_permission("shop.change_product") && !ann.has_permission("shop.delete_product"));
        assert!(!FakeUser::anonymous().authenticated());
    }
}
