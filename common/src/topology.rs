//! The exchange, queue and binding both programs declare. Declaring them with
//! the exact arguments of the pika programs lets either side start first
//! against the other's declarations without PRECONDITION_FAILED.

use crate::failure::Failure;
use crate::protocol::{printable, DEFAULT_BINDING_KEY, DEFAULT_EXCHANGE, DEFAULT_QUEUE};
use crate::text::counted;
use amiquip::{AmqpValue, Channel, Exchange, ExchangeDeclareOptions, ExchangeType, FieldTable};
use amiquip::{Queue, QueueDeclareOptions};

/// A quorum queue gives up on a request after this many returns unless
/// `--delivery-limit` says otherwise.
pub const DEFAULT_DELIVERY_LIMIT: u32 = 5;

/// What kind of queue holds the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueueType {
    /// One node's queue, as the pika programs declare it.
    Classic,
    /// Replicated over a cluster's nodes (Raft); a request that keeps coming
    /// back is dead-lettered after the delivery limit.
    Quorum,
}

impl QueueType {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        }
    }
}

/// Names of the request path: exchange -> binding key -> request queue, and
/// what kind of queue that is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub exchange: String,
    pub queue: String,
    pub binding_key: String,
    pub queue_type: QueueType,
    /// Quorum only: returns of one request before it is dead-lettered.
    pub delivery_limit: u32,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            exchange: DEFAULT_EXCHANGE.to_string(),
            queue: DEFAULT_QUEUE.to_string(),
            binding_key: DEFAULT_BINDING_KEY.to_string(),
            queue_type: QueueType::Classic,
            delivery_limit: DEFAULT_DELIVERY_LIMIT,
        }
    }
}

impl Topology {
    /// Where a quorum queue's given-up requests go: this exchange...
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.queue)
    }

    /// ...and this queue bound to it.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead", self.queue)
    }

    /// The request queue's declaration arguments: none for a classic queue
    /// (exactly what pika declares), the type, delivery limit and
    /// dead-letter exchange for a quorum queue.
    fn queue_arguments(&self) -> FieldTable {
        let mut arguments = FieldTable::new();
        if self.queue_type == QueueType::Quorum {
            arguments.insert("x-queue-type".into(), quorum());
            let limit = i64::from(self.delivery_limit);
            arguments.insert("x-delivery-limit".into(), AmqpValue::LongLongInt(limit));
            arguments.insert(
                "x-dead-letter-exchange".into(),
                AmqpValue::LongString(self.dead_letter_exchange()),
            );
        }
        arguments
    }
}

fn quorum() -> AmqpValue {
    AmqpValue::LongString(QueueType::Quorum.as_str().to_string())
}

/// The request exchange: topic, durable, as pika's
/// `exchange_declare(exchange_type='topic', durable=True)`.
pub fn declare_exchange<'a>(channel: &'a Channel, name: &str) -> amiquip::Result<Exchange<'a>> {
    channel.exchange_declare(
        ExchangeType::Topic,
        name,
        ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        },
    )
}

/// The request queue, durable and shared, bound to the exchange (a quorum
/// queue's dead letters are declared by [`declare_dead_letters`]). Returns
/// the queue as declared (with its message count). The queue is declared
/// first: if it exists with other arguments the broker refuses before
/// anything has been created, and the refusal is a usage error naming what
/// differs and the fix. An exchange that exists as another type is one too.
pub fn declare_request_queue<'a>(
    channel: &'a Channel,
    topology: &Topology,
) -> anyhow::Result<Queue<'a>> {
    declare_request_queue_noting(channel, topology, &mut Vec::new())
}

