//! A real Docker registry (distribution 2.8) on 127.0.0.1 for the tests
//! (the `docker-registry` Debian package, run from a config file written
//! here), with its access log, optional htpasswd auth and
//! TLS, stopped by PID when dropped.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::{require, run, write_json};

/// A registry process on a free loopback port, stopped by PID on drop.
pub struct Registry {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    tls: bool,
}

#[derive(Default, Clone, Copy)]
pub struct Setup {
    pub htpasswd: bool,
    pub tls: bool,
}

pub const USER: &str = "tester";
pub const PASSWORD: &str = "s3cret-pass-word";

impl Registry {
    pub fn start(setup: Setup) -> Registry {
        require("docker-registry");
        let dir = tempfile::tempdir().unwrap();
        if setup.htpasswd {
            require("htpasswd");
            let out = run(Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]));
            fs::write(dir.path().join("htpasswd"), out.stdout).unwrap();
        }
        if setup.tls {
            // A self-signed CA, and the registry's certificate signed by it
            // (rustls refuses a CA certificate used as the server's own).
            require("openssl");
            let p = |f: &str| dir.path().join(f);
            run(Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=nixoci test CA",
                ])
                .args([
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign",
                ])
                .arg("-keyout")
                .arg(p("ca-key.pem"))
                .arg("-out")
                .arg(p("ca.pem")));
            run(Command::new("openssl")
                .args([
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    "/CN=127.0.0.1",
                ])
                .arg("-keyout")
                .arg(p("key.pem"))
                .arg("-out")
                .arg(p("cert.csr")));
            fs::write(
                p("ext.cnf"),
                "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            )
            .unwrap();
            run(Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
                .arg("-in")
                .arg(p("cert.csr"))
                .arg("-CA")
                .arg(p("ca.pem"))
                .arg("-CAkey")
                .arg(p("ca-key.pem"))
                .arg("-extfile")
                .arg(p("ext.cnf"))
                .arg("-out")
                .arg(p("cert.pem")));
        }
        let mut reg = Registry {
            dir,
            port: 0,
            child: None,
            tls: setup.tls,
        };
        // A port may be taken between choosing and binding it: then
        // another.
        for _ in 0..5 {
            reg.port = free_port();
            reg.write_config(setup);
            if reg.launch() {
                return reg;
            }
        }
        panic!("the registry found no free port:\n{}", reg.log());
    }

    fn write_config(&self, setup: Setup) {
        let d = self.dir.path().display();
        let mut http = format!("{{addr: 127.0.0.1:{}, secret: test-only", self.port);
        if setup.tls {
            http.push_str(&format!(
                ", tls: {{certificate: {d}/cert.pem, key: {d}/key.pem}}"
            ));
        }
        http.push('}');
        let mut config = format!(
            "version: 0.1\nlog: {{level: warn, accesslog: {{disabled: false}}}}\n\
             storage:\n  filesystem: {{rootdirectory: {d}/data}}\n  delete: {{enabled: true}}\nhttp: {http}\n"
        );
        if setup.htpasswd {
            config.push_str(&format!(
                "auth: {{htpasswd: {{realm: test, path: {d}/htpasswd}}}}\n"
            ));
        }
        fs::write(self.dir.path().join("reg.yml"), config).unwrap();
    }

    /// Start the registry on `self.port` and wait until it is the one
    /// listening there (another process may hold the port: then false).
    fn launch(&mut self) -> bool {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("reg.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if listens(pid, self.port) {
                return true;
            }
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            if exited {
                self.child = None;
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "the registry did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.launch(),
            "the registry could not listen again:\n{}",
            self.log()
        );
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host())
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Access-log lines of blob uploads (upload sessions started).
    pub fn uploads(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| {
                l.contains("\"POST /v2/") && l.contains("/blobs/uploads/") && !l.contains("mount=")
            })
            .count()
    }

    /// The access log's requests so far, as `METHOD PATH`.
    pub fn requests(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| {
                let start = l.find('"')? + 1;
                let line = &l[start..];
                let line = &line[..line.find(" HTTP/")?];
                let method = line.split(' ').next()?;
                ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"]
                    .contains(&method)
                    .then(|| line.to_owned())
            })
            .collect()
    }

    pub fn skopeo_tls(&self) -> &'static str {
        if self.tls {
            "--tls-verify=true"
        } else {
            "--tls-verify=false"
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port nothing listens on now (the registry cannot bind port 0), and
/// never handed out before in this process.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Whether process `pid` holds the socket listening on 127.0.0.1:`port`
/// (its inode in /proc/net/tcp among the process's descriptors).
fn listens(pid: u32, port: u16) -> bool {
    let table = fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let want = format!("0100007F:{port:04X}");
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 9 && f[1] == want && f[3] == "0A").then(|| f[9].to_owned())
        })
        .collect();
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .any(|l| {
            let l = l.to_string_lossy();
            inodes.iter().any(|i| l == format!("socket:[{i}]"))
        })
}

/// A `docker-credential-NAME` script in `env/bin` running `script`, named
/// by `env/docker/config.json`'s `credHelpers` for `registry`; returns
/// `env/bin` (see [`path_with`]).
pub fn fake_helper(env: &Path, name: &str, registry: &str, script: &str) -> PathBuf {
    let bin = env.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let helper = bin.join(format!("docker-credential-{name}"));
    fs::write(&helper, format!("#!/bin/sh\n{script}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir_all(env.join("docker")).unwrap();
    write_json(
        &env.join("docker/config.json"),
        &serde_json::json!({"credHelpers": {registry: name}}),
    );
    bin
}

/// `PATH` with `bin` first.
pub fn path_with(bin: &Path) -> std::ffi::OsString {
    let mut paths = vec![bin.to_owned()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).unwrap()
}
