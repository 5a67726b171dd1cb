//! Serving wasi:http/proxy components: the incoming half of wasi:http,
//! which Wasmtime 48's C API does not have (it has no component
//! `InstancePre` either). Declared for C in src/wasm/wasmlet_capi.h.
//!
//! The split: C opens the listening sockets (inside the pod's network
//! namespace; an accepted connection belongs to its listener's namespace,
//! whichever thread accepts it) and owns the lifecycle, the limits' values,
//! the logs and the metrics; the wrapper serves HTTP/1.1 on those sockets
//! with hyper, on a tokio runtime of its own, and reports each request back
//! through a callback. Each request gets a fresh instance of the pre-linked
//! component (`ProxyPre`), in a store of its own, as `wasmtime serve` does.
//!
//! Per request:
//! - the WASI context is built from the server's template: argv, env, the
//!   preopened mounts, stdout and stderr to the output callback; no sockets
//!   and no name lookup; outgoing wasi:http is refused (its connections
//!   would leave from the node's namespace, not the pod's);
//! - past `max_in_flight` requests in flight, the answer is 503 at once;
//! - the memory limit caps the instance's memories together (`SumLimiter`);
//!   growing past it traps, and the answer is 500;
//! - the request timeout ends the instance wherever it is: a store yields
//!   to tokio at every epoch tick, and a host call is a future, so dropping
//!   the task ends both; the answer is 504 if nothing was answered yet;
//! - the CPU limit throttles all the server's requests together: each
//!   epoch tick a store sees while it runs wasm is charged as one tick of
//!   CPU to the server's budget per 100 ms period (a sampling estimate);
//!   past the budget, the store sleeps until the period ends;
//! - a trap answers 500 (when nothing was answered yet) and is reported.
//!
//! Draining (`wasmlet_http_server_shutdown`): the listeners close, each
//! connection finishes the request it serves and closes, and requests in
//! flight get until the grace period's end; then whatever is left ends.
//!
//! No panic crosses the C ABI: the entry points run under `ffi::guard`, and
//! tasks on the runtime are plain Rust (a panicking task ends only itself).
use crate::ffi::{self, CError};
use crate::http::{HttpHost, PolicyHooks};
use crate::layout;
use crate::limiter::SumLimiter;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use std::ffi::{c_char, c_int, c_void, CString};
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify, Semaphore};
use wasmtime_c_api::wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime_c_api::wasmtime::{format_err, Engine, Result, Store, UpdateDeadline};
use wasmtime_c_api::wasmtime_component_t;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

// `enum wasmlet_http_outcome` in wasmlet_capi.h.
const OUTCOME_ANSWERED: c_int = 0;
const OUTCOME_TRAPPED: c_int = 1;
const OUTCOME_TIMED_OUT: c_int = 2;
const OUTCOME_OVERLOADED: c_int = 3;
const OUTCOME_ENDED: c_int = 4;
const OUTCOME_NO_RESPONSE: c_int = 5;

const CPU_PERIOD: Duration = Duration::from_millis(100);
/// Connections one server keeps open at once; past it, a new connection is
/// closed as soon as it is accepted.
const MAX_CONNECTIONS: usize = 4096;

#[repr(C)]
#[allow(non_camel_case_types)]
pub struct wasmlet_http_mount_t {
    host_path: *const c_char,
    guest_path: *const c_char,
    read_only: bool,
}

#[repr(C)]
#[allow(non_camel_case_types)]
pub struct wasmlet_http_request_log_t {
    method: *const c_char,
    target: *const c_char,
    status: u16,
    outcome: c_int,
    duration_ns: u64,
    instantiate_ns: u64,
    message: *const c_char,
}

type OutputFn = extern "C" fn(*mut c_void, c_int, *const u8, usize);
type RequestDoneFn = extern "C" fn(*mut c_void, *const wasmlet_http_request_log_t);

