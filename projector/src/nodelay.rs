//! TCP_NODELAY for the database connections.
//!
//! sqlx 0.9.0 stopped setting TCP_NODELAY on the sockets it opens (transact-rs/sqlx#4335; fixed upstream after
//! 0.9.0, which is the newest release the registry has). Without it, a statement whose message spans several TCP
//! segments has its last segment held back by Nagle's algorithm until the server's delayed ACK, about 40 ms: every
//! multi-row statement of a batch paid that, on PostgreSQL and MySQL alike. sqlx offers no way to reach its socket,
//! so after each new connection the process's TCP sockets get TCP_NODELAY (harmless to the others: HTTP clients and
//! servers set it anyway). Remove this module once sqlx sets it again.

/// Sets TCP_NODELAY on every TCP socket of this process; returns how many accepted it.
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
        let on: libc::c_int = 1;
        // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `on`, which lives across the call. It touches no
        // Rust-owned memory; on a descriptor that is not (or no longer) a TCP socket it fails with an errno
        // (ENOTSOCK, EOPNOTSUPP, EBADF), which is the answer "not a TCP socket".
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&raw const on).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
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

    fn nodelay(fd: libc::c_int) -> bool {
        let mut value: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `value`, which outlives the call.
        let rc = unsafe {
            libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, (&raw mut value).cast(), &raw mut len)
        };
        rc == 0 && value != 0
    }

    #[test]
    fn given_a_tcp_connection_without_nodelay_when_set_then_it_has_nodelay() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        client.set_nodelay(false).expect("nodelay off");
        assert!(!nodelay(client.as_raw_fd()));

        assert!(super::set_on_tcp_sockets() >= 1);

        assert!(nodelay(client.as_raw_fd()));
    }
}
