//! A deliberately misbehaving router component, used ONLY by the isthmus host's tests
//! to prove that a plugin is contained. Never deploy it. `setup` takes
//! `{"mode": "<mode>"}` (plus `"version"` for mode `version`); see README.md.

use std::cell::Cell;
use std::hint::black_box;

use isthmus_policy::{Decision, Forward, Needs, Reply, Request, Router, User};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Loop,
    Memory,
    Trap,
    UnknownUpstream,
    Print,
    Reply,
    Pass,
    Counter,
    Version,
    /// Declares `needs.identity` and greets the user (or the anonymous visitor).
    Whoami,
    /// Asks for the user without declaring `needs.identity` (the host traps).
    Undeclared,
}

const MODES: &str = "loop, memory, trap, unknown-upstream, print, reply, pass, counter, version, whoami, \
                     undeclared, setup-error, setup-trap, setup-loop";

pub struct TestHostile {
    mode: Mode,
    version: String,
    calls: Cell<u64>,
}

fn reply(status: u16, body: &str) -> Decision {
    Decision::Reply(Reply {
        status,
        headers: vec![("content-type".into(), "text/plain".into())],
        body: body.as_bytes().to_vec(),
    })
}

impl Router for TestHostile {
    fn setup(config_json: &str) -> Result<Self, String> {
        let config: serde_json::Value =
            serde_json::from_str(config_json).map_err(|e| format!("config is not valid JSON: {e}"))?;
        let mode = config.get("mode").and_then(|m| m.as_str()).ok_or("mode: a string is required")?;
        let mode = match mode {
            "loop" => Mode::Loop,
            "memory" => Mode::Memory,
            "trap" => Mode::Trap,
            "unknown-upstream" => Mode::UnknownUpstream,
            "print" => Mode::Print,
            "reply" => Mode::Reply,
            "pass" => Mode::Pass,
            "counter" => Mode::Counter,
            "version" => Mode::Version,
            "whoami" => Mode::Whoami,
            "undeclared" => Mode::Undeclared,
            "setup-error" => return Err("refusing: test setup error".into()),
            "setup-trap" => panic!("test-hostile: trap in setup"),
            "setup-loop" => loop {
                black_box(());
            },
            other => return Err(format!("mode: unknown mode `{other}` (modes: {MODES})")),
        };
        let version = match (mode, config.get("version")) {
            (Mode::Version, Some(serde_json::Value::String(s))) => s.clone(),
            (Mode::Version, Some(other)) => other.to_string(),
            (Mode::Version, None) => return Err("version: required by mode `version`".into()),
            _ => String::new(),
        };
        Ok(TestHostile { mode, version, calls: Cell::new(0) })
    }

    fn needs(&self) -> Needs {
        Needs { identity: self.mode == Mode::Whoami }
    }

    fn route(&self, req: &dyn Request, who: &dyn User) -> Decision {
        match self.mode {
            Mode::Loop => {
                let mut n: u64 = 0;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            Mode::Memory => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    // 1 MiB at a time, written to so that it is really used.
                    hoard.push(black_box(vec![0xA5; 1 << 20]));
                    black_box(&hoard);
                }
            }
            Mode::Trap => panic!("test-hostile: trap in route"),
            Mode::UnknownUpstream => Decision::Forward(Forward { upstream: "nowhere".into(), ..Forward::default() }),
            Mode::Print => {
                println!("test-hostile: a line on stdout");
                eprintln!("test-hostile: a line on stderr");
                Decision::Pass
            }
            Mode::Reply => reply(418, "teapot"),
            Mode::Pass => Decision::Pass,
            Mode::Counter => {
                self.calls.set(self.calls.get() + 1);
                reply(200, &self.calls.get().to_string())
            }
            Mode::Version => reply(200, &self.version),
            Mode::Whoami | Mode::Undeclared => {
                let name = if who.authenticated() { who.username() } else { "anonymous".into() };
                reply(200, &format!("{name} {} {}", req.method(), req.path()))
            }
        }
    }
}

isthmus_policy::router!(TestHostile);
