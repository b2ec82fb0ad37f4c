//! Signals as a channel a program can `select!` on, so that waiting for work
//! and waiting for a stop are one blocking wait.

use anyhow::{Context, Result};
use crossbeam_channel::Receiver;
use signal_hook::iterator::Signals;

/// The first of `signals` runs `on_first` (a log line, say) and closes the
/// returned channel, which wakes every receiver at once; a second exits the
/// process at once with `second_exit`, for when a graceful stop takes too
/// long.
pub fn stop_channel(signals: &[i32], on_first: fn(i32), second_exit: i32) -> Result<Receiver<()>> {
    let mut signals = Signals::new(signals).context("cannot install signal handlers")?;
    let (sender, receiver) = crossbeam_channel::bounded::<()>(0);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut signals = signals.forever();
            if let Some(signal) = signals.next() {
                on_first(signal);
                drop(sender);
            }
            if signals.next().is_some() {
                std::process::exit(second_exit);
            }
        })
        .context("cannot start the signal thread")?;
    Ok(receiver)
}
