//! A cap on the host descriptors a WASI preview-1 guest holds, per store.
//!
//! Wasmtime has no per-store descriptor hook: wasmtime-wasi's `path_open`
//! opens the host file and pushes it into the store's resource table, whose
//! only bound is u32::MAX entries (and a full preview-1 descriptor map
//! traps). So the wrapper shadows `wasi_snapshot_preview1::path_open` in a
//! core linker: before each open it counts the store's held descriptors
//! (every `wasmtime_wasi::filesystem::Descriptor` in the table: open files,
//! open directories and the preopens) and, at the cap, returns the preview-1
//! errno `mfile` ("too many open files") without opening anything; below it,
//! it runs wasmtime-wasi's own `path_open`, unchanged, exactly as the stock
//! linker function does (the wiggle-generated
//! `p1::wasi_snapshot_preview1::path_open` on the store's `WasiP1Ctx`, the
//! caller's exported memory, and the store's hostcall fuel).
//!
//! Reaching the `WasiP1Ctx`. The C API keeps `WasmtimeStoreData::wasi`
//! `pub(crate)`, and `WasmtimeStoreData`'s public `WasiView::ctx()` returns
//! `&mut wasi.table` of that `WasiP1Ctx` (wasmtime-c-api-impl 48.0.8,
//! src/store.rs; `WasiP1Ctx::ctx()` in wasmtime-wasi 48.0.8, src/p1.rs). The
//! offset of `table` within `WasiP1Ctx` is measured once on a context built
//! here (`WasiCtxBuilder::build_p1`): the same type in the same build, so
//! the same layout. Subtracting it from the table's address gives the
//! `WasiP1Ctx`. Cargo.toml pins both crates exactly; re-read both functions
//! when upgrading.
//!
//! The cap lives in an entry of the store's WASI resource table (like
//! `state`'s, and for the same reasons: no other per-store slot, dies with
//! the WASI context, unreachable by the guest). Counting scans the table:
//! O(entries) per open, bounded by the cap in a capped store. Components
//! (WASI 0.2) get the same cap through `fdcap_component`, which shares the
//! counting here: a held descriptor is a `Descriptor` or a preview-2 TCP or
//! UDP socket (a core module never holds sockets).
use crate::ffi::{self, CError};
use crate::state;
use std::ffi::c_void;
use std::mem::{align_of, size_of};
use std::sync::OnceLock;
use wasmtime_c_api::wasmtime::component::ResourceTable;
use wasmtime_c_api::wasmtime::{AsContextMut, Caller, Error, Extern, Linker, format_err};
use wasmtime_c_api::{WasmtimeStoreContextMut, WasmtimeStoreData, wasmtime_linker_t};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::filesystem::Descriptor;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::{TcpSocket as P2Tcp, UdpSocket as P2Udp};
use wasmtime_wasi::p1::wasi_snapshot_preview1::{self as p1, WasiSnapshotPreview1};

const MODULE: &str = "wasi_snapshot_preview1";
/// The preview-1 errno `mfile` (witx `errno` case 33).
const ERRNO_MFILE: i32 = 33;

// `wasmtime_linker_t` is `#[repr(C)] struct { linker: Linker<WasmtimeStoreData> }`
// in wasmtime-c-api-impl 48.0.8 (src/linker.rs), pinned like the casts of
// `layout`: a pointer to it is a pointer to its one field.
const _: () = {
    assert!(size_of::<wasmtime_linker_t>() == size_of::<Linker<WasmtimeStoreData>>());
    assert!(align_of::<wasmtime_linker_t>() == align_of::<Linker<WasmtimeStoreData>>());
};

fn core_linker(linker: &mut wasmtime_linker_t) -> &mut Linker<WasmtimeStoreData> {
    // SAFETY: see the assertion above; the borrow of `linker` carries over.
    unsafe { &mut *(linker as *mut wasmtime_linker_t).cast::<Linker<WasmtimeStoreData>>() }
}

/// Offset of the resource table inside a `WasiP1Ctx` (module comment).
fn table_offset() -> usize {
    static OFFSET: OnceLock<usize> = OnceLock::new();
    *OFFSET.get_or_init(|| {
        let mut cx = wasmtime_wasi::WasiCtxBuilder::new().build_p1();
        let base = &raw mut cx as usize;
        let table = cx.ctx().table as *mut ResourceTable as usize;
        table - base
    })
}

/// The store's `WasiP1Ctx` (module comment). The store must have a WASI
/// context (the caller checked with `state::wasi_table`).
fn p1_ctx(data: &mut WasmtimeStoreData) -> &mut WasiP1Ctx {
    let table = data.ctx().table as *mut ResourceTable as *mut u8;
    // SAFETY: `table` is the `table` field of the `WasiP1Ctx` in `data`
    // (module comment), so stepping back by its offset gives that context;
    // the result borrows `data` exclusively, like `table` did.
    unsafe { &mut *table.sub(table_offset()).cast::<WasiP1Ctx>() }
}

/// A C observer of a store's held descriptors
/// (`wasmlet_context_set_descriptor_observer`).
struct Observer {
    f: extern "C" fn(*mut c_void, usize),
    data: *mut c_void,
}

// SAFETY: the header requires the callback and its data to be usable from
// the thread that runs the store, wherever the store moves.
unsafe impl Send for Observer {}

/// A store's cap (0: none) and its observer.
#[derive(Default)]
struct FdCap {
    max: usize,
    observer: Option<Observer>,
}

