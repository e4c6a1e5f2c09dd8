use crate::options::{AmqpOptions, CLOSE_WAIT, connect, unavailable, within_open_deadline};
use crate::topology::Topology;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection};
use std::collections::BTreeSet;
use tokio::sync::Mutex;
use volley_core::{BrokerError, JobId, OutgoingChunk};

/// Persistent delivery mode.
const PERSISTENT: u8 = 2;

/// The publishing side: its own connection (a memory alarm blocks publishing connections,
/// and must not stall consumers), one confirm-mode channel, reopened after any failure.
#[derive(Debug)]
pub(crate) struct Publisher {
    options: AmqpOptions,
    open: Mutex<Option<(Connection, Channel)>>,
}

impl Publisher {
    pub(crate) fn new(options: AmqpOptions) -> Self {
        Self {
            options,
            open: Mutex::new(None),
        }
    }

    /// Opens the connection and channel, declares the topology and enables confirms, within
    /// one deadline: a publish must never hang on a broker that is still starting.
    async fn open(&self) -> Result<(Connection, Channel), BrokerError> {
        within_open_deadline(&self.options, "publishing channel", self.open_now()).await
    }

    async fn open_now(&self) -> Result<(Connection, Channel), BrokerError> {
        let conn = connect(&self.options, "producer").await?;
        let channel = conn.create_channel().await.map_err(unavailable)?;
        Topology::new(&self.options.namespace)
            .declare(&channel)
            .await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(unavailable)?;
        Ok((conn, channel))
    }

    /// Publishes the batch and waits for every confirm. Any failure drops the channel, so the
    /// next call starts on a fresh one; the caller republishes the batch.
    pub(crate) async fn publish_confirmed(
        &self,
        batch: Vec<OutgoingChunk>,
    ) -> Result<(), BrokerError> {
        let mut open = self.open.lock().await;
        if open
            .as_ref()
            .is_none_or(|(c, ch)| !c.status().connected() || !ch.status().connected())
        {
            *open = Some(self.open().await?);
        }
        let Some((_, channel)) = open.as_ref() else {
            return Err(BrokerError::Unavailable("no publishing channel".into()));
        };
        let topology = Topology::new(&self.options.namespace);
        let result = tokio::time::timeout(self.options.confirm_timeout, async {
            // Each job's queue may have been deleted since (its job ended, and this is a
            // redrive or a republish): declared before every batch, one call per job.
            let jobs: BTreeSet<&JobId> = batch.iter().map(|c| &c.job).collect();
            for job in jobs {
                topology
                    .declare_job(channel, job, self.options.delivery_limit)
                    .await?;
            }
            publish_all(channel, &topology.exchange, &batch).await
        })
        .await
        .unwrap_or_else(|_| {
            Err(BrokerError::Unavailable(format!(
                "publishes not confirmed within {:?} (is the broker blocked by a memory or disk alarm?)",
                self.options.confirm_timeout
            )))
        });
        if result.is_err()
            && let Some((conn, _)) = open.take()
        {
            // A dead peer never answers close: do not wait for it.
            let _ = tokio::time::timeout(
                CLOSE_WAIT,
                conn.close(200, "republishing after a failure".into()),
            )
            .await;
        }
        result
    }
}

async fn publish_all(
    channel: &Channel,
    exchange: &str,
    batch: &[OutgoingChunk],
) -> Result<(), BrokerError> {
    let mut pending = Vec::with_capacity(batch.len());
    for chunk in batch {
        let props = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type("application/json".into())
            .with_message_id(chunk.message_id.as_str().into());
        let confirm = channel
            .basic_publish(
                exchange.into(),
                Topology::job_key(&chunk.job).as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &chunk.payload,
                props,
            )
            .await
            .map_err(unavailable)?;
        pending.push((chunk.message_id.as_str(), confirm));
    }
    for (id, confirm) in pending {
        let confirmation = confirm.await.map_err(unavailable)?;
        if confirmation.is_nack() {
            return Err(BrokerError::Refused {
                message_id: id.to_string(),
                reason: "negative confirm (basic.nack)".into(),
            });
        }
        // An unroutable message is still confirmed, with the returned message attached. Its
        // job's queue was declared a moment before, so it was deleted since by a worker that
        // saw the job ended just before a redrive reopened it: the next try declares it
        // again, and nothing was enqueued, so publishing again duplicates nothing.
        if let Some(returned) = confirmation.take_message() {
            return Err(BrokerError::Unavailable(format!(
                "chunk {id} unroutable (basic.return {} {}): its job's queue is gone; declaring it again",
                returned.reply_code, returned.reply_text
            )));
        }
    }
    Ok(())
}
