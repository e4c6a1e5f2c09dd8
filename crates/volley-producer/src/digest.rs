use sha2::{Digest, Sha256};

/// A running digest of the records published so far. A resumed producer recomputes it over
/// the records it skips and refuses to continue when the input changed under the job.
#[derive(Clone, Default)]
pub(crate) struct InputDigest(Sha256);

impl InputDigest {
    pub(crate) fn update(&mut self, id: &str, data: &str) {
        self.0.update(id.as_bytes());
        self.0.update([0]);
        self.0.update(data.as_bytes());
        self.0.update([b'\n']);
    }

    /// The hex digest of everything so far (the running state is kept).
    pub(crate) fn hex(&self) -> String {
        self.0
            .clone()
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}
