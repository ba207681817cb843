//! `mtls-gate probe` against real proxies (design.md §11): Debian's nginx and HAProxy on
//! loopback with generated PKI, the probe binary run as a user would (`--resolve`,
//! `--ca-file`, `--output json`), and every expected pass and fail checked per endpoint.
//!
//! Layouts: split host (correct and broken), an issuer host that requires certificates
//! (HAProxy, TLS 1.3 and 1.2: the refusal is a TLS alert after or during the handshake),
//! single host with `ssl_verify_client optional` and `auth_request` to mtls-gate's own
//! `/verify` (the real `mtls-gate webhook`, fed the real `ssl-client-verify` header), and
//! the same host with one MTLS location that lacks the gate.

mod proxies;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use proxies::{Pki, Proxy, require};
use serde_json::Value;

const PUBLIC_HOST: &str = "auth.bank.example";
const MTLS_AUTH_HOST: &str = "mtls-auth.bank.example";
const API_HOST: &str = "mtls-api.bank.example";
const SINGLE_HOST: &str = "api.bank.example";
const API_BASE: &str = "/open-banking-nz/v3.0";
/// The six MTLS authorisation endpoints of the table.
const MTLS_AUTHORISATION: &[&str] = &[
    "/token",
    "/bc-authorize",
    "/par",
    "/introspect",
    "/revoke",
    "/userinfo",
];
/// The TLS endpoints of the table.
const TLS_ENDPOINTS: &[&str] = &[
    "/authorize",
    "/jwks or /keys",
    "/.well-known/openid-configuration",
];

fn profile_yaml(
    issuer: &str,
    api_base: &str,
    moved: &[(&str, String)],
    gate: Option<&str>,
) -> String {
    let mut y = format!(
        "apiVersion: mtls-gate.io/v1alpha1\nkind: ApiProviderProfile\nmetadata:\n  name: example-bank\nspec:\n  issuer: {issuer:?}\n  apiBaseUrls: [{api_base:?}]\n  clientCertificate:\n    caSecretName: open-banking-client-ca\n"
    );
    if !moved.is_empty() {
        y.push_str("  authorizationServer:\n");
        for (field, url) in moved {
            y.push_str(&format!("    {field}: {url:?}\n"));
        }
    }
    if let Some(g) = gate {
        y.push_str(&format!("  gate:\n    url: {g:?}\n"));
    }
    y
}

/// Split host: discovery, `/authorize` and JWKS on the public host; the six MTLS
/// authorisation endpoints on their MTLS alias host; the APIs on the API host.
fn split_profile(port: u16) -> String {
    let field_of = [
        ("tokenEndpoint", "/token"),
        ("pushedAuthorizationRequestEndpoint", "/par"),
        ("backchannelAuthenticationEndpoint", "/bc-authorize"),
        ("introspectionEndpoint", "/introspect"),
        ("revocationEndpoint", "/revoke"),
        ("userinfoEndpoint", "/userinfo"),
    ];
    let moved: Vec<(&str, String)> = field_of
        .iter()
        .map(|(f, p)| (*f, format!("https://{MTLS_AUTH_HOST}:{port}{p}")))
        .collect();
    profile_yaml(
        &format!("https://{PUBLIC_HOST}:{port}"),
        &format!("https://{API_HOST}:{port}{API_BASE}"),
        &moved,
        None,
    )
}

/// Everything on one host, the authorisation server under `/oauth2`.
fn single_profile(port: u16, gate: Option<&str>) -> String {
    profile_yaml(
        &format!("https://{SINGLE_HOST}:{port}/oauth2"),
        &format!("https://{SINGLE_HOST}:{port}{API_BASE}"),
        &[],
        gate,
    )
}

/// One `mtls-gate probe --output json` run.
struct Run {
    code: i32,
    report: Value,
}

impl Run {
    fn results(&self) -> &Vec<Value> {
        self.report["results"].as_array().expect("results array")
    }

    /// `(endpoint, host + path)` of every failing row.
    fn failing(&self) -> BTreeSet<(String, String)> {
        self.results()
            .iter()
            .filter(|r| r["compliant"] == false)
            .map(|r| {
                let url = url::Url::parse(r["url"].as_str().unwrap()).unwrap();
                (
                    r["endpoint"].as_str().unwrap().to_string(),
                    format!("{}{}", url.host_str().unwrap(), url.path()),
                )
            })
            .collect()
    }

