//! Ctrl-C: the first SIGINT closes the returned channel, which the run's
//! wait (`RpcSession::next_event`) selects on, so it stops sending at once
//! and waits for what is outstanding; a second SIGINT exits at once with 130.

use anyhow::{Context, Result};
use crossbeam_channel::Receiver;
use signal_hook::consts::SIGINT;
use signal_hook::iterator::Signals;

pub fn on_sigint() -> Result<Receiver<()>> {
    let mut signals = Signals::new([SIGINT]).context("cannot install the SIGINT handler")?;
    let (sender, receiver) = crossbeam_channel::bounded::<()>(0);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut signals = signals.forever();
            if signals.next().is_some() {
                drop(sender);
            }
            if signals.next().is_some() {
                std::process::exit(common::exit::INTERRUPTED);
            }
        })
        .context("cannot start the signal thread")?;
    Ok(receiver)
}
