//! The fleet state on Redis: GCRA buckets in a Lua script on Redis's clock, pauses and breaker
//! phases in hashes, and a pub/sub channel that tells every worker of a change at once.

use crate::conn::RedisOptions;
use crate::store::RedisStore;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use redis::{AsyncCommands, Script};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::broadcast;
use volley_core::governor::{FleetEvent, FleetState, HostLimit, Reservation, StoredBreaker};
use volley_core::time::now_ms;
use volley_core::{Backoff, StoreError, redact_url};

static GCRA: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/gcra.lua")));
static PAUSE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/pause.lua")));

/// The fleet state of a namespace on Redis.
pub struct RedisFleet {
    store: RedisStore,
    events: broadcast::Sender<FleetEvent>,
    clock: std::sync::Mutex<ClockOffset>,
}

/// This process's clock minus Redis's, estimated NTP-style from the round trip with the
/// smallest delay: a reservation's token times are moved onto the local clock with it. A
/// plain "local now at reply minus Redis now" is off by the whole round trip, which at
/// start-up (a new connection, the script's first load) is tens of milliseconds, and
/// tokens of different workers then overlap into bursts.
#[derive(Debug, Clone, Copy, Default)]
struct ClockOffset {
    offset_ms: f64,
    rtt_ms: f64,
    measured_ms: u64,
    known: bool,
}

impl ClockOffset {
    /// Takes a sample if it is better (a shorter round trip) or the estimate is old.
    fn sample(&mut self, sent_ms: f64, received_ms: f64, redis_now_ms: f64, now: u64) {
        let rtt = (received_ms - sent_ms).max(0.0);
        let stale = now.saturating_sub(self.measured_ms) > 30_000;
        if !self.known || stale || rtt <= self.rtt_ms {
            self.offset_ms = (sent_ms + received_ms) / 2.0 - redis_now_ms;
            self.rtt_ms = rtt;
            self.measured_ms = now;
            self.known = true;
        }
    }
}

fn precise_now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

impl RedisFleet {
    /// Starts listening to the namespace's fleet channel (reconnecting on its own).
    ///
    /// # Errors
    /// [`StoreError`] for an unparsable URL.
    pub fn start(store: RedisStore, options: &RedisOptions) -> Result<Arc<Self>, StoreError> {
        let client = redis::Client::open(options.url.as_str()).map_err(|e| {
            StoreError::Unavailable(format!(
                "invalid Redis URL {}: {e}",
                redact_url(&options.url)
            ))
        })?;
        let (events, _) = broadcast::channel(1024);
        let fleet = Arc::new(Self {
            store,
            events: events.clone(),
            clock: std::sync::Mutex::new(ClockOffset::default()),
        });
        tokio::spawn(subscribe(client, fleet.channel(), events));
        Ok(fleet)
    }

    fn key(&self, part: &str) -> String {
        format!("{}:fleet:{part}", self.store.namespace())
    }

    fn channel(&self) -> String {
        crate::keys::fleet_channel(self.store.namespace())
    }

    fn clock(&self) -> std::sync::MutexGuard<'_, ClockOffset> {
        // Plain number updates: a poisoned lock still holds a usable estimate.
        self.clock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Measures the clock offset with a few `TIME` calls (the first reservation only).
    async fn calibrate(&self) -> Result<(), StoreError> {
        for _ in 0..3 {
            let sent = precise_now_ms();
            let (secs, micros): (u64, u64) = self
                .store
                .with(|mut c| async move { redis::cmd("TIME").query_async(&mut c).await })
                .await?;
            let received = precise_now_ms();
            let redis_now = secs as f64 * 1000.0 + micros as f64 / 1000.0;
            self.clock().sample(sent, received, redis_now, now_ms());
        }
        Ok(())
    }

    /// Declares (or with `None` removes) a host's fleet-level rate limit.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn set_host_limit(
        &self,
        host: &str,
        limit: Option<HostLimit>,
    ) -> Result<(), StoreError> {
        let key = self.key("host_limits");
        let store = &self.store;
        match limit {
            Some(limit) => {
                let body = serde_json::to_string(&limit)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                store
                    .with(|mut c| async move { c.hset::<_, _, _, ()>(&key, host, body).await })
                    .await
            }
            None => {
                store
                    .with(|mut c| async move { c.hdel::<_, _, ()>(&key, host).await })
                    .await
            }
        }
    }
}

/// Waits before subscribing again: 200 ms, growing by 200 ms a try, to 5 s.
const RESUBSCRIBE_BACKOFF: Backoff =
    Backoff::linear(Duration::from_millis(200), Duration::from_secs(5));

