//! Cancellable blocking waits.
//!
//! In synchronous WASI preview 2 (`wasmtime_component_linker_add_wasip2`),
//! `wasi:io/poll.poll`, `pollable.block` and the blocking stream operations
//! wait inside the host (`wasmtime_wasi::runtime::in_tokio`, which
//! `block_on`s the wait), where epoch interruption cannot reach them: a
//! component sleeping (monotonic-clock `subscribe-duration` + `block`) or
//! waiting for a socket would not stop until the wait ends.
//!
//! `wasmlet_component_linker_add_cancellable_waits` redefines (shadows) the
//! whole of `wasi:io/poll` and `wasi:io/streams` in a linker with the stock
//! implementations, except that every blocking wait races the store's cancel
//! token and, once it is cancelled, returns a trap whose message contains
//! `WASMLET_CANCELLED_MESSAGE`. A cancelled store's later blocking calls
//! trap at once. The token is per store (kept in the wrapper's store state)
//! and may be cancelled from any thread. Before `poll` and `block` wait,
//! the store's descriptor observer (`fdcap::observe`) is told what the
//! store holds.
use crate::ffi::{self, CError};
use crate::{fdcap, layout, state};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;
use wasmtime_c_api::wasmtime::component::{HasData, Resource, ResourceTable};
use wasmtime_c_api::wasmtime::{Error, Result, format_err};
use wasmtime_c_api::{WasmtimeStoreContextMut, WasmtimeStoreData, wasmtime_component_linker_t};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::p2::bindings::sync::io::{poll, streams};
use wasmtime_wasi::runtime::in_tokio;
use wasmtime_wasi_io::bindings::wasi::io::poll as async_poll;
use wasmtime_wasi_io::bindings::wasi::io::streams::{
    HostInputStream as AsyncInput, HostOutputStream as AsyncOutput,
};
use wasmtime_wasi_io::poll::DynPollable;
use wasmtime_wasi_io::streams::{DynInputStream, DynOutputStream, StreamError};

/// Must match WASMLET_CANCELLED_MESSAGE in src/wasm/wasmlet_capi.h.
const CANCELLED_MESSAGE: &str = "blocking WASI call cancelled: the container is being stopped";

#[derive(Default)]
pub(crate) struct CancelShared {
    cancelled: AtomicBool,
    notify: Notify,
}

impl CancelShared {
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    async fn cancelled(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the flag is read, so a cancel between the
            // read and the await still wakes this waiter.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

fn cancelled_error() -> Error {
    format_err!("{CANCELLED_MESSAGE}")
}

/// Runs the blocking wait `f` to its end, or until `cancel` fires.
fn wait<F: Future>(cancel: &Option<Arc<CancelShared>>, f: F) -> Result<F::Output> {
    let Some(cancel) = cancel else {
        return Ok(in_tokio(f));
    };
    if cancel.is_cancelled() {
        return Err(cancelled_error());
    }
    in_tokio(async {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(cancelled_error()),
            out = f => Ok(out),
        }
    })
}

/// `wait` for a stream operation, whose trap travels as `StreamError::Trap`.
fn wait_stream<T, F>(cancel: &Option<Arc<CancelShared>>, f: F) -> Result<T, StreamError>
where
    F: Future<Output = Result<T, StreamError>>,
{
    wait(cancel, f).map_err(StreamError::Trap)?
}

/// What the shadowed wasi:io functions see of a store: its table and its
/// cancel token, if it has one.
pub(crate) struct CancelView<'a> {
    table: &'a mut ResourceTable,
    cancel: Option<Arc<CancelShared>>,
}

struct CancelIo;

impl HasData for CancelIo {
    type Data<'a> = CancelView<'a>;
}

fn cancel_view(data: &mut WasmtimeStoreData) -> CancelView<'_> {
    let table = data.ctx().table;
    let cancel = state::get(table).and_then(|s| s.cancel.clone());
    CancelView { table, cancel }
}

impl poll::Host for CancelView<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> Result<Vec<u32>> {
        let table = &mut *self.table;
        fdcap::observe(table);
        wait(&self.cancel, async_poll::Host::poll(table, pollables))?
    }
}

impl poll::HostPollable for CancelView<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> Result<bool> {
        poll::HostPollable::ready(&mut *self.table, pollable)
    }
    fn block(&mut self, pollable: Resource<DynPollable>) -> Result<()> {
        let table = &mut *self.table;
        fdcap::observe(table);
        wait(&self.cancel, async_poll::HostPollable::block(table, pollable))?
    }
    fn drop(&mut self, pollable: Resource<DynPollable>) -> Result<()> {
        poll::HostPollable::drop(&mut *self.table, pollable)
    }
}

impl streams::Host for CancelView<'_> {
    fn convert_stream_error(&mut self, err: StreamError) -> Result<streams::StreamError> {
        streams::Host::convert_stream_error(&mut *self.table, err)
    }
}

type StreamResult<T> = Result<T, StreamError>;

