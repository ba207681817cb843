//! Manifest loading (`mtls-gate check`/`render`, standalone `webhook --objects`): any text
//! either loads into a cluster view or gives an error message; nothing panics.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.yaml");
    match mtls_gate::manifest::parse_documents(path, text) {
        Ok(documents) => {
            if let Err(e) = mtls_gate::manifest::load(documents, "default", true) {
                assert!(!e.to_string().is_empty(), "an error without a message");
            }
        }
        Err(e) => assert!(!e.to_string().is_empty(), "an error without a message"),
    }
});
