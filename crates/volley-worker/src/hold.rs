//! One delivery runs a chunk at a time. RabbitMQ may hand out a second copy of a chunk
//! while the first still runs: when the channel that carried it is lost (the broker returns
//! its unacked messages at once, but the worker holding them goes on), or when a producer
//! republished a batch whose confirms were lost. Checking the commit mark alone lets both
//! copies call the API; a hold in the store, renewed while the chunk runs, makes the copy
//! wait for the first one's commit (and then skip) or for the hold to expire (the holder
//! died) and run the rest.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use volley_core::patiently::Patiently;
use volley_core::{HoldReply, JobId, Store};

use crate::chunk::STORE_BACKOFF;

/// How long a hold lasts unless renewed: how long a copy of a chunk whose worker died
/// waits before it runs.
pub(crate) const HOLD_TTL: Duration = Duration::from_secs(12);

/// How often a running chunk renews its hold: four tries before it expires.
const RENEW_EVERY: Duration = Duration::from_secs(3);

/// The longest sleep between two looks at a hold held elsewhere.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// How long giving a hold up may take; a hold not given up expires.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// What asking for a chunk's hold came to.
pub(crate) enum Taken<S: Store> {
    /// The chunk is this delivery's to run.
    Hold(ChunkHold<S>),
    /// Committed already (by this copy's twin, or an earlier delivery): ack without work.
    Committed,
    /// Still held elsewhere after the wait allowed, or the drain timeout came: back to the
    /// queue, unsettled.
    Busy,
}

/// Names each hold this worker takes, so two deliveries of one chunk on the same worker
/// are told apart too.
pub(crate) struct Holders {
    prefix: String,
    next: AtomicU64,
}

impl Holders {
    pub(crate) fn new(worker_id: &str) -> Self {
        Self {
            prefix: format!("{worker_id}:{}", std::process::id()),
            next: AtomicU64::new(0),
        }
    }

    fn next(&self) -> String {
        format!(
            "{}:{}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// Takes the chunk's hold, waiting up to `wait` while another delivery holds it, and
/// retrying the store until it answers or `abort` fires.
pub(crate) async fn take<S: Store>(
    store: &S,
    holders: &Holders,
    job: &JobId,
    chunk: u64,
    wait: Duration,
    abort: &CancellationToken,
) -> Taken<S> {
    let holder = holders.next();
    let started = Instant::now();
    let mut waiting = false;
    loop {
        let reply = Patiently::new(STORE_BACKOFF, abort)
            .run(
                |_| true,
                |r| {
                    let e = r.error;
                    tracing::warn!(error.message = %e, "cannot take the chunk's hold; retrying");
                },
                || store.hold_chunk(job, chunk, &holder, HOLD_TTL),
            )
            .await;
        let left = match reply {
            // A job the store forgot since its spec was loaded: the commit will say so.
            Ok(HoldReply::Taken | HoldReply::UnknownJob) => {
                if waiting {
                    tracing::info!(
                        waited_ms = started.elapsed().as_millis() as u64,
                        "the chunk's other delivery gave it up; running the rest"
                    );
                }
                return Taken::Hold(ChunkHold::start(store.clone(), job, chunk, holder));
            }
            Ok(HoldReply::Committed) => return Taken::Committed,
            Ok(HoldReply::HeldElsewhere(left)) => left,
            Err(_) => return Taken::Busy,
        };
        if !waiting {
            tracing::info!(
                expires_in_ms = left.as_millis() as u64,
                "another delivery of this chunk is running it; waiting for its commit"
            );
            waiting = true;
        }
        let waited = started.elapsed();
        if waited >= wait {
            tracing::warn!(
                waited_secs = waited.as_secs(),
                "the chunk is still held by another delivery; returning this copy"
            );
            return Taken::Busy;
        }
        let pause = left
            .min(LOOK_EVERY)
            .min(wait - waited)
            .max(Duration::from_millis(10));
        tokio::select! {
            () = abort.cancelled() => return Taken::Busy,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// A delivery's hold on a chunk, renewed in the background until it is given up, the
/// commit ends it, or it is dropped (then it expires).
pub(crate) struct ChunkHold<S: Store> {
    store: S,
    job: JobId,
    chunk: u64,
    holder: String,
    lost: CancellationToken,
    renewing: tokio::task::JoinHandle<()>,
}

impl<S: Store> ChunkHold<S> {
    fn start(store: S, job: &JobId, chunk: u64, holder: String) -> Self {
        let lost = CancellationToken::new();
        let renewing = tokio::spawn(renew(
            store.clone(),
            job.clone(),
            chunk,
            holder.clone(),
            lost.clone(),
        ));
        Self {
            store,
            job: job.clone(),
            chunk,
            holder,
            lost,
            renewing,
        }
    }

    /// Fires when another delivery took the chunk over (this worker could not renew in time)
    /// or committed it: no new request of the chunk may be sent after.
    pub(crate) fn lost(&self) -> &CancellationToken {
        &self.lost
    }

    /// Gives the hold up: the chunk goes back to the queue, and its next delivery need not
    /// wait for the hold to expire.
    pub(crate) async fn release(self) {
        self.renewing.abort();
        let released = tokio::time::timeout(
            RELEASE_WAIT,
            self.store
                .release_chunk(&self.job, self.chunk, &self.holder),
        )
        .await;
        if !matches!(released, Ok(Ok(()))) {
            tracing::debug!("chunk hold not given up; it expires");
        }
    }
}

impl<S: Store> Drop for ChunkHold<S> {
    fn drop(&mut self) {
        self.renewing.abort();
    }
}

async fn renew<S: Store>(
    store: S,
    job: JobId,
    chunk: u64,
    holder: String,
    lost: CancellationToken,
) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        match store.hold_chunk(&job, chunk, &holder, HOLD_TTL).await {
            Ok(HoldReply::Taken | HoldReply::UnknownJob) => {}
            Ok(HoldReply::Committed) => {
                tracing::info!(
                    "another delivery committed this chunk; sending none of its remaining requests"
                );
                lost.cancel();
                return;
            }
            Ok(HoldReply::HeldElsewhere(_)) => {
                tracing::warn!(
                    "the chunk's hold expired and another delivery took it over; sending none of its remaining requests"
                );
                lost.cancel();
                return;
            }
            // The hold lasts HOLD_TTL from the last renewal; a store that answers again in
            // time keeps it.
            Err(e) => tracing::debug!(error.message = %e, "chunk hold not renewed; trying again"),
        }
    }
}
