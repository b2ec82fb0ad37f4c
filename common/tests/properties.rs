//! Property tests for every function that reads bytes or text from the
//! network or from a user: request bodies, replies and their headers, the
//! shortening of replies for logs, and broker URLs. None may panic on any
//! input, and each keeps its documented invariants.

use amiquip::{AmqpProperties, AmqpValue, FieldTable};
use common::protocol::{
    abbreviate, parse_request, printable, reply_properties, request_body, ErrorCode, Reply,
    ERROR_HEADER, MAX_REQUEST_BYTES,
};
use common::AmqpUrl;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use proptest::prelude::*;

/// ASCII whitespace as `parse_request` accepts it around n.
fn ascii_whitespace(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop::sample::select(vec![' ', '\t', '\n', '\r', '\x0c']),
        0..=max,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// Any AMQP field value, nested tables and arrays included.
fn amqp_value() -> impl Strategy<Value = AmqpValue> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(AmqpValue::Boolean),
        any::<i8>().prop_map(AmqpValue::ShortShortInt),
        any::<u8>().prop_map(AmqpValue::ShortShortUInt),
        any::<i16>().prop_map(AmqpValue::ShortInt),
        any::<u16>().prop_map(AmqpValue::ShortUInt),
        any::<i32>().prop_map(AmqpValue::LongInt),
        any::<u32>().prop_map(AmqpValue::LongUInt),
        any::<i64>().prop_map(AmqpValue::LongLongInt),
        any::<f32>().prop_map(AmqpValue::Float),
        any::<f64>().prop_map(AmqpValue::Double),
        any::<String>().prop_map(AmqpValue::LongString),
        any::<u64>().prop_map(AmqpValue::Timestamp),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(AmqpValue::ByteArray),
        Just(AmqpValue::Void),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(AmqpValue::FieldArray),
            proptest::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(AmqpValue::FieldTable),
        ]
    })
}

/// Headers as a rogue peer might send them: anything, sometimes with an
/// `error` entry of any type.
fn headers() -> impl Strategy<Value = Option<FieldTable>> {
    let table = (
        proptest::collection::btree_map(any::<String>(), amqp_value(), 0..4),
        proptest::option::of(amqp_value()),
    )
        .prop_map(|(mut table, error)| {
            if let Some(value) = error {
                table.insert(ERROR_HEADER.to_string(), value);
            }
            table
        });
    proptest::option::of(table)
}