/// Forwards the channel's messages to the local broadcast, resubscribing after any failure.
async fn subscribe(client: redis::Client, channel: String, events: broadcast::Sender<FleetEvent>) {
    let mut attempt = 0u32;
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if pubsub.subscribe(&channel).await.is_ok() {
                    attempt = 0;
                    let mut stream = pubsub.into_on_message();
                    while let Some(message) = stream.next().await {
                        let Ok(payload) = message.get_payload::<String>() else {
                            continue;
                        };
                        match serde_json::from_str::<FleetEvent>(&payload) {
                            Ok(event) => {
                                if events.send(event).is_err() && events.receiver_count() == 0 {
                                    return;
                                }
                            }
                            Err(e) => tracing::warn!(error.message = %e, "unreadable fleet event"),
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error.message = %e, "fleet channel unavailable"),
        }
        if events.receiver_count() == 0 && attempt > 0 {
            return;
        }
        let delay = RESUBSCRIBE_BACKOFF.delay(attempt);
        attempt = attempt.saturating_add(1);
        tokio::time::sleep(delay).await;
    }
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl FleetState for RedisFleet {
    fn reserve<'a>(
        &'a self,
        key: &'a str,
        n: u32,
        rate: f64,
        burst: u32,
    ) -> BoxFuture<'a, Result<Reservation, StoreError>> {
        Box::pin(async move {
            if !self.clock().known {
                self.calibrate().await?;
            }
            let bucket = self.key(&format!("tat:{key}"));
            let sent = precise_now_ms();
            let reply: (String, String) = self
                .store
                .with(|mut c| async move {
                    GCRA.key(&bucket)
                        .arg(n)
                        .arg(rate)
                        .arg(burst.max(1))
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            let local_now = precise_now_ms();
            let base: f64 = reply.0.parse().map_err(corrupt)?;
            let redis_now: f64 = reply.1.parse().map_err(corrupt)?;
            // Redis's clock, moved onto this process's: workers on skewed clocks still share
            // one schedule.
            let offset = {
                let mut clock = self.clock();
                clock.sample(sent, local_now, redis_now, now_ms());
                clock.offset_ms
            };
            Ok(Reservation {
                base_ms: base + offset,
                interval_ms: 1000.0 / rate,
                now_ms: local_now,
            })
        })
    }

    fn announce(&self, event: FleetEvent) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let payload = serde_json::to_string(&event).map_err(corrupt)?;
            let channel = self.channel();
            match &event {
                FleetEvent::Pause { host, until_ms } => {
                    let key = self.key("pauses");
                    self.store
                        .with(|mut c| async move {
                            PAUSE
                                .key(&key)
                                .key(&channel)
                                .arg(host)
                                .arg(until_ms)
                                .arg(&payload)
                                .invoke_async::<i64>(&mut c)
                                .await
                        })
                        .await?;
                }
                FleetEvent::Breaker { host, phase, cause } => {
                    let key = self.key("breakers");
                    let body = serde_json::to_string(&StoredBreaker {
                        phase: *phase,
                        cause: cause.clone(),
                    })
                    .map_err(corrupt)?;
                    self.store
                        .with(|mut c| async move {
                            redis::pipe()
                                .hset(&key, host, body)
                                .ignore()
                                .publish(&channel, &payload)
                                .ignore()
                                .query_async::<()>(&mut c)
                                .await
                        })
                        .await?;
                }
                FleetEvent::JobControl { .. } | FleetEvent::JobAdded { .. } => {
                    self.store
                        .with(
                            |mut c| async move { c.publish::<_, _, ()>(&channel, &payload).await },
                        )
                        .await?;
                }
            }
            Ok(())
        })
    }

    fn try_probe<'a>(
        &'a self,
        host: &'a str,
        ttl_ms: u64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let key = self.key(&format!("probe:{host}"));
            let won: Option<String> = self
                .store
                .with(|mut c| async move {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(now_ms())
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            Ok(won.is_some())
        })
    }

    fn current(&self) -> BoxFuture<'_, Result<Vec<FleetEvent>, StoreError>> {
        Box::pin(async move {
            let (pauses_key, breakers_key) = (self.key("pauses"), self.key("breakers"));
            let (pauses, breakers): (HashMap<String, u64>, HashMap<String, String>) = self
                .store
                .with(|mut c| async move {
                    redis::pipe()
                        .hgetall(&pauses_key)
                        .hgetall(&breakers_key)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            let now = now_ms();
            let mut out: Vec<FleetEvent> = pauses
                .into_iter()
                .filter(|(_, until)| *until > now)
                .map(|(host, until_ms)| FleetEvent::Pause { host, until_ms })
                .collect();
            for (host, body) in breakers {
                if let Ok(StoredBreaker { phase, cause }) = serde_json::from_str(&body) {
                    out.push(FleetEvent::Breaker { host, phase, cause });
                }
            }
            Ok(out)
        })
    }

    fn host_limits(&self) -> BoxFuture<'_, Result<HashMap<String, HostLimit>, StoreError>> {
        Box::pin(async move {
            let key = self.key("host_limits");
            let raw: HashMap<String, String> = self
                .store
                .with(|mut c| async move { c.hgetall(&key).await })
                .await?;
            Ok(raw
                .into_iter()
                .filter_map(|(host, body)| serde_json::from_str(&body).ok().map(|l| (host, l)))
                .collect())
        })
    }

    fn events(&self) -> broadcast::Receiver<FleetEvent> {
        self.events.subscribe()
    }
}
