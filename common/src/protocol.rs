//! The wire protocol, pinned in one place. It matches the pika programs that
//! fib-rpc replaces byte for byte; see docs/wire-protocol.md.

use amiquip::{AmqpProperties, AmqpValue, FieldTable};
use std::fmt;

pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const DEFAULT_EXCHANGE: &str = "logs_rpc";
pub const DEFAULT_QUEUE: &str = "task_queue";
pub const DEFAULT_BINDING_KEY: &str = "#";
pub const DEFAULT_ROUTING_KEY: &str = "hello every one";
pub const DEFAULT_MAX_N: u64 = 1_000_000;
/// The largest n either program deals in: fib-client checks each reply
/// against its own F(n), and F(10^7) (2 million digits) already takes about a
/// second; fib-server's `--max-n` may not exceed it either.
pub const MAX_N: u64 = 10_000_000;
/// AMQP names (exchange, queue, routing and binding keys) are short strings:
/// at most 255 bytes on the wire.
pub const MAX_NAME_BYTES: usize = 255;

/// A request body longer than this is refused unread: a decimal u64 needs 20
/// bytes, so 64 leaves room for surrounding whitespace and nothing else.
pub const MAX_REQUEST_BYTES: usize = 64;
/// The header that marks a reply as an error; its value is an [`ErrorCode`].
pub const ERROR_HEADER: &str = "error";
pub const REPLY_CONTENT_TYPE: &str = "text/plain";
/// The header a quorum queue sets on a message it delivers again.
pub const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";
/// AMQP delivery mode 2: the broker writes the message to disk.
pub const PERSISTENT: u8 = 2;

/// Why a request got an error reply instead of a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The body is not a decimal integer >= 0 (or not UTF-8, or too long).
    InvalidRequest,
    /// n is above the server's `--max-n`.
    TooLarge,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid-request",
            ErrorCode::TooLarge => "too-large",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused request: the code for programs and a one-line message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    pub code: ErrorCode,
    pub message: String,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Checks a name given by a user (the value of `flag`) for use as an AMQP
/// short string. amiquip would send a longer one with its length cut to one
/// byte: a broken frame instead of a clear error.
pub fn check_name(flag: &str, name: &str) -> Result<(), crate::Failure> {
    if name.len() > MAX_NAME_BYTES {
        return Err(crate::Failure::Usage(format!(
            "{flag} is {} bytes long; AMQP allows at most {MAX_NAME_BYTES}",
            name.len()
        )));
    }
    Ok(())
}

/// The body of a request for F(n).
pub fn request_body(n: u64) -> String {
    n.to_string()
}

/// Reads n from a request body: ASCII digits, optionally surrounded by ASCII
/// whitespace (pika's `int(body)` accepts that much), at most `max_n`.
pub fn parse_request(body: &[u8], max_n: u64) -> Result<u64, RequestError> {
    let invalid = |message: String| RequestError {
        code: ErrorCode::InvalidRequest,
        message,
    };
    if body.len() > MAX_REQUEST_BYTES {
        return Err(invalid(format!(
            "request body is {} bytes, more than the {MAX_REQUEST_BYTES} allowed",
            body.len()
        )));
    }
    let text =
        std::str::from_utf8(body).map_err(|_| invalid("request body is not UTF-8".to_string()))?;
    let digits = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(format!(
            "request body {:?} is not a decimal integer >= 0",
            text
        )));
    }
    let too_large = || RequestError {
        code: ErrorCode::TooLarge,
        message: format!("n = {digits} is above this server's limit of {max_n}"),
    };
    // All digits, so the only way parsing fails is overflow: also too large.
    let n: u64 = digits.parse().map_err(|_| too_large())?;
    if n > max_n {
        return Err(too_large());
    }
    Ok(n)
}

/// Properties of a reply: persistent, plain text, the request's correlation id
/// (when it had one), and for an error the `error` header.
pub fn reply_properties(correlation_id: Option<&str>, error: Option<ErrorCode>) -> AmqpProperties {
    let mut properties = AmqpProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_content_type(REPLY_CONTENT_TYPE.to_string());
    if let Some(id) = correlation_id {
        properties = properties.with_correlation_id(id.to_string());
    }
    if let Some(code) = error {
        let mut headers = FieldTable::new();
        headers.insert(
            ERROR_HEADER.to_string(),
            AmqpValue::LongString(code.as_str().to_string()),
        );
        properties = properties.with_headers(headers);
    }
    properties
}

/// Properties of a request: persistent, with its correlation id and the queue
/// the reply goes to.
pub fn request_properties(correlation_id: &str, reply_to: &str) -> AmqpProperties {
    AmqpProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_correlation_id(correlation_id.to_string())
        .with_reply_to(reply_to.to_string())
}

/// How many times a quorum queue has returned this message (its
/// `x-delivery-count` header), if it says.
pub fn delivery_count(properties: &AmqpProperties) -> Option<u64> {
    let value = properties.headers().as_ref()?.get(DELIVERY_COUNT_HEADER)?;
    match value {
        AmqpValue::ShortShortInt(v) => u64::try_from(*v).ok(),
        AmqpValue::ShortShortUInt(v) => Some(u64::from(*v)),
        AmqpValue::ShortInt(v) => u64::try_from(*v).ok(),
        AmqpValue::ShortUInt(v) => Some(u64::from(*v)),
        AmqpValue::LongInt(v) => u64::try_from(*v).ok(),
        AmqpValue::LongUInt(v) => Some(u64::from(*v)),
        AmqpValue::LongLongInt(v) => u64::try_from(*v).ok(),
        _ => None,
    }
}

/// A reply as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The decimal digits of F(n), as sent.
    Value(String),
    /// An error reply: its code (as sent, known or not) and message.
    Error { code: String, message: String },
}

