//! A network of the test's own for fault tests: a network namespace joined to the test's namespace
//! by a veth pair, and faults on that link (delay, packet loss, a partition), all removed when the
//! [`NetLink`] is dropped, even when the test panics.
//!
//! ```no_run
//! use herald_testkit::netns::{Fault, NetLink};
//!
//! let link = NetLink::create().expect("needs root or CAP_NET_ADMIN");
//! // Run a server inside: `ip netns exec <link.namespace()> ...`, listening on link.inner_ip().
//! link.apply(Fault::Loss(30)).unwrap();
//! link.apply(Fault::None).unwrap();
//! ```
//!
//! Needs root (or `CAP_NET_ADMIN` and `CAP_SYS_ADMIN`) and the `ip`, `tc` and `nft` programs
//! (`scripts/test` installs `iproute2` and `nftables`). Loss and the partition are nftables rules
//! in the namespace (`numgen random` drops, both directions): they need no qdisc module. Delay
//! is `tc netem` where the kernel has it, and else a `tbf` rate limit that queues every packet
//! (the link gets slow instead of far: see [`Fault::Delay`]). [`NetLink::apply`] says which.

use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Counts the links of this process, so that names and subnets differ between links.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The nftables table the faults live in (inside the namespace only).
const TABLE: &str = "herald_fault";

/// A fault on the link, replacing the one before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A healthy link.
    None,
    /// About this many milliseconds more each way: `netem delay`, or, on a kernel without
    /// netem, a `tbf` queue whose rate makes a full-size packet take that long.
    Delay(u32),
    /// Drop this percentage of packets, both directions, at random.
    Loss(u8),
    /// Drop every packet: established connections stay open but hear nothing (a partition,
    /// not a refused connection).
    Partition,
}

/// A namespace and the veth pair to it; deleted on drop.
#[derive(Debug)]
pub struct NetLink {
    namespace: String,
    outer_dev: String,
    inner_dev: String,
    outer_ip: Ipv4Addr,
    inner_ip: Ipv4Addr,
}

/// Why a link or a fault could not be set up: the command and what it said.
#[derive(Debug)]
pub struct NetError(pub String);

impl std::fmt::Display for NetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NetError {}

