//! A real `redis-server` for tests: started on a free port in a temporary directory, reached with
//! `PING` before [`RedisServer::start`] returns, killed when dropped. It can be stopped and
//! restarted on the same port and directory, to test how herald rides out a Redis outage.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
            persistence,
            dir,
            child: None,
        };
        server.spawn();
        server
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its URL, `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
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
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
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

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
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
