//! A memory limit summed over all linear memories of a store.
//!
//! The stock `StoreLimits` caps each memory separately, so a component with
//! several memories (its own, the preview-1 adapter's, ...) could use a
//! multiple of `limits.memory`. `SumLimiter` counts every byte any memory of
//! the store is given (a memory's creation is reported as growing from 0,
//! and linear memories never shrink or go away before the store does) and
//! refuses, with a trap, a creation or growth that would take the sum past
//! the cap. The trap's message contains "growing memory" like the stock
//! limiter's, which is what wasmlet's C code recognises as OOMKilled
//! (src/wasm/run.c, is_memory_limit).
//!
//! Installing it. A store's limiter is `FnMut(&mut WasmtimeStoreData) ->
//! &mut dyn ResourceLimiter`, and the only field the C API offers for it,
//! `store_limits`, is the concrete `StoreLimits`. The wrapper keeps the
//! `SumLimiter` in its per-store state (state.rs, inside the store data's
//! WASI table) and installs a limiter closure that borrows it from the
//! `&mut WasmtimeStoreData` it is given, so the returned borrow is tied to
//! the store data as Wasmtime expects: no global state, no `'static` tricks.
//! If the state is gone (a later `wasmtime_context_set_wasi`), the closure
//! falls back to `store_limits`, which is set to the same cap per memory.
use crate::ffi::{self, CError};
use crate::{layout, state};
use wasmtime_c_api::wasmtime::{Error, ResourceLimiter, Result, StoreLimits, StoreLimitsBuilder, bail, format_err};
use wasmtime_c_api::{WasmtimeStoreContextMut, wasmtime_store_t};

pub(crate) struct SumLimiter {
    cap: usize,
    total: usize,
    /// Tables, instances and memory counts: the stock defaults, trapping on
    /// a refused table growth like `wasmlet_context_trap_on_memory_limit`.
    others: StoreLimits,
}

impl SumLimiter {
    pub(crate) fn new(cap: usize) -> SumLimiter {
        SumLimiter {
            cap,
            total: 0,
            others: StoreLimitsBuilder::new().trap_on_grow_failure(true).build(),
        }
    }
}

impl ResourceLimiter for SumLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> Result<bool> {
        // Past the memory's own declared maximum: memory.grow returns -1, as
        // the spec says; that is the module's choice, not a resource limit.
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        let total = self.total.saturating_add(desired.saturating_sub(current));
        if total > self.cap {
            bail!(
                "forcing trap when growing memory to {desired} bytes: the store's memories \
                 would use {total} bytes together, over the memory limit of {} bytes",
                self.cap
            );
        }
        self.total = total;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: Error) -> Result<()> {
        // The growth the limiter allowed failed (out of address space, or
        // beyond what the memory type can represent): trap like the stock
        // limiter with trap_on_grow_failure. The store is done, so `total`
        // needs no correction.
        Err(error.context("forcing a memory growth failure to be a trap"))
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> Result<bool> {
        self.others.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: Error) -> Result<()> {
        self.others.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.others.instances()
    }

    fn tables(&self) -> usize {
        self.others.tables()
    }

    fn memories(&self) -> usize {
        self.others.memories()
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_store_limit_memory_total(
    store: Option<&mut wasmtime_store_t>,
    bytes: usize,
) -> CError {
    ffi::guard("wasmlet_store_limit_memory_total", || {
        let store = layout::store(store.ok_or_else(|| format_err!("store is NULL"))?);
        let data = store.data_mut();
        data.store_limits = StoreLimitsBuilder::new()
            .memory_size(bytes)
            .trap_on_grow_failure(true)
            .build();
        let table = state::wasi_table(data)?;
        state::get_or_create(table)?.limiter = Some(SumLimiter::new(bytes));
        store.limiter(state::limiter);
        Ok(())
    })
}

/// Moves the cap of the store's summed limiter (an in-place resize of
/// `limits.memory`). The memories keep what they hold: a cap below the
/// bytes already granted is refused (false), since linear memory never
/// shrinks; so is a store without the summed limiter.
#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_context_set_memory_limit_total(
    mut cx: WasmtimeStoreContextMut<'_>,
    bytes: usize,
) -> bool {
    ffi::guard_or(false, || {
        let data = cx.data_mut();
        let applied = match state::wasi_table(data) {
            Ok(table) => match state::get(table).and_then(|s| s.limiter.as_mut()) {
                Some(l) if bytes >= l.total => {
                    l.cap = bytes;
                    true
                }
                _ => false,
            },
            Err(_) => false,
        };
        if applied {
            data.store_limits = StoreLimitsBuilder::new()
                .memory_size(bytes)
                .trap_on_grow_failure(true)
                .build();
        }
        applied
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_context_memory_total(mut cx: WasmtimeStoreContextMut<'_>) -> usize {
    ffi::guard_or(0, || match state::wasi_table(cx.data_mut()) {
        Ok(table) => state::get(table)
            .and_then(|s| s.limiter.as_ref())
            .map_or(0, |l| l.total),
        Err(_) => 0,
    })
}
