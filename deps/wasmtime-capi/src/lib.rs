//! Re-exports the Wasmtime C API so that cargo emits it as one static
//! library (`libwasmtime.a`) with every `wasm_*`, `wasi_*` and `wasmtime_*`
//! symbol that wasmlet's C code calls, plus the few entry points the C API
//! lacks and wasmlet needs. Those are declared and documented for C in
//! src/wasm/wasmlet_capi.h; each lives in the module named below.
//!
//! - `layout`: the casts from C API handles to the Rust values behind
//!   them, which rely on the pinned 48.0.8 layout;
//! - `state`: the wrapper's per-store state, kept in the store's WASI table;
//! - `sockets`: the TCP/UDP switches and the socket address check;
//! - `cancel`: cancellable blocking WASI waits;
//! - `limiter`: a memory limit summed over all of a store's memories;
//! - `http`: outgoing wasi:http with a per-store policy;
//! - `check`: every import of a component a linker cannot satisfy;
//! - `serve`: serving wasi:http/proxy components (incoming wasi:http);
//! - `fdcap`: a per-store cap on the host descriptors a preview-1 guest holds;
//! - `fdcap_component`: the same cap for components (WASI 0.2).
//!
//! No panic may cross the C ABI: every entry point runs its body through
//! `ffi::guard`, which turns a panic into an error return.
pub use wasmtime_c_api::*;

mod cancel;
mod check;
mod fdcap;
mod fdcap_component;
mod ffi;
mod http;
mod layout;
mod limiter;
mod serve;
mod sockets;
mod state;

/// Caps a store's linear memory at `bytes` and turns a refused
/// `memory.grow` into a trap, so a container that outgrows
/// `resources.limits.memory` ends at once (reported as OOMKilled, like a
/// cgroup OOM kill) instead of seeing `memory.grow` return -1 and carrying
/// on in a state it never planned for. The store must already have a
/// limiter installed by `wasmtime_store_limiter`, which points the store at
/// the `store_limits` field replaced here. The cap applies to each memory
/// separately; `wasmlet_store_limit_memory_total` caps their sum.
#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_context_trap_on_memory_limit(
    mut cx: wasmtime_c_api::WasmtimeStoreContextMut<'_>,
    bytes: usize,
) {
    cx.data_mut().store_limits = wasmtime_c_api::wasmtime::StoreLimitsBuilder::new()
        .memory_size(bytes)
        .trap_on_grow_failure(true)
        .build();
}
