//! A TCP relay to the test database that can be cut: what a database
//! outage looks like from roomcast's side (connections reset, new ones
//! refused) without stopping the server other tests share.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

#[derive(Default)]
struct State {
    down: AtomicBool,
    relays: Mutex<Vec<AbortHandle>>,
}

pub struct Cut {
    pub addr: SocketAddr,
    state: Arc<State>,
    accept: AbortHandle,
}

impl Cut {
    /// Relay to the server `url` names (a `postgres://` URL).
    pub async fn start(url: &str) -> Cut {
        let to = server_of(url);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if st.down.load(Ordering::SeqCst) {
                    // Refused: closed at once (as a server that is down).
                    drop(inbound);
                    continue;
                }
                let relay = tokio::spawn(async move {
                    if let Ok(mut out) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                st.relays.lock().unwrap().push(relay.abort_handle());
            }
        })
        .abort_handle();
        Cut {
            addr,
            state,
            accept,
        }
    }

    /// `url` pointed at the relay.
    pub fn url(&self, url: &str) -> String {
        url.replacen(&server_of(url).to_string(), &self.addr.to_string(), 1)
    }

    /// Reset every relayed connection and refuse new ones.
    pub fn down(&self) {
        self.state.down.store(true, Ordering::SeqCst);
        for r in self.state.relays.lock().unwrap().drain(..) {
            r.abort();
        }
    }

    /// Relay again.
    pub fn up(&self) {
        self.state.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        self.accept.abort();
        self.down();
    }
}

/// host:port of a `postgres://user@host:port/db` URL.
fn server_of(url: &str) -> SocketAddr {
    let rest = url.split_once('@').map_or(url, |(_, r)| r);
    let hostport = rest.split(['/', '?']).next().unwrap_or(rest);
    hostport.parse().unwrap_or_else(|_| {
        panic!("the test database's URL names host:port as an IP address: {url}")
    })
}
