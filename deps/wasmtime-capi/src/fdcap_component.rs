//! The descriptor cap of `fdcap` for components (WASI 0.2).
//!
//! `wasmlet_component_linker_cap_descriptors` shadows, in a component linker
//! that already has Wasmtime's synchronous WASI 0.2
//! (`wasmtime_component_linker_add_wasip2`), the three imports that make a
//! component hold a new host descriptor of its own asking:
//!
//! - `wasi:filesystem/types` `[method]descriptor.open-at`: at the cap it
//!   returns `error-code::quota`. WASI 0.2's filesystem `error-code` has no
//!   "too many open files" (EMFILE); `quota` ("storage quota exceeded") is
//!   the closest case it has: a per-container allowance is used up, and the
//!   guest can recover by closing something. The preview-1 adapter turns it
//!   into errno `dquot` for a C program;
//! - `wasi:sockets/tcp-create-socket` `create-tcp-socket` and
//!   `wasi:sockets/udp-create-socket` `create-udp-socket`: at the cap they
//!   return `error-code::new-socket-limit`, which WASI 0.2 documents as
//!   EMFILE/ENFILE.
//!
//! Below the cap each runs wasmtime-wasi's own synchronous implementation,
//! unchanged (the same trait methods the stock linker functions call). The
//! cap and the count are `fdcap`'s: one `FdCap` entry per store, set by
//! `wasmlet_context_set_descriptor_cap`; held descriptors are files,
//! directories (preopens included) and TCP/UDP sockets in the store's
//! table. Not refused at the cap (but counted once they exist): sockets a
//! listening TCP socket accepts (`accept`), since refusing them would leave
//! the connection queued and the guest spinning on a ready pollable.
//! Each `wasi:filesystem/preopens.get-directories` call adds a table entry
//! per preopen sharing the preopen's one host descriptor; they count like
//! any other entry (an overcount, on the side of the cap).
//!
//! The interface names carry the version wasmtime-wasi 48.0.8's WIT
//! declares (src/p2/wit/deps/*.wit), which is the one the stock functions
//! are registered under (components importing an older 0.2.x resolve to
//! it). Cargo.toml pins the crate; re-check both when upgrading.
use crate::fdcap;
use crate::ffi::{self, CError};
use crate::layout;
use wasmtime_c_api::wasmtime::component::Resource;
use wasmtime_c_api::wasmtime::{Error, StoreContextMut, format_err};
use wasmtime_c_api::{WasmtimeStoreData, wasmtime_component_linker_t};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::sockets::network::{self, ErrorCode as NetError, IpAddressFamily};
use wasmtime_wasi::p2::bindings::sockets::tcp_create_socket;
use wasmtime_wasi::p2::bindings::sync::filesystem::types as fs;
use wasmtime_wasi::p2::bindings::sync::sockets::udp_create_socket;
use wasmtime_wasi::p2::{TcpSocket, UdpSocket};
use wasmtime_wasi::sockets::WasiSocketsView;

const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";
const TCP_CREATE: &str = "wasi:sockets/tcp-create-socket@0.2.12";
const UDP_CREATE: &str = "wasi:sockets/udp-create-socket@0.2.12";

type Store<'a> = StoreContextMut<'a, WasmtimeStoreData>;
type OpenAtArgs = (Resource<Descriptor>, fs::PathFlags, String, fs::OpenFlags, fs::DescriptorFlags);
type OpenAtResult = (Result<Resource<Descriptor>, fs::ErrorCode>,);

fn open_at(mut store: Store<'_>, args: OpenAtArgs) -> Result<OpenAtResult, Error> {
    let data = store.data_mut();
    if fdcap::at_cap(data)? {
        return Ok((Err(fs::ErrorCode::Quota),));
    }
    let (fd, path_flags, path, open_flags, flags) = args;
    let mut view = data.filesystem();
    match fs::HostDescriptor::open_at(&mut view, fd, path_flags, path, open_flags, flags) {
        Ok(opened) => Ok((Ok(opened),)),
        Err(e) => Ok((Err(fs::Host::convert_error_code(&mut view, e)?),)),
    }
}

fn create_tcp(
    mut store: Store<'_>,
    (family,): (IpAddressFamily,),
) -> Result<(Result<Resource<TcpSocket>, NetError>,), Error> {
    let data = store.data_mut();
    if fdcap::at_cap(data)? {
        return Ok((Err(NetError::NewSocketLimit),));
    }
    let mut view = data.sockets();
    match tcp_create_socket::Host::create_tcp_socket(&mut view, family) {
        Ok(socket) => Ok((Ok(socket),)),
        Err(e) => Ok((Err(network::Host::convert_error_code(&mut view, e)?),)),
    }
}

fn create_udp(
    mut store: Store<'_>,
    (family,): (IpAddressFamily,),
) -> Result<(Result<Resource<UdpSocket>, NetError>,), Error> {
    let data = store.data_mut();
    if fdcap::at_cap(data)? {
        return Ok((Err(NetError::NewSocketLimit),));
    }
    let mut view = data.sockets();
    match udp_create_socket::Host::create_udp_socket(&mut view, family) {
        Ok(socket) => Ok((Ok(socket),)),
        Err(e) => Ok((Err(network::Host::convert_error_code(&mut view, e)?),)),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_component_linker_cap_descriptors(
    linker: Option<&mut wasmtime_component_linker_t>,
) -> CError {
    ffi::guard("wasmlet_component_linker_cap_descriptors", || {
        let linker = layout::component_linker(linker.ok_or_else(|| format_err!("linker is NULL"))?);
        linker.allow_shadowing(true);
        let added = (|| -> Result<(), Error> {
            linker.instance(FILESYSTEM_TYPES)?.func_wrap("[method]descriptor.open-at", open_at)?;
            linker.instance(TCP_CREATE)?.func_wrap("create-tcp-socket", create_tcp)?;
            linker.instance(UDP_CREATE)?.func_wrap("create-udp-socket", create_udp)?;
            Ok(())
        })();
        linker.allow_shadowing(false);
        added
    })
}