/// [`declare_request_queue`], adding to `declared` each object the broker
/// accepted a declaration of (a refused declaration created nothing), so
/// that a failed start knows what it may have created.
pub fn declare_request_queue_noting<'a>(
    channel: &'a Channel,
    topology: &Topology,
    declared: &mut Vec<Object>,
) -> anyhow::Result<Queue<'a>> {
    let queue = channel
        .queue_declare(
            topology.queue.as_str(),
            QueueDeclareOptions {
                durable: true,
                exclusive: false,
                auto_delete: false,
                arguments: topology.queue_arguments(),
            },
        )
        .map_err(|error| queue_mismatch(error, topology))?;
    declared.push(Object::Queue(topology.queue.clone(), topology.queue_type));
    let exchange = declare_exchange(channel, &topology.exchange)
        .map_err(|error| exchange_mismatch(error, &topology.exchange))?;
    declared.push(Object::Exchange(topology.exchange.clone()));
    queue.bind(&exchange, topology.binding_key.as_str(), FieldTable::new())?;
    Ok(queue)
}

/// The dead-letter exchange (fanout, durable) and its queue (quorum, so the
/// given-up requests survive a node too). Returns the queue's depth.
pub fn declare_dead_letters(channel: &Channel, topology: &Topology) -> anyhow::Result<u32> {
    declare_dead_letters_noting(channel, topology, &mut Vec::new())
}

/// [`declare_dead_letters`], adding to `declared` each object the broker
/// accepted a declaration of.
pub fn declare_dead_letters_noting(
    channel: &Channel,
    topology: &Topology,
    declared: &mut Vec<Object>,
) -> anyhow::Result<u32> {
    let name = topology.dead_letter_exchange();
    let exchange = channel
        .exchange_declare(
            ExchangeType::Fanout,
            name.as_str(),
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
        )
        .map_err(|error| dead_letter_mismatch(error, "exchange", &name))?;
    declared.push(Object::Exchange(name));
    let mut arguments = FieldTable::new();
    arguments.insert("x-queue-type".into(), quorum());
    let name = topology.dead_letter_queue();
    let queue = channel
        .queue_declare(
            name.as_str(),
            QueueDeclareOptions {
                durable: true,
                arguments,
                ..QueueDeclareOptions::default()
            },
        )
        .map_err(|error| dead_letter_mismatch(error, "queue", &name))?;
    declared.push(Object::Queue(name, QueueType::Quorum));
    queue.bind(&exchange, "", FieldTable::new())?;
    Ok(queue.declared_message_count().unwrap_or(0))
}

/// A queue (with its type) or exchange, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Queue(String, QueueType),
    Exchange(String),
}

impl std::fmt::Display for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Object::Queue(name, _) => write!(f, "queue {name:?}"),
            Object::Exchange(name) => write!(f, "exchange {name:?}"),
        }
    }
}

impl Topology {
    /// Everything a server declares for this topology, in the order it
    /// declares them.
    pub fn server_objects(&self) -> Vec<Object> {
        let mut objects = vec![
            Object::Queue(self.queue.clone(), self.queue_type),
            Object::Exchange(self.exchange.clone()),
        ];
        if self.queue_type == QueueType::Quorum {
            objects.push(Object::Exchange(self.dead_letter_exchange()));
            objects.push(Object::Queue(self.dead_letter_queue(), QueueType::Quorum));
        }
        objects
    }
}

