//! What a call is lent, host side: the request (`isthmus:policy/http.request`), the
//! Django user (`users.identity`) and the Reflex event (`bridging.event`). `lend` puts a
//! value in the store's table for one call and hands the guest a borrow of it; the
//! entry is removed afterwards whatever the call did, so a kept handle is dead. Each
//! method copies only what the guest asks for.

use std::sync::Arc;

use wasmtime::component::Resource;
use wasmtime::Store;
use wasmtime_wasi::WasiView;

use super::bindings::{bridging, http, refusals, users, LentEvent, LentRequest, Who, WitEventKind};
use super::store::HostState;
use crate::identity::cookie_in;
use crate::policy::{BridgeEvent, EventKind, Identity, Resolved, RouteRequest};

/// Run `call` with `value` lent as a borrow handle.
pub(crate) fn lend<T: Send + 'static, R>(
    store: &mut Store<HostState>,
    value: T,
    call: impl FnOnce(&mut Store<HostState>, Resource<T>) -> wasmtime::Result<R>,
) -> wasmtime::Result<R> {
    let own = store.data_mut().ctx().table.push(value)?;
    let borrowed = Resource::new_borrow(own.rep());
    let result = call(store, borrowed);
    store.data_mut().ctx().table.delete(own)?;
    result
}

impl HostState {
    fn lent<T: 'static>(&mut self, handle: &Resource<T>) -> wasmtime::Result<&T> {
        Ok(self.ctx().table.get(handle)?)
    }

    fn request(&mut self, h: &Resource<LentRequest>) -> wasmtime::Result<&RouteRequest> {
        Ok(&self.lent(h)?.0)
    }

    fn who(&mut self, h: &Resource<Who>) -> wasmtime::Result<&Resolved> {
        match &self.lent(h)?.0 {
            Some(who) => Ok(who),
            None => Err(wasmtime::Error::msg(
                "the router asked for the user without declaring `needs.identity = true` in `setup`",
            )),
        }
    }

    fn identity(&mut self, h: &Resource<Who>) -> wasmtime::Result<&Identity> {
        Ok(&self.who(h)?.identity)
    }

    fn event(&mut self, h: &Resource<LentEvent>) -> wasmtime::Result<&BridgeEvent> {
        Ok(&self.lent(h)?.0)
    }
}

