//! Configuration loading and validation: the messages users see.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clawgate::config::{
    self, AuthMode, ConfigCode, ConfigError, LoadOptions, RuntimeConfig, SecretSource,
};

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        Case {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn file(&self, text: &str) -> PathBuf {
        let p = self.dir.path().join("openclaw.json");
        std::fs::write(&p, text).unwrap();
        p
    }
    fn opts(&self, path: Option<PathBuf>, env: &[(&str, &str)]) -> LoadOptions {
        LoadOptions {
            config_path: path,
            state_dir: Some(self.dir.path().join("state")),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            generate_token: true,
            ..Default::default()
        }
    }
    fn load(&self, text: &str) -> Result<RuntimeConfig, ConfigError> {
        let p = self.file(text);
        config::load(&self.opts(Some(p), &[]))
    }
    fn err(&self, text: &str) -> String {
        self.load(text).expect_err("invalid").to_string()
    }
}

#[test]
fn json5_features_and_defaults() {
    let c = Case::new();
    let cfg = c
        .load("// my gateway\n{\n  gateway: {\n    port: 18790,\n    auth: { mode: 'token', token: 'a-long-enough-token-123', },\n    trustedProxies: ['10.0.0.0/8', '::ffff:172.16.0.0/108', '127.0.0.1'],\n  },\n  models: { anything: true },\n}\n")
        .unwrap();
    let g = &cfg.gateway;
    assert_eq!(g.port, 18790);
    assert_eq!(g.bind.to_string(), "127.0.0.1");
    assert_eq!(g.auth.mode, AuthMode::Token);
    assert_eq!(g.auth.token_source, SecretSource::File);
    let proxies: Vec<String> = g.trusted_proxies.iter().map(|n| n.to_string()).collect();
    assert_eq!(proxies, vec!["10.0.0.0/8", "172.16.0.0/12", "127.0.0.1/32"]);
    assert!(g.node_pairing.auto_approve_local);
    assert_eq!(g.pairing.pending_ttl_ms, 300_000);
    assert_eq!(g.limits.handshake_timeout_ms, 15_000);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    assert!(cfg.is_trusted_proxy(&"::ffff:10.9.9.9".parse().unwrap()));
}

#[test]
fn auth_given_as_a_string() {
    let c = Case::new();
    let e = c.err("{\n  gateway: {\n    auth: \"token\",\n  },\n}\n");
    assert!(e.contains("openclaw.json:3:5: gateway.auth: found the string \"token\", but auth is an object; write auth: { mode: \"token\", token: \"<secret>\" }"), "{e}");
    let e = c.err("{ gateway: { auth: 'none' } }");
    assert!(
        e.contains("to turn shared-secret auth off write auth: { mode: \"none\" }"),
        "{e}"
    );
    let e = c.err("{ gateway: { auth: { type: 'token', token: 'abcdefghijklmnopq' } } }");
    assert!(
        e.contains("gateway.auth.type: is not a key; the auth mode is gateway.auth.mode"),
        "{e}"
    );
    let e = c.err("{ gateway: { auth: 42 } }");
    assert!(
        e.contains("gateway.auth: expected an object, found the number 42"),
        "{e}"
    );
}

#[test]
fn empty_undefined_null_and_redacted_tokens() {
    let c = Case::new();
    for (tok, shown) in [
        ("", "is empty"),
        ("undefined", "the text \"undefined\""),
        ("null", "the text \"null\""),
        ("  ", "is empty"),
    ] {
        let e = c.err(&format!(
            "{{ gateway: {{ auth: {{ mode: 'token', token: '{tok}' }} }} }}"
        ));
        assert!(
            e.contains("gateway.auth.token") && e.contains(shown),
            "{tok:?}: {e}"
        );
        assert!(e.contains("not a token"), "{e}");
    }
    let e = c.err("{ gateway: { auth: { token: '__OPENCLAW_REDACTED__' } } }");
    assert!(e.contains("redaction placeholder"), "{e}");
    let cfg = c.load("{ gateway: { auth: { token: 'short' } } }").unwrap();
    assert!(
        cfg.warnings.iter().any(|w| w.contains("only 5 characters")),
        "{:?}",
        cfg.warnings
    );
    let e = c.err("{ gateway: { auth: { mode: 'token' } } }");
    assert!(e.contains("gateway auth mode is token, but no token was configured (set gateway.auth.token or OPENCLAW_GATEWAY_TOKEN)"), "{e}");
    let e = c.err("{ gateway: { auth: { token: 'aaaaaaaaaaaaaaaaaaaa', password: 'bbbbbbbbbbbbbbbbbbbbb' } } }");
    assert!(e.contains("both a token and a password are set"), "{e}");
}

