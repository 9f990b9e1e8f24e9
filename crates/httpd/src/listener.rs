//! The accept loop: a connection cap below the open-file limit, eviction of the connection
//! idle longest when the cap is reached (so a client hoarding idle connections cannot lock
//! others out), and a graceful stop on SIGINT/SIGTERM.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::conn::{serve_connection, Context};
use crate::options::Limits;
use crate::stats::Stats;

/// How long a stopping server waits for requests in progress.
const DRAIN: Duration = Duration::from_secs(5);

/// A connection as the accept loop sees it.
#[derive(Default)]
pub(crate) struct Slot {
    /// Since when the connection waits for, or reads, a request (head and body); None while
    /// a request is being answered.
    idle_since: Mutex<Option<Instant>>,
    evict: Notify,
}

impl Slot {
    pub(crate) fn set_idle(&self, idle: bool) {
        *self.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = idle.then(Instant::now);
    }

    fn idle_since(&self) -> Option<Instant> {
        *self.idle_since.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Completes when the accept loop chose this connection to make room.
    pub(crate) async fn evicted(&self) {
        self.evict.notified().await
    }
}

/// Open connections by id.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    slots: Mutex<HashMap<u64, Arc<Slot>>>,
}

impl Registry {
    fn add(&self) -> (u64, Arc<Slot>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot::default());
        slot.set_idle(true);
        self.lock().insert(id, slot.clone());
        (id, slot)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the connection idle longest to close; false when every connection is busy.
    fn evict_oldest_idle(&self) -> bool {
        let mut slots = self.lock();
        let oldest = slots
            .iter()
            .filter_map(|(id, slot)| slot.idle_since().map(|t| (t, *id)))
            .min();
        match oldest.and_then(|(_, id)| slots.remove(&id)) {
            Some(slot) => {
                slot.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Removes a finished connection and frees its place under the cap.
struct Open {
    id: u64,
    registry: Arc<Registry>,
    stats: Arc<Stats>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let sigterm = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = sigterm => {}
    }
}

/// Serves `router` on `listener` within `limits` until SIGINT/SIGTERM, then lets requests in
/// progress finish for a few seconds.
pub async fn serve(listener: TcpListener, router: Router, limits: Limits, stats: Arc<Stats>) {
    let cap = limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(cap));
    let registry = Arc::new(Registry::default());
    let ctx = Arc::new(Context {
        router,
        limits,
        stats: stats.clone(),
    });
    let (stop, stopped) = watch::channel(false);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut failing = false;
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors or a transient network error: back off a little.
                    if !failing {
                        tracing::warn!("accepting a connection failed: {e}");
                    }
                    failing = true;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        failing = false;
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if registry.evict_oldest_idle() {
                    Stats::add(&stats.evicted);
                }
                tokio::select! {
                    _ = &mut shutdown => break,
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                }
            }
        };
        let _ = stream.set_nodelay(true);
        Stats::add(&stats.accepted);
        stats.open.fetch_add(1, Ordering::Relaxed);
        let (id, slot) = registry.add();
        let open = Open {
            id,
            registry: registry.clone(),
            stats: stats.clone(),
            _permit: permit,
        };
        let (ctx, stopped) = (ctx.clone(), stopped.clone());
        tokio::spawn(async move {
            serve_connection(stream, ctx, slot, stopped).await;
            drop(open);
        });
    }
    tracing::info!("stopping: no new connections; finishing requests in progress");
    let _ = stop.send(true);
    drop(listener);
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(DRAIN, permits.acquire_many(all)).await;
}

/// How long a stopping server gives its tasks (a source read that hangs must not hold the exit).
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// Run a server future to its end on a 2-worker tokio runtime (blocking), then give what is left
/// [`STOP_GRACE`] to finish.
pub fn run_blocking<T, E>(server: impl std::future::Future<Output = Result<T, E>>) -> Result<T, E>
where
    E: From<std::io::Error>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| std::io::Error::new(e.kind(), format!("starting the tokio runtime: {e}")))?;
    let result = runtime.block_on(server);
    runtime.shutdown_timeout(STOP_GRACE);
    result
}
