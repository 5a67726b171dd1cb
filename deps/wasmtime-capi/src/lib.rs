//! Re-exports the Wasmtime C API so that cargo emits it as one static
//! library (`libwasmtime.a`) with every `wasm_*`, `wasi_*` and `wasmtime_*`
//! symbol that wasmlet's C code calls, plus the one entry point the C API
//! lacks and wasmlet needs (below).
pub use wasmtime_c_api::*;

use wasmtime_c_api::WasmtimeStoreContextMut;
use wasmtime_c_api::wasmtime::StoreLimitsBuilder;

/// Caps a store's linear memory at `bytes` and turns a refused
/// `memory.grow` into a trap, so a container that outgrows
/// `resources.limits.memory` ends at once (reported as OOMKilled, like a
/// cgroup OOM kill) instead of seeing `memory.grow` return -1 and carrying
/// on in a state it never planned for. The store must already have a
/// limiter installed by `wasmtime_store_limiter`, which points the store at
/// the `store_limits` field replaced here.
#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_context_trap_on_memory_limit(
    mut cx: WasmtimeStoreContextMut<'_>,
    bytes: usize,
) {
    cx.data_mut().store_limits = StoreLimitsBuilder::new()
        .memory_size(bytes)
        .trap_on_grow_failure(true)
        .build();
}
