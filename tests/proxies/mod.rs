//! Real proxies for the tests: Debian's nginx and HAProxy started on loopback, on
//! unprivileged ports, with configuration and generated PKI in a temporary directory, and
//! killed when dropped.
//!
//! `scripts/install-proxies.sh` installs them (`make test` runs it first). When a binary is
//! missing the tests are skipped with a loud message, unless `MTLS_GATE_REQUIRE_PROXIES=1`
//! (set by `make test`), where a missing proxy fails the test instead.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

/// Finds a proxy binary on PATH or in /usr/sbin (Debian's location, often not on PATH).
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    from_path
        .into_iter()
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir: PathBuf| dir.join(name))
        .find(|p| p.is_file())
}

/// The binary, or `None` after a loud skip message; panics when proxies are required.
pub fn require(name: &str) -> Option<PathBuf> {
    if let Some(p) = find_binary(name) {
        return Some(p);
    }
    let required = std::env::var("MTLS_GATE_REQUIRE_PROXIES").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{name} is not installed but MTLS_GATE_REQUIRE_PROXIES=1: run scripts/install-proxies.sh"
    );
    eprintln!(
        "\n==========\nSKIPPED: {name} is not installed, so this real-proxy test did not run.\nInstall it with scripts/install-proxies.sh (make test does).\n==========\n"
    );
    None
}

/// A port that was free a moment ago (the proxies cannot bind port 0 and report it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

// ---------------------------------------------------------------------------------------
// PKI
// ---------------------------------------------------------------------------------------

/// A server CA with one serving certificate for every host, a client CA with one client
/// certificate, and a client certificate from an unrelated CA, written as PEM files.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn new(hosts: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = |cn: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, cn);
            CertifiedIssuer::self_signed(p, KeyPair::generate().expect("key")).expect("ca")
        };
        let server_ca = ca("mtls-gate test server CA");
        let client_ca = ca("mtls-gate test client CA");
        let rogue_ca = ca("unrelated CA");
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text).expect("write pem");
        };
        let server_key = KeyPair::generate().expect("key");
        let mut server = CertificateParams::new(
            hosts
                .iter()
                .map(|h| h.to_string())
                .chain(["localhost".to_string()])
                .collect::<Vec<_>>(),
        )
        .expect("server params");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = server
            .signed_by(&server_key, &server_ca)
            .expect("server cert");
        write("server-ca.crt", &server_ca.pem());
        write("server.crt", &server.pem());
        write("server.key", &server_key.serialize_pem());
        write(
            "server.pem",
            &format!("{}{}", server.pem(), server_key.serialize_pem()),
        );
        let client = |issuer: &CertifiedIssuer<'_, KeyPair>, stem: &str| {
            let key = KeyPair::generate().expect("key");
            let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
            p.distinguished_name
                .push(DnType::CommonName, "third-party-provider");
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            let cert = p.signed_by(&key, issuer).expect("client cert");
            write(&format!("{stem}.crt"), &cert.pem());
            write(&format!("{stem}.key"), &key.serialize_pem());
        };
        client(&client_ca, "client");
        client(&rogue_ca, "rogue");
        write("client-ca.crt", &client_ca.pem());
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

/// A running proxy, killed on drop.
pub struct Proxy {
    child: Child,
    pub port: u16,
    /// Holds the configuration while the proxy runs.
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether process `pid` holds a socket listening on 127.0.0.1:`port` (Linux `/proc`).
/// Checked by ownership rather than by connecting, so that a proxy of another test that
/// happened to take the same free port first is never mistaken for ours.
fn listens_on(pid: u32, port: u16) -> bool {
    let local = format!("0100007F:{port:04X}");
    let inodes: Vec<String> = std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address, state 0A = LISTEN, inode
            (f.len() > 9 && f[1] == local && f[3] == "0A").then(|| f[9].to_string())
        })
        .collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok).any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            let t = target.to_string_lossy();
            inodes.iter().any(|i| t == format!("socket:[{i}]"))
        })
    })
}

/// Waits until our process listens on `port`; `Err` when it exited first (port taken, bad
/// configuration), with its stderr.
fn wait_listening(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return Err(format!("exited with {status}: {err}"));
        }
        if listens_on(child.id(), port) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err("did not listen within 20 s".into())
}

/// Starts a proxy whose configuration is `config(port, dir)`; retries on a fresh port when
/// the chosen one was taken in between.
fn start(
    binary: &Path,
    args: impl Fn(&Path) -> Vec<String>,
    file: &str,
    config: impl Fn(u16, &Path) -> String,
) -> Proxy {
    let mut last = String::new();
    for _ in 0..5 {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let path = dir.path().join(file);
        std::fs::write(&path, config(port, dir.path())).expect("write config");
        let mut child = Command::new(binary)
            .args(args(&path))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        match wait_listening(&mut child, port) {
            Ok(()) => {
                return Proxy {
                    child,
                    port,
                    _dir: dir,
                };
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                last = format!(
                    "{} {e}\nconfiguration:\n{}",
                    binary.display(),
                    std::fs::read_to_string(&path).unwrap_or_default()
                );
            }
        }
    }
    panic!("proxy did not start: {last}");
}

