use crate::delivery::{AmqpDelivery, ChannelHold};
use crate::options::{
    AmqpOptions, CLOSE_WAIT, CONNECT_FAILED, RECONNECT_BACKOFF, connect, unavailable,
    within_open_deadline,
};
use crate::topology::Topology;
use futures_util::StreamExt;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use volley_core::patiently::Patiently;
use volley_core::{BrokerError, ChunkConsumer, Follow, JobId, Link};

/// How often the supervisor looks at its connection and retries the jobs it could not
/// follow yet.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// What the worker asks of the supervisor.
enum Command {
    /// Consume exactly these jobs' queues.
    Follow(Vec<Follow>),
}

/// Consumes the queues of the jobs it is told to follow, one channel and one consumer per
/// job (each with the job's prefetch), on a connection of its own. A supervisor task owns
/// the connection: it starts and stops job consumers, reconnects with capped backoff and
/// jitter whenever the connection goes away, and then follows every job again. Deliveries
/// of a lost channel are never acked on another one: their acks report `false` and the
/// broker redelivers them.
pub struct AmqpConsumer {
    deliveries: mpsc::UnboundedReceiver<AmqpDelivery>,
    commands: mpsc::UnboundedSender<Command>,
    /// Fired by [`ChunkConsumer::cancel`]: no consumer is started, nor a reconnect tried, after.
    cancelled: CancellationToken,
    /// Fired by [`ChunkConsumer::close`]: the supervisor closes the connection and ends.
    closing: CancellationToken,
    supervisor: Option<tokio::task::JoinHandle<()>>,
    /// Up while connected; down with the last failure while reconnecting (`/readyz`).
    link: Arc<Link>,
    /// A refusal that following cannot cure (a job queue declared with other arguments).
    failure: Arc<Mutex<Option<BrokerError>>>,
}

impl std::fmt::Debug for AmqpConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpConsumer")
            .field("cancelled", &self.cancelled.is_cancelled())
            .field("connected", &self.link.is_up())
            .finish_non_exhaustive()
    }
}

