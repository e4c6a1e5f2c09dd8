//! Volley's domain, free of broker and store choices: the job spec, records and chunks,
//! record outcomes and counters, the retry policy, the HTTP processor and the pipeline that
//! drives records through it, and the [`Broker`] and [`Store`] capabilities with in-memory
//! implementations (the embedded default).

#![warn(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "stdout and stderr go through volley_core::outln! and errln!, which never panic on a closed pipe"
)]

mod backoff;
mod broker;
mod chunk;
mod controls;
pub mod exit;
pub mod failpoint;
pub mod governor;
mod http;
pub mod input;
mod job;
mod link;
pub mod memory;
pub mod metrics;
mod outcome;
pub mod output;
pub mod partial;
pub mod patiently;
mod pipeline;
pub mod preview;
mod redact_url;
pub mod redrive;
mod retry;
pub mod schema;
mod spec;
mod store;
mod tally;
pub mod template;
pub mod throughput;
pub mod time;

pub use backoff::Backoff;
pub use broker::{Broker, BrokerError, ChunkConsumer, ChunkDelivery, Follow, OutgoingChunk};
pub use chunk::{
    CHUNK_FORMAT_VERSION, ChunkDecodeError, ChunkEncoder, ChunkMessage, ChunkRecord, Redo,
};
pub use controls::{ControlChange, ControlReply, JobControls, LiveControls};
pub use http::{
    AttemptClass, ClientOptions, HostSignal, HttpProcessor, build_client, proxy_from_env,
};
pub use job::{JobId, JobState, Namespace};
pub use link::Link;
pub use outcome::{
    ErrorKind, RecordError, RecordOutcome, ResultDecodeError, ResultLine, decode_chunk_results,
    decode_row, encode_chunk_results,
};
pub use pipeline::{Processor, run_chunk, run_until};
pub use redact_url::redact_url;
pub use retry::{RetryPolicy, parse_retry_after};
pub use spec::{
    BodyMode, BreakerSpec, ChunkingSpec, ConcurrencySpec, InputSpec, JobSpec, RequestSpec,
    ResultSpec, RetrySpec, SpecDuration, SpecError, SpecMethod, Weight,
};
pub use store::{
    ActiveJob, ActiveJobs, ChunkCommit, CommitStatus, FailedInput, HoldReply, JobStatus, NewJob,
    PublishMark, Registration, Splice, Store, StoreError, WorkerBeat, WorkerPhase, render_list,
};
pub use tally::{ChunkTally, bucket_upper_ms, latency_bucket, percentile_ms};
pub use template::{RequestTemplate, TemplateError};