#[test]
fn bad_trusted_proxy_entries_are_named() {
    let c = Case::new();
    let e = c
        .err("{\n gateway: {\n  trustedProxies: ['10.0.0.1', 'not-an-ip', '10.0.0.0/33'],\n },\n}");
    assert!(
        e.contains(
            "gateway.trustedProxies[1]: \"not-an-ip\" is neither an IP address nor a CIDR range"
        ),
        "{e}"
    );
    assert!(
        e.contains("gateway.trustedProxies[2]: \"10.0.0.0/33\""),
        "{e}"
    );
    assert!(e.contains("openclaw.json:3:"), "{e}");
    let e = c.err("{ gateway: { trustedProxies: '10.0.0.1' } }");
    assert!(
        e.contains("expected a list, found the string \"10.0.0.1\"; write [\"10.0.0.1\"]"),
        "{e}"
    );
    // Trusting everyone is accepted, loudly.
    for all in ["0.0.0.0/0", "::/0"] {
        let cfg = c
            .load(&format!(
                "{{ gateway: {{ trustedProxies: ['{all}', '10.0.0.1'] }} }}"
            ))
            .unwrap();
        assert!(
            cfg.warnings
                .iter()
                .any(|w| w.contains("gateway.trustedProxies")
                    && w.contains(&format!("{all} trusts every peer"))),
            "{:?}",
            cfg.warnings
        );
    }
    let cfg = c
        .load("{ gateway: { trustedProxies: ['10.0.0.0/8'] } }")
        .unwrap();
    assert!(!cfg.warnings.iter().any(|w| w.contains("trusts every peer")));
}

#[test]
fn syntax_errors_and_unreadable_files() {
    let c = Case::new();
    let p = c.file("{\n  gateway: {\n    port: 18789\n    bind: 'lan',\n  }\n}\n");
    let e = config::load(&c.opts(Some(p), &[])).unwrap_err();
    assert_eq!(e.issues[0].code, ConfigCode::Syntax);
    assert_eq!(e.issues[0].line, Some(4));
    assert!(e.to_string().contains("openclaw.json:4:"), "{e}");
    assert!(!e.is_unreadable());

    let missing = c.dir.path().join("nope.json");
    let e = config::load(&c.opts(Some(missing), &[])).unwrap_err();
    assert!(e.is_unreadable());
    assert!(e.to_string().contains("cannot read the config file"), "{e}");
    let e = config::load(&c.opts(Some(c.dir.path().to_path_buf()), &[])).unwrap_err();
    assert!(e.is_unreadable());
    assert!(e.to_string().contains("is a directory"), "{e}");
}

#[test]
fn contradictions_are_refused() {
    let c = Case::new();
    let e = c.err("{ gateway: { bind: 'lan', auth: { mode: 'none' } } }");
    assert!(
        e.contains("refusing to bind gateway to 0.0.0.0:18789 without auth"),
        "{e}"
    );
    let cfg = c.load("{ gateway: { auth: { mode: 'none' } } }").unwrap();
    assert_eq!(cfg.gateway.auth.mode, AuthMode::None);
    let e = c.err("{ gateway: { admin: { bind: '0.0.0.0' } } }");
    assert!(e.contains("gateway.admin.allowRemote: true"), "{e}");
    let e = c.err("{ gateway: { reload: { mode: 'hot' } } }");
    assert!(
        e.contains("allowed values are \"hybrid\" and \"off\""),
        "{e}"
    );
}

