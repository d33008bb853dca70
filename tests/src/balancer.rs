//! HAProxy (Debian's) in front of two care server instances, in TCP mode: TLS ends at the
//! instances, so the laptops' pin and the pages' certificate are the instances' own. Every new
//! connection goes to the primary while its health check passes, else to the backup; a
//! connection whose server dies is closed, and the peer reconnects (issue #17).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running HAProxy; stopped when dropped.
#[derive(Debug)]
pub struct Balancer {
    child: Child,
    /// The address it listens on.
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Balancer {
    /// Starts HAProxy on a free loopback port in front of `primary` and `backup`.
    pub fn start(primary: SocketAddr, backup: SocketAddr) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let dir = tempfile::tempdir().expect("haproxy dir");
        let config = dir.path().join("haproxy.cfg");
        // Checks every 300 ms, one failure marks a server down; a connection refused by the
        // dead one is sent to the other (redispatch).
        std::fs::write(
            &config,
            format!(
                "global\n    maxconn 512\n\
                 defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 10m\n    timeout server 10m\n    \
                 timeout check 1s\n    retries 2\n    option redispatch\n\
                 frontend care\n    bind 127.0.0.1:{port}\n    default_backend instances\n\
                 backend instances\n    \
                 server primary {primary} check inter 300ms fall 1 rise 2\n    \
                 server backup {backup} check inter 300ms fall 1 rise 2 backup\n"
            ),
        )
        .expect("haproxy.cfg");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy (scripts/lib.sh installs it)");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "haproxy did not start listening on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Balancer { child, addr, _dir: dir }
    }

    /// The one address the laptops are given.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
