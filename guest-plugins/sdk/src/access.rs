//! Who may do what: the requirement and glob language of isthmus's default policies,
//! shared by every policy that judges users (the event bridge's `rules`, the page
//! guards of `pages`), so that a rule means the same wherever it is written. Free of
//! any WebAssembly binding, so it is tested natively.
//!
//! A requirement is one word or `kind:name`: `any`, `authenticated`, `anonymous`,
//! `staff`, `superuser`, `deny`, `group:NAME`, `perm:app_label.codename`; a list of them
//! must all hold. Requirements follow Django: `perm:` holds for every superuser (Django's
//! `user.has_perm` is true for active superusers) but `group:` does not (a superuser is
//! not a member of every group).
//!
//! A [`Glob`] matches a whole text (an event name, a page path): `*` any run of
//! characters, `?` exactly one.
//!
//! [`Pages`] is a list of page guards, `[{"page": "/orders*", "require": "authenticated"}]`:
//! the first whose glob matches a path decides; a path no guard matches is open.

use std::fmt;

use serde_json::{Map, Value};

use crate::{Refusal, User};

/// Where anonymous users are sent when a requirement needs a login: Django's admin
/// login page, which a fresh Django project has and the default router sends to Django.
pub const DEFAULT_LOGIN_URL: &str = "/admin/login/";

/// The requirements spelt as one word.
const KEYWORDS: [&str; 6] = ["any", "authenticated", "anonymous", "staff", "superuser", "deny"];

/// The spellings `Requirement::parse` accepts, for error messages.
pub const KNOWN_REQUIREMENTS: &str = "any, authenticated, anonymous, staff, superuser, deny, group:NAME, \
                                      perm:app_label.codename";

/// Every key of one entry of `pages`.
pub const PAGE_KEYS: [&str; 2] = ["page", "require"];

// ---------------------------------------------------------------------------------------
// The glob matcher
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    /// `?`: exactly one character (one Unicode scalar value).
    One,
    /// Any other character, matched literally and case-sensitively.
    Lit(char),
}

/// A run of the pattern between two `*`: a fixed number of characters.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    toks: Vec<Tok>,
    /// The part's text when it has no `?`: found with a substring search.
    literal: Option<String>,
}

impl Part {
    fn new(text: &str) -> Part {
        let toks: Vec<Tok> = text.chars().map(|c| if c == '?' { Tok::One } else { Tok::Lit(c) }).collect();
        let literal = (!text.contains('?')).then(|| text.to_string());
        Part { toks, literal }
    }

    /// The byte length of the match when the part matches at the start of `s`.
    fn match_at(&self, s: &str) -> Option<usize> {
        if let Some(lit) = &self.literal {
            return s.starts_with(lit.as_str()).then_some(lit.len());
        }
        let mut chars = s.chars();
        for tok in &self.toks {
            let c = chars.next()?;
            if let Tok::Lit(l) = tok {
                if *l != c {
                    return None;
                }
            }
        }
        Some(s.len() - chars.as_str().len())
    }

    /// The leftmost match in `s`: (start, byte length).
    fn find(&self, s: &str) -> Option<(usize, usize)> {
        if let Some(lit) = &self.literal {
            return s.find(lit.as_str()).map(|i| (i, lit.len()));
        }
        s.char_indices().map(|(i, _)| i).chain([s.len()]).find_map(|i| self.match_at(&s[i..]).map(|len| (i, len)))
    }

    /// Where the part starts when it matches exactly the end of `s`.
    fn suffix_start(&self, s: &str) -> Option<usize> {
        let start = match self.toks.len() {
            0 => s.len(),
            n => s.char_indices().rev().nth(n - 1)?.0,
        };
        (self.match_at(&s[start..]) == Some(s.len() - start)).then_some(start)
    }
}

/// A glob over a whole event name: `*` matches any run of characters (including dots
/// and the empty run), `?` exactly one character, everything else itself. There is no
/// escape and no character class: `[`, `\` and `.` are literal.
///
/// The pattern is kept as the runs between its stars, each of a fixed length: the first
/// must start the name, the last end it, and the others are found leftmost in order in
/// between (leftmost is never worse for what follows). Runs without `?` are found by
/// substring search, so the usual `*.state.handler` is one `ends_with`. Linear in the
/// name per run, never exponential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    /// The pattern split at `*`; a single part means no star.
    parts: Vec<Part>,
}

