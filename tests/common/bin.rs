//! Runs the built `clawgate` binary with a clean environment.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_clawgate");

/// What a run printed and how it exited.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(self) -> Out {
        assert_eq!(self.code, 0, "expected success: {self:?}");
        self
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("--json output does not parse ({e}): {self:?}"))
    }
}

/// Runs the binary with a clean environment (HOME in `home`), off the runtime.
pub async fn run_in(home: &Path, args: Vec<String>, env: Vec<(String, String)>) -> Out {
    let home = home.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(BIN)
            .env_clear()
            .env("HOME", &home)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("run clawgate");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

// ---------------------------------------------------------------------------
// The binary as a server (tests/process.rs, tests/crash.rs)

pub fn command(home: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CLAWGATE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

pub struct Proc {
    pub child: Child,
    pub addr: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary and waits (bounded) for it to publish its address.
pub fn spawn(home: &Path, state: &Path, args: &[&str]) -> Proc {
    let runtime = state.join("runtime.json");
    let _ = std::fs::remove_file(&runtime);
    let mut cmd = command(home);
    cmd.arg("serve")
        .arg("--state-dir")
        .arg(state)
        .arg("--port")
        .arg("0")
        .arg("--admin-port")
        .arg("0")
        .args(args);
    let mut child = cmd.spawn().expect("spawn clawgate");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(&runtime) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                if v["pid"].as_u64() == Some(child.id() as u64) {
                    let addr = v["gatewayAddr"].as_str().unwrap().to_string();
                    return Proc { child, addr };
                }
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("clawgate exited early ({status}): {err}");
        }
        assert!(Instant::now() < deadline, "clawgate did not start in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) for a started binary's runtime.json and returns an admin
/// client for it.
pub fn admin_when_started(state: &Path) -> super::http::Admin {
    let runtime = state.join("runtime.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    let runtime_v = loop {
        if let Some(v) = std::fs::read_to_string(&runtime)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        {
            break v;
        }
        assert!(Instant::now() < deadline, "clawgate did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    let admin_addr: std::net::SocketAddr =
        runtime_v["adminAddr"].as_str().unwrap().parse().unwrap();
    let token = std::fs::read_to_string(state.join("admin-token")).unwrap();
    super::http::Admin::new(admin_addr, token.trim())
}

pub fn url(p: &Proc) -> String {
    format!("ws://{}/", p.addr)
}

pub fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let state = dir.path().join("state");
    (dir, home, state)
}

/// `clawgate doctor --json --config <dir>/openclaw.json --state-dir <dir>/state`
/// with a clean environment (HOME in `dir`).
pub async fn doctor_in(dir: &Path, env: Vec<(&str, &str)>) -> Out {
    let args = vec![
        "doctor".to_string(),
        "--json".into(),
        "--config".into(),
        dir.join("openclaw.json").display().to_string(),
        "--state-dir".into(),
        dir.join("state").display().to_string(),
    ];
    let env = env
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    run_in(dir, args, env).await
}