    fn row(&self, url_path: &str) -> &Value {
        self.results()
            .iter()
            .find(|r| {
                url::Url::parse(r["url"].as_str().unwrap()).unwrap().path() == url_path
                    && r["defaultAlias"] == false
            })
            .unwrap_or_else(|| panic!("no row for {url_path}"))
    }
}

fn probe(pki: &Pki, profile: &str, port: u16, client: &str, extra: &[&str]) -> Run {
    let file = pki.path("profile.yaml");
    std::fs::write(&file, profile).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtls-gate"));
    cmd.arg("probe")
        .arg("--profile")
        .arg(&file)
        .arg("--client-cert")
        .arg(pki.path(&format!("{client}.crt")))
        .arg("--client-key")
        .arg(pki.path(&format!("{client}.key")))
        .arg("--ca-file")
        .arg(pki.path("server-ca.crt"))
        .args(["--output", "json", "--max-rate", "500"]);
    if !extra.contains(&"--timeout") {
        // Generous: a loaded CI machine must not turn a slow answer into a failure.
        cmd.args(["--timeout", "30"]);
    }
    for host in [PUBLIC_HOST, MTLS_AUTH_HOST, API_HOST, SINGLE_HOST] {
        cmd.arg("--resolve").arg(format!("{host}:{port}:127.0.0.1"));
    }
    cmd.args(extra);
    let out = cmd.output().expect("probe runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "probe printed no JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Run {
        code: out.status.code().expect("exit code"),
        report,
    }
}

fn tls(pki: &Pki) -> String {
    format!(
        "  ssl_certificate {};\n  ssl_certificate_key {};\n",
        pki.path("server.crt").display(),
        pki.path("server.key").display()
    )
}

fn verify(pki: &Pki, mode: &str) -> String {
    format!(
        "  ssl_client_certificate {};\n  ssl_verify_client {mode};\n  ssl_verify_depth 2;\n",
        pki.path("client-ca.crt").display()
    )
}

/// The application behind the proxy: answers 200 with the path it saw.
fn backend(dir: &Path) -> String {
    format!(
        "server {{\n  listen unix:{}/backend.sock;\n  location / {{ return 200 \"backend $uri\\n\"; }}\n}}\n",
        dir.display()
    )
}

fn proxy_pass(dir: &Path) -> String {
    format!("proxy_pass http://unix:{}/backend.sock;", dir.display())
}

/// Split host on one nginx (SNI picks the server block). `correct: false` drops client
/// verification from the API host and lets the public host answer every path.
fn split_nginx(nginx: &Path, pki: &Pki, correct: bool) -> Proxy {
    proxies::nginx(nginx, |port, dir| {
        let pass = proxy_pass(dir);
        let public_rest = if correct {
            "  location / { return 404; }\n".to_string()
        } else {
            format!("  location / {{ {pass} }}\n")
        };
        let api_verify = if correct {
            verify(pki, "on")
        } else {
            String::new()
        };
        format!(
            "{backend}server {{\n  listen 127.0.0.1:{port} ssl;\n  server_name {PUBLIC_HOST};\n{tls}  location = /authorize {{ {pass} }}\n  location = /jwks {{ {pass} }}\n  location = /.well-known/openid-configuration {{ {pass} }}\n{public_rest}}}\nserver {{\n  listen 127.0.0.1:{port} ssl;\n  server_name {MTLS_AUTH_HOST};\n{tls}{on}  location / {{ {pass} }}\n}}\nserver {{\n  listen 127.0.0.1:{port} ssl;\n  server_name {API_HOST};\n{tls}{api_verify}  location {API_BASE}/ {{ {pass} }}\n}}\n",
            backend = backend(dir),
            tls = tls(pki),
            on = verify(pki, "on"),
        )
    })
}

/// `(endpoint, host + path)` of every resource-API endpoint under the API base URL, with
/// templated segments as the probe fills them.
fn api_endpoints() -> BTreeSet<(String, String)> {
    mtls_gate::catalog::ENDPOINT_TABLE
        .iter()
        .filter(|r| r.location == mtls_gate::catalog::Location::ApiBase)
        .map(|r| {
            let path: Vec<&str> = r
                .default_path
                .split('/')
                .map(|s| {
                    if s.starts_with('{') {
                        "mtls-gate-probe"
                    } else {
                        s
                    }
                })
                .collect();
            (
                r.endpoint.to_string(),
                format!("{API_HOST}{API_BASE}{}", path.join("/")),
            )
        })
        .collect()
}

#[test]
fn split_host_correct_passes_and_broken_fails_where_it_is_broken() {
    let Some(nginx) = require("nginx") else {
        return;
    };
    let pki = Pki::new(&[PUBLIC_HOST, MTLS_AUTH_HOST, API_HOST]);

    let proxy = split_nginx(&nginx, &pki, true);
    let run = probe(&pki, &split_profile(proxy.port), proxy.port, "client", &[]);
    assert_eq!(run.failing(), BTreeSet::new(), "{:#}", run.report);
    assert_eq!(run.code, 0);
    assert_eq!(run.report["compliant"], true);
    // 43 table rows (34 APIs) + 6 issuer-default aliases of the moved endpoints.
    assert_eq!(run.results().len(), 34 + 7 + 2 + 6);
    let token = run.row("/token");
    assert_eq!(token["scheme"], "MTLS");
    assert_eq!(
        token["withoutCertificate"]["outcome"],
        "refused-certificate"
    );
    assert_eq!(token["withoutCertificate"]["status"], 400);
    assert!(
        token["withoutCertificate"]["detail"]
            .as_str()
            .unwrap()
            .contains("No required SSL certificate was sent"),
        "{token:#}"
    );
    assert_eq!(token["withCertificate"]["outcome"], "response");
    assert_eq!(token["withCertificate"]["status"], 200);
    let authorize = run.row("/authorize");
    assert_eq!(authorize["scheme"], "TLS");
    assert_eq!(authorize["withoutCertificate"]["status"], 200);
    // A templated segment is probed with the placeholder.
    assert!(run.results().iter().any(|r| {
        r["url"]
            .as_str()
            .unwrap()
            .ends_with("/accounts/mtls-gate-probe/balances")
    }));

    // A certificate from another CA is refused by every MTLS endpoint: they fail.
    let rogue = probe(&pki, &split_profile(proxy.port), proxy.port, "rogue", &[]);
    assert_eq!(rogue.code, 1);
    let rogue_token = rogue.row("/token");
    assert_eq!(rogue_token["compliant"], false);
    assert_eq!(
        rogue_token["withCertificate"]["outcome"],
        "refused-certificate"
    );
    assert!(
        rogue_token["withCertificate"]["detail"]
            .as_str()
            .unwrap()
            .contains("The SSL certificate error"),
        "{rogue_token:#}"
    );
    assert_eq!(rogue.row("/authorize")["compliant"], true);
    drop(proxy);

    // Broken: the API host no longer verifies client certificates, and the public host
    // serves every path (so the issuer-default URLs of the moved endpoints are served).
    let proxy = split_nginx(&nginx, &pki, false);
    let run = probe(&pki, &split_profile(proxy.port), proxy.port, "client", &[]);
    let mut want = api_endpoints();
    for p in MTLS_AUTHORISATION {
        want.insert((p.to_string(), format!("{PUBLIC_HOST}{p}")));
    }
    assert_eq!(run.failing(), want, "{:#}", run.report);
    assert_eq!(run.code, 1);
    let balances = run.row(&format!("{API_BASE}/accounts/mtls-gate-probe/balances"));
    assert_eq!(balances["withoutCertificate"]["outcome"], "response");
    assert_eq!(balances["withoutCertificate"]["status"], 200);
    assert!(
        balances["reason"]
            .as_str()
            .unwrap()
            .contains("answers without a client certificate")
    );
}

fn haproxy_requiring_certificates(haproxy: &Path, pki: &Pki, tls12: bool) -> Proxy {
    proxies::haproxy(haproxy, |port| {
        format!(
            "global\n  maxconn 200\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 10s\n  timeout server 10s\nfrontend issuer\n  bind 127.0.0.1:{port} ssl crt {pem} ca-file {ca} verify required{max}\n  http-request return status 200 content-type text/plain string \"ok\"\n",
            pem = pki.path("server.pem").display(),
            ca = pki.path("client-ca.crt").display(),
            max = if tls12 { " ssl-max-ver TLSv1.2" } else { "" },
        )
    })
}

#[test]
fn issuer_host_that_requires_certificates_fails_the_tls_endpoints() {
    let Some(haproxy) = require("haproxy") else {
        return;
    };
    let pki = Pki::new(&[SINGLE_HOST]);
    // TLS 1.3: HAProxy (OpenSSL) accepts the handshake and sends certificate_required when
    // the probe reads; TLS 1.2: handshake_failure during the handshake.
    for (tls12, alert) in [
        (false, "TLS alert certificate_required after the handshake"),
        (true, "TLS alert handshake_failure during the TLS handshake"),
    ] {
        let proxy = haproxy_requiring_certificates(&haproxy, &pki, tls12);
        let run = probe(
            &pki,
            &single_profile(proxy.port, None),
            proxy.port,
            "client",
            &[],
        );
        let want: BTreeSet<(String, String)> = TLS_ENDPOINTS
            .iter()
            .map(|e| {
                let path = match *e {
                    "/jwks or /keys" => format!("{SINGLE_HOST}/oauth2/jwks"),
                    other => format!("{SINGLE_HOST}/oauth2{other}"),
                };
                (e.to_string(), path)
            })
            .collect();
        assert_eq!(run.failing(), want, "tls12={tls12}: {:#}", run.report);
        assert_eq!(run.code, 1);
        let authorize = run.row("/oauth2/authorize");
        assert_eq!(
            authorize["withoutCertificate"]["outcome"],
            "refused-certificate"
        );
        assert_eq!(
            authorize["withoutCertificate"]["detail"], alert,
            "tls12={tls12}"
        );
        let token = run.row("/oauth2/token");
        assert_eq!(token["compliant"], true);
        assert_eq!(token["withoutCertificate"]["detail"], alert);
        assert_eq!(token["withCertificate"]["status"], 200);
    }
}

/// `mtls-gate webhook` serving `/verify` on loopback, killed on drop.
struct Gate {
    child: Child,
    https: String,
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_gate(pki: &Pki, profile: &str) -> Gate {
    let file = pki.path("gate-objects.yaml");
    std::fs::write(&file, profile).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtls-gate"))
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
        .arg(pki.path("server.crt"))
        .arg("--tls-key-file")
        .arg(pki.path("server.key"))
        .arg("--objects")
        .arg(&file)
        .stderr(Stdio::piped())
        .spawn()
        .expect("mtls-gate webhook starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["message"] == "listening"
            {
                let _ = tx.send(v["https"].as_str().unwrap_or("").to_string());
            }
        }
    });
    let https = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the gate reports its address");
    Gate { child, https }
}

