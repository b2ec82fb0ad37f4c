//! fib-server running on a thread of the test process.

use anyhow::{anyhow, Context, Result};
use crossbeam_channel::Sender;
use std::thread::JoinHandle;

pub struct InProcessServer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl InProcessServer {
    /// Starts `fib_server::run` and returns once it consumes.
    pub fn start(settings: fib_server::Settings) -> Result<InProcessServer> {
        let (stop, shutdown) = crossbeam_channel::bounded(1);
        let (ready_tx, ready) = crossbeam_channel::bounded(1);
        let thread = std::thread::spawn(move || {
            fib_server::run(&settings, &shutdown, &|| {
                // Ready again after each reconnection; only the first counts.
                let _ = ready_tx.try_send(());
            })
        });
        let mut server = InProcessServer {
            stop: Some(stop),
            thread: Some(thread),
        };
        if ready.recv_timeout(crate::WAIT).is_err() {
            // Either it failed (report why) or it hangs.
            return Err(match server.stop() {
                Err(error) => error.context("fib-server failed to start"),
                Ok(()) => anyhow!("fib-server did not get ready within {:?}", crate::WAIT),
            });
        }
        Ok(server)
    }

    /// Asks the server to stop and returns what `run` returned.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| anyhow!("fib-server thread panicked"))?
                .context("fib-server returned an error"),
            None => Ok(()),
        }
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            eprintln!("testkit: in-process server: {error:#}");
        }
    }
}