#[repr(C)]
#[allow(non_camel_case_types)]
pub struct wasmlet_http_server_config_t {
    listen_fds: *const c_int,
    n_listen_fds: usize,
    args: *const *const c_char,
    n_args: usize,
    env: *const *const c_char,
    n_env: usize,
    mounts: *const wasmlet_http_mount_t,
    n_mounts: usize,
    memory_limit: usize,
    max_in_flight: u32,
    request_timeout_ms: u64,
    cpu_millicores: u32,
    epoch_tick_ms: u32,
    output: Option<OutputFn>,
    request_done: Option<RequestDoneFn>,
    callback_data: *mut c_void,
}

/// The C callbacks and their data.
#[derive(Clone, Copy)]
struct Callbacks {
    output: Option<OutputFn>,
    request_done: Option<RequestDoneFn>,
    data: *mut c_void,
}

// SAFETY: the header requires the callbacks to be callable from any thread
// and their data to allow that, until `wasmlet_http_server_delete` returns.
unsafe impl Send for Callbacks {}
unsafe impl Sync for Callbacks {}

/// What every request's WASI context is built from.
struct Template {
    args: Vec<String>,
    env: Vec<(String, String)>,
    mounts: Vec<(PathBuf, String, bool)>,
}

/// The CPU budget shared by a server's requests.
struct CpuBudget {
    quota: Duration,
    tick: Duration,
    period: Mutex<(Instant, Duration)>,
}

impl CpuBudget {
    /// Charges one tick; when the period's budget is spent, the time to
    /// wait for the next period.
    fn charge(&self) -> Option<Instant> {
        let mut period = self.period.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if now.duration_since(period.0) >= CPU_PERIOD {
            *period = (now, Duration::ZERO);
        }
        period.1 += self.tick;
        (period.1 > self.quota).then(|| period.0 + CPU_PERIOD)
    }
}

struct Shared {
    pre: ProxyPre<ServeState>,
    template: Template,
    memory_limit: usize,
    timeout: Duration,
    max_in_flight: u32,
    permits: Arc<Semaphore>,
    cpu: Option<Arc<CpuBudget>>,
    cb: Callbacks,
    /// true: stop accepting, close connections once idle. Raised with
    /// `send_replace`, which stores the value even while no task has
    /// subscribed yet (`send` would drop it).
    draining: watch::Sender<bool>,
    /// true: end every request and connection now.
    killed: watch::Sender<bool>,
    /// Accept loops, connections and instances alive; `idle` is notified
    /// each time one ends.
    tasks: AtomicUsize,
    connections: AtomicUsize,
    idle: Notify,
}

/// Counts a task of the server while it lives.
struct TaskGuard(Arc<Shared>);

impl TaskGuard {
    fn new(shared: &Arc<Shared>) -> TaskGuard {
        shared.tasks.fetch_add(1, Ordering::SeqCst);
        TaskGuard(shared.clone())
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.tasks.fetch_sub(1, Ordering::SeqCst);
        self.0.idle.notify_waiters();
    }
}

#[allow(non_camel_case_types)]
pub struct wasmlet_http_server_t {
    shared: Arc<Shared>,
    shut_down: bool,
}

/// One tokio runtime serves every server of the process: its worker
/// threads run the instances, so they are as many as the cores.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("wasmlet-http")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| format_err!("cannot start the HTTP serving runtime: {e}"))
}

/// Starts the serving runtime's threads now, on the calling thread's
/// network namespace (they inherit it): the node calls this from its main
/// thread, in the host's namespace, so that no serving thread holds a pod's
/// namespace alive. Idempotent.
#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_http_runtime_start() -> CError {
    ffi::guard("wasmlet_http_runtime_start", || runtime().map(|_| ()))
}

// --- the store of one request ------------------------------------------------------

struct ServeState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: HttpHost,
    limiter: SumLimiter,
}

impl WasiView for ServeState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for ServeState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http.ctx,
            hooks: &mut self.http.hooks,
            table: &mut self.table,
        }
    }
}

/// stdout or stderr of an instance, written through the output callback.
#[derive(Clone)]
struct Output {
    cb: Callbacks,
    stream: c_int,
}

impl Output {
    fn emit(&self, buf: &[u8]) {
        if let Some(output) = self.cb.output {
            output(self.cb.data, self.stream, buf.as_ptr(), buf.len());
        }
    }
}