/// One host, `ssl_verify_client optional`, the MTLS locations behind `auth_request` to the
/// gate the way ingress-nginx writes its external-auth location (the sub-request carries
/// `ssl-client-verify: $ssl_client_verify`). `ungated_token`: `/oauth2/token` lacks it.
fn single_host_nginx(nginx: &Path, pki: &Pki, gate: &str, ungated_token: bool) -> Proxy {
    proxies::nginx(nginx, |port, dir| {
        let pass = proxy_pass(dir);
        let gated = format!("auth_request /_external-auth; {pass}");
        let token = if ungated_token {
            pass.clone()
        } else {
            gated.clone()
        };
        format!(
            "{backend}server {{\n  listen 127.0.0.1:{port} ssl;\n  server_name {SINGLE_HOST};\n{tls}{optional}  location = /_external-auth {{\n    internal;\n    proxy_pass_request_body off;\n    proxy_set_header Content-Length \"\";\n    proxy_set_header X-Original-URL $scheme://$http_host$request_uri;\n    proxy_set_header X-Original-Method $request_method;\n    proxy_set_header ssl-client-verify $ssl_client_verify;\n    proxy_http_version 1.1;\n    proxy_pass https://{gate}/verify?controller=ingress-nginx;\n  }}\n  location = /oauth2/authorize {{ {pass} }}\n  location = /oauth2/jwks {{ {pass} }}\n  location = /oauth2/.well-known/openid-configuration {{ {pass} }}\n  location = /oauth2/token {{ {token} }}\n  location /oauth2/ {{ {gated} }}\n  location {API_BASE}/ {{ {gated} }}\n  location / {{ return 404; }}\n}}\n",
            backend = backend(dir),
            tls = tls(pki),
            optional = verify(pki, "optional"),
        )
    })
}

