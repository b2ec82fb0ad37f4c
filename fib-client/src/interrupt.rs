//! Ctrl-C: the first SIGINT closes the returned channel, which the run's
//! wait (`RpcSession::next_event`) selects on, so it stops sending at once
//! and waits for what is outstanding; a second SIGINT exits at once with 130.

use anyhow::Result;
use crossbeam_channel::Receiver;
use signal_hook::consts::SIGINT;

pub fn on_sigint() -> Result<Receiver<()>> {
    common::signals::stop_channel(&[SIGINT], |_| {}, common::exit::INTERRUPTED)
}