impl Reply {
    pub fn from_message(body: &[u8], properties: &AmqpProperties) -> Reply {
        let text = String::from_utf8_lossy(body).into_owned();
        let error_code = properties
            .headers()
            .as_ref()
            .and_then(|headers| headers.get(ERROR_HEADER))
            .map(|value| match value {
                AmqpValue::LongString(code) => code.clone(),
                other => format!("{other:?}"),
            });
        match error_code {
            Some(code) => Reply::Error {
                code,
                message: text,
            },
            None => Reply::Value(text),
        }
    }
}

/// Shortens a long decimal number for a log line: a 200,000-digit result
/// must not flood the terminal. Text of at most `2 * keep + 3` characters
/// comes back unchanged; longer text becomes its first `keep` characters,
/// `...` and its last `keep`. It counts and cuts by characters, never bytes:
/// a reply from the network may be anything, including the replacement
/// characters of a lossy decoding.
///
/// It reads only the characters it keeps (and one past the short limit), not
/// the whole text: a cached 2-million-digit reply is logged in microseconds.
pub fn abbreviate(digits: &str, keep: usize) -> String {
    let short = keep.saturating_mul(2).saturating_add(3);
    if digits.chars().nth(short).is_none() {
        return digits.to_string();
    }
    let head: String = digits.chars().take(keep).collect();
    let mut tail: Vec<char> = digits.chars().rev().take(keep).collect();
    tail.reverse();
    let tail: String = tail.into_iter().collect();
    format!("{head}...{tail}")
}

/// Text from the network made safe for one log line: abbreviated like
/// [`abbreviate`], with control characters (newlines, escape sequences)
/// shown escaped so that a peer cannot forge or garble lines.
pub fn printable(text: &str, keep: usize) -> String {
    abbreviate(text, keep)
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = DEFAULT_MAX_N;

    #[test]
    fn printable_escapes_control_characters() {
        assert_eq!(printable("ok\n\u{1b}[31mred", 40), "ok\\n\\u{1b}[31mred");
        assert!(!printable(&"\n".repeat(100), 5).contains('\n'));
    }

    fn code_of(body: &[u8]) -> ErrorCode {
        parse_request(body, MAX).unwrap_err().code
    }

    #[test]
    fn accepts_decimal_with_surrounding_whitespace() {
        assert_eq!(parse_request(b"0", MAX), Ok(0));
        assert_eq!(parse_request(b"1999", MAX), Ok(1999));
        assert_eq!(parse_request(b"  42\n", MAX), Ok(42));
        assert_eq!(parse_request(b"\t007\r\n", MAX), Ok(7));
        assert_eq!(parse_request(b"1000000", MAX), Ok(1_000_000));
    }

    #[test]
    fn refuses_what_is_not_a_non_negative_integer() {
        for body in [
            &b""[..],
            b"   ",
            b"abc",
            b"-1",
            b"+1",
            b"1.5",
            b"1e5",
            b"4 2",
            b"0x10",
            b"\xff\xfe",
        ] {
            assert_eq!(code_of(body), ErrorCode::InvalidRequest, "{body:?}");
        }
    }

    #[test]
    fn refuses_long_bodies_before_reading_them() {
        let long = vec![b'1'; MAX_REQUEST_BYTES + 1];
        let error = parse_request(&long, MAX).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidRequest);
        assert!(error.message.contains("65 bytes"), "{}", error.message);
        let padded = format!("{:>64}", 5);
        assert_eq!(parse_request(padded.as_bytes(), MAX), Ok(5));
    }

    #[test]
    fn too_large_above_max_n_and_beyond_u64() {
        assert_eq!(code_of(b"1000001"), ErrorCode::TooLarge);
        assert_eq!(code_of(b"99999999999999999999999999"), ErrorCode::TooLarge);
        assert_eq!(parse_request(b"10", 10), Ok(10));
        assert_eq!(
            parse_request(b"11", 10).unwrap_err().code,
            ErrorCode::TooLarge
        );
    }

    #[test]
    fn error_replies_carry_the_header_and_round_trip() {
        let properties = reply_properties(Some("id-1"), Some(ErrorCode::TooLarge));
        assert_eq!(properties.correlation_id().as_deref(), Some("id-1"));
        assert_eq!(properties.delivery_mode(), &Some(PERSISTENT));
        assert_eq!(properties.content_type().as_deref(), Some("text/plain"));
        let reply = Reply::from_message(b"n is too large", &properties);
        assert_eq!(
            reply,
            Reply::Error {
                code: "too-large".into(),
                message: "n is too large".into()
            }
        );
    }

    #[test]
    fn value_replies_have_no_header() {
        let properties = reply_properties(None, None);
        assert!(properties.headers().is_none());
        assert!(properties.correlation_id().is_none());
        assert_eq!(
            Reply::from_message(b"55", &properties),
            Reply::Value("55".into())
        );
    }

    #[test]
    fn abbreviates_only_long_numbers() {
        assert_eq!(abbreviate("12345", 2), "12345");
        assert_eq!(abbreviate("1234567", 2), "1234567");
        assert_eq!(abbreviate("12345678", 2), "12...78");
    }

    #[test]
    fn abbreviates_by_characters_not_bytes() {
        // What a lossy decoding of 60 bytes that are not UTF-8 looks like.
        let lossy = String::from_utf8_lossy(&[0xff; 60]).into_owned();
        let short = abbreviate(&lossy, 20);
        assert_eq!(short.chars().count(), 43, "{short}");
        assert!(short.starts_with('\u{fffd}') && short.ends_with('\u{fffd}'));
        assert_eq!(abbreviate("é".repeat(50).as_str(), 1), "é...é");
    }
}