/// Whether a table entry holds a host descriptor: a file or directory
/// (preopens included) or a preview-2 TCP or UDP socket (listening,
/// connected, or accepted). Streams share their file's or socket's
/// descriptor and are not counted again.
fn holds_descriptor(entry: &(dyn std::any::Any + Send)) -> bool {
    entry.is::<Descriptor>() || entry.is::<P2Tcp>() || entry.is::<P2Udp>()
}

/// One pass over the table: the held descriptors and the store's `FdCap`,
/// created when missing.
fn scan(table: &mut ResourceTable) -> Result<(usize, &mut FdCap), Error> {
    let mut held = 0;
    let mut found = false;
    for entry in table.iter_mut() {
        if holds_descriptor(entry) {
            held += 1;
        } else if entry.is::<FdCap>() {
            found = true;
        }
    }
    if !found {
        table
            .push(FdCap::default())
            .map_err(|e| format_err!("cannot add the descriptor cap: {e}"))?;
    }
    let cap = table
        .iter_mut()
        .find_map(|entry| entry.downcast_mut::<FdCap>())
        .ok_or_else(|| format_err!("descriptor cap entry missing"))?;
    Ok((held, cap))
}

/// Tells the store's observer, if it has one, what the store holds now.
/// Called by `cancel` before a component blocks in wasi:io/poll, where no
/// epoch tick lets the C side count.
pub(crate) fn observe(table: &mut ResourceTable) {
    let mut held = 0;
    let mut observer = None;
    for entry in table.iter_mut() {
        if holds_descriptor(&*entry) {
            held += 1;
        } else if let Some(cap) = entry.downcast_ref::<FdCap>() {
            observer = cap.observer.as_ref().map(|o| (o.f, o.data));
        }
    }
    if let Some((f, data)) = observer {
        f(data, held);
    }
}

/// Whether the store is at its cap (false without one).
pub(crate) fn at_cap(data: &mut WasmtimeStoreData) -> Result<bool, Error> {
    let table = state::wasi_table(data)?;
    let (held, cap) = scan(table)?;
    Ok(cap.max > 0 && held >= cap.max)
}

type OpenArgs = (i32, i32, i32, i32, i32, i64, i64, i32, i32);

fn path_open(caller: &mut Caller<'_, WasmtimeStoreData>, a: OpenArgs) -> Result<i32, Error> {
    if at_cap(caller.data_mut())? {
        return Ok(ERRNO_MFILE);
    }
    // What the stock linker function of wasmtime-wasi does around the call.
    let fuel = caller.as_context_mut().hostcall_fuel();
    let open = |cx: &mut WasiP1Ctx, mut mem| {
        cx.set_hostcall_fuel(fuel);
        wasmtime_wasi::runtime::in_tokio(p1::path_open(
            cx, &mut mem, a.0, a.1, a.2, a.3, a.4, a.5, a.6, a.7, a.8,
        ))
    };
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => {
            let (bytes, data) = m.data_and_store_mut(&mut *caller);
            Ok(open(p1_ctx(data), wiggle::GuestMemory::Unshared(bytes))?)
        }
        Some(Extern::SharedMemory(m)) => {
            let mem = wiggle::GuestMemory::Shared(m.data());
            Ok(open(p1_ctx(caller.data_mut()), mem)?)
        }
        _ => Err(format_err!("missing required memory export")),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_linker_cap_descriptors(linker: Option<&mut wasmtime_linker_t>) -> CError {
    ffi::guard("wasmlet_linker_cap_descriptors", || {
        let linker = core_linker(linker.ok_or_else(|| format_err!("linker is NULL"))?);
        linker.allow_shadowing(true);
        let added = linker
            .func_wrap(
                MODULE,
                "path_open",
                |mut caller: Caller<'_, WasmtimeStoreData>,
                 fd: i32,
                 dirflags: i32,
                 path: i32,
                 path_len: i32,
                 oflags: i32,
                 base: i64,
                 inheriting: i64,
                 fdflags: i32,
                 opened: i32|
                 -> Result<i32, Error> {
                    path_open(
                        &mut caller,
                        (
                            fd, dirflags, path, path_len, oflags, base, inheriting, fdflags, opened,
                        ),
                    )
                },
            )
            .map(|_| ());
        linker.allow_shadowing(false);
        added
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_context_set_descriptor_cap(
    mut cx: WasmtimeStoreContextMut<'_>,
    max: usize,
) -> CError {
    ffi::guard("wasmlet_context_set_descriptor_cap", || {
        let table = state::wasi_table(cx.data_mut())?;
        scan(table)?.1.max = max;
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_context_set_descriptor_observer(
    mut cx: WasmtimeStoreContextMut<'_>,
    observer: Option<extern "C" fn(*mut c_void, usize)>,
    data: *mut c_void,
) -> CError {
    ffi::guard("wasmlet_context_set_descriptor_observer", || {
        let table = state::wasi_table(cx.data_mut())?;
        scan(table)?.1.observer = observer.map(|f| Observer { f, data });
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_context_descriptors_held(mut cx: WasmtimeStoreContextMut<'_>) -> usize {
    ffi::guard_or(0, || match state::wasi_table(cx.data_mut()) {
        Ok(table) => table.iter_mut().filter(|e| holds_descriptor(&**e)).count(),
        Err(_) => 0,
    })
}
