//! AdmissionReview decoding (`POST /validate`, `/mutate` bodies): any bytes either decode
//! to a request with a uid or give an error message; nothing panics, and a decoded
//! request serialises again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match mtls_gate::webhook::parse_admission_review(data) {
        Ok(request) => {
            assert!(!request.uid.is_empty(), "decoded a request without a uid");
            serde_json::to_vec(&request).expect("a decoded request serialises");
        }
        Err(message) => assert!(!message.is_empty(), "an error without a message"),
    }
});