/// Which of `objects` do not exist, each asked by a passive declare on a
/// channel of its own from `open_channel` (a passive declare of something
/// missing closes its channel with 404).
pub fn missing(
    open_channel: &dyn Fn() -> anyhow::Result<Channel>,
    objects: &[Object],
) -> anyhow::Result<Vec<Object>> {
    let mut missing = Vec::new();
    for object in objects {
        let probe = open_channel()?;
        let found = match object {
            Object::Queue(name, _) => probe.queue_declare_passive(name.as_str()).map(drop),
            Object::Exchange(name) => probe.exchange_declare_passive(name.as_str()).map(drop),
        };
        match found {
            Ok(()) => probe.close()?,
            Err(amiquip::Error::ServerClosedChannel { code: 404, .. }) => {
                missing.push(object.clone())
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(missing)
}

/// What [`delete_unused`] did with one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    Deleted(Object),
    /// Already gone (someone else deleted it).
    Gone(Object),
    /// Left in place: another user has it; why.
    Kept(Object, String),
}

/// Deletes `objects` (what a failed start declared and found missing
/// before), each only if nobody else uses it: another server may have
/// declared the same names meanwhile and be consuming. Queues go first
/// (deleting a queue removes its bindings, which frees its exchange). A
/// classic queue is deleted with if-unused and if-empty, an exchange with
/// if-unused; the broker refuses those flags on a quorum queue (540, which
/// closes the connection), so a quorum queue is deleted only when a passive
/// declare just before found it without consumers and messages. Each step
/// has a channel of its own from `open_channel`: a refusal closes it.
pub fn delete_unused(
    open_channel: &dyn Fn() -> anyhow::Result<Channel>,
    objects: &[Object],
) -> anyhow::Result<Vec<Removal>> {
    let queues = objects.iter().filter(|o| matches!(o, Object::Queue(..)));
    let exchanges = objects.iter().filter(|o| matches!(o, Object::Exchange(_)));
    let mut removals = Vec::new();
    for object in queues.chain(exchanges) {
        let outcome = match object {
            Object::Queue(name, kind) => delete_queue_if_unused(open_channel, name, *kind)?,
            Object::Exchange(name) => {
                let channel = open_channel()?;
                match channel.exchange_delete(name.as_str(), true) {
                    Ok(()) => {
                        channel.close()?;
                        Ok(())
                    }
                    Err(error) => Err(error),
                }
                .map(|()| None)
                .or_else(|error| refusal(error, "queues are bound to it"))?
            }
        };
        removals.push(match outcome {
            None => Removal::Deleted(object.clone()),
            Some(Refusal::Gone) => Removal::Gone(object.clone()),
            Some(Refusal::InUse(why)) => Removal::Kept(object.clone(), why),
        });
    }
    Ok(removals)
}

enum Refusal {
    Gone,
    InUse(String),
}

/// None when deleted.
fn delete_queue_if_unused(
    open_channel: &dyn Fn() -> anyhow::Result<Channel>,
    name: &str,
    kind: QueueType,
) -> anyhow::Result<Option<Refusal>> {
    let channel = open_channel()?;
    let queue = match channel.queue_declare_passive(name) {
        Ok(queue) => queue,
        Err(error) => return refusal(error, ""),
    };
    let consumers = queue.declared_consumer_count().unwrap_or(0);
    let messages = queue.declared_message_count().unwrap_or(0);
    if consumers > 0 || messages > 0 {
        channel.close()?;
        return Ok(Some(Refusal::InUse(format!(
            "{}, {}",
            counted(consumers, "consumer"),
            counted(messages, "message")
        ))));
    }
    let flags = kind == QueueType::Classic;
    let options = amiquip::QueueDeleteOptions {
        if_unused: flags,
        if_empty: flags,
    };
    match channel.queue_delete(name, options) {
        Ok(_) => {
            channel.close()?;
            Ok(None)
        }
        Err(error) => refusal(error, "it has consumers or messages"),
    }
}

/// A delete's 404 (gone) or 406 (in use, as `in_use` says) as an outcome;
/// anything else an error.
fn refusal(error: amiquip::Error, in_use: &str) -> anyhow::Result<Option<Refusal>> {
    match error {
        amiquip::Error::ServerClosedChannel { code: 404, .. } => Ok(Some(Refusal::Gone)),
        amiquip::Error::ServerClosedChannel { code: 406, .. } => {
            Ok(Some(Refusal::InUse(in_use.to_string())))
        }
        error => Err(error.into()),
    }
}

/// PRECONDITION_FAILED on the dead-letter exchange or queue: it exists
/// other than a quorum server declares it.
fn dead_letter_mismatch(error: amiquip::Error, kind: &str, name: &str) -> anyhow::Error {
    let Some(message) = precondition_failed(&error) else {
        return error.into();
    };
    let differs = match Inequivalent::parse(message) {
        Some(Inequivalent {
            argument, current, ..
        }) => format!(
            " (another {}: it has {})",
            printable(&argument, 60),
            printable(current.as_deref().unwrap_or("none"), 60)
        ),
        None => String::new(),
    };
    Failure::Usage(format!(
        "the dead-letter {kind} {name:?} already exists other than a quorum fib-server \
         declares it{differs}: delete it, or use another --queue (the broker says: {})",
        printable(message, 300)
    ))
    .into()
}

/// What a PRECONDITION_FAILED (406) on a declaration says differs, as the
/// broker words it: "inequivalent arg 'x-delivery-limit' for queue 'q' in
/// vhost '/': received the value '3' of type 'long' but current is the
/// value '5' of type 'long'".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inequivalent {
    /// The argument or property: `x-queue-type`, `durable`, `type`, ...
    pub argument: String,
    /// What the declaration asked for; None when it did not set it.
    pub declared: Option<String>,
    /// What the existing queue or exchange has; None when it has none.
    pub current: Option<String>,
}

impl Inequivalent {
    /// Reads the broker's message; None if it is not worded as above.
    pub fn parse(message: &str) -> Option<Inequivalent> {
        let (_, rest) = message.split_once("inequivalent arg '")?;
        let (argument, rest) = rest.split_once('\'')?;
        let (_, values) = rest.split_once(": received ")?;
        let (declared, current) = values.rsplit_once(" but current is ")?;
        Some(Inequivalent {
            argument: argument.to_string(),
            declared: value(declared)?,
            current: value(current)?,
        })
    }
}

/// `none` (None), `'true'` or `the value '5' of type 'long'` (Some("5")); an
/// unexpected form is None, the whole message unreadable.
fn value(text: &str) -> Option<Option<String>> {
    let text = text.trim();
    if text.starts_with("none") {
        return Some(None);
    }
    let (_, quoted) = text.split_once('\'')?;
    let (value, _) = quoted.split_once('\'')?;
    Some(Some(value.to_string()))
}

/// The broker's 406 text of `error`, if it is one.
fn precondition_failed(error: &amiquip::Error) -> Option<&str> {
    match error {
        amiquip::Error::ServerClosedChannel {
            code: 406, message, ..
        } => Some(message),
        _ => None,
    }
}

/// PRECONDITION_FAILED on the request queue: it exists with other arguments
/// than this server declares. Says which argument differs, both values and
/// the fix; reconnecting would never help.
fn queue_mismatch(error: amiquip::Error, topology: &Topology) -> anyhow::Error {
    let Some(message) = precondition_failed(&error) else {
        return error.into();
    };
    let explained = Inequivalent::parse(message)
        .map(|differs| explain_queue_mismatch(&differs, topology))
        .unwrap_or_else(|| {
            format!(
                "queue {:?} already exists with other arguments than this server declares",
                topology.queue
            )
        });
    let says = printable(message, 300);
    Failure::Usage(format!("{explained} (the broker says: {says})")).into()
}

/// The sentence for one differing argument of the request queue, ending with
/// the fix: a flag where one matches the existing queue, else deleting it.
pub fn explain_queue_mismatch(differs: &Inequivalent, topology: &Topology) -> String {
    let queue = &topology.queue;
    let delete =
        format!("delete the queue (rabbitmqctl delete_queue {queue}; the requests in it are lost)");
    let shown = |value: &Option<String>| match value {
        Some(value) => printable(value, 60),
        None => "none".to_string(),
    };
    let (current, declared) = (shown(&differs.current), shown(&differs.declared));
    match differs.argument.as_str() {
        "x-queue-type" => {
            // A queue declared without x-queue-type is a classic queue.
            let existing = differs.current.as_deref().unwrap_or("classic");
            let asked = topology.queue_type.as_str();
            let flag = match existing {
                "classic" | "quorum" => {
                    format!("start the server with --queue-type {existing}, or ")
                }
                _ => String::new(),
            };
            format!(
                "queue {queue:?} already exists with another x-queue-type: it is a {} queue, \
                 and this server declares a {asked} queue (--queue-type {asked}); a queue's \
                 type cannot change: {flag}{delete}",
                printable(existing, 60)
            )
        }
        "x-delivery-limit" => {
            let flag = match &differs.current {
                Some(limit) if limit.parse::<u32>().is_ok() => {
                    format!("start the server with --delivery-limit {limit}, or ")
                }
                _ => String::new(),
            };
            format!(
                "queue {queue:?} already exists with another x-delivery-limit: it has delivery \
                 limit {current}, and this server declares {declared} (--delivery-limit \
                 {declared}); a queue's arguments cannot change: {flag}{delete}"
            )
        }
        // The broker checks x-dead-letter-exchange before x-queue-type, so
        // this is what it names when the type differs too.
        "x-dead-letter-exchange" => {
            let ours = topology.dead_letter_exchange();
            let (what, fix) = match (topology.queue_type, differs.current.as_deref()) {
                (QueueType::Quorum, None) => (
                    "a queue without one is a classic queue, as pika and --queue-type classic \
                     declare it (or another program's queue)",
                    "start the server with --queue-type classic, or ",
                ),
                (QueueType::Classic, Some(exchange)) if exchange == ours => (
                    "that is the one a quorum fib-server declares: it is a quorum queue",
                    "start the server with --queue-type quorum (and the --delivery-limit it \
                     was declared with, default 5), or ",
                ),
                _ => ("the queue was declared by another program", ""),
            };
            format!(
                "queue {queue:?} already exists with another x-dead-letter-exchange: it has \
                 {current}, and this server declares {declared} (--queue-type {}); {what}; a \
                 queue's type and arguments cannot change: {fix}{delete}",
                topology.queue_type.as_str()
            )
        }
        argument => format!(
            "queue {queue:?} already exists with another {}: it has {current}, and this \
             server declares {declared}: the queue was declared by another program; \
             {delete}, or use another --queue",
            printable(argument, 60)
        ),
    }
}

/// PRECONDITION_FAILED on the request exchange: it exists as another type
/// (or not durable). Names what differs and the fix.
fn exchange_mismatch(error: amiquip::Error, exchange: &str) -> anyhow::Error {
    let Some(message) = precondition_failed(&error) else {
        return error.into();
    };
    let differs = match Inequivalent::parse(message) {
        Some(Inequivalent {
            argument, current, ..
        }) => format!(
            " ({} {})",
            printable(&argument, 60),
            printable(current.as_deref().unwrap_or("none"), 60)
        ),
        None => String::new(),
    };
    // The broker's own exchanges (amq.direct, ...) cannot be deleted.
    let fix = if exchange.starts_with("amq.") {
        "it is one of the broker's own exchanges, which cannot be deleted: choose another \
         --exchange"
            .to_string()
    } else {
        format!(
            "delete it (rabbitmqadmin delete exchange name={exchange}) or use another --exchange"
        )
    };
    Failure::Usage(format!(
        "exchange {exchange:?} already exists other than the durable topic exchange both \
         programs declare{differs}: {fix} (the broker says: {})",
        printable(message, 300)
    ))
    .into()
}

/// A reply queue: server-named, exclusive and auto-delete, so the broker
/// removes it when the connection that declared it ends, however it ends
/// (the pika client's durable reply queue outlives every run).
pub fn declare_reply_queue(channel: &Channel) -> amiquip::Result<Queue<'_>> {
    channel.queue_declare(
        "",
        QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quorum_topology(limit: u32) -> Topology {
        Topology {
            queue: "task_queue".into(),
            queue_type: QueueType::Quorum,
            delivery_limit: limit,
            ..Topology::default()
        }
    }

    #[test]
    fn reads_what_the_broker_says_differs() {
        let limit = "PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue \
                     'task_queue' in vhost '/': received the value '3' of type 'long' but \
                     current is the value '5' of type 'long'";
        assert_eq!(
            Inequivalent::parse(limit),
            Some(Inequivalent {
                argument: "x-delivery-limit".into(),
                declared: Some("3".into()),
                current: Some("5".into()),
            })
        );
        let to_classic = "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue \
                          'q' in vhost '/': received none but current is the value 'quorum' \
                          of type 'longstr'";
        assert_eq!(
            Inequivalent::parse(to_classic),
            Some(Inequivalent {
                argument: "x-queue-type".into(),
                declared: None,
                current: Some("quorum".into()),
            })
        );
        let durable = "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in \
                       vhost '/': received 'true' but current is 'false'";
        let parsed = Inequivalent::parse(durable).expect("durable");
        assert_eq!(
            (parsed.declared.as_deref(), parsed.current.as_deref()),
            (Some("true"), Some("false"))
        );
        assert_eq!(Inequivalent::parse("PRECONDITION_FAILED - other"), None);
        assert_eq!(Inequivalent::parse("inequivalent arg 'x"), None);
    }

    #[test]
    fn each_difference_gets_its_own_fix() {
        let differs =
            |argument: &str, declared: Option<&str>, current: Option<&str>| Inequivalent {
                argument: argument.into(),
                declared: declared.map(str::to_string),
                current: current.map(str::to_string),
            };
        // Another delivery limit on a quorum queue: not a type mismatch.
        let text = explain_queue_mismatch(
            &differs("x-delivery-limit", Some("3"), Some("5")),
            &quorum_topology(3),
        );
        assert!(text.contains("delivery limit 5"), "{text}");
        assert!(text.contains("--delivery-limit 5"), "{text}");
        assert!(
            !text.contains("--queue-type") && !text.contains("type cannot"),
            "{text}"
        );
        // Quorum over classic, classic over quorum.
        let text = explain_queue_mismatch(
            &differs("x-queue-type", Some("quorum"), None),
            &quorum_topology(5),
        );
        assert!(text.contains("is a classic queue"), "{text}");
        assert!(text.contains("--queue-type classic"), "{text}");
        let text = explain_queue_mismatch(
            &differs("x-queue-type", None, Some("quorum")),
            &Topology::default(),
        );
        assert!(text.contains("is a quorum queue"), "{text}");
        assert!(text.contains("--queue-type quorum"), "{text}");
        // A stream: no flag makes one; delete.
        let text = explain_queue_mismatch(
            &differs("x-queue-type", None, Some("stream")),
            &Topology::default(),
        );
        assert!(!text.contains("--queue-type stream"), "{text}");
        assert!(text.contains("delete_queue task_queue"), "{text}");
        // Without a delivery limit: no flag gives "none".
        let text = explain_queue_mismatch(
            &differs("x-delivery-limit", Some("5"), None),
            &quorum_topology(5),
        );
        assert!(!text.contains("--delivery-limit none"), "{text}");
        // What the broker names when the type differs: the dead-letter
        // exchange, checked first.
        let text = explain_queue_mismatch(
            &differs("x-dead-letter-exchange", Some("task_queue.dlx"), None),
            &quorum_topology(5),
        );
        assert!(text.contains("classic queue"), "{text}");
        assert!(text.contains("--queue-type classic"), "{text}");
        let text = explain_queue_mismatch(
            &differs("x-dead-letter-exchange", None, Some("task_queue.dlx")),
            &Topology::default(),
        );
        assert!(text.contains("it is a quorum queue"), "{text}");
        assert!(text.contains("--queue-type quorum"), "{text}");
        for argument in ["x-dead-letter-exchange", "durable", "x-max-length"] {
            let text = explain_queue_mismatch(
                &differs(argument, Some("a"), Some("b\n")),
                &quorum_topology(5),
            );
            assert!(text.contains(argument), "{text}");
            assert!(
                text.contains("delete_queue") && !text.contains('\n'),
                "{text}"
            );
        }
    }
}
