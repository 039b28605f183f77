//! The binary's command line: `--help` and docs/proxy.md list the same settings with the same
//! defaults, and the proxy refuses to start without credentials.

use std::process::Command;

fn help() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_triton-proxy"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// (env, flag, default) rows of the configuration table in docs/proxy.md.
fn doc_rows() -> Vec<(String, String, String)> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/proxy.md")).unwrap();
    let section = doc
        .split("## Configuration")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (
                cells[1].trim_matches('`').into(),
                cells[2].trim_matches('`').into(),
                cells[3].trim_matches('`').into(),
            )
        })
        .collect()
}

#[test]
fn help_and_docs_agree() {
    let help = help();
    let rows = doc_rows();
    assert!(rows.len() >= 20, "{rows:?}");
    for (env, flag, default) in &rows {
        let at = help
            .find(&format!("{flag} "))
            .or_else(|| help.find(&format!("{flag}\n")))
            .unwrap_or_else(|| panic!("{flag} missing from --help"));
        let entry = &help[at..help[at..].find("\n      --").map_or(help.len(), |e| at + e)];
        assert!(
            entry.contains(&format!("[env: {env}")),
            "{flag}: env {env} not in {entry}"
        );
        if default != "(none)" && default != "false" {
            assert!(
                entry.contains(&format!("[default: {default}]")),
                "{flag}: default {default} not in {entry}"
            );
        }
    }
    let envs_in_help = help.matches("[env: ").count();
    assert_eq!(
        envs_in_help,
        rows.len(),
        "--help has settings the docs table lacks"
    );
}

#[test]
fn refuses_to_start_without_credentials() {
    let out = Command::new(env!("CARGO_BIN_EXE_triton-proxy"))
        .args([
            "--proxy-port",
            "0",
            "--proxy-metrics-port",
            "0",
            "--proxy-host",
            "127.0.0.1",
        ])
        .env_remove("GRPC_EXPECT_API_KEY")
        .env_remove("GRPC_EXPECT_BEARER")
        .env_remove("PROXY_KEYS_FILE")
        .env_remove("PROXY_ALLOW_UNAUTHENTICATED")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no credentials configured") && err.contains("PROXY_ALLOW_UNAUTHENTICATED"),
        "{err}"
    );
}

#[test]
fn bad_settings_name_the_variable() {
    for (args, want) in [
        (vec!["--triton-input-shape", "[1,x]"], "TRITON_INPUT_SHAPE"),
        (vec!["--triton-input-from", "audio"], "TRITON_INPUT_FROM"),
        (vec!["--proxy-host", "not-an-ip"], "PROXY_HOST"),
        (
            vec!["--triton-url", "127.0.0.1:8001,,triton-1:8001"],
            "TRITON_URL: entry 2 '' is empty; expected host:port",
        ),
        (
            vec!["--triton-url", "127.0.0.1:8001,triton-1"],
            "TRITON_URL: entry 2 'triton-1' has no port",
        ),
        (
            vec!["--proxy-tls-cert", "/nonexistent.pem"],
            "PROXY_TLS_CERT and PROXY_TLS_KEY",
        ),
        // u64::MAX used to overflow the clock at the first connection (a panic in release too).
        (
            vec!["--proxy-max-connection-age-secs", "18446744073709551615"],
            "PROXY_MAX_CONNECTION_AGE_SECS",
        ),
        (
            vec!["--proxy-max-connection-age-grace-secs", "315360001"],
            "0..=315360000",
        ),
        (
            vec!["--proxy-stream-idle-secs=-1"],
            "PROXY_STREAM_IDLE_SECS",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_triton-proxy"))
            .args([
                "--proxy-port",
                "0",
                "--proxy-metrics-port",
                "0",
                "--grpc-expect-api-key",
                "k",
            ])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
