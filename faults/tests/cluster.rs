//! The local three-node cluster of scripts/cluster.sh. It starts three more
//! RabbitMQ nodes (about 130 MB each), so it is ignored by a plain
//! `cargo test` and run on its own:
//!
//!     cargo test -p faults --test cluster -- --ignored --nocapture
//!
//! The cluster guard stops the nodes even when a test fails.

use amiquip::{AmqpValue, FieldTable, QueueDeclareOptions, QueueDeleteOptions};
use anyhow::Result;
use common::{AmqpUrl, ConnectionSettings};
use std::time::{Duration, Instant};
use testkit::{Cluster, WAIT};

/// A quorum queue declared on node 1 has a member on each node and a leader.
#[test]
#[ignore = "starts a three-node RabbitMQ cluster; run with --ignored"]
fn quorum_queue_has_a_member_on_every_node() -> Result<()> {
    let cluster = Cluster::start()?;
    let settings = ConnectionSettings::new(AmqpUrl::parse(cluster.url(1))?);
    let mut connection = common::open_connection(&settings)?;
    let channel = connection.open_channel(None)?;
    let queue = "fibtest.cluster.quorum";
    let mut arguments = FieldTable::new();
    arguments.insert(
        "x-queue-type".to_string(),
        AmqpValue::LongString("quorum".to_string()),
    );
    channel.queue_declare(
        queue,
        QueueDeclareOptions {
            durable: true,
            arguments,
            ..QueueDeclareOptions::default()
        },
    )?;

    // The members start with the declaration; give the last one a moment.
    let deadline = Instant::now() + WAIT;
    let mut members = cluster.members(queue)?;
    while members < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        members = cluster.members(queue)?;
    }
    assert_eq!(members, 3, "online members of {queue}");
    let leader = cluster.leader(queue)?;
    assert!((1..=3).contains(&leader), "leader {leader}");
    eprintln!("cluster: quorum queue {queue} has {members} members online, leader fibq{leader}");

    channel.queue_delete(queue, QueueDeleteOptions::default())?;
    connection.close()?;
    Ok(())
}
