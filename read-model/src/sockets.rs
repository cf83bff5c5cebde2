//! TCP_NODELAY and keepalives for the database connections.
//!
//! sqlx 0.9.0 stopped setting TCP_NODELAY on the sockets it opens (transact-rs/sqlx#4335; fixed upstream after
//! 0.9.0, which is the newest release the registry has). Without it, a statement whose message spans several TCP
//! segments has its last segment held back by Nagle's algorithm until the server's delayed ACK, about 40 ms: every
//! multi-row statement of a batch paid that, on PostgreSQL and MySQL alike. Nor does it offer keepalives: a
//! database host that vanishes (no reset) would leave a connection waiting for the kernel's two hours.
//!
//! sqlx offers no way to reach its socket, so after each new connection the process's TCP sockets get
//! TCP_NODELAY, keepalive probes after 10 s idle (every 5 s, 3 unanswered close it) and TCP_USER_TIMEOUT (data
//! unacknowledged for 30 s closes it). Harmless to the others: HTTP clients and servers set NODELAY anyway, and
//! a peer that answers probes is not affected. A peer whose kernel answers but whose server does not (a hung
//! process, a proxy that stopped forwarding) is caught by the statement time limit (`db::Tx`), not here.

/// The options set, as (level, name, value).
#[cfg(target_os = "linux")]
const OPTIONS: [(libc::c_int, libc::c_int, libc::c_int); 6] = [
    (libc::IPPROTO_TCP, libc::TCP_NODELAY, 1),
    (libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1),
    (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 10),
    (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 5),
    (libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3),
    (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, 30_000),
];

/// Sets `OPTIONS` on every TCP socket of this process; returns how many sockets took them.
#[cfg(target_os = "linux")]
pub fn set_on_tcp_sockets() -> usize {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut set = 0;
    for entry in entries.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<libc::c_int>().ok()) else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        let mut all = true;
        for (level, name, value) in OPTIONS {
            // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `value`, which lives across the call. It
            // touches no Rust-owned memory; on a descriptor that is not (or no longer) a TCP socket it fails with
            // an errno (ENOTSOCK, EOPNOTSUPP, EBADF), which is the answer "not a TCP socket".
            let rc = unsafe {
                libc::setsockopt(
                    fd,
                    level,
                    name,
                    (&raw const value).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            all &= rc == 0;
        }
        if all {
            set += 1;
        }
    }
    set
}

#[cfg(not(target_os = "linux"))]
pub fn set_on_tcp_sockets() -> usize {
    0
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::os::fd::AsRawFd;

    fn option(fd: libc::c_int, level: libc::c_int, name: libc::c_int) -> libc::c_int {
        let mut value: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `value`, which outlives the call.
        let rc = unsafe { libc::getsockopt(fd, level, name, (&raw mut value).cast(), &raw mut len) };
        assert_eq!(rc, 0);
        value
    }

    #[test]
    fn given_a_tcp_connection_without_options_when_set_then_it_has_nodelay_keepalives_and_a_user_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        client.set_nodelay(false).expect("nodelay off");
        let fd = client.as_raw_fd();
        assert_eq!(option(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY), 0);
        assert_eq!(option(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE), 0);

        assert!(super::set_on_tcp_sockets() >= 1);

        for (level, name, value) in super::OPTIONS {
            assert_eq!(option(fd, level, name) != 0, value != 0, "option {name}");
            if name != libc::TCP_NODELAY && name != libc::SO_KEEPALIVE {
                assert_eq!(option(fd, level, name), value, "option {name}");
            }
        }
    }
}