#[test]
fn unknown_keys_warn_with_the_closest_name_and_clawgate_keys_are_accepted() {
    let c = Case::new();
    let cfg = c
        .load("{ agents: {}, channels: {}, gateway: { trustedProxy: [], mode: 'local', remote: { url: 'x' }, admin: { port: 18000 }, pairing: { maxPendingTotal: 5 }, limits: { tickIntervalMs: 1000 }, controlUi: { allowInsecureAuth: true, dangerouslyDisableDeviceAuth: true } } }")
        .unwrap();
    assert!(
        cfg.warnings.iter().any(|w| w.contains(
            "gateway.trustedProxy: unknown key, ignored; did you mean gateway.trustedProxies?"
        )),
        "{:?}",
        cfg.warnings
    );
    assert!(cfg.warnings.iter().any(|w| w.contains("allowInsecureAuth")));
    assert!(cfg
        .warnings
        .iter()
        .any(|w| w.contains("dangerouslyDisableDeviceAuth")));
    assert_eq!(cfg.gateway.admin.port, 18000);
    assert_eq!(cfg.gateway.pairing.max_pending_total, 5);
    assert_eq!(cfg.gateway.limits.tick_interval_ms, 1000);
    assert!(cfg.gateway.control_ui.allow_insecure_auth);
}

#[test]
fn environment_and_flags_override_the_file() {
    let c = Case::new();
    let p = c.file("{ gateway: { port: 1000, auth: { token: 'file-token-aaaaaaaaaa' }, trustedProxies: ['10.0.0.1'] } }");
    let mut o = c.opts(
        Some(p.clone()),
        &[
            ("OPENCLAW_GATEWAY_TOKEN", "123456789012345678"),
            ("OPENCLAW_GATEWAY_PORT", "2000"),
            (
                "CLAWGATE_GATEWAY__TRUSTED_PROXIES",
                "172.17.0.0/16, 127.0.0.1",
            ),
            (
                "CLAWGATE_GATEWAY__NODES__PAIRING__AUTO_APPROVE_LOCAL",
                "false",
            ),
            ("CLAWGATE_NOT_A_KEY", "1"),
        ],
    );
    let cfg = config::load(&o).unwrap();
    assert_eq!(cfg.gateway.port, 2000);
    assert_eq!(
        cfg.gateway.auth.token.as_ref().unwrap().expose().unwrap(),
        "123456789012345678",
        "a numeric-looking token stays a string"
    );
    assert_eq!(
        cfg.gateway.auth.token_source,
        SecretSource::Env("OPENCLAW_GATEWAY_TOKEN")
    );
    let proxies: Vec<String> = cfg
        .gateway
        .trusted_proxies
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(proxies, vec!["172.17.0.0/16", "127.0.0.1/32"]);
    assert!(!cfg.gateway.node_pairing.auto_approve_local);
    assert!(cfg
        .warnings
        .iter()
        .any(|w| w.contains("CLAWGATE_NOT_A_KEY")));
    o.port = Some(3000);
    assert_eq!(config::load(&o).unwrap().gateway.port, 3000);
    // a bad value from the environment says so
    let o = c.opts(Some(p), &[("CLAWGATE_GATEWAY__TRUSTED_PROXIES", "bogus")]);
    let e = config::load(&o).unwrap_err().to_string();
    assert!(
        e.contains("\"bogus\" is neither") && e.contains("(set from the environment)"),
        "{e}"
    ); // a bad file value that the environment replaces is still refused, at its line
    let bad = c.file("{\n  gateway: {\n    trustedProxies: ['10.0.0.0/33'],\n  },\n}\n");
    let e = config::load(&c.opts(
        Some(bad),
        &[("CLAWGATE_GATEWAY__TRUSTED_PROXIES", "10.0.0.1")],
    ))
    .unwrap_err();
    assert_eq!(e.issues[0].path, "gateway.trustedProxies[0]");
    assert_eq!(e.issues[0].line, Some(3));
    assert!(e.issues[0].message.contains("higher-precedence"), "{e}");
}

