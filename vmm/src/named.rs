// SPDX-License-Identifier: GPL-2.0

//! Enums named by a table of `(name, value)` pairs, as the control
//! socket's fault kinds are (`storage::fault`, `vsock::fault`): the name
//! of a value, and the value of a name with an error that lists them all.

/// The name `value` has in `all`; `"?"` if none.
pub fn name_of<T: PartialEq>(all: &[(&'static str, T)], value: &T) -> &'static str {
    all.iter().find(|(_, v)| v == value).map_or("?", |(n, _)| n)
}

/// The value named `s` in `all`, or an error naming `what` and every name.
pub fn parse_named<T: Copy>(all: &[(&'static str, T)], s: &str, what: &str) -> Result<T, String> {
    all.iter()
        .find(|(n, _)| *n == s)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
            format!("unknown {what} {s:?} (one of: {})", names.join(", "))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [(&str, u8); 2] = [("one", 1), ("two", 2)];

    #[test]
    fn names_both_ways() {
        assert_eq!(name_of(&ALL, &2), "two");
        assert_eq!(name_of(&ALL, &3), "?");
        assert_eq!(parse_named(&ALL, "one", "number"), Ok(1));
        assert_eq!(
            parse_named(&ALL, "six", "number"),
            Err("unknown number \"six\" (one of: one, two)".to_string())
        );
    }
}
