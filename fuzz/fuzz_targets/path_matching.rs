//! Path matching (`mtls_gate::paths`): endpoint templates against request paths, and
//! ingress-nginx regex paths against templates. The input is split at the first NUL into
//! an Ingress path and a request path; nothing panics, and a template always matches its
//! own instances.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtls_gate::paths::{PathMatcher, PathTemplate};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (ingress_path, request_path) = text.split_once('\0').unwrap_or((text, "/"));
    let template = PathTemplate::parse(ingress_path);
    let _ = template.matches(request_path);
    let other = PathTemplate::parse(request_path);
    let _ = template.starts_with(&other);
    if !template.has_params() {
        assert!(
            template.matches(&template.to_string()),
            "a literal template does not match itself: {template}"
        );
    }
    let regex = PathMatcher::nginx_regex(ingress_path);
    let _ = regex.matches(request_path);
    let _ = regex.may_match_template(&other);
});
