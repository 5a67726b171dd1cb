//! Helpers shared by the C entry points: running a body so that no panic
//! crosses the C ABI, and building the C API's error values.
use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use wasmtime_c_api::wasmtime::{Error, format_err};
use wasmtime_c_api::wasmtime_error_t;

/// The error a C entry point returns: NULL for success, else an owned
/// `wasmtime_error_t *` the caller frees with `wasmtime_error_delete`.
pub(crate) type CError = Option<Box<wasmtime_error_t>>;

pub(crate) fn error(err: Error) -> CError {
    Some(Box::new(wasmtime_error_t::from(err)))
}

/// Runs `body`, turning its `Err` or a panic inside it into a C error.
pub(crate) fn guard(what: &str, body: impl FnOnce() -> Result<(), Error>) -> CError {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => None,
        Ok(Err(err)) => error(err),
        Err(panic) => error(format_err!("{what}: internal error: {}", panic_text(&panic))),
    }
}

/// Runs `body` for an entry point whose C signature has no error return
/// (void or bool): a panic yields `fallback`.
pub(crate) fn guard_or<R>(fallback: R, body: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}

/// A NUL-terminated UTF-8 C string, or an error naming `what`.
pub(crate) unsafe fn c_str<'a>(s: *const c_char, what: &str) -> Result<&'a str, Error> {
    if s.is_null() {
        return Err(format_err!("{what} is NULL"));
    }
    unsafe { CStr::from_ptr(s) }
        .to_str()
        .map_err(|_| format_err!("{what} is not UTF-8"))
}
