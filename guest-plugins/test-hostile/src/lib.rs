//! A deliberately misbehaving router component, used ONLY by the isthmus host's tests
//! to prove that a plugin is contained. Never deploy it. `init` takes
//! `{"mode": "<mode>"}` (plus `"version"` for mode `version`); see README.md.

#[cfg(target_arch = "wasm32")]
// The generated export shims take one argument per flattened field.
#[allow(clippy::too_many_arguments)]
mod component {
    use std::cell::Cell;
    use std::hint::black_box;

    wit_bindgen::generate!({
        path: "../../wit",
        world: "router",
    });

    use isthmus::policy::routing::{Forward, Reply};

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
    }

    const MODES: &str = "loop, memory, trap, unknown-upstream, print, reply, pass, counter, version, \
                         init-error, init-trap, init-loop";

    thread_local! {
        static MODE: Cell<Option<Mode>> = const { Cell::new(None) };
        static VERSION: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        static CALLS: Cell<u64> = const { Cell::new(0) };
    }

    struct TestHostile;

    fn reply(status: u16, body: &str) -> Decision {
        Decision::Reply(Reply {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: body.as_bytes().to_vec(),
        })
    }

    impl Guest for TestHostile {
        fn init(config_json: String) -> Result<(), String> {
            let config: serde_json::Value =
                serde_json::from_str(&config_json).map_err(|e| format!("config is not valid JSON: {e}"))?;
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
                "init-error" => return Err("refusing: test init error".into()),
                "init-trap" => panic!("test-hostile: trap in init"),
                "init-loop" => loop {
                    black_box(());
                },
                other => return Err(format!("mode: unknown mode `{other}` (modes: {MODES})")),
            };
            if mode == Mode::Version {
                let version = match config.get("version") {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => return Err("version: required by mode `version`".into()),
                };
                VERSION.with(|v| *v.borrow_mut() = version);
            }
            MODE.with(|m| m.set(Some(mode)));
            Ok(())
        }

        fn route(_req: Request) -> Decision {
            let mode = MODE.with(|m| m.get()).expect("test-hostile: route called before a successful init");
            match mode {
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
                Mode::UnknownUpstream => Decision::Forward(Forward {
                    upstream: "nowhere".into(),
                    path: None,
                    set_headers: Vec::new(),
                    remove_headers: Vec::new(),
                }),
                Mode::Print => {
                    println!("test-hostile: a line on stdout");
                    eprintln!("test-hostile: a line on stderr");
                    Decision::Pass
                }
                Mode::Reply => reply(418, "teapot"),
                Mode::Pass => Decision::Pass,
                Mode::Counter => {
                    let n = CALLS.with(|c| {
                        c.set(c.get() + 1);
                        c.get()
                    });
                    reply(200, &n.to_string())
                }
                Mode::Version => VERSION.with(|v| reply(200, &v.borrow())),
            }
        }
    }

    export!(TestHostile);
}
