//! Outgoing wasi:http with a per-store policy.
//!
//! The C API's `wasmtime_component_linker_add_wasi_http` uses the default
//! hooks fixed in `WasmtimeStoreData`'s `WasiHttpView` impl, and its
//! `wasi_http` context must be set per store with
//! `wasmtime_context_set_wasi_http` or the first wasi:http call panics
//! (which aborts the process at the C boundary). The wrapper's
//! `wasmlet_component_linker_add_wasi_http` links the same
//! `wasi:http/outgoing-handler` and `wasi:http/types`, but takes the HTTP
//! context and hooks from the wrapper's per-store state (state.rs,
//! `http_view`), so it needs no `wasmtime_context_set_wasi_http`: a store
//! without a policy gets one that fails every request with an internal-error
//! naming the missing call, instead of aborting.
//!
//! The hooks' `send_request` is the default sender of wasmtime-wasi-http
//! (src/default_send_request.rs) with the policy applied:
//! 1. the request's host must be on the allow-list (when there is one),
//!    else the request fails with `HTTP-request-denied`;
//! 2. the host is resolved, and each address is offered to the C address
//!    check (use `WASMLET_ADDR_HTTP_CONNECT`); the connection goes to the
//!    allowed addresses only, and if none is allowed the request fails with
//!    `HTTP-request-denied`;
//! 3. HTTPS trusts the policy's CA files (PEM), the node's bundle by default.
use crate::ffi::{self, CError};
use crate::sockets::{AddrCheck, AddrCheckFn, USE_HTTP_CONNECT};
use crate::{layout, state};
use http::uri::Scheme;
use http::{Request, Response};
use http_body_util::BodyExt;
use std::ffi::{c_char, c_void};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_c_api::wasmtime::format_err;
use wasmtime_c_api::{WasmtimeStoreContextMut, wasmtime_component_linker_t};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttp, WasiHttpCtx, WasiHttpHooks};

/// The node's CA bundle, trusted when the policy names no CA files.
const DEFAULT_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The wasi:http part of the wrapper's per-store state.
#[derive(Default)]
pub(crate) struct HttpHost {
    pub(crate) ctx: WasiHttpCtx,
    pub(crate) hooks: PolicyHooks,
}

#[derive(Default)]
pub(crate) struct PolicyHooks {
    /// None until `wasmlet_context_set_http_policy`: every request fails.
    policy: Option<Arc<HttpPolicy>>,
    /// Why every request fails, where the store may make none (serve.rs).
    refusal: Option<&'static str>,
}

impl PolicyHooks {
    /// Hooks that fail every outgoing request with `reason`.
    pub(crate) fn refusing(reason: &'static str) -> PolicyHooks {
        PolicyHooks { policy: None, refusal: Some(reason) }
    }
}

struct HttpPolicy {
    /// Lower-case host names; `*.suffix` matches any name under `suffix`.
    /// None: every host is allowed.
    hosts: Option<Vec<String>>,
    check: Option<AddrCheck>,
    ca_files: Vec<PathBuf>,
    /// Built on the first HTTPS request.
    tls: OnceLock<Result<Arc<rustls::ClientConfig>, String>>,
}

impl HttpPolicy {
    fn host_allowed(&self, host: &str) -> bool {
        let Some(hosts) = &self.hosts else { return true };
        hosts.iter().any(|h| match h.strip_prefix("*.") {
            Some(suffix) => host.len() > suffix.len() + 1
                && host.ends_with(suffix)
                && host.as_bytes()[host.len() - suffix.len() - 1] == b'.',
            None => h == host,
        })
    }

    fn addr_allowed(&self, addr: SocketAddr) -> bool {
        self.check.as_ref().is_none_or(|c| c.allows(addr, USE_HTTP_CONNECT))
    }

    fn tls(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        self.tls
            .get_or_init(|| tls_config(&self.ca_files))
            .clone()
            .map_err(|msg| Error::InternalError(Some(msg)))
    }
}