impl IsTerminal for Output {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Output {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for Output {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.emit(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

fn new_store(shared: &Shared) -> Result<Store<ServeState>> {
    let t = &shared.template;
    let mut b = WasiCtxBuilder::new();
    b.args(&t.args).envs(&t.env);
    for (host, guest, read_only) in &t.mounts {
        let perms = if *read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        b.preopened_dir(host, guest, perms)
            .map_err(|e| format_err!("mount {guest}: {e}"))?;
    }
    b.stdout(Output {
        cb: shared.cb,
        stream: 1,
    });
    b.stderr(Output {
        cb: shared.cb,
        stream: 2,
    });
    let http = HttpHost {
        hooks: PolicyHooks::refusing("outgoing HTTP from a served component is not supported by wasmlet yet"),
        ..HttpHost::default()
    };
    let limit = if shared.memory_limit > 0 {
        shared.memory_limit
    } else {
        usize::MAX
    };
    let state = ServeState {
        wasi: b.build(),
        table: ResourceTable::new(),
        http,
        limiter: SumLimiter::new(limit),
    };
    let mut store = Store::new(shared.pre.engine(), state);
    store.limiter(|s| &mut s.limiter);
    store.set_epoch_deadline(1);
    let cpu = shared.cpu.clone();
    store.epoch_deadline_callback(move |_| {
        if let Some(until) = cpu.as_ref().and_then(|c| c.charge()) {
            let sleep = tokio::time::sleep_until(until.into());
            return Ok(UpdateDeadline::YieldCustom(1, Box::pin(sleep)));
        }
        Ok(UpdateDeadline::Yield(1))
    });
    Ok(store)
}

// --- one request ---------------------------------------------------------------------

/// What is known of a request; reported through `request_done` when the
/// last holder (the handler answering it, or the instance serving it) lets
/// go. It holds the request's in-flight permit until then.
struct Exchange {
    shared: Arc<Shared>,
    method: String,
    target: String,
    start: Instant,
    status: AtomicU16,
    instantiate_ns: AtomicU64,
    /// (outcome, message); OUTCOME_ANSWERED with no message until told.
    end: Mutex<(c_int, Option<String>)>,
    answered: AtomicBool,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Exchange {
    fn end(&self, outcome: c_int, message: String) {
        let mut end = self.end.lock().unwrap_or_else(|e| e.into_inner());
        if end.0 == OUTCOME_ANSWERED {
            *end = (outcome, Some(message));
        }
    }
    fn outcome(&self) -> (c_int, Option<String>) {
        self.end.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn c_text(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let Some(done) = self.shared.cb.request_done else {
            return;
        };
        let (outcome, message) = self.outcome();
        let method = c_text(&self.method);
        let target = c_text(&self.target);
        let message = message.map(|m| c_text(&m));
        let log = wasmlet_http_request_log_t {
            method: method.as_ptr(),
            target: target.as_ptr(),
            status: self.status.load(Ordering::SeqCst),
            outcome,
            duration_ns: self.start.elapsed().as_nanos() as u64,
            instantiate_ns: self.instantiate_ns.load(Ordering::SeqCst),
            message: message.as_ref().map_or(std::ptr::null(), |m| m.as_ptr()),
        };
        done(self.shared.cb.data, &log);
    }
}

fn plain(status: u16, text: String) -> hyper::Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut resp = hyper::Response::new(body);
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Runs one instance for the request to its end (or the deadline, or a
/// kill), recording how it ended in `ex`.
async fn run_instance(
    ex: Arc<Exchange>,
    mut store: Store<ServeState>,
    req: wasmtime_c_api::wasmtime::component::Resource<wasmtime_wasi_http::p2::types::HostIncomingRequest>,
    out: wasmtime_c_api::wasmtime::component::Resource<wasmtime_wasi_http::p2::types::HostResponseOutparam>,
    deadline: tokio::time::Instant,
) {
    let shared = ex.shared.clone();
    let mut killed = shared.killed.subscribe();
    let work = async {
        let t0 = Instant::now();
        let proxy = shared.pre.instantiate_async(&mut store).await?;
        ex.instantiate_ns
            .store(t0.elapsed().as_nanos() as u64, Ordering::SeqCst);
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, req, out)
            .await
    };
    tokio::select! {
        r = tokio::time::timeout_at(deadline, work) => match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => ex.end(OUTCOME_TRAPPED, format!("{e:?}")),
            Err(_) => ex.end(
                OUTCOME_TIMED_OUT,
                format!("the request timed out after {} ms", shared.timeout.as_millis()),
            ),
        },
        _ = raised(&mut killed) => ex.end(OUTCOME_ENDED, "the server stopped".to_string()),
    }
    drop(store);
}

async fn handle(
    shared: Arc<Shared>,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<HyperOutgoingBody>, std::convert::Infallible> {
    let permit = shared.permits.clone().try_acquire_owned().ok();
    let overloaded = permit.is_none();
    let ex = Arc::new(Exchange {
        shared: shared.clone(),
        method: req.method().to_string(),
        target: req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string(),
        start: Instant::now(),
        status: AtomicU16::new(0),
        instantiate_ns: AtomicU64::new(0),
        end: Mutex::new((OUTCOME_ANSWERED, None)),
        answered: AtomicBool::new(false),
        _permit: permit,
    });
    let answer = |ex: &Exchange, status: u16, text: String| {
        ex.status.store(status, Ordering::SeqCst);
        plain(status, text)
    };
    if overloaded {
        let msg = format!("too many requests in flight (limit {})", shared.max_in_flight);
        ex.end(OUTCOME_OVERLOADED, msg.clone());
        return Ok(answer(&ex, 503, format!("wasmlet: {msg}\n")));
    }
    let deadline = tokio::time::Instant::from_std(ex.start + shared.timeout);
    let mut store = match new_store(&shared) {
        Ok(store) => store,
        Err(e) => {
            ex.end(OUTCOME_TRAPPED, format!("{e:?}"));
            return Ok(answer(&ex, 500, format!("wasmlet: {e}\n")));
        }
    };
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let exs = ex.clone();
    let prepared = (|| -> Result<_> {
        let mut http = store.data_mut().http();
        let req = http.new_incoming_request(Scheme::Http, req)?;
        let out = http.new_response_outparam_from_callback(move |r| {
            if let Ok(resp) = &r {
                exs.status.store(resp.status().as_u16(), Ordering::SeqCst);
                exs.answered.store(true, Ordering::SeqCst);
            }
            let _ = sender.send(r);
        })?;
        Ok((req, out))
    })();
    let (req, out) = match prepared {
        Ok(x) => x,
        Err(e) => {
            ex.end(OUTCOME_NO_RESPONSE, format!("{e}"));
            return Ok(answer(&ex, 400, format!("wasmlet: bad request: {e}\n")));
        }
    };
    tokio::spawn({
        let ex = ex.clone();
        let guard = TaskGuard::new(&shared);
        async move {
            run_instance(ex, store, req, out, deadline).await;
            drop(guard);
        }
    });
    match receiver.await {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(code)) => {
            let msg = format!("the component answered with an error: {code:?}");
            ex.end(OUTCOME_NO_RESPONSE, msg.clone());
            Ok(answer(&ex, 500, format!("wasmlet: {msg}\n")))
        }
        // The store was dropped without an answer: the instance ended.
        Err(_) => Ok(match ex.outcome() {
            (OUTCOME_TIMED_OUT, Some(m)) => answer(&ex, 504, format!("wasmlet: {m}\n")),
            (OUTCOME_ENDED, Some(m)) => answer(&ex, 503, format!("wasmlet: {m}\n")),
            (OUTCOME_TRAPPED, _) => answer(&ex, 500, "wasmlet: the component trapped\n".to_string()),
            _ => {
                let msg = "the component returned without setting a response".to_string();
                ex.end(OUTCOME_NO_RESPONSE, msg.clone());
                answer(&ex, 500, format!("wasmlet: {msg}\n"))
            }
        }),
    }
}

// --- connections ---------------------------------------------------------------------

/// Returns once the flag is (or was) raised; also when its sender is gone.
async fn raised(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|v| *v).await;
}

/// `_guard` is taken before the task is spawned, so that a shutdown never
/// sees "no task left" while one is about to start.
async fn serve_connection(shared: Arc<Shared>, stream: tokio::net::TcpStream, _guard: TaskGuard) {
    let mut draining = shared.draining.subscribe();
    let mut killed = shared.killed.subscribe();
    let svc_shared = shared.clone();
    let svc = hyper::service::service_fn(move |req| handle(svc_shared.clone(), req));
    let conn = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let drain = tokio::select! {
        _ = conn.as_mut() => false,
        _ = raised(&mut draining) => true,
        _ = raised(&mut killed) => false,
    };
    if drain {
        conn.as_mut().graceful_shutdown();
        tokio::select! {
            _ = conn.as_mut() => {}
            _ = raised(&mut killed) => {}
        }
    }
    shared.connections.fetch_sub(1, Ordering::SeqCst);
}

async fn accept_loop(shared: Arc<Shared>, listener: tokio::net::TcpListener, _guard: TaskGuard) {
    let mut draining = shared.draining.subscribe();
    loop {
        tokio::select! {
            _ = raised(&mut draining) => break,
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    if shared.connections.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                        shared.connections.fetch_sub(1, Ordering::SeqCst);
                        continue; // dropped: closed at once
                    }
                    let _ = stream.set_nodelay(true);
                    let guard = TaskGuard::new(&shared);
                    tokio::spawn(serve_connection(shared.clone(), stream, guard));
                }
                // Out of descriptors or similar: wait a little, go on.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
    // Closed before the guard counts this task out: once the shutdown sees
    // no task left, nothing listens any more.
    drop(listener);
}

// --- the C entry points -----------------------------------------------------------

unsafe fn strings(list: *const *const c_char, n: usize, what: &str) -> Result<Vec<String>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if list.is_null() {
        return Err(format_err!("{what} is NULL with a count of {n}"));
    }
    unsafe { std::slice::from_raw_parts(list, n) }
        .iter()
        .map(|s| unsafe { ffi::c_str(*s, what) }.map(str::to_string))
        .collect()
}

unsafe fn template(c: &wasmlet_http_server_config_t) -> Result<Template> {
    let args = unsafe { strings(c.args, c.n_args, "argument") }?;
    let env = unsafe { strings(c.env, c.n_env, "environment variable") }?
        .into_iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv, String::new()),
        })
        .collect();
    let mut mounts = Vec::new();
    if c.n_mounts > 0 {
        if c.mounts.is_null() {
            return Err(format_err!("mounts is NULL with a count of {}", c.n_mounts));
        }
        for m in unsafe { std::slice::from_raw_parts(c.mounts, c.n_mounts) } {
            let host = unsafe { ffi::c_str(m.host_path, "mount host path") }?;
            let guest = unsafe { ffi::c_str(m.guest_path, "mount guest path") }?;
            mounts.push((PathBuf::from(host), guest.to_string(), m.read_only));
        }
    }
    Ok(Template { args, env, mounts })
}

