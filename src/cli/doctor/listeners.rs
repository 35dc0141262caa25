//! Check 3: both listeners answer, or the configured ports are free.

use super::*;

// ---------------------------------------------------------------- 3. listeners

/// Where a running clawgate answers (when it does).
#[derive(Default)]
pub(super) struct Live {
    pub(super) gateway: Option<SocketAddr>,
    /// Admin API base URL.
    pub(super) admin: Option<String>,
}

pub(super) struct RuntimeFile {
    pub(super) gateway: Option<SocketAddr>,
    pub(super) admin: Option<SocketAddr>,
    pub(super) pid: Option<u32>,
}

/// Reads `<state dir>/runtime.json`; `Err` carries why it could not be used.
pub(super) fn read_runtime(state_dir: &Path) -> Result<Option<RuntimeFile>, String> {
    let file = state_dir.join("runtime.json");
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
    };
    let v: Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", file.display()))?;
    let addr = |k: &str| v[k].as_str().and_then(|a| a.parse::<SocketAddr>().ok());
    Ok(Some(RuntimeFile {
        gateway: addr("gatewayAddr"),
        admin: addr("adminAddr"),
        pid: v["pid"].as_u64().and_then(|p| u32::try_from(p).ok()),
    }))
}

pub(super) fn pid_alive(pid: u32) -> bool {
    let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(p) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

/// An unspecified bind address (0.0.0.0 / ::) replaced by loopback.
pub(super) fn connectable(mut a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => a.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V6(ip) if ip.is_unspecified() => a.set_ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        _ => {}
    }
    a
}

