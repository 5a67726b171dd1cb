//! wasi:sockets switches. Wasmtime 48's `WasiCtxBuilder` denies TCP and UDP
//! socket creation by default and the C API has no switch for either, nor a
//! way to install a socket address check other than "allow all"
//! (`wasi_config_inherit_network`). These reach the builder through
//! `layout::wasi_builder`. (`wasi_config_allow_ip_name_lookup` exists in
//! the C API already.)
use crate::ffi;
use crate::layout;
use std::ffi::{c_int, c_void};
use std::net::SocketAddr;
use wasmtime_c_api::wasi_config_t;
use wasmtime_wasi::sockets::SocketAddrUse;

/// `wasmlet_addr_check_t` in wasmlet_capi.h.
pub(crate) type AddrCheckFn =
    extern "C" fn(*mut c_void, *const libc::sockaddr, libc::socklen_t, c_int) -> bool;

// `enum wasmlet_addr_use` in wasmlet_capi.h.
pub(crate) const USE_TCP_BIND: c_int = 0;
pub(crate) const USE_TCP_LISTEN: c_int = 1;
pub(crate) const USE_TCP_ACCEPT: c_int = 2;
pub(crate) const USE_TCP_CONNECT: c_int = 3;
pub(crate) const USE_UDP_BIND: c_int = 4;
pub(crate) const USE_UDP_SEND: c_int = 5;
pub(crate) const USE_UDP_RECEIVE: c_int = 6;
pub(crate) const USE_HTTP_CONNECT: c_int = 7;

/// A C address check with its data; the finalizer runs when the last user
/// (a WASI context, a socket, an HTTP policy) drops it.
pub(crate) struct AddrCheck {
    check: AddrCheckFn,
    data: *mut c_void,
    finalizer: Option<extern "C" fn(*mut c_void)>,
}

// SAFETY: the header requires the callback to be callable from any thread
// (Wasmtime's tokio worker threads call it) and its data to allow that.
unsafe impl Send for AddrCheck {}
unsafe impl Sync for AddrCheck {}

impl Drop for AddrCheck {
    fn drop(&mut self) {
        if let Some(finalizer) = self.finalizer {
            finalizer(self.data);
        }
    }
}

impl AddrCheck {
    pub(crate) fn new(
        check: AddrCheckFn,
        data: *mut c_void,
        finalizer: Option<extern "C" fn(*mut c_void)>,
    ) -> AddrCheck {
        AddrCheck { check, data, finalizer }
    }

    /// Asks the C callback whether `addr` may be used for `use_`.
    pub(crate) fn allows(&self, addr: SocketAddr, use_: c_int) -> bool {
        // SAFETY: all-zero is a valid sockaddr_storage.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
                // SAFETY: sockaddr_storage is large and aligned enough.
                let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr = libc::in_addr { s_addr: u32::from(*a.ip()).to_be() };
                std::mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                // SAFETY: as above.
                let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_flowinfo = a.flowinfo().to_be();
                sin6.sin6_addr = libc::in6_addr { s6_addr: a.ip().octets() };
                sin6.sin6_scope_id = a.scope_id();
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        (self.check)(
            self.data,
            &storage as *const _ as *const libc::sockaddr,
            len as libc::socklen_t,
            use_,
        )
    }
}

fn use_code(use_: SocketAddrUse) -> c_int {
    match use_ {
        SocketAddrUse::TcpBind => USE_TCP_BIND,
        SocketAddrUse::TcpListen => USE_TCP_LISTEN,
        SocketAddrUse::TcpAccept => USE_TCP_ACCEPT,
        SocketAddrUse::TcpConnect => USE_TCP_CONNECT,
        SocketAddrUse::UdpBind => USE_UDP_BIND,
        SocketAddrUse::UdpSend => USE_UDP_SEND,
        SocketAddrUse::UdpReceive => USE_UDP_RECEIVE,
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_wasi_config_allow_tcp(config: Option<&mut wasi_config_t>, allow: bool) {
    ffi::guard_or((), || {
        if let Some(config) = config {
            layout::wasi_builder(config).allow_tcp(allow);
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_wasi_config_allow_udp(config: Option<&mut wasi_config_t>, allow: bool) {
    ffi::guard_or((), || {
        if let Some(config) = config {
            layout::wasi_builder(config).allow_udp(allow);
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_wasi_config_socket_addr_check(
    config: Option<&mut wasi_config_t>,
    check: Option<AddrCheckFn>,
    data: *mut c_void,
    finalizer: Option<extern "C" fn(*mut c_void)>,
) -> bool {
    let (Some(config), Some(check)) = (config, check) else {
        if let Some(finalizer) = finalizer {
            finalizer(data);
        }
        return false;
    };
    // Built before the guard so that the finalizer runs exactly once, when
    // the check is dropped, whatever happens below.
    let check = std::sync::Arc::new(AddrCheck::new(check, data, finalizer));
    ffi::guard_or(false, move || {
        layout::wasi_builder(config).socket_addr_check(move |addr, use_| {
            let allowed = check.allows(addr, use_code(use_));
            Box::pin(async move { allowed })
        });
        true
    })
}
