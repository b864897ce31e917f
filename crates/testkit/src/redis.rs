//! A real `redis-server` for tests: started on a free port in a temporary directory, reached with
//! `PING` before [`RedisServer::start`] returns, killed when dropped. It can be stopped and
//! restarted on the same port and directory, to test how herald rides out a Redis outage. With
//! [`RedisServer::start_in`] it runs inside a [`NetLink`]'s namespace, behind a link the test can
//! delay, make lossy or cut.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::netns::NetLink;

/// How long [`RedisServer::start`] waits for the server to answer `PING`: generous, for a loaded
/// machine.
pub const START_LIMIT: Duration = Duration::from_secs(30);

/// Whether the server keeps its data across a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// `--save '' --appendonly no`: a restarted server is empty.
    None,
    /// `--appendonly yes --appendfsync always`: every write is fsynced, a restart keeps it all.
    AppendFsyncAlways,
}

/// A `redis-server` process owned by the test.
pub struct RedisServer {
    port: u16,
    /// Where it listens: 127.0.0.1, or the namespace side of a [`NetLink`].
    host: Ipv4Addr,
    /// The namespace it runs in, if not the test's own.
    namespace: Option<String>,
    persistence: Persistence,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts an empty server without persistence.
    ///
    /// # Panics
    ///
    /// When `redis-server` is not installed (`scripts/test` installs it) or does not answer.
    pub fn start() -> Self {
        Self::start_with(Persistence::None)
    }

    /// Starts an empty server with the given persistence.
    ///
    /// # Panics
    ///
    /// As [`RedisServer::start`].
    pub fn start_with(persistence: Persistence) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory for redis-server");
        let mut server = Self {
            port: crate::free_port(),
            host: Ipv4Addr::LOCALHOST,
            namespace: None,
            persistence,
            dir,
            child: None,
        };
        server.spawn();
        server
    }

    /// Starts an empty server without persistence inside `link`'s namespace, listening on its
    /// inner address (the test reaches it through the link). Stop it before dropping `link`
    /// (declare `link` first).
    ///
    /// # Panics
    ///
    /// As [`RedisServer::start`].
    pub fn start_in(link: &NetLink) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory for redis-server");
        let mut server = Self {
            port: 6379,
            host: link.inner_ip(),
            namespace: Some(link.namespace().to_owned()),
            persistence: Persistence::None,
            dir,
            child: None,
        };
        server.spawn();
        server
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its URL, `redis://<host>:<port>`.
    pub fn url(&self) -> String {
        format!("redis://{}:{}", self.host, self.port)
    }

    /// Its process id (of `redis-server` itself: `ip netns exec` execs it).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The directory it keeps its files in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server (SIGKILL: what fsync made durable survives, nothing else) and waits
    /// for it to exit. Harmless when it is already stopped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (stopping it first if running).
    ///
    /// # Panics
    ///
    /// As [`RedisServer::start`].
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let host = self.host.to_string();
        let mut command = match &self.namespace {
            Some(namespace) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", namespace, "redis-server"]);
                command
            }
            None => Command::new("redis-server"),
        };
        command
            .args(["--port", &port, "--bind", &host, "--save", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if self.namespace.is_some() {
            // Reached from outside loopback, without a password: protected mode would answer
            // -DENIED. The namespace is the test's own.
            command.args(["--protected-mode", "no"]);
        }
        match self.persistence {
            Persistence::None => command.args(["--appendonly", "no"]),
            Persistence::AppendFsyncAlways => {
                command.args(["--appendonly", "yes", "--appendfsync", "always"])
            }
        };
        let child = command
            .spawn()
            .expect("starting redis-server (install it: apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + START_LIMIT;
        while !self.answers_ping() {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("redis-server exited at start ({status}); is port {port} taken?");
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends one command (e.g. `["CLIENT", "PAUSE", "3000", "WRITE"]`) and answers the first
    /// line of its reply (`+OK`, `:3`, `-ERR ...`).
    ///
    /// # Panics
    ///
    /// When the server cannot be reached.
    pub fn command(&self, args: &[&str]) -> String {
        let addr = SocketAddr::new(IpAddr::V4(self.host), self.port);
        let mut stream = TcpStream::connect_timeout(&addr, START_LIMIT).expect("connect to redis");
        stream.set_read_timeout(Some(START_LIMIT)).expect("timeout");
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream
            .write_all(request.as_bytes())
            .expect("write to redis");
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            stream.read_exact(&mut byte).expect("read from redis");
            line.push(byte[0]);
        }
        line.truncate(line.len() - 2);
        String::from_utf8_lossy(&line).into_owned()
    }

    fn answers_ping(&self) -> bool {
        let addr = SocketAddr::new(IpAddr::V4(self.host), self.port);
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut reply = [0u8; 7];
        // While loading its data Redis answers `-LOADING`: not ready yet.
        stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
