//! Echoes the lent identity into the verdict (see README.md); the host's tests read it.

#[cfg(target_arch = "wasm32")]
// The generated export shims take one argument per flattened field.
#[allow(clippy::too_many_arguments)]
mod component {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "bridge",
    });

    struct Echo;

    impl Guest for Echo {
        fn init(_config_json: String) -> Result<(), String> {
            Ok(())
        }

        fn on_connect(_handshake: Request, _who: &Identity) -> Verdict {
            Verdict::Allow(Vec::new())
        }

        /// `payload-json` names the group and the permission to ask about.
        fn on_event(ev: Event, who: &Identity) -> Verdict {
            let session: Vec<String> = who.session().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
            let fields = [
                ("authenticated", who.authenticated().to_string()),
                ("user-id", who.user_id().unwrap_or_else(|| "none".to_string())),
                ("username", who.username()),
                ("email", who.email()),
                ("is-staff", who.is_staff().to_string()),
                ("is-superuser", who.is_superuser().to_string()),
                ("groups", who.groups().join(",")),
                ("permissions", who.permissions().join(",")),
                ("session", session.join(";")),
                ("in-group", who.in_group(&ev.payload_json).to_string()),
                ("has-permission", who.has_permission(&ev.payload_json).to_string()),
            ];
            Verdict::Allow(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
        }
    }

    export!(Echo);
}