fn linker(engine: &Engine) -> Result<Linker<ServeState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    Ok(linker)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasmlet_http_server_start(
    component: Option<&wasmtime_component_t>,
    config: Option<&wasmlet_http_server_config_t>,
    out: Option<&mut *mut wasmlet_http_server_t>,
) -> CError {
    ffi::guard("wasmlet_http_server_start", move || {
        let component: &Component =
            layout::component(component.ok_or_else(|| format_err!("component is NULL"))?);
        let c = config.ok_or_else(|| format_err!("config is NULL"))?;
        let out = out.ok_or_else(|| format_err!("out is NULL"))?;
        if c.n_listen_fds == 0 || c.listen_fds.is_null() {
            return Err(format_err!("no listening socket"));
        }
        if c.max_in_flight == 0 || c.request_timeout_ms == 0 {
            return Err(format_err!(
                "max_in_flight and request_timeout_ms must be positive"
            ));
        }
        let template = unsafe { template(c) }?;
        let pre = ProxyPre::new(linker(component.engine())?.instantiate_pre(component)?)?;
        let rt = runtime()?;
        let tick = Duration::from_millis(u64::from(c.epoch_tick_ms.max(1)));
        let cpu = (c.cpu_millicores > 0).then(|| {
            Arc::new(CpuBudget {
                quota: CPU_PERIOD * c.cpu_millicores / 1000,
                tick,
                period: Mutex::new((Instant::now(), Duration::ZERO)),
            })
        });
        let fds = unsafe { std::slice::from_raw_parts(c.listen_fds, c.n_listen_fds) };
        let mut listeners = Vec::new();
        {
            let _enter = rt.enter();
            for &fd in fds {
                // SAFETY: the header hands each descriptor over on success;
                // on failure they are handed back (forgotten here, below).
                let std = unsafe { std::net::TcpListener::from_raw_fd(fd) };
                let listener = std
                    .set_nonblocking(true)
                    .and_then(|()| tokio::net::TcpListener::from_std(std));
                match listener {
                    Ok(l) => listeners.push(l),
                    Err(e) => {
                        for l in listeners {
                            std::mem::forget(l.into_std());
                        }
                        return Err(format_err!("listening socket {fd}: {e}"));
                    }
                }
            }
        }
        let shared = Arc::new(Shared {
            pre,
            template,
            memory_limit: c.memory_limit,
            timeout: Duration::from_millis(c.request_timeout_ms),
            max_in_flight: c.max_in_flight,
            permits: Arc::new(Semaphore::new(c.max_in_flight as usize)),
            cpu,
            cb: Callbacks {
                output: c.output,
                request_done: c.request_done,
                data: c.callback_data,
            },
            draining: watch::channel(false).0,
            killed: watch::channel(false).0,
            tasks: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            idle: Notify::new(),
        });
        for listener in listeners {
            let guard = TaskGuard::new(&shared);
            rt.spawn(accept_loop(shared.clone(), listener, guard));
        }
        *out = Box::into_raw(Box::new(wasmlet_http_server_t {
            shared,
            shut_down: false,
        }));
        Ok(())
    })
}