impl Glob {
    /// Compiles `pattern`. Runs of `*` collapse into one (`**` is `*`).
    pub fn new(pattern: &str) -> Glob {
        let pieces: Vec<&str> = pattern.split('*').collect();
        let last = pieces.len() - 1;
        let parts = pieces
            .iter()
            .enumerate()
            .filter(|&(i, p)| i == 0 || i == last || !p.is_empty())
            .map(|(_, p)| Part::new(p))
            .collect();
        Glob { source: pattern.to_string(), parts }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the whole of `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        let (first, rest) = self.parts.split_first().expect("split yields a part");
        let Some((last, middle)) = rest.split_last() else {
            return first.match_at(name) == Some(name.len());
        };
        let Some(mut t) = first.match_at(name) else {
            return false;
        };
        let Some(end) = last.suffix_start(&name[t..]).map(|s| t + s) else {
            return false;
        };
        for part in middle {
            let Some((start, len)) = part.find(&name[t..end]) else {
                return false;
            };
            t += start + len;
        }
        true
    }
}

// ---------------------------------------------------------------------------------------
// Requirements
// ---------------------------------------------------------------------------------------

/// What rules ask of the user a decision is about. The component implements it on the
/// WIT `identity` handle (every [`crate::User`]), asking the host one question at a time
/// (a staff member's permissions are never copied into the guest); [`Facts`] implements
/// it on plain data.
pub trait Who {
    fn authenticated(&self) -> bool;
    fn is_staff(&self) -> bool;
    fn is_superuser(&self) -> bool;
    fn in_group(&self, name: &str) -> bool;
    /// Whether `perm` is among the user's permissions (the superuser rule is the caller's).
    fn has_permission(&self, perm: &str) -> bool;
}

/// A user as plain data: for tests and for policies built natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts<'a> {
    pub authenticated: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    /// Group names.
    pub groups: &'a [String],
    /// Permission strings `app_label.codename`.
    pub permissions: &'a [String],
}

impl Who for Facts<'_> {
    fn authenticated(&self) -> bool {
        self.authenticated
    }
    fn is_staff(&self) -> bool {
        self.is_staff
    }
    fn is_superuser(&self) -> bool {
        self.is_superuser
    }
    fn in_group(&self, name: &str) -> bool {
        self.groups.iter().any(|g| g == name)
    }
    fn has_permission(&self, perm: &str) -> bool {
        self.permissions.iter().any(|p| p == perm)
    }
}

impl Facts<'static> {
    /// A logged-out visitor.
    pub const ANONYMOUS: Facts<'static> =
        Facts { authenticated: false, is_staff: false, is_superuser: false, groups: &[], permissions: &[] };
}

/// One condition on the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// Everyone, logged in or not.
    Any,
    /// Logged-in users (`login_required`).
    Authenticated,
    /// Only logged-out users.
    Anonymous,
    /// Logged-in users with `is_staff` (`staff_required`).
    Staff,
    /// Logged-in users with `is_superuser` (`superuser_required`).
    Superuser,
    /// Logged-in members of the named group (`group_required`); superusers included only
    /// when they are members.
    Group(String),
    /// Logged-in users holding `app_label.codename` (`permission_required`), and every
    /// superuser.
    Perm(String),
    /// Nobody.
    Deny,
}

impl Requirement {
    /// Parses one requirement. The error does not name the key; the caller adds it.
    pub fn parse(text: &str) -> Result<Requirement, String> {
        let req = match text {
            "any" => Requirement::Any,
            "authenticated" => Requirement::Authenticated,
            "anonymous" => Requirement::Anonymous,
            "staff" => Requirement::Staff,
            "superuser" => Requirement::Superuser,
            "deny" => Requirement::Deny,
            "" => return Err(format!("empty requirement (known: {KNOWN_REQUIREMENTS})")),
            _ => {
                if let Some(name) = text.strip_prefix("group:") {
                    check_name(text, name, "group name")?;
                    Requirement::Group(name.to_string())
                } else if let Some(perm) = text.strip_prefix("perm:") {
                    check_name(text, perm, "permission")?;
                    let Some((app_label, codename)) = perm.split_once('.') else {
                        return Err(format!("{text:?} has no \".\" (expected perm:app_label.codename)"));
                    };
                    if app_label.is_empty() {
                        return Err(format!("{text:?} has an empty app label (expected perm:app_label.codename)"));
                    }
                    if codename.is_empty() {
                        return Err(format!("{text:?} has an empty codename (expected perm:app_label.codename)"));
                    }
                    Requirement::Perm(perm.to_string())
                } else {
                    let lower = text.to_ascii_lowercase();
                    let hint = if KEYWORDS.contains(&lower.as_str()) {
                        format!("; did you mean {lower:?}?")
                    } else {
                        String::new()
                    };
                    return Err(format!("unknown requirement {text:?} (known: {KNOWN_REQUIREMENTS}){hint}"));
                }
            }
        };
        Ok(req)
    }

    /// Whether `who` satisfies this requirement. Everything but `any` and `anonymous`
    /// needs `authenticated`, whatever the other flags say.
    pub fn holds(&self, who: &(impl Who + ?Sized)) -> bool {
        match self {
            Requirement::Any => true,
            Requirement::Deny => false,
            Requirement::Anonymous => !who.authenticated(),
            Requirement::Authenticated => who.authenticated(),
            Requirement::Staff => who.authenticated() && who.is_staff(),
            Requirement::Superuser => who.authenticated() && who.is_superuser(),
            Requirement::Group(name) => who.authenticated() && who.in_group(name),
            Requirement::Perm(perm) => who.authenticated() && (who.is_superuser() || who.has_permission(perm)),
        }
    }
}

/// A group name or a permission must be non-empty and carry no surrounding whitespace
/// (`group: analysts` is a typo, not the group " analysts").
fn check_name(text: &str, name: &str, what: &str) -> Result<(), String> {
    if name.is_empty() {
        let shape = if what == "permission" { " (expected perm:app_label.codename)" } else { "" };
        return Err(format!("empty {what} in {text:?}{shape}"));
    }
    if name.trim() != name {
        return Err(format!("{text:?}: the {what} has leading or trailing whitespace"));
    }
    Ok(())
}

impl fmt::Display for Requirement {
    /// The canonical spelling, as accepted by [`Requirement::parse`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Any => f.write_str("any"),
            Requirement::Authenticated => f.write_str("authenticated"),
            Requirement::Anonymous => f.write_str("anonymous"),
            Requirement::Staff => f.write_str("staff"),
            Requirement::Superuser => f.write_str("superuser"),
            Requirement::Deny => f.write_str("deny"),
            Requirement::Group(name) => write!(f, "group:{name}"),
            Requirement::Perm(perm) => write!(f, "perm:{perm}"),
        }
    }
}

/// One or more requirements, all of which must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirements(Vec<Requirement>);

impl Requirements {
    /// `any`: everyone passes.
    pub fn any() -> Requirements {
        Requirements(vec![Requirement::Any])
    }

    /// The requirements in the order written.
    pub fn list(&self) -> &[Requirement] {
        &self.0
    }

    /// `None` when every requirement holds for `who`, else the deny reason:
    /// - `deny` anywhere in the list → `forbidden:deny` (logging in cannot help);
    /// - otherwise the first requirement that does not hold decides: `anonymous` →
    ///   `forbidden:anonymous`; any other, for an anonymous user →
    ///   `login_required:<login_url>`; for a logged-in user → `login_required:<login_url>`
    ///   too, or `forbidden:<requirement>` when `raise_exception`.
    pub fn refusal(&self, who: &(impl Who + ?Sized), login_url: &str, raise_exception: bool) -> Option<Refusal> {
        if self.0.contains(&Requirement::Deny) {
            return Some(Refusal::Forbidden("deny".to_string()));
        }
        let failed = self.0.iter().find(|r| !r.holds(who))?;
        Some(match failed {
            Requirement::Anonymous => Refusal::Forbidden("anonymous".to_string()),
            r if who.authenticated() && raise_exception => Refusal::Forbidden(r.to_string()),
            _ => Refusal::LoginRequired(login_url.to_string()),
        })
    }

    /// Reads `"staff"` or `["authenticated", "perm:shop.delete_product"]`; errors name `key`.
    pub fn from_value(v: &Value, key: &str) -> Result<Requirements, String> {
        match v {
            Value::String(s) => Requirement::parse(s).map(|r| Requirements(vec![r])).map_err(|e| format!("{key}: {e}")),
            Value::Array(items) if items.is_empty() => {
                Err(format!("{key}: must not be an empty list (write \"any\" to allow everyone)"))
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Requirement::parse(s).map_err(|e| format!("{key}[{i}]: {e}")),
                    _ => Err(format!("{key}[{i}]: expected a string, got {}", kind(item))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Requirements),
            _ => Err(format!("{key}: expected a requirement string or a list of them, got {}", kind(v))),
        }
    }
}

impl fmt::Display for Requirements {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Every lent user answers the rules' questions by asking the host.
impl<T: User + ?Sized> Who for T {
    fn authenticated(&self) -> bool {
        User::authenticated(self)
    }
    fn is_staff(&self) -> bool {
        User::is_staff(self)
    }
    fn is_superuser(&self) -> bool {
        User::is_superuser(self)
    }
    fn in_group(&self, name: &str) -> bool {
        User::in_group(self, name)
    }
    fn has_permission(&self, perm: &str) -> bool {
        User::has_permission(self, perm)
    }
}

// ---------------------------------------------------------------------------------------
// Page guards
// ---------------------------------------------------------------------------------------

/// One entry of `pages`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRule {
    /// A glob over the page's path (no query), starting with `/`.
    pub page: Glob,
    pub require: Requirements,
}

/// Page guards in the order written; the first whose glob matches a path decides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pages(Vec<PageRule>);

impl Pages {
    /// Reads `[{"page": "/orders*", "require": "authenticated"}, …]`; errors name `key`.
    pub fn from_value(v: &Value, key: &str) -> Result<Pages, String> {
        let Value::Array(items) = v else {
            return Err(format!("{key}: expected a list of {{\"page\", \"require\"}} objects, got {}", kind(v)));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| page_rule(item, &format!("{key}[{i}]")))
            .collect::<Result<_, _>>()
            .map(Pages)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The guard of `path` (its index and requirements), if any matches.
    pub fn select(&self, path: &str) -> Option<(usize, &Requirements)> {
        self.0.iter().position(|r| r.page.matches(path)).map(|i| (i, &self.0[i].require))
    }
}

/// `{"page": glob, "require": requirements}`, both keys required; `at` is `pages[i]`.
fn page_rule(item: &Value, at: &str) -> Result<PageRule, String> {
    let Value::Object(map) = item else {
        return Err(format!("{at}: expected an object with keys \"page\" and \"require\", got {}", kind(item)));
    };
    check_keys(map, &PAGE_KEYS, &format!("{at}: "))?;
    let page = match map.get("page") {
        None => return Err(format!("{at}: missing key \"page\" (a glob over the page's path, e.g. \"/orders*\")")),
        Some(Value::String(s)) if !s.starts_with('/') && s != "*" => {
            return Err(format!("{at}.page: {s:?} must start with \"/\" (a path on this site) or be \"*\""))
        }
        Some(Value::String(s)) => Glob::new(s),
        Some(v) => return Err(format!("{at}.page: expected a string, got {}", kind(v))),
    };
    let require = match map.get("require") {
        None => return Err(format!("{at}: missing key \"require\" (e.g. \"authenticated\")")),
        Some(v) => Requirements::from_value(v, &format!("{at}.require"))?,
    };
    Ok(PageRule { page, require })
}

/// Refuses keys outside `known`; `at` prefixes the message (`rules[1]: `).
pub fn check_keys(map: &Map<String, Value>, known: &[&str], at: &str) -> Result<(), String> {
    match map.keys().find(|k| !known.contains(&k.as_str())) {
        Some(key) => {
            let known = known.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ");
            Err(format!("{at}unknown key {key:?} (known keys: {known})"))
        }
        None => Ok(()),
    }
}

/// `login_url`: a path on this site. The host appends `?next=<route>`, so it carries no
/// query or fragment of its own; `//host` and `/\host` would leave the site.
pub fn login_url(v: &Value) -> Result<String, String> {
    let Value::String(url) = v else {
        return Err(format!("login_url: expected a string, got {}", kind(v)));
    };
    if !url.starts_with('/') {
        return Err(format!("login_url: {url:?} must start with \"/\" (a path on this site)"));
    }
    if url.starts_with("//") {
        return Err(format!("login_url: {url:?} must not start with \"//\" (that is another host)"));
    }
    if let Some(c) = url.chars().find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '\\')) {
        return Err(format!(
            "login_url: {url:?} must not contain {c:?} (the host appends ?next=<route> to a plain path)"
        ));
    }
    Ok(url.clone())
}

