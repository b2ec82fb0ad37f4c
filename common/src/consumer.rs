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

/// The error for a consumer that stopped delivering (anything but a
/// `Delivery`), classified so that callers reconnect only where it can help.
pub fn ended(message: &ConsumerMessage) -> anyhow::Error {
    let text = format!("stopped consuming: {message:?}");
    // The broker's channel error itself, so that a cluster's passing one (a
    // queue's node restarting) is told apart by its code.
    if let ConsumerMessage::ServerClosedChannel(amiquip::Error::ServerClosedChannel {
        channel_id,
        code,
        message,
    }) = message
    {
        return anyhow::Error::new(amiquip::Error::ServerClosedChannel {
            channel_id: *channel_id,
            code: *code,
            message: message.clone(),
        })
        .context("stopped consuming");
    }
    let transient = match message {
        ConsumerMessage::ServerClosedConnection(error)
        | ConsumerMessage::ServerClosedChannel(error) => {
            crate::failure::amqp_error_is_transient(error)
        }
        // Anything else, including the queue deleted under us (a new
        // session declares it again): a new connection may help.
        _ => true,
    };
    if transient {
        crate::failure::Failure::Disconnected(text).into()
    } else {
        crate::failure::Failure::Broker(text).into()
    }
}

/// The error for a consumer whose channel to the I/O thread is gone.
pub fn io_thread_gone() -> anyhow::Error {
    crate::failure::Failure::Disconnected("the connection's I/O thread ended".into()).into()
}
