//! SIGINT and SIGTERM as a channel the consume loop can `select!` on, so that
//! waiting for a request and waiting for a signal are one blocking wait.

use anyhow::{Context, Result};
use crossbeam_channel::Receiver;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The first SIGINT/SIGTERM closes the returned channel, which wakes every
/// receiver (every worker) at once; a second one exits at once with 130, for
/// when a graceful stop takes too long.
pub fn on_signal() -> Result<Receiver<()>> {
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("cannot install signal handlers")?;
    let (sender, receiver) = crossbeam_channel::bounded::<()>(0);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut signals = signals.forever();
            if let Some(signal) = signals.next() {
                log::info!(target: "startup", "signal {signal}: finishing the request in hand, then stopping");
                drop(sender);
            }
            if signals.next().is_some() {
                std::process::exit(common::exit::SECOND_SIGNAL);
            }
        })
        .context("cannot start the signal thread")?;
    Ok(receiver)
}