/// How a JSON value is named in error messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(p: &str, name: &str) -> bool {
        Glob::new(p).matches(name)
    }

    // ---- the glob matcher ----

    #[test]
    fn glob_literal_is_a_whole_name_match() {
        assert!(glob("state.a.b", "state.a.b"));
        assert!(!glob("state.a.b", "state.a.bc"));
        assert!(!glob("state.a.b", "xstate.a.b"));
        assert!(!glob("state.a.b", "state.a"));
        assert!(!glob("state.a.b", ""));
        assert!(!glob("a", "b"));
    }

    #[test]
    fn glob_is_case_sensitive() {
        assert!(!glob("state.Admin.*", "state.admin.x"));
        assert!(!glob("state.admin.*", "State.admin.x"));
        assert!(glob("state.Admin.*", "state.Admin.x"));
        assert!(!glob("é", "É"));
    }

    #[test]
    fn glob_star_matches_any_run_including_dots_and_nothing() {
        assert!(glob("*", ""));
        assert!(glob("*", "x"));
        assert!(glob("*", "a.b.c.d"));
        assert!(glob("state.*", "state."));
        assert!(glob("state.*", "state.a.b.c"));
        assert!(!glob("state.*", "state"));
        assert!(glob("*.delete_product", "reflex___state____state.shop___pages____product_state.delete_product"));
        assert!(glob("*.delete_product", ".delete_product"));
        assert!(!glob("*.delete_product", "state.delete_products"));
        assert!(!glob("*.delete_product", "delete_product"));
        assert!(glob("a*b", "ab"));
        assert!(glob("a*b", "a.x.b"));
        assert!(glob("a*b", "abbb"));
        assert!(!glob("a*b", "abba"));
        assert!(glob("*a*", "banana"));
        assert!(!glob("*a*", "xyz"));
    }

    #[test]
    fn glob_leading_inner_and_trailing_stars() {
        assert!(glob("*.x.*", "a.x.b"));
        assert!(glob("*.x.*", ".x."));
        assert!(!glob("*.x.*", "a.xb"));
        assert!(glob("a*", "a"));
        assert!(glob("a*", "abc"));
        assert!(glob("a**", "a"));
        assert!(glob("a*b*c*", "abc"));
        assert!(glob("a*b*c*", "a1b2c3"));
        assert!(!glob("a*b*c*", "acb"));
        assert!(glob("*x", "xxx"));
        assert!(glob("*xy", "xxy"));
        assert!(glob("*aab", "aaab"));
        assert!(glob("*ab*ab", "abcabab"));
    }

    #[test]
    fn glob_double_star_is_a_single_star() {
        assert!(glob("**", ""));
        assert!(glob("**", "a.b"));
        assert!(glob("a**b", "ab"));
        assert!(glob("a**b", "a..b"));
        assert!(glob("***.x", "a.b.x"));
        assert_eq!(Glob::new("a***b").parts, Glob::new("a*b").parts);
        assert_eq!(Glob::new("a***b").as_str(), "a***b");
    }

    #[test]
    fn glob_question_mark_is_exactly_one_character() {
        assert!(glob("?", "a"));
        assert!(glob("?", "."));
        assert!(!glob("?", ""));
        assert!(!glob("?", "ab"));
        assert!(glob("state.?", "state.x"));
        assert!(!glob("state.?", "state."));
        assert!(glob("a?c", "abc"));
        assert!(glob("???", "abc"));
        assert!(!glob("???", "ab"));
        assert!(glob("*?", "a"));
        assert!(!glob("*?", ""));
        assert!(glob("?*", "a"));
        assert!(glob("*?*", "abc"));
        assert!(glob("a*?", "ab"));
        assert!(!glob("a*?", "a"));
    }

    #[test]
    fn glob_empty_pattern_matches_only_the_empty_name() {
        assert!(glob("", ""));
        assert!(!glob("", "a"));
        assert!(!glob("", "."));
    }

    #[test]
    fn glob_other_characters_are_literal() {
        assert!(glob("a[b]c", "a[b]c"));
        assert!(!glob("a[b]c", "abc"));
        assert!(glob("a.c", "a.c"));
        assert!(!glob("a.c", "abc"));
        assert!(glob(r"a\*", r"a\xyz"));
        assert!(!glob(r"a\*", "a*"));
        assert!(glob("a+b$^(", "a+b$^("));
        assert!(glob(" ", " "));
    }

    #[test]
    fn glob_unicode_characters_count_as_one() {
        assert!(glob("?", "é"));
        assert!(glob("?", "😀"));
        assert!(glob("?", "中"));
        assert!(!glob("??", "é"));
        assert!(glob("caf?", "café"));
        assert!(glob("caf?.x", "café.x"));
        assert!(glob("*é", "cafébé"));
        assert!(glob("*😀*", "a😀b"));
        assert!(glob("état.*", "état.compte"));
        assert!(!glob("etat.*", "état.compte"));
        assert!(glob("?😀?", "a😀b"));
        assert!(glob("*?", "😀"));
        assert!(!glob("*??", "😀"));
        assert!(glob("*中文", "x中中文"));
        // A `?` after a star backtracks over multi-byte characters without splitting them.
        assert!(glob("*?b", "😀😀b"));
        assert!(!glob("*?b", "b"));
        assert!(glob("a*?*?", "aé😀"));
    }

    #[test]
    fn glob_pathological_patterns_stay_fast() {
        // Exponential backtracking would never finish these.
        let name = "a".repeat(20_000);
        let pattern = "*a".repeat(50) + "b";
        assert!(!Glob::new(&pattern).matches(&name));
        let pattern = "*a".repeat(50) + "*";
        assert!(Glob::new(&pattern).matches(&name));
        let name = "ab".repeat(10_000);
        assert!(!Glob::new("*a*a*a*a*a*a*a*a*a*c").matches(&name));
        assert!(Glob::new("a*b?b*b").matches(&name));
        assert!(!Glob::new("a*b?a*b").matches(&name));
        let name = "?".repeat(1000);
        assert!(Glob::new(&"?".repeat(1000)).matches(&name));
        assert!(!Glob::new(&"?".repeat(1001)).matches(&name));
    }

    #[test]
    fn glob_agrees_with_a_reference_matcher() {
        // Plain recursive definition, fine for the short inputs generated below.
        fn reference(p: &[char], t: &[char]) -> bool {
            match p.split_first() {
                None => t.is_empty(),
                Some(('*', rest)) => (0..=t.len()).any(|i| reference(rest, &t[i..])),
                Some(('?', rest)) => !t.is_empty() && reference(rest, &t[1..]),
                Some((c, rest)) => t.first() == Some(c) && reference(rest, &t[1..]),
            }
        }
        let alphabet = ['a', 'é', '.', '*', '?'];
        let words = |len: usize, alpha: &[char]| {
            let mut out = vec![String::new()];
            for _ in 0..len {
                out = out.iter().flat_map(|w| alpha.iter().map(move |c| format!("{w}{c}"))).collect();
            }
            out
        };
        let mut patterns = Vec::new();
        for len in 0..=4 {
            patterns.extend(words(len, &alphabet));
        }
        let mut names = Vec::new();
        for len in 0..=4 {
            names.extend(words(len, &['a', 'é', '.']));
        }
        let mut checked = 0;
        for p in &patterns {
            let g = Glob::new(p);
            let pc: Vec<char> = p.chars().collect();
            for n in &names {
                let nc: Vec<char> = n.chars().collect();
                assert_eq!(g.matches(n), reference(&pc, &nc), "pattern {p:?} name {n:?}");
                checked += 1;
            }
        }
        assert!(checked > 50_000);
    }

    #[test]
    fn glob_on_reflex_handler_names() {
        let name = "reflex___state____state.shop___pages___index____product_state.load_products";
        assert!(glob("reflex___state____state.*", name));
        assert!(glob("*.load_products", name));
        assert!(glob("*product_state.*", name));
        assert!(glob("reflex___state____state.shop___pages___index____product_state.load_?roducts", name));
        assert!(!glob("*.load_product", name));
        assert!(!glob("state.*", name));
    }

    // ---- page guards ----

    fn pages(json: &str) -> Result<Pages, String> {
        Pages::from_value(&serde_json::from_str(json).unwrap(), "pages")
    }

    #[test]
    fn the_first_matching_page_guard_decides() {
        let p = pages(
            r#"[{"page": "/orders/new", "require": "perm:shop.add_order"},
                          {"page": "/orders*", "require": "authenticated"},
                          {"page": "/staff/*", "require": ["staff", "group:managers"]}]"#,
        )
        .unwrap();
        let require = |path| p.select(path).map(|(i, r)| (i, r.to_string()));
        assert_eq!(require("/orders/new"), Some((0, "perm:shop.add_order".into())));
        assert_eq!(require("/orders"), Some((1, "authenticated".into())));
        assert_eq!(require("/orders/7/edit"), Some((1, "authenticated".into())));
        assert_eq!(require("/staff/"), Some((2, "staff, group:managers".into())));
        // `/staff/*` needs the slash; `*` crosses slashes.
        assert_eq!(require("/staff"), None);
        assert_eq!(require("/"), None);
        assert_eq!(require("/order"), None);
        assert!(!p.is_empty() && pages("[]").unwrap().is_empty());
    }

    #[test]
    fn page_guards_judge_lent_users() {
        use crate::testing::FakeUser;
        let p = pages(r#"[{"page": "/staff*", "require": "staff"}]"#).unwrap();
        let (_, require) = p.select("/staff/reports").unwrap();
        let anonymous: &dyn User = &FakeUser::anonymous();
        assert_eq!(require.refusal(anonymous, "/login/", false), Some(Refusal::LoginRequired("/login/".into())));
        assert_eq!(require.refusal(&FakeUser::named("ann"), "/login/", true), Some(Refusal::Forbidden("staff".into())));
        assert_eq!(require.refusal(&FakeUser::named("ann").staff(), "/login/", true), None);
    }

    #[test]
    fn bad_page_guards_are_refused_naming_the_entry() {
        let err = |json| pages(json).unwrap_err();
        assert_eq!(
            err(r#"{"page": "/x"}"#),
            "pages: expected a list of {\"page\", \"require\"} objects, got an object"
        );
        assert!(err(r#"[{"page": "/x", "require": "any"}, "/y"]"#).starts_with("pages[1]: expected an object"));
        assert!(err(r#"[{"require": "any"}]"#).starts_with("pages[0]: missing key \"page\""));
        assert!(err(r#"[{"page": "/x"}]"#).starts_with("pages[0]: missing key \"require\""));
        assert!(err(r#"[{"page": "orders", "require": "any"}]"#)
            .starts_with("pages[0].page: \"orders\" must start with \"/\""));
        assert!(err(r#"[{"page": 3, "require": "any"}]"#).starts_with("pages[0].page: expected a string"));
        assert!(
            err(r#"[{"page": "/x", "require": "staf"}]"#).starts_with("pages[0].require: unknown requirement \"staf\"")
        );
        assert!(
            err(r#"[{"page": "/x", "require": "any", "event": "*"}]"#).starts_with("pages[0]: unknown key \"event\"")
        );
        assert!(pages(r#"[{"page": "*", "require": "authenticated"}]"#).is_ok());
    }
}