impl streams::HostInputStream for CancelView<'_> {
    fn drop(&mut self, s: Resource<DynInputStream>) -> Result<()> {
        streams::HostInputStream::drop(&mut *self.table, s)
    }
    fn read(&mut self, s: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        streams::HostInputStream::read(&mut *self.table, s, len)
    }
    fn blocking_read(&mut self, s: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        let table = &mut *self.table;
        wait_stream(&self.cancel, AsyncInput::blocking_read(table, s, len))
    }
    fn skip(&mut self, s: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        streams::HostInputStream::skip(&mut *self.table, s, len)
    }
    fn blocking_skip(&mut self, s: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        let table = &mut *self.table;
        wait_stream(&self.cancel, AsyncInput::blocking_skip(table, s, len))
    }
    fn subscribe(&mut self, s: Resource<DynInputStream>) -> Result<Resource<DynPollable>> {
        streams::HostInputStream::subscribe(&mut *self.table, s)
    }
}

impl streams::HostOutputStream for CancelView<'_> {
    fn drop(&mut self, s: Resource<DynOutputStream>) -> Result<()> {
        streams::HostOutputStream::drop(&mut *self.table, s)
    }
    fn check_write(&mut self, s: Resource<DynOutputStream>) -> StreamResult<u64> {
        streams::HostOutputStream::check_write(&mut *self.table, s)
    }
    fn write(&mut self, s: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        streams::HostOutputStream::write(&mut *self.table, s, bytes)
    }
    fn blocking_write_and_flush(
        &mut self,
        s: Resource<DynOutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        let table = &mut *self.table;
        wait_stream(&self.cancel, AsyncOutput::blocking_write_and_flush(table, s, bytes))
    }
    fn flush(&mut self, s: Resource<DynOutputStream>) -> StreamResult<()> {
        streams::HostOutputStream::flush(&mut *self.table, s)
    }
    fn blocking_flush(&mut self, s: Resource<DynOutputStream>) -> StreamResult<()> {
        let table = &mut *self.table;
        let s = Resource::new_borrow(s.rep());
        wait_stream(&self.cancel, AsyncOutput::blocking_flush(table, s))
    }
    fn subscribe(&mut self, s: Resource<DynOutputStream>) -> Result<Resource<DynPollable>> {
        streams::HostOutputStream::subscribe(&mut *self.table, s)
    }
    fn write_zeroes(&mut self, s: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        streams::HostOutputStream::write_zeroes(&mut *self.table, s, len)
    }
    fn blocking_write_zeroes_and_flush(
        &mut self,
        s: Resource<DynOutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        let table = &mut *self.table;
        wait_stream(&self.cancel, AsyncOutput::blocking_write_zeroes_and_flush(table, s, len))
    }
    fn splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        streams::HostOutputStream::splice(&mut *self.table, dst, src, len)
    }
    fn blocking_splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        let table = &mut *self.table;
        wait_stream(&self.cancel, AsyncOutput::blocking_splice(table, dst, src, len))
    }
}

/// An owned reference to a cancel token (an `Arc` behind the C pointer).
#[allow(non_camel_case_types)]
pub struct wasmlet_cancel_token_t {
    shared: Arc<CancelShared>,
}

#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_cancel_token_new() -> *mut wasmlet_cancel_token_t {
    ffi::guard_or(std::ptr::null_mut(), || {
        Box::into_raw(Box::new(wasmlet_cancel_token_t {
            shared: Arc::new(CancelShared::default()),
        }))
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_cancel_token_cancel(token: Option<&wasmlet_cancel_token_t>) {
    ffi::guard_or((), || {
        if let Some(token) = token {
            token.shared.cancel();
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_cancel_token_is_cancelled(token: Option<&wasmlet_cancel_token_t>) -> bool {
    ffi::guard_or(false, || token.is_some_and(|t| t.shared.is_cancelled()))
}

#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_cancel_token_delete(token: Option<Box<wasmlet_cancel_token_t>>) {
    ffi::guard_or((), || drop(token))
}

#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_context_set_cancel_token(
    mut cx: WasmtimeStoreContextMut<'_>,
    token: Option<&wasmlet_cancel_token_t>,
) -> CError {
    ffi::guard("wasmlet_context_set_cancel_token", || {
        let token = token.ok_or_else(|| format_err!("cancel token is NULL"))?;
        let table = state::wasi_table(cx.data_mut())?;
        state::get_or_create(table)?.cancel = Some(token.shared.clone());
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_component_linker_add_cancellable_waits(
    linker: Option<&mut wasmtime_component_linker_t>,
) -> CError {
    ffi::guard("wasmlet_component_linker_add_cancellable_waits", || {
        let linker = layout::component_linker(
            linker.ok_or_else(|| format_err!("linker is NULL"))?,
        );
        linker.allow_shadowing(true);
        let added = poll::add_to_linker::<_, CancelIo>(linker, cancel_view)
            .and_then(|()| streams::add_to_linker::<_, CancelIo>(linker, cancel_view));
        linker.allow_shadowing(false);
        added
    })
}
