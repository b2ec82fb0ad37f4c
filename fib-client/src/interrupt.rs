//! Ctrl-C and SIGTERM: the first closes the returned channel, which the
//! run's wait (`RpcSession::next_event`) and the wait to reconnect select
//! on, so it stops sending at once, waits for what is outstanding and prints
//! the summary; a second exits at once with 130.

use anyhow::Result;
use crossbeam_channel::Receiver;
use signal_hook::consts::{SIGINT, SIGTERM};

pub fn on_stop_signal() -> Result<Receiver<()>> {
    common::signals::stop_channel(&[SIGINT, SIGTERM], |_| {}, common::exit::INTERRUPTED)
}