proptest! {
    #[test]
    fn parse_request_never_panics(
        body in proptest::collection::vec(any::<u8>(), 0..100),
        max_n in any::<u64>(),
    ) {
        match parse_request(&body, max_n) {
            Ok(n) => {
                prop_assert!(n <= max_n);
                prop_assert!(body.len() <= MAX_REQUEST_BYTES);
                let text = std::str::from_utf8(&body).map(str::trim);
                prop_assert_eq!(text.map(|t| t.trim_start_matches('0').to_string()),
                                Ok(n.to_string().trim_start_matches('0').to_string()));
            }
            Err(error) => {
                // The message goes into a reply body documented as one line.
                prop_assert!(!error.message.contains('\n'), "{:?}", error.message);
                prop_assert!(!error.message.is_empty());
            }
        }
    }

    #[test]
    fn parse_request_never_panics_on_text(body in any::<String>(), max_n in any::<u64>()) {
        if let Ok(n) = parse_request(body.as_bytes(), max_n) {
            prop_assert!(n <= max_n);
        }
    }

    #[test]
    fn a_request_body_round_trips(max_n in any::<u64>(), seed in any::<u64>()) {
        let n = if max_n == u64::MAX { seed } else { seed % (max_n + 1) };
        prop_assert_eq!(parse_request(request_body(n).as_bytes(), max_n), Ok(n));
    }

    #[test]
    fn a_request_body_round_trips_with_whitespace(
        n in any::<u64>(),
        before in ascii_whitespace(20),
        after in ascii_whitespace(20),
    ) {
        let body = format!("{before}{}{after}", request_body(n));
        prop_assert_eq!(parse_request(body.as_bytes(), u64::MAX), Ok(n));
    }

    #[test]
    fn n_above_max_is_too_large(max_n in 0..u64::MAX, above in 1..=u64::MAX) {
        let n = max_n.saturating_add(above);
        let error = parse_request(request_body(n).as_bytes(), max_n);
        prop_assert_eq!(error.map_err(|e| e.code), Err(ErrorCode::TooLarge));
    }

    #[test]
    fn reply_decoding_never_panics(
        body in proptest::collection::vec(any::<u8>(), 0..200),
        headers in headers(),
    ) {
        let mut properties = AmqpProperties::default();
        if let Some(table) = headers.clone() {
            properties = properties.with_headers(table);
        }
        let reply = Reply::from_message(&body, &properties);
        let text = String::from_utf8_lossy(&body).into_owned();
        let error = headers.as_ref().and_then(|table| table.get(ERROR_HEADER));
        match (error, reply) {
            (None, Reply::Value(value)) => prop_assert_eq!(value, text),
            (Some(AmqpValue::LongString(sent)), Reply::Error { code, message }) => {
                prop_assert_eq!(&code, sent);
                prop_assert_eq!(message, text);
            }
            (Some(_), Reply::Error { message, .. }) => prop_assert_eq!(message, text),
            (error, reply) => prop_assert!(false, "header {:?} gave {:?}", error, reply),
        }
    }

    #[test]
    fn replies_the_server_makes_decode_to_what_it_meant(
        digits in "[0-9]{0,80}",
        id in proptest::option::of("[ -~]{0,40}"),
        too_large in any::<bool>(),
    ) {
        let code = if too_large { ErrorCode::TooLarge } else { ErrorCode::InvalidRequest };
        let value = Reply::from_message(digits.as_bytes(), &reply_properties(id.as_deref(), None));
        prop_assert_eq!(value, Reply::Value(digits.clone()));
        let refused = Reply::from_message(b"no", &reply_properties(id.as_deref(), Some(code)));
        prop_assert_eq!(refused, Reply::Error { code: code.as_str().into(), message: "no".into() });
    }

    #[test]
    fn abbreviate_keeps_whole_characters(text in any::<String>(), keep in 0usize..40) {
        let short = abbreviate(&text, keep);
        let chars = text.chars().count();
        if chars <= 2 * keep + 3 {
            prop_assert_eq!(short, text);
        } else {
            prop_assert_eq!(short.chars().count(), 2 * keep + 3);
            let head: String = text.chars().take(keep).collect();
            let tail: String = text.chars().skip(chars - keep).collect();
            prop_assert!(text.starts_with(&head) && text.ends_with(&tail));
            prop_assert_eq!(short, format!("{head}...{tail}"));
        }
    }

    #[test]
    fn printable_text_is_one_line_without_control_characters(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        keep in 0usize..40,
    ) {
        let text = String::from_utf8_lossy(&bytes);
        let line = printable(&text, keep);
        prop_assert!(!line.chars().any(char::is_control), "{:?}", line);
    }

    #[test]
    fn abbreviate_survives_lossy_decoding(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        keep in 0usize..40,
    ) {
        let text = String::from_utf8_lossy(&bytes);
        let short = abbreviate(&text, keep);
        prop_assert!(short.chars().count() <= text.chars().count().max(2 * keep + 3));
    }

    #[test]
    fn url_parsing_never_panics(text in any::<String>()) {
        if let Ok(url) = AmqpUrl::parse(&text) {
            let shown = url.to_string();
            prop_assert!(shown.contains(":***@"), "{}", shown);
            let _ = format!("{url:?}");
        }
    }

    #[test]
    fn url_parsing_never_panics_on_url_like_text(
        scheme in prop::sample::select(vec!["amqp", "amqps", "http", ""]),
        rest in "[a-z0-9:@/%?=&.\\[\\]_-]{0,40}",
    ) {
        let text = format!("{scheme}://{rest}");
        if let Ok(url) = AmqpUrl::parse(&text) {
            let _ = (url.to_string(), format!("{url:?}"));
        }
    }

    /// A URL as printed parses back to the same address, user and vhost,
    /// IPv6 hosts and any user name or vhost included, and never shows the
    /// password.
    #[test]
    fn a_printed_url_parses_back_to_the_same_place(
        tls in any::<bool>(),
        user in ".{0,12}",
        secret in proptest::collection::vec(any::<char>(), 0..12),
        host in prop::sample::select(vec!["h", "127.0.0.1", "[::1]", "[2001:db8::7]",
                                          "[fe80::1:2]", "example.com"]),
        port in 1u16..,
        vhost in ".{0,12}".prop_filter("a path step, refused", |v| v != "." && v != ".."),
    ) {
        const MARKER: &str = "Zq7pw";
        let password: String = MARKER.chars().chain(secret).collect();
        let encode = |text: &str| utf8_percent_encode(text, NON_ALPHANUMERIC).to_string();
        let scheme = if tls { "amqps" } else { "amqp" };
        let text = format!(
            "{scheme}://{}:{}@{host}:{port}/{}",
            encode(&user),
            encode(&password),
            encode(&vhost)
        );
        let url = AmqpUrl::parse(&text).map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
        let shown = url.to_string();
        prop_assert!(!shown.contains(MARKER), "{} shows the password", shown);
        let again = AmqpUrl::parse(&shown)
            .map_err(|e| TestCaseError::fail(format!("{shown} does not parse back: {e:#}")))?;
        prop_assert_eq!(again.tls, tls);
        prop_assert_eq!(&again.host, &url.host);
        prop_assert_eq!(again.port, port);
        prop_assert_eq!(&again.vhost, &if vhost.is_empty() { "/".to_string() } else { vhost });
        prop_assert_eq!(&again.username, &user);
        prop_assert_eq!(again.to_string(), shown);
    }

    /// However the rest of the URL looks, right or wrong, the password shows
    /// neither in the URL as printed nor in any error. It starts with a
    /// marker that no other part of the URL can contain, so a password that
    /// happens to occur elsewhere (like "" or "a") cannot pass by chance.
    #[test]
    fn the_password_never_shows(
        secret in proptest::collection::vec(any::<char>(), 0..12),
        user in "[a-z]{0,8}",
        host in prop::sample::select(vec!["h", "127.0.0.1", "[::1]", "example.com", ""]),
        port in prop::sample::select(vec!["", ":5672", ":1", ":99999", ":x"]),
        scheme in prop::sample::select(vec!["amqp", "amqps", "http"]),
        vhost in prop::sample::select(vec!["", "/", "/%2f", "/v", "/a/b", "/%ff", "/..", "/a@b"]),
        query in prop::sample::select(vec!["", "?heartbeat=5", "?heartbeat=x", "?channel_max=9",
                                           "?frob=1", "?heartbeat=99999", "#", "#frag"]),
    ) {
        const MARKER: &str = "Zq7pw";
        let password: String = MARKER.chars().chain(secret).collect();
        let encoded = utf8_percent_encode(&password, NON_ALPHANUMERIC).to_string();
        let text = format!("{scheme}://{user}:{encoded}@{host}{port}{vhost}{query}");
        match AmqpUrl::parse(&text) {
            Ok(url) => {
                for shown in [url.to_string(), format!("{url:?}")] {
                    prop_assert!(!shown.contains(MARKER), "{} shows the password", shown);
                    prop_assert!(!shown.contains(&encoded));
                }
                // Given, even empty: never replaced by the default.
                prop_assert_eq!(url.username.as_str(), user.as_str());
            }
            Err(error) => {
                for shown in [format!("{error:#}"), format!("{error:?}")] {
                    prop_assert!(!shown.contains(MARKER), "{} shows the password", shown);
                    prop_assert!(!shown.contains(&encoded));
                }
            }
        }
    }
}
