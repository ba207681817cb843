//! `mtls-gate webhook` as a process: it loads the examples as its cluster view, reports the
//! addresses it bound, becomes ready, and denies a bad Ingress over HTTPS.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use support::{INGRESS, ingress, post, probe, review, tls};

#[test]
fn standalone_webhook_binary_serves_the_examples() {
    let tls = tls();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mtls-gate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "webhook",
            "--listen",
            "127.0.0.1:0",
            "--probe-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .arg("--tls-cert-file")
        .arg(tls.dir.path().join("tls.crt"))
        .arg("--tls-key-file")
        .arg(tls.dir.path().join("tls.key"))
        .args(["--objects", "examples/nginx-split-host"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("binary starts");
    // The "listening" log line says where it bound.
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["message"] == "listening"
            {
                let _ = tx.send((
                    v["https"].as_str().unwrap_or("").to_string(),
                    v["probes"].as_str().unwrap_or("").to_string(),
                ));
            }
        }
    });
    let addrs = rx.recv_timeout(Duration::from_secs(30));
    let result = addrs.map(|(https, probes)| {
        let (https, probes): (SocketAddr, SocketAddr) =
            (https.parse().unwrap(), probes.parse().unwrap());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            // A deadline, not a count of tries: a loaded CI machine starts the binary slowly.
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            let mut ready = false;
            while std::time::Instant::now() < deadline {
                if probe(probes, "/readyz").await.0 == 200 {
                    ready = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            assert!(ready, "standalone webhook never became ready");
            let roots = Arc::new(tls.roots.clone());
            let bad = ingress(
                "token-shortcut",
                "auth.bank.example",
                "/token",
                json!({}),
                json!({}),
            );
            let answer = post(
                https,
                &roots,
                "/validate",
                &review(
                    "s-1",
                    "CREATE",
                    INGRESS,
                    Some("open-banking"),
                    "token-shortcut",
                    Some(bad),
                    None,
                ),
            )
            .await;
            let (_, metrics) = probe(probes, "/metrics").await;
            (answer, metrics)
        })
    });
    let _ = child.kill();
    let _ = child.wait();
    let ((status, body), metrics) = result.expect("the webhook logged its addresses");
    assert_eq!(status, 200);
    assert_eq!(body["response"]["uid"], "s-1");
    assert_eq!(body["response"]["allowed"], false, "{body}");
    assert!(
        metrics.contains("mtls_gate_cached_ingresses 3"),
        "{metrics}"
    );
}
