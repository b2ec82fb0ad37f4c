//! SIGINT and SIGTERM as the channel the consume loop selects on.

use anyhow::Result;
use crossbeam_channel::Receiver;
use signal_hook::consts::{SIGINT, SIGTERM};

/// The first SIGINT/SIGTERM closes the returned channel, which wakes every
/// worker at once; a second one exits at once with 130.
pub fn on_signal() -> Result<Receiver<()>> {
    common::signals::stop_channel(
        &[SIGINT, SIGTERM],
        |signal| log::info!(target: "startup", "signal {signal}: finishing the request in hand, then stopping"),
        common::exit::SECOND_SIGNAL,
    )
}