/// Waits until `done` holds or the deadline passes; true if it holds.
async fn wait_until(shared: &Shared, deadline: tokio::time::Instant, done: impl Fn(&Shared) -> bool) -> bool {
    loop {
        let notified = shared.idle.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if done(shared) {
            return true;
        }
        // A short poll as well: a permit returned without a task ending
        // (a 503) notifies nobody.
        let step = tokio::time::Instant::now() + Duration::from_millis(20);
        if tokio::time::timeout_at(deadline.min(step), notified)
            .await
            .is_err()
            && tokio::time::Instant::now() >= deadline
        {
            return done(shared);
        }
    }
}

fn shutdown(server: &mut wasmlet_http_server_t, grace_ms: u64) -> usize {
    if server.shut_down {
        return 0;
    }
    server.shut_down = true;
    let shared = server.shared.clone();
    let Ok(rt) = runtime() else { return 0 };
    rt.block_on(async move {
        shared.draining.send_replace(true);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(grace_ms);
        let max = shared.max_in_flight as usize;
        wait_until(&shared, deadline, |s| {
            s.tasks.load(Ordering::SeqCst) == 0 && s.permits.available_permits() == max
        })
        .await;
        let left = max.saturating_sub(shared.permits.available_permits());
        shared.killed.send_replace(true);
        // Everything yields at its next epoch tick or host call: bounded.
        let end = tokio::time::Instant::now() + Duration::from_secs(5);
        wait_until(&shared, end, |s| s.tasks.load(Ordering::SeqCst) == 0).await;
        left
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_http_server_shutdown(
    server: Option<&mut wasmlet_http_server_t>,
    grace_ms: u64,
) -> usize {
    server.map_or(0, |server| ffi::guard_or(0, || shutdown(server, grace_ms)))
}

#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_http_server_in_flight(server: Option<&wasmlet_http_server_t>) -> usize {
    server.map_or(0, |s| {
        (s.shared.max_in_flight as usize).saturating_sub(s.shared.permits.available_permits())
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn wasmlet_http_server_delete(server: *mut wasmlet_http_server_t) {
    if server.is_null() {
        return;
    }
    // SAFETY: the pointer came from `wasmlet_http_server_start`.
    let mut server = unsafe { Box::from_raw(server) };
    ffi::guard_or(0, || shutdown(&mut server, 0));
}