/// `GET <base>/healthz` must answer 200.
pub(super) fn healthz(base: &str) -> Result<(), String> {
    let client = crate::admin::client::Client::with(base, None, HTTP_TIMEOUT, "clawgate-doctor");
    match client.get("/healthz") {
        Ok(a) if a.status == 200 => Ok(()),
        Ok(a) => Err(format!("answered HTTP {}", a.status)),
        Err(crate::admin::client::Transport::TimedOut) => Err("no answer (timed out)".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// What a person typed as `--admin-url`, as a base URL (any scheme is
/// kept: the probe then says what answered).
pub(super) fn normalize_url(url: &str) -> String {
    crate::admin::client::normalize_base(url)
        .unwrap_or_else(|_| url.trim().trim_end_matches('/').to_string())
}

pub(super) fn check_listeners(
    ctx: &Ctx,
    args: &DoctorArgs,
    cfg: Option<&RuntimeConfig>,
) -> (Check, Live) {
    let admin_flag = args
        .admin_url
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(normalize_url);
    let mut notes = vec![];
    let runtime = match read_runtime(&ctx.state_dir) {
        Ok(r) => r,
        Err(e) => {
            notes.push(e);
            None
        }
    };
    let runtime_file = ctx.state_dir.join("runtime.json");
    if let Some(rt) = runtime {
        match rt.pid {
            Some(pid) if !pid_alive(pid) => notes.push(format!(
                "{} names pid {pid}, which is not running (clawgate was killed or crashed; the file is rewritten at the next start)",
                runtime_file.display()
            )),
            _ => {
                let admin = admin_flag
                    .clone()
                    .or(rt.admin.map(|a| format!("http://{}", connectable(a))));
                let (c, live) = probe_running(
                    ctx,
                    rt.gateway.map(connectable),
                    admin,
                    rt.pid,
                    notes.clone(),
                );
                // Nothing answers and the pid now belongs to another program:
                // clawgate died without removing the file and the pid was reused.
                let other = rt
                    .pid
                    .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).ok())
                    .map(|n| n.trim().to_string())
                    .filter(|n| n != "clawgate");
                match other {
                    Some(name) if live.gateway.is_none() && live.admin.is_none() => {
                        notes.push(format!(
                            "{} names pid {}, which is now {name}, not clawgate (clawgate was killed or crashed; the file is rewritten at the next start)",
                            runtime_file.display(),
                            rt.pid.unwrap_or(0)
                        ));
                    }
                    _ => return (c, live),
                }
            }
        }
    }
    // Not running according to runtime.json. An explicit --admin-url still
    // names a running instance.
    if let Some(admin) = admin_flag {
        let gw = cfg.map(|c| connectable(SocketAddr::new(c.gateway.bind, c.gateway.port)));
        return probe_running(ctx, gw, Some(admin), None, notes);
    }
    let Some(cfg) = cfg else {
        let mut c = Check::new(
            "listeners",
            Status::Skip,
            format!(
                "skipped: clawgate is not running (no live runtime.json in {}) and the config did not load, so the ports are unknown",
                ctx.state_dir.display()
            ),
        );
        c.details = notes;
        return (c, Live::default());
    };
    let mut c = Check::new("listeners", Status::Ok, "");
    c.details = notes;
    let g = &cfg.gateway;
    let mut free = vec![];
    for (what, ip, port, key, flag) in [
        ("gateway", g.bind, g.port, "gateway.port", "--port"),
        (
            "admin API",
            g.admin.bind,
            g.admin.port,
            "gateway.admin.port",
            "--admin-port",
        ),
    ] {
        if port == 0 {
            c.details.push(format!(
                "the {what} port is 0: a free port is picked at start"
            ));
            continue;
        }
        let addr = SocketAddr::new(ip, port);
        match TcpListener::bind(addr) {
            Ok(l) => {
                drop(l);
                free.push(format!("{what} {addr}"));
            }
            Err(e) => {
                c.raise(Status::Fail);
                let (finding, fixes) = bind_failure(ctx, what, addr, key, flag, &e);
                if c.summary.is_empty() {
                    c.summary = finding.clone();
                } else {
                    c.details.push(finding);
                }
                for f in fixes {
                    c.add_fix(f);
                }
            }
        }
    }
    if c.status == Status::Ok {
        c.status = Status::Warn;
        c.summary = format!(
            "clawgate is not running (no live runtime.json in {}); its ports are free{}",
            ctx.state_dir.display(),
            if free.is_empty() {
                String::new()
            } else {
                format!(" ({})", free.join(", "))
            }
        );
        c.add_fix(format!("start it: `{}`", ctx.serve_cmd));
        c.add_fix(
            "if it runs with another state dir, pass that one: `clawgate doctor --state-dir DIR`",
        );
    }
    (c, Live::default())
}

/// Why a configured port cannot be bound, and how to fix it.
pub(super) fn bind_failure(
    ctx: &Ctx,
    what: &str,
    addr: SocketAddr,
    key: &str,
    flag: &str,
    e: &std::io::Error,
) -> (String, Vec<String>) {
    let (ip, port) = (addr.ip(), addr.port());
    let other_port = format!(
        "or use another port: set {key} {} (or start with `clawgate serve {flag} <N>`)",
        ctx.in_file()
    );
    match e.kind() {
        ErrorKind::AddrInUse => match listener_owner(port) {
            Some((pid, name)) if name == "clawgate" => (
                format!(
                    "{what} port {port} on {ip} is in use by another clawgate (pid {pid}) that keeps its state elsewhere (this doctor looked in {})",
                    ctx.state_dir.display()
                ),
                vec![
                    format!("check that one: `clawgate doctor --state-dir <its state dir>`"),
                    format!("or stop it: `kill {pid}`"),
                    other_port,
                ],
            ),
            Some((pid, name)) => (
                format!("{what} port {port} on {ip} is in use by another process (pid {pid}, {name})"),
                vec![format!("stop that process (`kill {pid}`)"), other_port],
            ),
            None => (
                format!("{what} port {port} on {ip} is in use by another process"),
                vec![
                    format!("find it with `ss -ltnp 'sport = :{port}'` and stop it"),
                    other_port,
                ],
            ),
        },
        ErrorKind::AddrNotAvailable => (
            format!("cannot listen on {ip}: it is not an address of this machine"),
            vec![format!(
                "set gateway.bind {} to \"loopback\", \"lan\" or one of this machine's addresses",
                ctx.in_file()
            )],
        ),
        ErrorKind::PermissionDenied => (
            format!("{what} port {port} on {ip} needs privileges clawgate does not have (ports below 1024)"),
            vec![format!("use a port from 1024 up: set {key} {}", ctx.in_file())],
        ),
        _ => (
            format!("cannot listen on {addr} for the {what}: {e}"),
            vec![other_port],
        ),
    }
}

/// The process (pid, command name) listening on TCP `port`, from /proc.
pub(super) fn listener_owner(port: u16) -> Option<(u32, String)> {
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(text.lines().skip(1).filter_map(|l| listen_inode(l, port)));
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let inode = link
                .to_str()
                .and_then(|s| s.strip_prefix("socket:["))
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse::<u64>().ok());
            if inode.is_some_and(|i| inodes.contains(&i)) {
                let name = std::fs::read_to_string(entry.path().join("comm"))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|_| "?".into());
                return Some((pid, name));
            }
        }
    }
    None
}

