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

#[cfg(test)]
mod tests {
    use super::counted;

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(counted(1u32, "request"), "1 request");
        assert_eq!(counted(0u32, "request"), "0 requests");
        assert_eq!(counted(2u64, "time"), "2 times");
    }
}