impl http::HostRequest for HostState {
    fn method(&mut self, h: Resource<LentRequest>) -> wasmtime::Result<String> {
        Ok(self.request(&h)?.method.clone())
    }
    fn scheme(&mut self, h: Resource<LentRequest>) -> wasmtime::Result<String> {
        Ok(self.request(&h)?.scheme.clone())
    }
    fn authority(&mut self, h: Resource<LentRequest>) -> wasmtime::Result<String> {
        Ok(self.request(&h)?.authority.clone())
    }
    fn path(&mut self, h: Resource<LentRequest>) -> wasmtime::Result<String> {
        Ok(self.request(&h)?.path.clone())
    }
    fn query(&mut self, h: Resource<LentRequest>) -> wasmtime::Result<String> {
        Ok(self.request(&h)?.query.clone())
    }
    fn header(&mut self, h: Resource<LentRequest>, name: String) -> wasmtime::Result<Option<String>> {
        let req = self.request(&h)?;
        let name = name.to_ascii_lowercase();
        let separator = if name == "cookie" { "; " } else { ", " };
        let mut values = req.headers.iter().filter(|(k, _)| *k == name).map(|(_, v)| v.as_str());
        let first = values.next().map(str::to_owned);
        Ok(first.map(|first| values.fold(first, |joined, v| joined + separator + v)))
    }
    fn headers(&mut self, h: Resource<LentRequest>) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.request(&h)?.headers.clone())
    }
    fn cookie(&mut self, h: Resource<LentRequest>, name: String) -> wasmtime::Result<Option<String>> {
        let req = self.request(&h)?;
        Ok(cookie_in(req.headers.iter().filter(|(k, _)| k == "cookie").map(|(_, v)| v.as_str()), &name))
    }
    fn client_ip(&mut self, h: Resource<LentRequest>) -> wasmtime::Result<String> {
        Ok(self.request(&h)?.client_ip.clone())
    }
    fn traceparent(&mut self, h: Resource<LentRequest>) -> wasmtime::Result<Option<String>> {
        Ok(self.request(&h)?.headers.iter().find(|(k, _)| k == "traceparent").map(|(_, v)| v.clone()))
    }
    fn drop(&mut self, _handle: Resource<LentRequest>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl users::HostIdentity for HostState {
    fn authenticated(&mut self, h: Resource<Who>) -> wasmtime::Result<bool> {
        Ok(self.identity(&h)?.authenticated)
    }
    fn user_id(&mut self, h: Resource<Who>) -> wasmtime::Result<Option<String>> {
        Ok(self.identity(&h)?.user_id.clone())
    }
    fn username(&mut self, h: Resource<Who>) -> wasmtime::Result<String> {
        Ok(self.identity(&h)?.username.clone())
    }
    fn email(&mut self, h: Resource<Who>) -> wasmtime::Result<String> {
        Ok(self.identity(&h)?.email.clone())
    }
    fn first_name(&mut self, h: Resource<Who>) -> wasmtime::Result<String> {
        Ok(self.identity(&h)?.first_name.clone())
    }
    fn last_name(&mut self, h: Resource<Who>) -> wasmtime::Result<String> {
        Ok(self.identity(&h)?.last_name.clone())
    }
    fn is_staff(&mut self, h: Resource<Who>) -> wasmtime::Result<bool> {
        Ok(self.identity(&h)?.is_staff)
    }
    fn is_superuser(&mut self, h: Resource<Who>) -> wasmtime::Result<bool> {
        Ok(self.identity(&h)?.is_superuser)
    }
    fn groups(&mut self, h: Resource<Who>) -> wasmtime::Result<Vec<String>> {
        Ok(self.identity(&h)?.groups.clone())
    }
    fn in_group(&mut self, h: Resource<Who>, name: String) -> wasmtime::Result<bool> {
        Ok(self.identity(&h)?.groups.contains(&name))
    }
    fn permissions(&mut self, h: Resource<Who>) -> wasmtime::Result<Vec<String>> {
        Ok(self.identity(&h)?.permissions.clone())
    }
    fn has_permission(&mut self, h: Resource<Who>, perm: String) -> wasmtime::Result<bool> {
        Ok(self.who(&h)?.has_permission(&perm))
    }
    fn session(&mut self, h: Resource<Who>) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.identity(&h)?.session.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
    fn session_value(&mut self, h: Resource<Who>, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.identity(&h)?.session.get(&key).cloned())
    }
    fn drop(&mut self, _handle: Resource<Who>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl bridging::HostEvent for HostState {
    fn kind(&mut self, h: Resource<LentEvent>) -> wasmtime::Result<WitEventKind> {
        Ok(match self.event(&h)?.kind {
            EventKind::Client => WitEventKind::Client,
            EventKind::Upload => WitEventKind::Upload,
            EventKind::IdentityChange => WitEventKind::IdentityChange,
        })
    }
    fn name(&mut self, h: Resource<LentEvent>) -> wasmtime::Result<String> {
        Ok(self.event(&h)?.name.clone())
    }
    fn payload_json(&mut self, h: Resource<LentEvent>) -> wasmtime::Result<String> {
        Ok(self.event(&h)?.payload_json.clone())
    }
    fn route(&mut self, h: Resource<LentEvent>) -> wasmtime::Result<String> {
        Ok(self.event(&h)?.route.clone())
    }
    fn query(&mut self, h: Resource<LentEvent>) -> wasmtime::Result<String> {
        Ok(self.event(&h)?.query.clone())
    }
    fn traceparent(&mut self, h: Resource<LentEvent>) -> wasmtime::Result<Option<String>> {
        Ok(self.event(&h)?.traceparent.clone())
    }
    fn drop(&mut self, _handle: Resource<LentEvent>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl http::Host for HostState {}
impl users::Host for HostState {}
impl refusals::Host for HostState {}
impl bridging::Host for HostState {}

/// The identity a router is lent: the user when it declared `needs.identity`.
pub(crate) fn who_for_router(declared: bool, who: Option<&Arc<Resolved>>) -> Who {
    Who(who.filter(|_| declared).cloned())
}
