//! Ending a consumer without tripping amiquip 0.4.
//!
//! On basic.cancel-ok amiquip's I/O thread first wakes `Consumer::cancel`,
//! then sends `ClientCancelled` to the consumer's receiver. If the consumer
//! was dropped in between, that send fails and the I/O thread kills the whole
//! connection ("channel client dropped without being disconnected"). So we
//! keep a clone of the receiver and wait for `ClientCancelled` before letting
//! go of it.

use amiquip::{Consumer, ConsumerMessage};
use anyhow::Result;
use std::time::{Duration, Instant};

/// How long to wait for the I/O thread's `ClientCancelled`; it normally
/// follows cancel-ok within microseconds.
const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// Cancels `consumer` and returns once amiquip is done with it. Deliveries
/// that arrive meanwhile are dropped unacked: on a manual-ack channel the
/// broker requeues them when the channel closes.
pub fn cancel(consumer: Consumer<'_>) -> Result<()> {
    let receiver = consumer.receiver().clone();
    consumer.cancel()?;
    drop(consumer);
    let deadline = Instant::now() + CANCEL_WAIT;
    loop {
        match receiver.recv_deadline(deadline) {
            Ok(ConsumerMessage::Delivery(_)) => continue,
            // Cancelled, or the channel or connection ended: amiquip is done.
            Ok(_) | Err(_) => return Ok(()),
        }
    }
}
