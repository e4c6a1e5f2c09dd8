use crate::options::{AmqpOptions, CLOSE_WAIT, connect, unavailable, within_open_deadline};
use crate::topology::{CHUNK_KEY, Topology};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection};
use tokio::sync::Mutex;
use volley_core::{BrokerError, OutgoingChunk};

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
            .declare(&channel, self.options.delivery_limit)
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
        let result = tokio::time::timeout(
            self.options.confirm_timeout,
            publish_all(channel, &self.options.namespace.to_string(), &batch),
        )
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
                CHUNK_KEY.into(),
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
        // An unroutable message is still confirmed, with the returned message attached.
        if let Some(returned) = confirmation.take_message() {
            return Err(BrokerError::Refused {
                message_id: id.to_string(),
                reason: format!(
                    "unroutable (basic.return {} {})",
                    returned.reply_code, returned.reply_text
                ),
            });
        }
    }
    Ok(())
}
