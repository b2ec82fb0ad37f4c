//! Small pieces of wording shared by the messages of both programs.

/// `count` and `noun`, the noun plural unless the count is one: "1 request",
/// "3 requests", "0 messages". For nouns whose plural adds an "s".
pub fn counted(count: impl Into<u64>, noun: &str) -> String {
    let count = count.into();
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// A duration for a message: one decimal of seconds from a second up
/// ("40.2 s"), milliseconds below ("400 ms", "1.0 ms"), so that a short one
/// never reads "0.0 s".
pub fn duration(duration: std::time::Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds >= 1.0 {
        format!("{seconds:.1} s")
    } else if seconds >= 0.01 {
        format!("{:.0} ms", seconds * 1e3)
    } else {
        format!("{:.1} ms", seconds * 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::{counted, duration};
    use std::time::Duration;

    #[test]
    fn a_short_duration_is_given_in_milliseconds() {
        assert_eq!(duration(Duration::from_micros(1_200)), "1.2 ms");
        assert_eq!(duration(Duration::from_millis(400)), "400 ms");
        assert_eq!(duration(Duration::from_millis(40_250)), "40.2 s");
        assert_eq!(duration(Duration::from_secs(5)), "5.0 s");
    }

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(counted(1u32, "request"), "1 request");
        assert_eq!(counted(0u32, "request"), "0 requests");
        assert_eq!(counted(2u64, "time"), "2 times");
    }
}
