//! The only places where the wrapper reaches behind a C API handle to the
//! Rust value it wraps. The C API keeps those fields `pub(crate)`, so the
//! wrapper casts the handle instead. Each cast relies on the layout of
//! wasmtime-c-api-impl 48.0.8, which Cargo.toml pins exactly (`=48.0.8`,
//! like wasmtime, wasmtime-wasi and wasmtime-wasi-http):
//!
//! - `wasi_config_t` is `#[repr(C)] struct { builder: WasiCtxBuilder }`
//!   (src/wasi.rs);
//! - `wasmtime_store_t` is `#[repr(C)] struct { store: Store<WasmtimeStoreData> }`
//!   (src/store.rs);
//! - `wasmtime_component_linker_t` is
//!   `#[repr(transparent)] struct { linker: Linker<WasmtimeStoreData> }`
//!   (src/component/linker.rs);
//! - `wasmtime_component_t` is `#[repr(transparent)] struct { component: Component }`
//!   (src/component/component.rs).
//!
//! A struct with a single field and `repr(C)` or `repr(transparent)` has
//! that field at offset 0 with the struct's size and alignment, so a pointer
//! to the struct is a valid pointer to the field. The assertions below stop
//! the build if the sizes or alignments ever differ, and the C unit test
//! (tests/unit/test_wasmtime_wrapper.c) observes a value set through each
//! cast: TCP allowed through `wasi_builder` works in a component, the total
//! memory limit installed through `store` traps, and the shadowed waits
//! added through `component_linker` are cancelled. When upgrading Wasmtime,
//! re-read the three definitions above before touching the pins.
use std::mem::{align_of, size_of};
use wasmtime_c_api::wasmtime::component::Linker;
use wasmtime_c_api::wasmtime::component::Component;
use wasmtime_c_api::{
    WasmtimeStore, WasmtimeStoreData, wasi_config_t, wasmtime_component_linker_t,
    wasmtime_component_t, wasmtime_store_t,
};
use wasmtime_wasi::WasiCtxBuilder;

const _: () = {
    assert!(size_of::<wasi_config_t>() == size_of::<WasiCtxBuilder>());
    assert!(align_of::<wasi_config_t>() == align_of::<WasiCtxBuilder>());
    assert!(size_of::<wasmtime_store_t>() == size_of::<WasmtimeStore>());
    assert!(align_of::<wasmtime_store_t>() == align_of::<WasmtimeStore>());
    assert!(size_of::<wasmtime_component_linker_t>() == size_of::<Linker<WasmtimeStoreData>>());
    assert!(align_of::<wasmtime_component_linker_t>() == align_of::<Linker<WasmtimeStoreData>>());
    assert!(size_of::<wasmtime_component_t>() == size_of::<Component>());
    assert!(align_of::<wasmtime_component_t>() == align_of::<Component>());
};

/// The WASI builder behind a `wasi_config_t`.
pub(crate) fn wasi_builder(config: &mut wasi_config_t) -> &mut WasiCtxBuilder {
    // SAFETY: see the module comment; the borrow of `config` carries over.
    unsafe { &mut *(config as *mut wasi_config_t).cast::<WasiCtxBuilder>() }
}

/// The `Store` behind a `wasmtime_store_t`.
pub(crate) fn store(store: &mut wasmtime_store_t) -> &mut WasmtimeStore {
    // SAFETY: see the module comment.
    unsafe { &mut *(store as *mut wasmtime_store_t).cast::<WasmtimeStore>() }
}

/// The component `Linker` behind a `wasmtime_component_linker_t`.
pub(crate) fn component_linker(
    linker: &mut wasmtime_component_linker_t,
) -> &mut Linker<WasmtimeStoreData> {
    // SAFETY: see the module comment.
    unsafe {
        &mut *(linker as *mut wasmtime_component_linker_t).cast::<Linker<WasmtimeStoreData>>()
    }
}

/// The same, shared.
pub(crate) fn component_linker_ref(
    linker: &wasmtime_component_linker_t,
) -> &Linker<WasmtimeStoreData> {
    // SAFETY: see the module comment.
    unsafe { &*(linker as *const wasmtime_component_linker_t).cast::<Linker<WasmtimeStoreData>>() }
}

/// The `Component` behind a `wasmtime_component_t`.
pub(crate) fn component(component: &wasmtime_component_t) -> &Component {
    // SAFETY: see the module comment.
    unsafe { &*(component as *const wasmtime_component_t).cast::<Component>() }
}