fn run(args: &[&str]) -> Result<Output, NetError> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| NetError(format!("{}: {e} (install iproute2 and nftables)", args[0])))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(NetError(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl NetLink {
    /// Creates a namespace `herald-t-<pid>-<n>`, a veth pair into it and a /30 of 10.213.0.0/16
    /// picked from the pid, so that concurrent runs do not collide.
    ///
    /// # Errors
    ///
    /// When `ip netns add` or the veth setup fails: most often, the test is not root.
    pub fn create() -> Result<Self, NetError> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag = pid.wrapping_mul(7).wrapping_add(n) % 16_384;
        let base = tag * 4;
        let [hi, lo] = [(base >> 8) as u8, (base & 0xff) as u8];
        let mut link = Self {
            namespace: format!("herald-t-{pid}-{n}"),
            // Interface names have at most 15 bytes.
            outer_dev: format!("hzo{}", pid % 100_000 * 10 + n % 10),
            inner_dev: format!("hzi{}", pid % 100_000 * 10 + n % 10),
            outer_ip: Ipv4Addr::new(10, 213, hi, lo + 1),
            inner_ip: Ipv4Addr::new(10, 213, hi, lo + 2),
        };
        run(&["ip", "netns", "add", &link.namespace]).map_err(|e| {
            NetError(format!(
                "{e}\nthis fault test needs root or CAP_NET_ADMIN to create a network namespace"
            ))
        })?;
        // From here on Drop cleans up whatever was made.
        let setup = link.set_up();
        if let Err(err) = setup {
            link.remove();
            // Keep Drop from trying again.
            link.namespace.clear();
            return Err(err);
        }
        Ok(link)
    }

    fn set_up(&self) -> Result<(), NetError> {
        let ns = self.namespace.as_str();
        run(&[
            "ip",
            "link",
            "add",
            &self.outer_dev,
            "type",
            "veth",
            "peer",
            "name",
            &self.inner_dev,
            "netns",
            ns,
        ])?;
        let outer = format!("{}/30", self.outer_ip);
        let inner = format!("{}/30", self.inner_ip);
        run(&["ip", "addr", "add", &outer, "dev", &self.outer_dev])?;
        run(&["ip", "link", "set", &self.outer_dev, "up"])?;
        run(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &inner,
            "dev",
            &self.inner_dev,
        ])?;
        run(&["ip", "-n", ns, "link", "set", &self.inner_dev, "up"])?;
        run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// The namespace's name, for `ip netns exec`.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The address inside the namespace.
    pub fn inner_ip(&self) -> Ipv4Addr {
        self.inner_ip
    }

    /// The address on the test's side.
    pub fn outer_ip(&self) -> Ipv4Addr {
        self.outer_ip
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.namespace, program]);
        command
    }

    /// Replaces the link's fault with `fault`; answers how it was made (for the test's log).
    ///
    /// # Errors
    ///
    /// When `tc` or `nft` refuses.
    pub fn apply(&self, fault: Fault) -> Result<String, NetError> {
        self.clear();
        let ns = self.namespace.as_str();
        match fault {
            Fault::None => Ok("healthy link".to_owned()),
            Fault::Delay(ms) => {
                let delay = format!("{ms}ms");
                let netem = ["root", "netem", "delay", &delay];
                let on = |dev: &str, outside: bool, args: &[&str]| {
                    let mut all = vec!["tc"];
                    if !outside {
                        all.extend(["-n", ns]);
                    }
                    all.extend(["qdisc", "replace", "dev", dev]);
                    all.extend(args);
                    run(&all).map(|_| ())
                };
                if on(&self.outer_dev, true, &netem).is_ok() {
                    on(&self.inner_dev, false, &netem)?;
                    return Ok(format!("netem delay {ms}ms each way"));
                }
                // No netem: a rate at which a 1500-byte packet takes `ms` to leave, with a
                // queue long enough that nothing is dropped by it.
                let rate = format!("{}bit", 1500 * 8 * 1000 / u64::from(ms.max(1)));
                let tbf = [
                    "root", "tbf", "rate", &rate, "burst", "1600", "latency", "5s",
                ];
                on(&self.outer_dev, true, &tbf)?;
                on(&self.inner_dev, false, &tbf)?;
                Ok(format!(
                    "no netem in this kernel: tbf rate {rate} each way (about {ms}ms per full packet)"
                ))
            }
            Fault::Loss(percent) => {
                self.drop_rule(&format!("numgen random mod 100 < {percent} drop"))?;
                Ok(format!("nftables: drop {percent}% of packets both ways"))
            }
            Fault::Partition => {
                self.drop_rule("drop")?;
                Ok("nftables: drop every packet both ways (partition)".to_owned())
            }
        }
    }

    fn drop_rule(&self, rule: &str) -> Result<(), NetError> {
        let dev = &self.inner_dev;
        let script = format!(
            "table inet {TABLE} {{\n\
             chain in {{ type filter hook input priority 0; policy accept; iifname \"{dev}\" {rule}; }}\n\
             chain out {{ type filter hook output priority 0; policy accept; oifname \"{dev}\" {rule}; }}\n\
             }}\n"
        );
        let path = std::env::temp_dir().join(format!("{}.nft", self.namespace));
        std::fs::write(&path, script).map_err(|e| NetError(format!("{}: {e}", path.display())))?;
        let file = path.to_string_lossy().into_owned();
        let result = run(&["ip", "netns", "exec", &self.namespace, "nft", "-f", &file]);
        let _ = std::fs::remove_file(&path);
        result.map(|_| ())
    }

    /// Removes every fault: qdiscs back to the default, the nftables table gone.
    fn clear(&self) {
        let ns = self.namespace.as_str();
        // "No such file" when there is none: not an error.
        let _ = run(&["tc", "qdisc", "del", "dev", &self.outer_dev, "root"]);
        let _ = run(&[
            "tc",
            "-n",
            ns,
            "qdisc",
            "del",
            "dev",
            &self.inner_dev,
            "root",
        ]);
        let _ = run(&[
            "ip", "netns", "exec", ns, "nft", "delete", "table", "inet", TABLE,
        ]);
    }

    fn remove(&self) {
        // Deleting one end of a veth deletes both; deleting the namespace deletes its end.
        let _ = run(&["ip", "link", "del", &self.outer_dev]);
        let _ = run(&["ip", "netns", "del", &self.namespace]);
    }
}

impl Drop for NetLink {
    fn drop(&mut self) {
        if !self.namespace.is_empty() {
            self.remove();
        }
    }
}
