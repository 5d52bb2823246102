//! A card's control socket: a Unix socket (mode 0600) that answers one request line per
//! connection, in a thread of its own so that a verb never waits for the card's link. Only the
//! user the emulator runs as (and root) may talk to it; a client that sends nothing is let go
//! after [`READ_TIMEOUT`]; a request is executed off the socket's thread, so a verb waiting
//! for a long command (an RSA key generation) holds up no other client.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::{Answer, CardControl, MAX_REQUEST};

/// How long a client may take to send its request line.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest path a Unix socket can have (`sun_path` less its final NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// A listening control socket; removed (and its thread stopped) when dropped.
pub struct ControlSocket {
    path: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The user this process runs as.
pub fn own_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

impl ControlSocket {
    /// Listens at `path` for `control`'s verbs. A socket left there by an emulator that is gone
    /// is replaced; one that still answers, or a file that is not a socket, is an error.
    pub fn listen(path: &Path, control: Arc<CardControl>) -> Result<ControlSocket, String> {
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(format!(
                "the control socket path {} is longer than a Unix socket path may be ({MAX_SOCKET_PATH} bytes): give a shorter one",
                path.display()
            ));
        }
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(format!(
                    "{} exists and is not a socket: not replacing it with the control socket",
                    path.display()
                ));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(format!(
                    "another emulator answers on the control socket {}",
                    path.display()
                ));
            }
            std::fs::remove_file(path)
                .map_err(|e| format!("cannot replace the stale socket {}: {e}", path.display()))?;
        }
        let listener = std::os::unix::net::UnixListener::bind(path)
            .map_err(|e| format!("cannot open the control socket {}: {e}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot restrict the control socket {}: {e}", path.display()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("control socket {}: {e}", path.display()))?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the control runtime: {e}"))?;
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let listener = match UnixListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(e) => {
                        tracing::error!(error = %e, "the control socket cannot be served");
                        return;
                    }
                };
                let accept = async {
                    loop {
                        match listener.accept().await {
                            Ok((stream, _)) => {
                                tokio::spawn(answer(stream, Arc::clone(&control)));
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "control socket: accept failed");
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stopped => {}
                }
            });
        });
        tracing::info!(socket = %path.display(), "control socket ready");
        Ok(ControlSocket {
            path: path.to_path_buf(),
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serves one connection: checks who is asking, reads one line, answers it.
async fn answer(mut stream: UnixStream, control: Arc<CardControl>) {
    let allowed = match (stream.peer_cred(), own_uid()) {
        (Ok(peer), Some(own)) => peer.uid() == own || peer.uid() == 0,
        _ => false,
    };
    if !allowed {
        tracing::warn!("control socket: a request from another user refused");
        let refusal = Answer::error("refused: only the user the emulator runs as may control it");
        let _ = stream.write_all(refusal.to_wire().as_bytes()).await;
        return;
    }
    let (read, mut write) = stream.split();
    let mut reader = BufReader::new(read.take(MAX_REQUEST as u64 + 1));
    let mut too_long = false;
    let mut line = String::new();
    let answer = match tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line)).await {
        Err(_) => Answer::error(format!(
            "no request within {} s: give one verb per connection, ended by a newline",
            READ_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => Answer::error(format!("cannot read the request: {e}")),
        Ok(Ok(_)) if line.len() > MAX_REQUEST => {
            too_long = true;
            Answer::error(format!("the request is longer than {MAX_REQUEST} bytes"))
        }
        Ok(Ok(_)) => {
            let request = line.trim().to_string();
            tracing::info!(request = %request, "control");
            tokio::task::spawn_blocking(move || control.execute(&request))
                .await
                .unwrap_or_else(|_| Answer::error("the request failed inside the emulator"))
        }
    };
    let _ = write.write_all(answer.to_wire().as_bytes()).await;
    if too_long {
        // What the client is still sending is read and dropped (for a while), so that the
        // answer is not lost to a reset of the connection.
        let _ = write.shutdown().await;
        let mut rest = reader.into_inner().into_inner().take(1 << 20);
        let mut sink = tokio::io::sink();
        let drain = tokio::io::copy(&mut rest, &mut sink);
        let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    }
}
