//! The dead-letter queue, for people: list what is in it (without consuming it) and send
//! messages back to the queues of their jobs.

use crate::options::{AmqpOptions, connect, unavailable};
use crate::topology::{Topology, passive_declare};
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use std::collections::BTreeSet;
use volley_core::{BrokerError, ChunkMessage, JobId};

/// Bytes of a body shown in a preview.
const PREVIEW_BYTES: usize = 120;

/// One dead-lettered message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    /// The broker message id (`{job}:{chunk}` for chunks Volley published).
    pub message_id: Option<String>,
    /// Why it died: `rejected` (a worker refused it: not a chunk, unknown job), or
    /// `delivery_limit` (it came back too many times), as RabbitMQ recorded it.
    pub reason: String,
    /// The job and chunk, when the body is a chunk.
    pub job: Option<String>,
    /// The chunk index.
    pub chunk: Option<u64>,
    /// Records in the chunk.
    pub records: Option<usize>,
    /// Body size.
    pub bytes: usize,
    /// The start of the body, non-printable bytes escaped (`\xff`).
    pub preview: String,
    /// The store holds outcomes for this chunk: a poison chunk whose records were settled as
    /// failed (`poison`). Filled in by callers that can ask the store.
    pub settled: bool,
}

fn header_str(headers: &FieldTable, name: &str) -> Option<String> {
    match headers.inner().get(name)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

fn death_reason(props: &BasicProperties) -> String {
    let Some(headers) = props.headers().as_ref() else {
        return "unknown".into();
    };
    if let Some(reason) = header_str(headers, "x-first-death-reason") {
        return reason;
    }
    // x-death: an array of tables, newest first; the oldest is the first death.
    if let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death")
        && let Some(AMQPValue::FieldTable(first)) = deaths.as_slice().last()
        && let Some(reason) = header_str(first, "reason")
    {
        return reason;
    }
    "unknown".into()
}

/// The queue a message died in (RabbitMQ records it in the death headers).
fn death_queue(props: &BasicProperties) -> Option<String> {
    let headers = props.headers().as_ref()?;
    if let Some(queue) = header_str(headers, "x-first-death-queue") {
        return Some(queue);
    }
    match headers.inner().get("x-death")? {
        AMQPValue::FieldArray(deaths) => match deaths.as_slice().last()? {
            AMQPValue::FieldTable(first) => header_str(first, "queue"),
            _ => None,
        },
        _ => None,
    }
}

/// The job whose queue a dead letter goes back to: the job queue it died in, or else the
/// job its body names.
fn home_job(topology: &Topology, dead: &DeadLetter, props: &BasicProperties) -> Option<JobId> {
    death_queue(props)
        .and_then(|queue| topology.job_of_queue(&queue))
        .or_else(|| dead.job.as_deref().and_then(|j| JobId::parse(j).ok()))
}

fn describe(data: &[u8], props: &BasicProperties) -> DeadLetter {
    let chunk = ChunkMessage::decode(data).ok();
    let shown = &data[..data.len().min(PREVIEW_BYTES)];
    let mut preview = shown.escape_ascii().to_string();
    if data.len() > PREVIEW_BYTES {
        preview.push('…');
    }
    DeadLetter {
        message_id: props.message_id().as_ref().map(|s| s.to_string()),
        reason: death_reason(props),
        job: chunk.as_ref().map(|c| c.job.to_string()),
        chunk: chunk.as_ref().map(|c| c.chunk),
        records: chunk.as_ref().map(|c| c.records.len()),
        bytes: data.len(),
        preview,
        settled: false,
    }
}

async fn open(options: &AmqpOptions) -> Result<(lapin::Connection, Channel), BrokerError> {
    let conn = connect(options, "dead-letters").await?;
    let channel = conn.create_channel().await.map_err(unavailable)?;
    Topology::new(&options.namespace).declare(&channel).await?;
    Ok((conn, channel))
}

/// Lists up to `limit` dead letters. They stay in the queue: each is fetched unacked and
/// returned when the channel closes.
pub(crate) async fn list(
    options: &AmqpOptions,
    limit: usize,
) -> Result<Vec<DeadLetter>, BrokerError> {
    // Listing only reads: a passive declare, so a reader whose delivery_limit differs from
    // the fleet's still lists (see `Topology::counts`).
    let conn = connect(options, "dead-letters").await?;
    let channel = conn.create_channel().await.map_err(unavailable)?;
    let queue = Topology::new(&options.namespace).dead;
    let mut out = Vec::new();
    if passive_declare(&channel, &queue).await?.is_none() {
        let _ = conn.close(200, "no queue".into()).await;
        return Ok(out);
    }
    while out.len() < limit {
        let Some(message) = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await
            .map_err(unavailable)?
        else {
            break;
        };
        out.push(describe(
            &message.delivery.data,
            &message.delivery.properties,
        ));
    }
    // Closing the connection returns every fetched message to the queue, in order.
    let _ = conn.close(200, "listed".into()).await;
    Ok(out)
}

/// Moves dead letters (of one job, or all) back to their jobs' queues (the queue each died
/// in), each one published with a confirm before it is removed from the dead-letter queue.
/// Returns how many moved. Only the messages present when it starts are looked at, so a
/// message that dies again at once is not moved in a loop. A message with no job to go back
/// to stays.
pub(crate) async fn requeue(
    options: &AmqpOptions,
    job: Option<&str>,
    settled: &dyn Fn(&DeadLetter) -> bool,
) -> Result<RequeueReport, BrokerError> {
    let (conn, channel) = open(options).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(unavailable)?;
    let topology = Topology::new(&options.namespace);
    let present = channel
        .queue_declare(
            topology.dead.as_str().into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(unavailable)?
        .message_count();
    let mut report = RequeueReport::default();
    let mut declared = BTreeSet::new();
    for _ in 0..present {
        let Some(message) = channel
            .basic_get(
                topology.dead.as_str().into(),
                BasicGetOptions { no_ack: false },
            )
            .await
            .map_err(unavailable)?
        else {
            break;
        };
        let delivery = message.delivery;
        let dead = describe(&delivery.data, &delivery.properties);
        if job.is_some_and(|j| dead.job.as_deref() != Some(j)) {
            // Not selected: it goes back when the connection closes.
            continue;
        }
        if settled(&dead) {
            // Its records are accounted for in the store already: sending the chunk again
            // would only repeat calls whose results are dropped.
            delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .map_err(unavailable)?;
            report.settled.push(dead);
            continue;
        }
        let Some(home) = home_job(&topology, &dead, &delivery.properties) else {
            tracing::warn!(
                message.id = dead.message_id.as_deref().unwrap_or(""),
                "dead letter has no job queue to go back to; it stays"
            );
            continue;
        };
        // The job's queue is deleted once the job ended: declared again before the first
        // message that goes back to it.
        if declared.insert(home.clone()) {
            topology
                .declare_job(&channel, &home, options.delivery_limit)
                .await?;
        }
        let mut props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into());
        if let Some(id) = &dead.message_id {
            props = props.with_message_id(id.as_str().into());
        }
        let confirm = channel
            .basic_publish(
                topology.exchange.as_str().into(),
                Topology::job_key(&home).as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &delivery.data,
                props,
            )
            .await
            .map_err(unavailable)?
            .await
            .map_err(unavailable)?;
        if confirm.is_nack() || confirm.take_message().is_some() {
            return Err(BrokerError::Refused {
                message_id: dead.message_id.unwrap_or_default(),
                reason: format!("queue {} refused the message", topology.job_queue(&home)),
            });
        }
        delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(unavailable)?;
        report.moved += 1;
    }
    let _ = conn.close(200, "requeued".into()).await;
    Ok(report)
}

/// What [`requeue`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RequeueReport {
    /// Messages sent back to their jobs' queues.
    pub moved: u64,
    /// Messages removed without sending them back, because the store had settled their
    /// chunk (poison chunks: their records failed with `poison`).
    pub settled: Vec<DeadLetter>,
}
