//! Values parsed exactly as the Go controllers parse them.
//!
//! ingress-nginx (`internal/ingress/annotations/parser`), Traefik (`paerser`) and
//! haproxy-ingress read boolean annotations with Go's `strconv.ParseBool`, which accepts
//! exactly `1 t T TRUE true True` and `0 f F FALSE false False` and rejects everything
//! else (no trimming). Source: Go's `src/strconv/atob.go`.

/// `strconv.ParseBool`: `None` for a value Go rejects.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_bool;

    #[test]
    fn accepts_exactly_gos_spellings() {
        let cases = [
            ("1", Some(true)),
            ("t", Some(true)),
            ("T", Some(true)),
            ("TRUE", Some(true)),
            ("true", Some(true)),
            ("True", Some(true)),
            ("0", Some(false)),
            ("f", Some(false)),
            ("F", Some(false)),
            ("FALSE", Some(false)),
            ("false", Some(false)),
            ("False", Some(false)),
            ("tRUE", None),
            (" true", None),
            ("true ", None),
            ("yes", None),
            ("on", None),
            ("", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_bool(value), expected, "{value:?}");
        }
    }
}