#[test]
fn single_host_with_the_gate_passes_and_an_ungated_mtls_location_fails() {
    let Some(nginx) = require("nginx") else {
        return;
    };
    let pki = Pki::new(&[SINGLE_HOST, "localhost"]);
    let gate = start_gate(&pki, &single_profile(443, Some("https://localhost/verify")));

    let proxy = single_host_nginx(&nginx, &pki, &gate.https, false);
    let profile = single_profile(proxy.port, Some("https://localhost/verify"));
    let run = probe(&pki, &profile, proxy.port, "client", &[]);
    assert_eq!(run.failing(), BTreeSet::new(), "{:#}", run.report);
    assert_eq!(run.code, 0);
    // The gate answered 403 without a certificate (ssl-client-verify: NONE) and let the
    // verified one through.
    let token = run.row("/oauth2/token");
    assert_eq!(token["withoutCertificate"]["outcome"], "response");
    assert_eq!(token["withoutCertificate"]["status"], 403);
    assert_eq!(token["withCertificate"]["status"], 200);
    let authorize = run.row("/oauth2/authorize");
    assert_eq!(authorize["withoutCertificate"]["status"], 200);
    drop(proxy);

    let proxy = single_host_nginx(&nginx, &pki, &gate.https, true);
    let profile = single_profile(proxy.port, Some("https://localhost/verify"));
    let run = probe(&pki, &profile, proxy.port, "client", &[]);
    assert_eq!(
        run.failing(),
        BTreeSet::from([("/token".to_string(), format!("{SINGLE_HOST}/oauth2/token"))]),
        "{:#}",
        run.report
    );
    assert_eq!(run.code, 1);
    let token = run.row("/oauth2/token");
    assert_eq!(token["withoutCertificate"]["status"], 200);
}

