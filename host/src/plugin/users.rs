//! The host side of `isthmus:policy/users`: the identity lent to a bridge policy for
//! one call (`lend`), and its methods, answered from the gateway's cached `Resolved`
//! without copying more than what is asked.

use std::sync::Arc;

use wasmtime::component::Resource;
use wasmtime::Store;
use wasmtime_wasi::WasiView;

use super::bindings::users::{Host, HostIdentity};
use super::bindings::Who;
use super::store::HostState;
use crate::policy::{Identity, Resolved};

/// Run `call` with `who` in the store's table, as the borrow handle it is given; the
/// entry is removed afterwards whatever the call did.
pub(crate) fn lend<R>(
    store: &mut Store<HostState>,
    who: &Arc<Resolved>,
    call: impl FnOnce(&mut Store<HostState>, Resource<Who>) -> wasmtime::Result<R>,
) -> wasmtime::Result<R> {
    let own = store.data_mut().ctx().table.push(Who(who.clone()))?;
    let borrowed = Resource::new_borrow(own.rep());
    let result = call(store, borrowed);
    store.data_mut().ctx().table.delete(own)?;
    result
}

impl HostState {
    fn who(&mut self, handle: &Resource<Who>) -> wasmtime::Result<&Resolved> {
        Ok(&self.ctx().table.get(handle)?.0)
    }

    fn identity(&mut self, handle: &Resource<Who>) -> wasmtime::Result<&Identity> {
        Ok(&self.who(handle)?.identity)
    }
}

impl HostIdentity for HostState {
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
    /// Handles are only ever lent (`borrow<identity>`); `lend` removes the entry.
    fn drop(&mut self, _handle: Resource<Who>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl Host for HostState {}