/// The socket inode of a `/proc/net/tcp` line when it is a listener on `port`.
pub(super) fn listen_inode(line: &str, port: u16) -> Option<u64> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 10 || f[3] != "0A" {
        return None;
    }
    let (_, p) = f[1].rsplit_once(':')?;
    if u16::from_str_radix(p, 16).ok()? != port {
        return None;
    }
    f[9].parse::<u64>().ok().filter(|i| *i != 0)
}

/// Both listeners of a running instance must answer `/healthz`.
pub(super) fn probe_running(
    ctx: &Ctx,
    gateway: Option<SocketAddr>,
    admin: Option<String>,
    pid: Option<u32>,
    notes: Vec<String>,
) -> (Check, Live) {
    let who = pid
        .map(|p| format!("clawgate (pid {p})"))
        .unwrap_or_else(|| "clawgate".into());
    let mut c = Check::new("listeners", Status::Ok, "");
    c.details = notes;
    let mut live = Live::default();
    let mut answered = vec![];
    match gateway {
        Some(g) => match healthz(&format!("http://{g}")) {
            Ok(()) => {
                live.gateway = Some(g);
                answered.push(format!("gateway ws://{g}"));
            }
            Err(e) => {
                c.raise(Status::Fail);
                c.details.push(format!(
                    "the gateway listener http://{g}/healthz does not answer: {e}"
                ));
            }
        },
        None => {
            c.raise(Status::Fail);
            c.details.push(format!(
                "{} has no usable gatewayAddr",
                ctx.state_dir.join("runtime.json").display()
            ));
        }
    }
    match &admin {
        Some(a) => match healthz(a) {
            Ok(()) => {
                live.admin = Some(a.clone());
                answered.push(format!("admin API {a}"));
            }
            Err(e) => {
                c.raise(Status::Fail);
                c.details
                    .push(format!("the admin API {a}/healthz does not answer: {e}"));
            }
        },
        None => {
            c.raise(Status::Fail);
            c.details.push(format!(
                "{} has no usable adminAddr",
                ctx.state_dir.join("runtime.json").display()
            ));
        }
    }
    if c.status == Status::Ok {
        c.summary = format!("{who} answers: {}", answered.join(", "));
    } else {
        c.summary = format!(
            "{who} is not answering on every listener{}",
            if answered.is_empty() {
                String::new()
            } else {
                format!(" (answers: {})", answered.join(", "))
            }
        );
        match pid {
            Some(p) => c.add_fix(format!(
                "look at the log of pid {p}; if it hangs, restart it: `kill {p}` then `{}`",
                ctx.serve_cmd
            )),
            None => c.add_fix(format!("restart clawgate: `{}`", ctx.serve_cmd)),
        }
    }
    (c, live)
}
