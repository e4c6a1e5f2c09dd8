//! The namespace's schema record and migration lock (`lua/schema.lua`, one hash).

use crate::RedisStore;
use crate::keys::{jobs_index, namespace_marker, schema_key};
use crate::scripts::SCHEMA;
use redis::AsyncCommands as _;
use std::collections::HashMap;
use std::time::Duration;
use volley_core::schema::{Applied, SchemaRecord, SchemaStore};
use volley_core::{Namespace, StoreError};

impl RedisStore {
    async fn schema_op(
        &self,
        op: &str,
        holder: &str,
        args: &[String],
    ) -> Result<String, StoreError> {
        let key = schema_key(self.namespace());
        let (op, holder, args) = (op.to_string(), holder.to_string(), args.to_vec());
        self.with(|mut c| async move {
            let mut call = SCHEMA.key(&key);
            call.arg(&op).arg(&holder);
            for a in &args {
                call.arg(a);
            }
            call.invoke_async(&mut c).await
        })
        .await
    }
}

impl SchemaStore for RedisStore {
    fn schema_namespace(&self) -> &Namespace {
        self.namespace()
    }

    async fn read_schema(&self) -> Result<SchemaRecord, StoreError> {
        let (key, jobs, marker) = (
            schema_key(self.namespace()),
            jobs_index(self.namespace()),
            namespace_marker(self.namespace()),
        );
        let (fields, has_jobs, has_marker): (HashMap<String, String>, bool, bool) = self
            .with(|mut c| async move {
                let fields: HashMap<String, String> = c.hgetall(&key).await?;
                let has_jobs: bool = c.exists(&jobs).await?;
                let has_marker: bool = c.exists(&marker).await?;
                Ok((fields, has_jobs, has_marker))
            })
            .await?;
        let version = match fields.get("version") {
            None => None,
            Some(v) => Some(v.parse::<u32>().map_err(|_| {
                StoreError::Corrupt(format!(
                    "{}: version {v:?} is not a number",
                    schema_key(self.namespace())
                ))
            })?),
        };
        let mut applied = Vec::new();
        for (field, json) in &fields {
            if field.starts_with('m') {
                applied.push(serde_json::from_str::<Applied>(json).map_err(|e| {
                    StoreError::Corrupt(format!("{}: {field}: {e}", schema_key(self.namespace())))
                })?);
            }
        }
        applied.sort_by_key(|a| a.version);
        Ok(SchemaRecord {
            version,
            applied,
            has_data: has_jobs || has_marker,
        })
    }

    async fn lock_schema(&self, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        Ok(self
            .schema_op("lock", holder, &[ttl_ms.to_string()])
            .await?
            == "locked")
    }

    async fn record_migration(&self, holder: &str, applied: &Applied) -> Result<bool, StoreError> {
        let json =
            serde_json::to_string(applied).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let reply = self
            .schema_op("record", holder, &[applied.version.to_string(), json])
            .await?;
        Ok(reply == "recorded")
    }

    async fn unlock_schema(&self, holder: &str) -> Result<(), StoreError> {
        self.schema_op("unlock", holder, &[]).await.map(drop)
    }
}
