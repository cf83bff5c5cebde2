//! For tests: a TCP proxy in front of a server (a database) that can fail the way networks do. `cut` resets every
//! connection at once (a restart, a failover); `go_silent` keeps every connection open but passes nothing either
//! way and accepts new ones that get nothing (a peer that stopped answering, a partition that leaves sockets
//! open); `heal` lets traffic through again, to connections opened from then on.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Silent,
}

pub struct FaultProxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    /// Raised to cut every open connection.
    generation: watch::Sender<u64>,
    connections: Arc<Mutex<u64>>,
}

impl FaultProxy {
    /// A proxy on a free loopback port in front of `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (mode, modes) = watch::channel(Mode::Pass);
        let (generation, generations) = watch::channel(0u64);
        let connections = Arc::new(Mutex::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if let Ok(mut n) = counted.lock() {
                    *n += 1;
                }
                tokio::spawn(relay(client, target, modes.clone(), generations.clone()));
            }
        });
        Ok(FaultProxy { addr, mode, generation, connections })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.lock().map(|n| *n).unwrap_or(0)
    }

    /// Resets every open connection (new ones pass, unless silent).
    pub fn cut(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// From now on nothing passes, on open connections or new ones, and nothing is closed.
    pub fn go_silent(&self) {
        let _ = self.mode.send(Mode::Silent);
    }

    /// Traffic passes again. Connections that were open while silent are cut (their peers have lost bytes).
    pub fn heal(&self) {
        self.cut();
        let _ = self.mode.send(Mode::Pass);
    }
}

async fn relay(
    client: TcpStream,
    target: SocketAddr,
    mut modes: watch::Receiver<Mode>,
    mut generations: watch::Receiver<u64>,
) {
    let born = *generations.borrow_and_update();
    // A cut resets (RST), as a crashed server or a failover does; it does not say goodbye.
    let _ = client.set_zero_linger();
    if *modes.borrow_and_update() == Mode::Silent {
        let _ = generations.wait_for(|g| *g != born).await;
        return;
    }
    let Ok(server) = TcpStream::connect(target).await else { return };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = forward(client_read, server_write, modes.clone());
    let down = forward(server_read, client_write, modes);
    tokio::select! {
        () = async { tokio::join!(up, down); } => {}
        _ = generations.wait_for(|g| *g != born) => {}
    }
}

async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut modes: watch::Receiver<Mode>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if *modes.borrow_and_update() == Mode::Silent {
            // Swallow this and everything after, until the connection is cut.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