#[test]
fn embedded_default_generates_a_private_token_once() {
    use std::os::unix::fs::PermissionsExt;
    let c = Case::new();
    let home = c.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let home_s = home.display().to_string();
    let opts = c.opts(None, &[("HOME", home_s.as_str())]);
    let cfg = config::load(&opts).unwrap();
    assert!(cfg.file.is_none());
    let path = c.dir.path().join("state").join("gateway-token");
    assert_eq!(
        cfg.gateway.auth.token_source,
        SecretSource::Generated(path.clone())
    );
    let token = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        cfg.gateway.auth.token.as_ref().unwrap().expose().unwrap(),
        token
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = config::load(&opts).unwrap();
    assert_eq!(
        again.gateway.auth.token.as_ref().unwrap().expose().unwrap(),
        token,
        "reused on the next start"
    );
    // validation alone never creates it
    let fresh = Case::new();
    let mut o = fresh.opts(None, &[("HOME", home_s.as_str())]);
    o.generate_token = false;
    let cfg = config::load(&o).unwrap();
    assert!(cfg.gateway.auth.token.is_none());
    assert!(!Path::new(&fresh.dir.path().join("state/gateway-token")).exists());
}

#[test]
fn config_file_search_order() {
    let c = Case::new();
    let sd = c.dir.path().join("ocstate");
    std::fs::create_dir_all(&sd).unwrap();
    std::fs::write(
        sd.join("openclaw.json"),
        "{ gateway: { port: 4321, auth: { token: 'abcdefghijklmnopqrstu' } } }",
    )
    .unwrap();
    let sd_s = sd.display().to_string();
    let o = LoadOptions {
        env: [("OPENCLAW_STATE_DIR".to_string(), sd_s.clone())]
            .into_iter()
            .collect(),
        ..Default::default()
    };
    let cfg = config::load(&o).unwrap();
    assert_eq!(cfg.gateway.port, 4321);
    assert_eq!(cfg.state_dir, sd.join("clawgate"));
}

/// Issue 8 item 10: issues point at their own key, found by path in the
/// syntax tree: not at a same-named key of an earlier section, not at text
/// in a comment; array elements at the element. `explain` uses the same
/// positions.
#[test]
fn issue_positions_follow_the_key_path() {
    let c = Case::new();
    let text = "{\n  // port: 'a comment, not a key'\n  gateway: {\n    admin: { port: 18788, bind: \"127.0.0.1\" },\n    port: \"eighteen\",\n    bind: \"loopbak\",\n    trustedProxies: [\n      '10.0.0.1',\n      'not-an-ip',\n    ],\n  },\n}\n";
    let e = c.load(text).expect_err("invalid");
    let at = |path: &str| {
        let i = e
            .issues
            .iter()
            .find(|i| i.path == path)
            .unwrap_or_else(|| panic!("no issue for {path}: {e}"));
        (i.line, i.column)
    };
    assert_eq!(at("gateway.port"), (Some(5), Some(5)), "{e}");
    assert_eq!(at("gateway.bind"), (Some(6), Some(5)), "{e}");
    assert_eq!(at("gateway.trustedProxies[1]"), (Some(9), Some(7)), "{e}");
    assert!(e.to_string().contains("openclaw.json:5:5"), "{e}");

    // explain: a valid file with the same shape
    let text =
        "{\n  // port: 1\n  gateway: {\n    admin: { port: 18788 },\n    port: 18790,\n  },\n}\n";
    let cfg = c.load(text).unwrap();
    let prov = config::explain::Provenance::new(&cfg);
    let src = prov.source("gateway.port");
    assert_eq!(src["kind"], "file", "{src}");
    assert_eq!(
        (src["line"].as_u64(), src["column"].as_u64()),
        (Some(5), Some(5)),
        "{src}"
    );
    let src = prov.source("gateway.admin.port");
    assert_eq!(
        (src["line"].as_u64(), src["column"].as_u64()),
        (Some(4), Some(14)),
        "{src}"
    );
}