#[test]
fn nothing_reachable_exits_2_and_silent_servers_time_out() {
    let pki = Pki::new(&[SINGLE_HOST]);
    // A port bound but not listening: connections are refused, and no other test can take
    // it meanwhile.
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed = reserved.local_addr().unwrap().port();
    let run = probe(&pki, &single_profile(closed, None), closed, "client", &[]);
    assert_eq!(run.code, 2);
    assert!(run.results().iter().all(|r| r["withoutCertificate"]["outcome"] == "unreachable"
        && r["compliant"] == false));

    // A server that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for s in listener.incoming().take(200) {
            match s {
                Ok(s) => open.push(s),
                Err(_) => break,
            }
        }
    });
    let run = probe(
        &pki,
        &single_profile(port, None),
        port,
        "client",
        &["--timeout", "0.3"],
    );
    assert_eq!(run.code, 2, "{:#}", run.report);
    assert_eq!(
        run.row("/oauth2/token")["withoutCertificate"]["outcome"],
        "timeout"
    );
    drop(held);
}

#[test]
fn unusable_input_exits_2_with_a_message_naming_it() {
    let pki = Pki::new(&[SINGLE_HOST]);
    let profile = pki.path("profile.yaml");
    std::fs::write(&profile, single_profile(443, None)).unwrap();
    let not_a_profile = pki.path("ingress.yaml");
    std::fs::write(
        &not_a_profile,
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: x\n",
    )
    .unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let out = Command::new(env!("CARGO_BIN_EXE_mtls-gate"))
            .arg("probe")
            .args(args)
            .output()
            .expect("probe runs");
        (
            out.status.code().expect("exit code"),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let cert = pki.path("client.crt");
    let key = pki.path("client.key");
    let cases: Vec<(Vec<&std::ffi::OsStr>, &str)> = vec![
        (
            vec![
                "--client-cert".as_ref(),
                cert.as_os_str(),
                "--client-key".as_ref(),
                key.as_os_str(),
            ],
            "no profile",
        ),
        (
            vec![
                not_a_profile.as_os_str(),
                "--client-cert".as_ref(),
                cert.as_os_str(),
                "--client-key".as_ref(),
                key.as_os_str(),
            ],
            "no ApiProviderProfile found",
        ),
        (
            vec![
                profile.as_os_str(),
                "--client-cert".as_ref(),
                key.as_os_str(),
                "--client-key".as_ref(),
                key.as_os_str(),
            ],
            "--client-cert",
        ),
        (
            vec![
                profile.as_os_str(),
                "--client-cert".as_ref(),
                cert.as_os_str(),
                "--client-key".as_ref(),
                cert.as_os_str(),
            ],
            "--client-key",
        ),
        (
            vec![
                profile.as_os_str(),
                "--client-cert".as_ref(),
                cert.as_os_str(),
                "--client-key".as_ref(),
                key.as_os_str(),
                "--ca-file".as_ref(),
                key.as_os_str(),
            ],
            "--ca-file",
        ),
    ];
    for (args, message) in cases {
        let (code, stderr) = run(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    // clap rejects a malformed --resolve before anything runs.
    let (code, stderr) = run(&[
        profile.as_os_str(),
        "--client-cert".as_ref(),
        cert.as_os_str(),
        "--client-key".as_ref(),
        key.as_os_str(),
        "--resolve".as_ref(),
        "api.bank.example:443".as_ref(),
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("HOST:PORT:ADDRESS"), "{stderr}");
}
