//! The gateway's HTTP/WebSocket listeners. A port or bind change starts a new
//! listener first; the old one then stops (its accept thread closes the
//! socket, its HTTP workers finish their requests) while the sessions it
//! accepted, which run on the sessions runtime, go on until they disconnect.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App};

use super::GatewayState;

/// WebSocket connections open on one listener.
pub type Conns = Arc<std::sync::atomic::AtomicUsize>;

/// One bound gateway listener.
pub struct Listener {
    /// Open WebSocket connections (a retired listener stops when none is left).
    pub conns: Conns,
    /// The configured (bind, port) this listener was started for.
    pub spec: (IpAddr, u16),
    pub addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

fn bind_socket(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // "::" means IPv6 only here; bind 0.0.0.0 for IPv4.
        let _ = socket.set_only_v6(true);
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Binds `bind:port` and starts serving the gateway on it.
pub fn start(
    state: Arc<GatewayState>,
    bind: IpAddr,
    port: u16,
    workers: usize,
) -> std::io::Result<Listener> {
    let socket = bind_socket(SocketAddr::new(bind, port))?;
    let addr = socket.local_addr()?;
    let conns: Conns = Default::default();
    let (app_state, app_conns) = (state, conns.clone());
    let server = actix_server::Server::build()
        .workers(workers)
        .disable_signals()
        .max_concurrent_connections(200_000)
        .shutdown_timeout(2)
        .listen("clawgate-gateway", socket, move || {
            let (st, cn) = (app_state.clone(), app_conns.clone());
            let app = App::new()
                .app_data(web::Data::new(st.clone()))
                .configure(super::configure);
            let upgrade = actix_service::fn_factory(move || {
                let (st, cn) = (st.clone(), cn.clone());
                async move {
                    Ok::<_, ()>(actix_service::fn_service(
                        move |(req, framed): (
                            actix_http::Request,
                            actix_codec::Framed<tokio::net::TcpStream, actix_http::h1::Codec>,
                        )| {
                            super::upgrade_entry(st.clone(), cn.clone(), req, framed)
                        },
                    ))
                }
            });
            actix_http::HttpService::build()
                .client_request_timeout(Duration::from_secs(10))
                .client_disconnect_timeout(Duration::from_millis(200))
                .local_addr(addr)
                .upgrade(upgrade)
                .finish(actix_service::map_config(app, move |_| {
                    actix_web::dev::AppConfig::default()
                }))
                .tcp()
        })?
        .run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(Listener {
        conns,
        spec: (bind, port),
        addr,
        handle,
        task,
    })
}

/// A listener that has stopped: the sessions it accepted go on, counted in
/// `conns`.
pub struct Retired {
    pub addr: SocketAddr,
    pub conns: Conns,
}

impl Listener {
    /// Stops the listener (see [`Listener::stop`]); its address is free when
    /// this returns.
    pub async fn retire(self) -> Retired {
        let retired = Retired {
            addr: self.addr,
            conns: self.conns.clone(),
        };
        self.stop().await;
        retired
    }

    /// Stops accepting, releases the address and lets the HTTP workers
    /// finish (graceful, bounded by the shutdown timeout). Sessions already
    /// accepted go on; they run on the sessions runtime.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.task.await;
    }
}

/// Workers per listener: `gateway.limits.workers`, 0 = one per core.
pub fn workers(configured: usize) -> usize {
    match configured {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
        n => n,
    }
}