/// nginx in the foreground, one process, everything under the temp dir.
/// `servers(port, dir)` returns the `server { ... }` blocks (and any http-level directives);
/// `dir` may hold extra sockets (a backend on `unix:{dir}/backend.sock`).
pub fn nginx(binary: &Path, servers: impl Fn(u16, &Path) -> String) -> Proxy {
    start(
        binary,
        |conf| {
            let prefix = conf.parent().expect("dir").display().to_string();
            vec![
                "-p".into(),
                prefix,
                "-c".into(),
                conf.display().to_string(),
                "-e".into(),
                "stderr".into(),
            ]
        },
        "nginx.conf",
        |port, dir| {
            let d = dir.display();
            format!(
                "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log stderr error;\nevents {{ worker_connections 256; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  default_type text/plain;\n  server_names_hash_bucket_size 128;\n  server_names_hash_max_size 65536;\n{}\n}}\n",
                servers(port, dir)
            )
        },
    )
}

/// HAProxy in the foreground (`-db`).
pub fn haproxy(binary: &Path, config: impl Fn(u16) -> String) -> Proxy {
    start(
        binary,
        |conf| vec!["-db".into(), "-f".into(), conf.display().to_string()],
        "haproxy.cfg",
        |port, _| config(port),
    )
}

// ---------------------------------------------------------------------------------------
// Plain HTTP client for marker responses
// ---------------------------------------------------------------------------------------

/// A keep-alive HTTP/1.1 connection for many small GETs (the differential test).
pub struct HttpConnection {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

impl HttpConnection {
    pub fn new(port: u16) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            stream: None,
        }
    }

    fn connect(&mut self) -> &mut BufReader<TcpStream> {
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(10))
                .expect("connect to the proxy");
            s.set_read_timeout(Some(Duration::from_secs(10))).ok();
            s.set_nodelay(true).ok();
            self.stream = Some(BufReader::new(s));
        }
        self.stream.as_mut().expect("connected")
    }

    /// GET `path` on `host`: (status, body). Reconnects once if the server closed.
    pub fn get(&mut self, host: &str, path: &str) -> (u16, String) {
        for attempt in 0..2 {
            match self.try_get(host, path) {
                Ok(r) => return r,
                Err(e) if attempt == 0 => {
                    self.stream = None;
                    let _ = e;
                }
                Err(e) => panic!("GET {host}{path}: {e}"),
            }
        }
        unreachable!()
    }

    fn try_get(&mut self, host: &str, path: &str) -> std::io::Result<(u16, String)> {
        let s = self.connect();
        write!(
            s.get_mut(),
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: mtls-gate-differential\r\n\r\n"
        )?;
        let mut line = String::new();
        if s.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut length = 0usize;
        let mut close = false;
        loop {
            let mut h = String::new();
            s.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if k.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        let mut body = vec![0u8; length];
        s.read_exact(&mut body)?;
        if close {
            self.stream = None;
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// The request paths a differential test sends for one generated case: each path instance
/// and its near misses (trailing slash, one more segment, one more character, upper case,
/// one character less, the parent), plus a few random paths built from `segments`. With
/// `literal_proxy` (HAProxy matches the path as sent) also a doubled slash and lower case;
/// nginx merges slashes before it matches locations, which the engine does not model.
pub fn near_miss_requests<'a>(
    instances: impl IntoIterator<Item = &'a str>,
    segments: &[&str],
    literal_proxy: bool,
    rng: &mut fastrand::Rng,
) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    for s in instances {
        let trimmed = s.trim_end_matches('/');
        out.insert(s.to_string());
        out.insert(format!("{trimmed}/"));
        out.insert(format!("{trimmed}/x"));
        out.insert(format!("{trimmed}x"));
        out.insert(s.to_ascii_uppercase());
        if literal_proxy {
            out.insert(format!("{trimmed}//"));
            out.insert(s.to_ascii_lowercase());
        }
        if trimmed.len() > 1 {
            out.insert(trimmed[..trimmed.len() - 1].to_string());
            out.insert(trimmed.to_string());
        }
        if let Some((parent, _)) = trimmed.rsplit_once('/') {
            out.insert(if parent.is_empty() {
                "/".into()
            } else {
                parent.into()
            });
        }
    }
    for _ in 0..6 {
        let mut r = String::new();
        for _ in 0..rng.usize(0..=3) {
            r.push('/');
            r.push_str(segments[rng.usize(0..segments.len())]);
        }
        if r.is_empty() || rng.bool() {
            r.push('/');
        }
        out.insert(r);
    }
    out.into_iter().filter(|r| r.starts_with('/')).collect()
}