fn tls_config(files: &[PathBuf]) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for file in files {
        let certs = CertificateDer::pem_file_iter(file)
            .map_err(|e| format!("CA file {}: {e}", file.display()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("CA file {}: {e}", file.display()))?;
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!("CA file {} holds no usable certificate", file.display()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

trait IoStream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> IoStream for T {}

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

async fn send(
    policy: Arc<HttpPolicy>,
    mut req: Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(Response<WasiBody>, IoFuture), Error> {
    let uri = req.uri();
    let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
    let use_tls = uri.scheme() == Some(&Scheme::HTTPS);
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = authority.port_u16().unwrap_or(if use_tls { 443 } else { 80 });
    if !policy.host_allowed(&host) {
        return Err(Error::HttpRequestDenied);
    }
    let connect_timeout = options.and_then(|o| o.connect_timeout).unwrap_or(DEFAULT_TIMEOUT);
    let first_byte_timeout = options.and_then(|o| o.first_byte_timeout).unwrap_or(DEFAULT_TIMEOUT);

    let addrs: Vec<SocketAddr> =
        match tokio::time::timeout(connect_timeout, tokio::net::lookup_host((host.as_str(), port)))
            .await
        {
            Err(_) => return Err(Error::DnsTimeout),
            Ok(Err(e)) => {
                return Err(Error::DnsError { rcode: Some(e.to_string()), info_code: None });
            }
            Ok(Ok(addrs)) => addrs.filter(|a| policy.addr_allowed(*a)).collect(),
        };
    if addrs.is_empty() {
        return Err(Error::HttpRequestDenied);
    }
    let tcp = match tokio::time::timeout(connect_timeout, TcpStream::connect(&addrs[..])).await {
        Ok(stream) => stream.map_err(Error::Connect)?,
        Err(_) => return Err(Error::ConnectionTimeout),
    };
    let stream: Box<dyn IoStream> = if use_tls {
        let connector = tokio_rustls::TlsConnector::from(policy.tls()?);
        let name = match host.parse::<IpAddr>() {
            Ok(ip) => rustls::pki_types::ServerName::from(ip),
            Err(_) => rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(Error::InvalidDnsNameError)?,
        };
        Box::new(connector.connect(name, tcp).await.map_err(Error::Tls)?)
    } else {
        Box::new(tcp)
    };
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;
    // Drives the connection; aborted when the returned I/O future is dropped.
    let conn = wasmtime_wasi::runtime::spawn(conn);

    // The request line carries only the path (no proxy is involved).
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    *req.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|e| Error::InternalError(Some(e.to_string())))?;

    let res = tokio::time::timeout(first_byte_timeout, sender.send_request(req))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)??;
    let res = res.map(|body| body.map_err(Error::from).boxed_unsync());
    let io: IoFuture = Box::new(async move { conn.await.map_err(Error::from) });
    Ok((res, io))
}

impl WasiHttpHooks for PolicyHooks {
    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> Box<dyn Future<Output = Result<(Response<WasiBody>, IoFuture), Error>> + Send> {
        let policy = self.policy.clone();
        let refusal = self.refusal;
        Box::new(async move {
            let policy = policy.ok_or_else(|| {
                Error::InternalError(Some(refusal.map_or_else(
                    || {
                        "outgoing HTTP is not configured for this store \
                         (wasmlet_context_set_http_policy)"
                            .to_string()
                    },
                    str::to_string,
                )))
            })?;
            send(policy, request, options).await
        })
    }
}

unsafe fn c_strings(list: *const *const c_char, n: usize, what: &str) -> wasmtime_c_api::wasmtime::Result<Vec<String>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if list.is_null() {
        return Err(format_err!("{what} is NULL with a count of {n}"));
    }
    let items = unsafe { std::slice::from_raw_parts(list, n) };
    items
        .iter()
        .map(|s| unsafe { ffi::c_str(*s, what) }.map(str::to_string))
        .collect()
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasmlet_context_set_http_policy(
    mut cx: WasmtimeStoreContextMut<'_>,
    allowed_hosts: *const *const c_char,
    n_allowed_hosts: usize,
    check: Option<AddrCheckFn>,
    check_data: *mut c_void,
    check_finalizer: Option<extern "C" fn(*mut c_void)>,
    ca_files: *const *const c_char,
    n_ca_files: usize,
) -> CError {
    // Owned before anything can fail, so the finalizer runs exactly once.
    let check = match check {
        Some(f) => Some(AddrCheck::new(f, check_data, check_finalizer)),
        None => {
            if let Some(finalizer) = check_finalizer {
                finalizer(check_data);
            }
            None
        }
    };
    ffi::guard("wasmlet_context_set_http_policy", move || {
        let hosts = if allowed_hosts.is_null() {
            None
        } else {
            let hosts = unsafe { c_strings(allowed_hosts, n_allowed_hosts, "allowed host") }?;
            Some(hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect())
        };
        let mut files: Vec<PathBuf> = unsafe { c_strings(ca_files, n_ca_files, "CA file") }?
            .into_iter()
            .map(PathBuf::from)
            .collect();
        if ca_files.is_null() {
            files.push(PathBuf::from(DEFAULT_CA_BUNDLE));
        }
        for file in &files {
            std::fs::File::open(file)
                .map_err(|e| format_err!("CA file {}: {e}", file.display()))?;
        }
        let policy = HttpPolicy { hosts, check, ca_files: files, tls: OnceLock::new() };
        let table = state::wasi_table(cx.data_mut())?;
        state::get_or_create(table)?.http.hooks.policy = Some(Arc::new(policy));
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_component_linker_add_wasi_http(
    linker: Option<&mut wasmtime_component_linker_t>,
) -> CError {
    ffi::guard("wasmlet_component_linker_add_wasi_http", || {
        let linker = layout::component_linker(linker.ok_or_else(|| format_err!("linker is NULL"))?);
        let options = bindings::LinkOptions::default();
        bindings::sync::http::outgoing_handler::add_to_linker::<_, WasiHttp>(linker, state::http_view)?;
        bindings::sync::http::types::add_to_linker::<_, WasiHttp>(linker, &options.into(), state::http_view)?;
        Ok(())
    })
}
