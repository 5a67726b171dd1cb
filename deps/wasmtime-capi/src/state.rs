//! The wrapper's per-store state: the summed memory limiter, the cancel
//! token and the outgoing-HTTP policy of one store.
//!
//! Where it lives. The C API gives no slot for it: `WasmtimeStoreData` keeps
//! its fields `pub(crate)` and its one foreign pointer is the C caller's. So
//! the state is an entry in the store's WASI resource table (reached through
//! the public `WasiView::ctx()` of `WasmtimeStoreData`), which makes it live
//! and die with the store's WASI context without any global registry:
//!
//! - it is created on first use by a `wasmlet_*` entry point, which therefore
//!   requires `wasmtime_context_set_wasi` first (the entry points check that
//!   and return an error instead). Created right after the WASI context, it
//!   takes slot 0 and is found at once; otherwise a lookup scans the table;
//! - a guest cannot reach it: a guest only holds handles to entries the host
//!   handed out, and this entry's index is never handed out;
//! - setting a new WASI context (`wasmtime_context_set_wasi` again) drops it
//!   with the old table; the limiter then falls back to `store_limits`.
//!
//! The table entry owns the state through a raw pointer (`Slot`), not a
//! `Box`, so a `&mut` to the state and a `&mut` to the table may coexist
//! (the wasi:http view needs both, see `http_view`). Every `&mut` to the
//! state is derived from a `&mut` borrow of the table (or the store data
//! that owns it) and lives no longer than it, so two never coexist, and the
//! state is freed only when the slot is dropped with the table.
use crate::cancel::CancelShared;
use crate::http::HttpHost;
use crate::limiter::SumLimiter;
use std::ptr::NonNull;
use std::sync::Arc;
use wasmtime_c_api::WasmtimeStoreData;
use wasmtime_c_api::wasmtime::component::ResourceTable;
use wasmtime_c_api::wasmtime::{Error, ResourceLimiter, format_err};
use wasmtime_wasi::WasiView;
use wasmtime_wasi_http::WasiHttpCtxView;

#[derive(Default)]
pub(crate) struct WrapperState {
    pub(crate) limiter: Option<SumLimiter>,
    pub(crate) cancel: Option<Arc<CancelShared>>,
    pub(crate) http: HttpHost,
}

/// Owns the state; dropped (and the state freed) with the resource table.
struct Slot(NonNull<WrapperState>);

// SAFETY: `Slot` owns its `WrapperState` like a `Box` would, and the state
// is `Send` (checked below), so moving the slot between threads is sound.
unsafe impl Send for Slot {}
const _: fn() = || {
    fn is_send<T: Send>() {}
    is_send::<WrapperState>();
};

impl Drop for Slot {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `Box::into_raw` in `get_or_create`
        // and is freed only here.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

fn find(table: &mut ResourceTable) -> Option<NonNull<WrapperState>> {
    if let Ok(entry) = table.get_any_mut(0) {
        if let Some(slot) = entry.downcast_ref::<Slot>() {
            return Some(slot.0);
        }
    }
    table
        .iter_mut()
        .find_map(|entry| entry.downcast_ref::<Slot>().map(|slot| slot.0))
}

fn create(table: &mut ResourceTable) -> Result<NonNull<WrapperState>, Error> {
    let raw = Box::into_raw(Box::new(WrapperState::default()));
    // SAFETY: `Box::into_raw` never returns NULL.
    let ptr = unsafe { NonNull::new_unchecked(raw) };
    // `push` takes the slot; if the table is full it drops it, which frees
    // the state, and the pointer is not used.
    table
        .push(Slot(ptr))
        .map_err(|e| format_err!("cannot add the wrapper's store state: {e}"))?;
    Ok(ptr)
}

/// The store's WASI resource table, or an error if the store has no WASI
/// context (`WasiView::ctx` panics in that case; the panic is caught here).
pub(crate) fn wasi_table(data: &mut WasmtimeStoreData) -> Result<&mut ResourceTable, Error> {
    let probe = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = data.ctx();
    }));
    if probe.is_err() {
        return Err(format_err!(
            "the store has no WASI context: call wasmtime_context_set_wasi first"
        ));
    }
    Ok(data.ctx().table)
}

/// The state of the store owning `table`, created if missing.
pub(crate) fn get_or_create(table: &mut ResourceTable) -> Result<&mut WrapperState, Error> {
    let ptr = match find(table) {
        Some(ptr) => ptr,
        None => create(table)?,
    };
    // SAFETY: see the module comment; the result borrows `table`.
    Ok(unsafe { &mut *ptr.as_ptr() })
}

/// The state of the store owning `table`, if there is one.
pub(crate) fn get(table: &mut ResourceTable) -> Option<&mut WrapperState> {
    // SAFETY: see the module comment; the result borrows `table`.
    find(table).map(|ptr| unsafe { &mut *ptr.as_ptr() })
}

/// The limiter of a store: the summed limiter if one is installed, else the
/// C API's `store_limits`. Called by the store's limiter closure, which is
/// installed only once the store has a WASI context (a store never loses
/// one), so `ctx()` cannot panic here.
pub(crate) fn limiter(data: &mut WasmtimeStoreData) -> &mut dyn ResourceLimiter {
    let ptr = find(data.ctx().table);
    match ptr {
        // SAFETY: see the module comment; the result borrows `data`.
        Some(ptr) => match unsafe { &mut (*ptr.as_ptr()).limiter } {
            Some(limiter) => limiter,
            None => &mut data.store_limits,
        },
        None => &mut data.store_limits,
    }
}

/// The wasi:http view of a store: the table, and the HTTP context and
/// hooks kept in the wrapper's state (created with an "outgoing HTTP is not
/// configured" policy when missing). This is the one place where a `&mut`
/// to the state and to the table coexist: the wasi:http host code uses the
/// table for its own resources and never finds the state's slot in it.
pub(crate) fn http_view(data: &mut WasmtimeStoreData) -> WasiHttpCtxView<'_> {
    let table = data.ctx().table;
    let ptr = match find(table) {
        Some(ptr) => Some(ptr),
        None => create(table).ok(),
    };
    let host: &mut HttpHost = match ptr {
        // SAFETY: see the module comment and above; the result borrows `data`.
        Some(ptr) => unsafe { &mut (*ptr.as_ptr()).http },
        // The table is full (a million entries): every request fails. This
        // leaks one small value per call, only in that state.
        None => Box::leak(Box::new(HttpHost::default())),
    };
    WasiHttpCtxView {
        ctx: &mut host.ctx,
        hooks: &mut host.hooks,
        table,
    }
}
