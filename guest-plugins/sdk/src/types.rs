//! What a policy answers, as plain Rust values (the macros turn them into the WIT's).

/// Where a request goes (`isthmus:policy/routing.decision`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Forward(Forward),
    /// Serve the request path from the named `[static]` mount.
    ServeStatic(String),
    Reply(Reply),
    /// Refuse: a login redirect (302) or 403.
    Refuse(Refusal),
    /// No opinion: the next router decides.
    Pass,
}

impl Decision {
    /// Forward to `upstream` unchanged (path, query and headers as they are).
    pub fn forward(upstream: impl Into<String>) -> Decision {
        Decision::Forward(Forward { upstream: upstream.into(), ..Forward::default() })
    }
}

/// Send the request to a named upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forward {
    pub upstream: String,
    /// Replacement origin-form path (may carry `?query`); `None` keeps the request's.
    pub path: Option<String>,
    pub set_headers: Vec<(String, String)>,
    pub remove_headers: Vec<String>,
}

/// Answer directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a policy refuses (`isthmus:policy/refusals.refusal`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Log in at this URL first; the gateway appends `next=` the page.
    LoginRequired(String),
    /// Not allowed; the reason is shown to the client and logged.
    Forbidden(String),
}

/// What a router asks of the gateway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Lend the request's Django user to `route`.
    pub identity: bool,
}

/// What a bridge policy says of an event or a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Run it; the fields go into the context signed into the event.
    Allow(Vec<(String, String)>),
    Refuse(Refusal),
    /// Close the WebSocket with this reason.
    Close(String),
}

/// Where an event comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EventKind {
    #[default]
    Client,
    Upload,
    IdentityChange,
}
