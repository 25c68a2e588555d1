//! Data files encoded on threads of their own, as many as there are cores (2 to 4).
//!
//! One encoder thread was enough while parsing was slow; once it was not, the end of every
//! ingest ran on one core: the buffers left when the input ends (up to 64 MiB) were sorted,
//! digested, encoded and compressed one after the other while the other cores idled (0.5 s of
//! a 4.7 s Vault ingest). Files are independent, so each job goes to whichever thread is free.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::StoreError;

/// What the threads have done: results by job number, how many jobs ended, the first error.
struct Done<R> {
    results: Vec<(u64, R)>,
    ended: u64,
    error: Option<StoreError>,
    /// A job failed: nothing more is written (the run commits nothing).
    failed: bool,
}

struct Shared<R> {
    done: Mutex<Done<R>>,
    changed: Condvar,
}

impl<R> Shared<R> {
    fn lock(&self) -> MutexGuard<'_, Done<R>> {
        self.done.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs `work` on each job sent, on a few threads; stops taking new work after an error.
pub struct Encoders<J: Send + 'static, R: Send + 'static> {
    jobs: Option<SyncSender<(u64, J)>>,
    shared: Arc<Shared<R>>,
    threads: Vec<JoinHandle<()>>,
    sent: u64,
}

/// Counts a job as ended even when its work panics, so [`Encoders::wait`] never waits forever.
struct EndGuard<'a, R> {
    shared: &'a Shared<R>,
    result: Option<Result<R, StoreError>>,
    number: u64,
}

impl<R> Drop for EndGuard<'_, R> {
    fn drop(&mut self) {
        let mut done = self.shared.lock();
        match self.result.take() {
            Some(Ok(r)) => done.results.push((self.number, r)),
            Some(Err(e)) => {
                done.failed = true;
                done.error.get_or_insert(e);
            }
            None => {
                done.failed = true;
                done.error.get_or_insert(StoreError::Parquet {
                    path: "encoder".into(),
                    message: "a Parquet encoder thread panicked".into(),
                });
            }
        }
        done.ended += 1;
        self.shared.changed.notify_all();
    }
}

impl<J: Send + 'static, R: Send + 'static> Encoders<J, R> {
    pub fn new<F>(work: F) -> Self
    where
        F: Fn(J) -> Result<R, StoreError> + Send + Sync + 'static,
    {
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, 4);
        // No job waits beside those being encoded (a send waits for a free thread): memory
        // stays one file's worth per thread when encoding is the slower side (with one more
        // queued, a 5 M-entry Vault ingest keeping raw events peaked at 496 MiB).
        let (tx, rx) = sync_channel::<(u64, J)>(0);
        let rx = Arc::new(Mutex::new(rx));
        let shared = Arc::new(Shared {
            done: Mutex::new(Done {
                results: Vec::new(),
                ended: 0,
                error: None,
                failed: false,
            }),
            changed: Condvar::new(),
        });
        let work = Arc::new(work);
        let threads = (0..threads)
            .map(|_| {
                let (rx, shared, work) = (Arc::clone(&rx), Arc::clone(&shared), Arc::clone(&work));
                std::thread::Builder::new()
                    .name("vigil-parquet".into())
                    .spawn(move || run(&rx, &shared, work.as_ref()))
                    .expect("spawning an encoder thread")
            })
            .collect();
        Encoders {
            jobs: Some(tx),
            shared,
            threads,
            sent: 0,
        }
    }

    /// Queues a job; the first error of an earlier one, if any, instead.
    pub fn send(&mut self, job: J) -> Result<(), StoreError> {
        if let Some(e) = self.shared.lock().error.take() {
            return Err(e);
        }
        let jobs = self
            .jobs
            .as_ref()
            .expect("encoders are open until finished");
        if jobs.send((self.sent, job)).is_err() {
            return Err(StoreError::Parquet {
                path: "encoder".into(),
                message: "the Parquet encoders stopped".into(),
            });
        }
        self.sent += 1;
        Ok(())
    }

    /// Waits until every job sent so far has ended; the first error, if any.
    pub fn wait(&self) -> Result<(), StoreError> {
        let mut done = self.shared.lock();
        while done.ended < self.sent {
            done = self
                .shared
                .changed
                .wait(done)
                .unwrap_or_else(|e| e.into_inner());
        }
        done.error.take().map_or(Ok(()), Err)
    }

    /// Waits for every job and stops the threads: the results in the order the jobs were sent.
    pub fn finish(mut self) -> Result<Vec<R>, StoreError> {
        drop(self.jobs.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let mut done = self.shared.lock();
        if let Some(e) = done.error.take() {
            return Err(e);
        }
        if done.failed {
            // The error was reported already; the results lack the files that failed.
            return Err(StoreError::Parquet {
                path: "encoder".into(),
                message: "a data file could not be written (reported above)".into(),
            });
        }
        let mut results = std::mem::take(&mut done.results);
        results.sort_by_key(|(n, _)| *n);
        Ok(results.into_iter().map(|(_, r)| r).collect())
    }
}

fn run<J, R>(
    jobs: &Mutex<Receiver<(u64, J)>>,
    shared: &Shared<R>,
    work: &(dyn Fn(J) -> Result<R, StoreError> + Send + Sync),
) {
    loop {
        // One thread waits at the channel, the others at its lock.
        let next = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok((number, job)) = next else {
            return;
        };
        let mut guard = EndGuard {
            shared,
            result: None,
            number,
        };
        // After an error nothing more is written: the run commits nothing.
        if shared.lock().failed {
            drop(job);
            guard.result = Some(Err(StoreError::Parquet {
                path: "encoder".into(),
                message: "skipped after an earlier error".into(),
            }));
            continue;
        }
        guard.result = Some(work(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn failure(n: u64) -> StoreError {
        StoreError::Parquet {
            path: format!("job {n}").into(),
            message: "failed".into(),
        }
    }

    #[test]
    fn results_come_back_in_the_order_sent_whichever_thread_ends_first() {
        // Early jobs take longest, so later ones end first on another thread.
        let mut pool = Encoders::new(|n: u64| {
            std::thread::sleep(Duration::from_millis(20u64.saturating_sub(n)));
            Ok(n * 10)
        });
        for n in 0..20 {
            pool.send(n).unwrap();
        }
        pool.wait().unwrap();
        assert_eq!(
            pool.finish().unwrap(),
            (0..20).map(|n| n * 10).collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_first_error_is_reported_and_nothing_after_it_is_done() {
        let done = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&done);
        let mut pool = Encoders::new(move |n: u64| {
            if n == 3 {
                return Err(failure(n));
            }
            seen.lock().unwrap().push(n);
            Ok(n)
        });
        for n in 0..4 {
            pool.send(n).unwrap();
        }
        let err = pool.wait().unwrap_err().to_string();
        assert!(err.contains("job 3"), "{err}");
        // Jobs sent after the failure are skipped.
        for n in 4..8 {
            let _ = pool.send(n);
        }
        assert!(pool.finish().is_err());
        assert!(done.lock().unwrap().iter().all(|n| *n < 3), "{done:?}");
    }

    #[test]
    fn a_job_that_panics_ends_the_wait_with_an_error() {
        let mut pool = Encoders::new(|n: u64| {
            if n == 1 {
                panic!("encoder bug");
            }
            Ok(n)
        });
        pool.send(0).unwrap();
        pool.send(1).unwrap();
        let err = pool.wait().unwrap_err().to_string();
        assert!(err.contains("panicked"), "{err}");
        // The results lack a file: finishing says so again rather than answering without it.
        assert!(pool.finish().is_err());
    }
}
