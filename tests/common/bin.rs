//! Runs the built `clawgate` binary with a clean environment.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};

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