impl AmqpConsumer {
    pub(crate) async fn start(options: AmqpOptions) -> Result<Self, BrokerError> {
        // The first connection fails fast, so a wrong URL or topology is reported at start-up.
        // Once connected, though, a refusal is retried a few times: RabbitMQ can refuse a
        // channel or a declare a moment after it started (`noproc`, 541) when several
        // workers start together.
        // Not on `Patiently`: it retries for a time, this at most 4 times (waits delay(1..=4)).
        let mut attempt = 0;
        let (conn, admin) = loop {
            match open(&options).await {
                Ok(opened) => break opened,
                Err(BrokerError::Unavailable(e)) if attempt < 4 && !e.contains(CONNECT_FAILED) => {
                    attempt += 1;
                    tracing::warn!(attempt, error.message = %e, "consumer could not start; retrying");
                    tokio::time::sleep(RECONNECT_BACKOFF.delay(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let (deliveries_tx, deliveries) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (ended_tx, ended) = mpsc::unbounded_channel();
        let cancelled = CancellationToken::new();
        let closing = CancellationToken::new();
        let link = Arc::new(Link::up_now());
        let failure = Arc::new(Mutex::new(None));
        let supervisor = Supervisor {
            topology: Topology::new(&options.namespace),
            options,
            conn: Some(conn),
            admin: Some(admin),
            wanted: Vec::new(),
            following: HashMap::new(),
            generation: 0,
            deliveries: Some(deliveries_tx),
            ended_tx,
            cancelled: cancelled.clone(),
            link: link.clone(),
            failure: failure.clone(),
        };
        let supervisor = tokio::spawn(supervisor.run(commands_rx, ended, closing.clone()));
        Ok(Self {
            deliveries,
            commands,
            cancelled,
            closing,
            supervisor: Some(supervisor),
            link,
            failure,
        })
    }
}

/// Connects and declares the namespace's exchange and dead-letter queue, within one
/// deadline. The channel that declared serves later declares and deletes.
async fn open(options: &AmqpOptions) -> Result<(Connection, Channel), BrokerError> {
    within_open_deadline(options, "consumer", async {
        let conn = connect(options, "worker").await?;
        let channel = conn.create_channel().await.map_err(unavailable)?;
        Topology::new(&options.namespace).declare(&channel).await?;
        Ok((conn, channel))
    })
    .await
}

/// One job's consumer: its channel, its consumer tag, and the generation that tells its
/// end apart from the end of a consumer the job had before.
struct JobConsumer {
    prefetch: u16,
    channel: Channel,
    tag: String,
    generation: u64,
}

/// A job consumer's stream ended: cancelled by us or by the broker (its queue deleted), or
/// its channel or connection lost.
struct Ended {
    job: JobId,
    generation: u64,
    error: Option<String>,
}

struct Supervisor {
    options: AmqpOptions,
    topology: Topology,
    conn: Option<Connection>,
    /// A channel for declares and deletes: a refused one closes only it, never a consumer's.
    admin: Option<Channel>,
    wanted: Vec<Follow>,
    following: HashMap<JobId, JobConsumer>,
    generation: u64,
    /// Dropped when following failed for good: the worker's `next()` then ends.
    deliveries: Option<mpsc::UnboundedSender<AmqpDelivery>>,
    ended_tx: mpsc::UnboundedSender<Ended>,
    cancelled: CancellationToken,
    /// Up while connected; down with the last failure while reconnecting (`/readyz`).
    link: Arc<Link>,
    failure: Arc<Mutex<Option<BrokerError>>>,
}

impl Supervisor {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut ended: mpsc::UnboundedReceiver<Ended>,
        closing: CancellationToken,
    ) {
        let mut look = tokio::time::interval(LOOK_EVERY);
        loop {
            tokio::select! {
                biased;
                () = self.cancelled.cancelled() => break,
                command = commands.recv() => match command {
                    Some(Command::Follow(jobs)) => {
                        self.wanted = jobs;
                        self.reconcile().await;
                    }
                    None => break,
                },
                Some(end) = ended.recv() => self.ended(end).await,
                _ = look.tick() => {
                    if self.conn.as_ref().is_none_or(|c| !c.status().connected()) {
                        self.reconnect().await;
                    }
                    self.reconcile().await;
                }
            }
        }
        // Cancelled: no new delivery, but the channels stay open so the deliveries already
        // handed out can still be settled, until the worker closes the consumer.
        for (job, consumer) in std::mem::take(&mut self.following) {
            cancel(&job, &consumer).await;
        }
        self.deliveries = None;
        closing.cancelled().await;
        if let Some(conn) = self.conn.take() {
            let _ =
                tokio::time::timeout(CLOSE_WAIT, conn.close(200, "worker stopping".into())).await;
        }
    }

    /// Starts what is wanted and not followed (or followed with another prefetch), and stops
    /// what is followed and no longer wanted.
    async fn reconcile(&mut self) {
        let wanted: HashMap<JobId, u16> = self
            .wanted
            .iter()
            .map(|f| (f.job.clone(), f.prefetch.max(1)))
            .collect();
        let stale: Vec<JobId> = self
            .following
            .iter()
            .filter(|(job, c)| wanted.get(*job) != Some(&c.prefetch))
            .map(|(job, _)| job.clone())
            .collect();
        for job in stale {
            if let Some(consumer) = self.following.remove(&job) {
                cancel(&job, &consumer).await;
            }
        }
        if self.conn.as_ref().is_none_or(|c| !c.status().connected()) {
            return;
        }
        for (job, prefetch) in wanted {
            if self.following.contains_key(&job) || self.cancelled.is_cancelled() {
                continue;
            }
            match self.start(&job, prefetch).await {
                Ok(consumer) => {
                    tracing::info!(job.id = %job, prefetch, "consuming the job's queue");
                    self.following.insert(job, consumer);
                }
                Err(BrokerError::Topology(e)) => {
                    tracing::error!(job.id = %job, error.message = %e, "cannot consume the job's queue");
                    self.fail(BrokerError::Topology(e));
                    return;
                }
                // Tried again at the next look.
                Err(e) => {
                    tracing::warn!(job.id = %job, error.message = %e, "could not consume the job's queue yet");
                }
            }
        }
    }

    /// Declares the job's queue (with this worker's delivery limit: a queue declared with
    /// another is refused here, naming the setting) and starts consuming it on a channel of
    /// its own.
    async fn start(&mut self, job: &JobId, prefetch: u16) -> Result<JobConsumer, BrokerError> {
        let admin = self.admin().await?;
        let declared = self
            .topology
            .declare_job(&admin, job, self.options.delivery_limit)
            .await;
        if let Err(e) = declared {
            self.admin = None;
            return Err(e);
        }
        let conn = self
            .conn
            .as_ref()
            .ok_or_else(|| BrokerError::Unavailable("no connection".into()))?;
        let channel = conn.create_channel().await.map_err(unavailable)?;
        let consumed = async {
            channel
                .basic_qos(prefetch, BasicQosOptions::default())
                .await?;
            channel
                .basic_consume(
                    self.topology.job_queue(job).as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
        };
        let consumer = match tokio::time::timeout(self.options.connect_timeout, consumed).await {
            Ok(Ok(consumer)) => consumer,
            Ok(Err(e)) => {
                let _ = tokio::time::timeout(CLOSE_WAIT, channel.close(200, "not consumed".into()))
                    .await;
                return Err(unavailable(e));
            }
            Err(_) => {
                return Err(BrokerError::Unavailable(format!(
                    "consume of {} not answered within {:?}",
                    self.topology.job_queue(job),
                    self.options.connect_timeout
                )));
            }
        };
        self.generation += 1;
        let started = JobConsumer {
            prefetch,
            tag: consumer.tag().to_string(),
            channel: channel.clone(),
            generation: self.generation,
        };
        let Some(deliveries) = self.deliveries.clone() else {
            return Err(BrokerError::Unavailable("consumer stopped".into()));
        };
        tokio::spawn(forward(
            job.clone(),
            self.generation,
            consumer,
            Arc::new(ChannelHold::new(channel)),
            deliveries,
            self.ended_tx.clone(),
        ));
        Ok(started)
    }

    /// The channel for declares and deletes, opened again after a refusal closed it.
    async fn admin(&mut self) -> Result<Channel, BrokerError> {
        if let Some(admin) = &self.admin
            && admin.status().connected()
        {
            return Ok(admin.clone());
        }
        let conn = self
            .conn
            .as_ref()
            .ok_or_else(|| BrokerError::Unavailable("no connection".into()))?;
        let admin = conn.create_channel().await.map_err(unavailable)?;
        self.admin = Some(admin.clone());
        Ok(admin)
    }

    async fn ended(&mut self, end: Ended) {
        let current = self
            .following
            .get(&end.job)
            .is_some_and(|c| c.generation == end.generation);
        if !current {
            // A consumer we stopped, replaced or gave up on: nothing to do.
            return;
        }
        self.following.remove(&end.job);
        match &end.error {
            Some(e) => {
                tracing::warn!(job.id = %end.job, error.message = %e, "the job's consumer lost its channel");
            }
            None => tracing::info!(
                job.id = %end.job,
                "the job's consumer was cancelled by the broker (queue deleted?); consuming again if the job is still followed"
            ),
        }
        if self.conn.as_ref().is_none_or(|c| !c.status().connected()) {
            self.reconnect().await;
        }
        self.reconcile().await;
    }

    /// Reconnects for as long as it takes (or until cancelled); every followed job is then
    /// consumed again by the next reconcile.
    async fn reconnect(&mut self) {
        self.link.down("not connected (reconnecting)");
        self.following.clear();
        self.admin = None;
        if let Some(old) = self.conn.take() {
            // A dead peer never answers close: do not wait for it.
            let _ = tokio::time::timeout(CLOSE_WAIT, old.close(200, "reconnecting".into())).await;
        }
        let mut failures = 0u32;
        let options = self.options.clone();
        let reconnected = Patiently::new(RECONNECT_BACKOFF, &self.cancelled)
            .run(
                |_: &BrokerError| true,
                |r| {
                    failures = r.attempt.saturating_add(1);
                    self.link.down(format!("not connected ({})", r.error));
                    tracing::warn!(attempt = r.attempt, error.message = %r.error, retry_in_ms = r.retry_in.as_millis() as u64, "consumer reconnect failed");
                },
                || open(&options),
            )
            .await;
        if let Ok((conn, admin)) = reconnected {
            tracing::info!(attempt = failures, "consumer reconnected");
            self.conn = Some(conn);
            self.admin = Some(admin);
            self.link.up();
        }
    }

    /// Gives up following: the worker's `next()` ends and it reads why from `failure`.
    fn fail(&mut self, error: BrokerError) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
        self.deliveries = None;
        self.cancelled.cancel();
    }
}

/// Stops a job consumer. The channel stays open: the deliveries already handed out hold it
/// until they are settled, and the forwarder hands out those still on their way.
async fn cancel(job: &JobId, consumer: &JobConsumer) {
    match tokio::time::timeout(
        CLOSE_WAIT,
        consumer
            .channel
            .basic_cancel(consumer.tag.as_str().into(), BasicCancelOptions::default()),
    )
    .await
    {
        Ok(Ok(())) => tracing::info!(job.id = %job, "stopped consuming the job's queue"),
        Ok(Err(e)) => tracing::debug!(job.id = %job, error.message = %e, "consumer cancel failed"),
        Err(_) => {
            tracing::warn!(job.id = %job, "consumer cancel not answered; the broker may be gone")
        }
    }
}

/// Hands a job consumer's deliveries to the worker until its stream ends, then says so.
async fn forward(
    job: JobId,
    generation: u64,
    mut consumer: lapin::Consumer,
    hold: Arc<ChannelHold>,
    deliveries: mpsc::UnboundedSender<AmqpDelivery>,
    ended: mpsc::UnboundedSender<Ended>,
) {
    let error = loop {
        match consumer.next().await {
            Some(Ok(delivery)) => {
                // A worker that stopped listening drops the delivery: unacked, it returns to
                // the queue when the channel closes.
                let _ = deliveries.send(AmqpDelivery::new(delivery, hold.clone()));
            }
            Some(Err(e)) => break Some(e.to_string()),
            None => break None,
        }
    };
    drop(hold);
    let _ = ended.send(Ended {
        job,
        generation,
        error,
    });
}

impl ChunkConsumer for AmqpConsumer {
    type Delivery = AmqpDelivery;

    fn follow(&mut self, jobs: Vec<Follow>) {
        let _ = self.commands.send(Command::Follow(jobs));
    }

    async fn next(&mut self) -> Option<AmqpDelivery> {
        if self.cancelled.is_cancelled() {
            return None;
        }
        tokio::select! {
            delivery = self.deliveries.recv() => delivery,
            () = self.cancelled.cancelled() => None,
        }
    }

    async fn cancel(&mut self) {
        self.cancelled.cancel();
    }

    async fn close(mut self) {
        self.closing.cancel();
        if let Some(supervisor) = self.supervisor.take() {
            let _ = tokio::time::timeout(CLOSE_WAIT.saturating_mul(2), supervisor).await;
        }
    }

    fn is_connected(&self) -> bool {
        !self.cancelled.is_cancelled() && self.link.is_up()
    }

    fn link(&self) -> Arc<Link> {
        self.link.clone()
    }

    fn failure(&mut self) -> Option<BrokerError> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}
