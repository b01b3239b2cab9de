//! Whether a loopback port is free and, when it is not, which process holds it.
//!
//! The holder is found the way `ss -ltnp` finds it: the listening socket's inode in
//! `/proc/net/tcp` (and `tcp6`), then the process with `socket:[inode]` among its
//! `/proc/<pid>/fd`. Processes of other users (or other network namespaces) stay unnamed.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

/// A process holding a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// Its program, as started (`argv[0]` in `/proc/<pid>/cmdline`), without its arguments.
    pub command: String,
}

/// `127.0.0.1:<port>`, where every server of this project listens.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Whether a server could listen on `addr` now. Binds the way the servers do (std and tokio
/// both set `SO_REUSEADDR`), so a port only in TIME_WAIT counts as free, as it is for them.
pub fn is_free(addr: SocketAddr) -> bool {
    TcpListener::bind(addr).is_ok()
}

/// `n` distinct ports that are free now, for servers that bind them a moment later.
///
/// Chosen below the kernel's ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`):
/// the kernel gives those ports to outgoing connections, so one picked there can be taken by
/// any connection on the machine (a parallel test's, the demo's own to PostgreSQL) before the
/// server binds it, and the server fails with "address in use". Below the range, only another
/// listener can take it. From [`FIRST_CHOSEN`] up, above the demo's defaults and the ports it
/// suggests; a random start, so parallel callers rarely try the same. Where the range leaves
/// no room, the operating system chooses (ephemeral ports) as before.
pub fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let end = ephemeral_start().unwrap_or(FIRST_CHOSEN);
    let span = end.saturating_sub(FIRST_CHOSEN);
    if usize::from(span) < n.saturating_mul(8) {
        return os_chosen(n);
    }
    let start = {
        use std::hash::BuildHasher;
        // Seeded at random for each process.
        std::hash::RandomState::new().hash_one(std::process::id()) % u64::from(span)
    };
    // All held at once while choosing, so no port is chosen twice.
    let mut listeners = Vec::with_capacity(n);
    for offset in 0..u64::from(span) {
        if listeners.len() == n {
            break;
        }
        let port = FIRST_CHOSEN + ((start + offset) % u64::from(span)) as u16;
        if let Ok(listener) = TcpListener::bind(loopback(port)) {
            listeners.push(listener);
        }
    }
    if listeners.len() < n {
        return os_chosen(n);
    }
    ports_of(&listeners)
}

/// The lowest port [`free_ports`] chooses: above the demo's defaults (7070, 8080, 8081) and
/// the sets it suggests (up to 13081).
pub const FIRST_CHOSEN: u16 = 20_000;

/// The first port of the kernel's ephemeral range, if the system says.
fn ephemeral_start() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `n` distinct ports the operating system chooses (ephemeral).
fn os_chosen(n: usize) -> std::io::Result<Vec<u16>> {
    // All bound at once, so the OS cannot hand out the same port twice.
    let listeners = (0..n)
        .map(|_| TcpListener::bind(loopback(0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    ports_of(&listeners)
}

fn ports_of(listeners: &[TcpListener]) -> std::io::Result<Vec<u16>> {
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

/// The process that holds TCP `port` (listening first, any other socket on it otherwise), if
/// `/proc` lets us see it.
pub fn holder(port: u16) -> Option<Holder> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(socket_inodes(&text, port));
        }
    }
    // Listening sockets first: that is who answers on the port.
    inodes.sort_by_key(|(listening, _)| !listening);
    let inodes: Vec<u64> = inodes.into_iter().map(|(_, inode)| inode).collect();
    let pid = pid_with_socket(&inodes)?;
    Some(Holder {
        pid,
        command: command_line(pid),
    })
}

/// `(listening, inode)` of each socket bound to local `port` in a `/proc/net/tcp` table.
fn socket_inodes(table: &str, port: u16) -> Vec<(bool, u64)> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            let state = fields.get(3)?;
            let inode: u64 = fields.get(9)?.parse().ok()?;
            let (_, hex_port) = local.rsplit_once(':')?;
            let local_port = u16::from_str_radix(hex_port, 16).ok()?;
            // Inode 0: a socket no process owns any more (TIME_WAIT and the like).
            (local_port == port && inode != 0).then_some((*state == LISTEN, inode))
        })
        .collect()
}

fn pid_with_socket(inodes: &[u64]) -> Option<u32> {
    if inodes.is_empty() {
        return None;
    }
    let targets: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let mut found: Option<(usize, u32)> = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // Unreadable for processes of other users: skipped, not an error.
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let Some(rank) = targets.iter().position(|t| link.as_os_str() == t.as_str()) else {
                continue;
            };
            if found.is_none_or(|(best, _)| rank < best) {
                found = Some((rank, pid));
            }
            if rank == 0 {
                return Some(pid);
            }
        }
    }
    found.map(|(_, pid)| pid)
}

fn command_line(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    // The program alone: its arguments may hold a secret (`--agent-token-secret …`, a
    // database URL with its password), and this is printed, to a terminal or a CI log.
    let program = raw.split(|b| *b == 0).next().unwrap_or_default();
    let mut program = String::from_utf8_lossy(program).trim().to_owned();
    if program.chars().count() > 200 {
        program = program.chars().take(200).collect::<String>() + "…";
    }
    if program.is_empty() {
        // Kernel threads and zombies have no command line; their name is in `comm`.
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim().to_owned())
            .unwrap_or_else(|_| "?".into())
    } else {
        program
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1B9E 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D2C4 01 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:1F90 0100007F:D2C6 06 00000000:00000000 03:00000C2F 00000000     0        0 0 3 0000000000000000
   3: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 9001 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn the_table_yields_the_sockets_on_a_port_and_skips_owner_less_ones() {
        // 0x1B9E = 7070, 0x1F90 = 8080.
        assert_eq!(socket_inodes(TABLE, 7070), vec![(true, 4242)]);
        assert_eq!(socket_inodes(TABLE, 8080), vec![(false, 777), (true, 9001)]);
        assert!(socket_inodes(TABLE, 8081).is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn our_own_listener_is_found_with_our_pid_and_the_port_is_not_free() {
        let listener = TcpListener::bind(loopback(0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(!is_free(loopback(port)));
        let holder = holder(port).expect("our own socket is visible in /proc");
        assert_eq!(holder.pid, std::process::id());
        assert!(!holder.command.is_empty());
        drop(listener);
        assert!(is_free(loopback(port)));
        assert_eq!(self::holder(port), None);
    }

    #[test]
    fn free_ports_are_distinct_and_free() {
        let ports = free_ports(3).unwrap();
        assert_eq!(ports.len(), 3);
        assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2]);
        assert!(ports.iter().all(|p| is_free(loopback(*p))));
    }

    /// No outgoing connection can be given one of them before a server binds it.
    #[test]
    fn free_ports_are_below_the_ephemeral_range_and_the_demos_ports() {
        let Some(ephemeral) = ephemeral_start() else {
            return;
        };
        if ephemeral < FIRST_CHOSEN + 100 {
            return;
        }
        let ports = free_ports(3).unwrap();
        assert!(
            ports.iter().all(|p| (FIRST_CHOSEN..ephemeral).contains(p)),
            "{ports:?} not in {FIRST_CHOSEN}..{ephemeral}"
        );
    }
}
