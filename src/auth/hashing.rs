//! The Argon2 threads: password hashing off the async executor, bounded in memory and CPU.

use crate::http::error::ApiError;

/// A few threads of their own for Argon2. Each hash takes 19 MiB; on the shared
/// blocking pool every thread that ever hashed would keep that much in its allocator
/// arena, so memory grew with the number of threads. Here it is bounded by the count,
/// and so is the CPU a burst of logins can take.
pub struct Hashing {
    jobs: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl Hashing {
    pub fn new(threads: usize) -> std::io::Result<Hashing> {
        let (jobs, queue) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("vesper-argon2-{i}"))
                .spawn(move || loop {
                    let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                })?;
        }
        Ok(Hashing { jobs })
    }

    /// Runs `work` on a hashing thread and waits for its answer.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = reply.send(work());
            }))
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("the hashing threads stopped")))?;
        answer
            .await
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("a hashing job failed")))
    }
}
