//! AdmissionReview (admission.k8s.io/v1) decoding and encoding.

use kube::core::admission::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, META_API_VERSION_V1, META_KIND,
};
use kube::core::{DynamicObject, TypeMeta};
use serde::Deserialize;

/// The top level of an AdmissionReview, decoded without `#[serde(flatten)]` (which would
/// buffer the whole document before decoding it). Equivalent to decoding
/// `AdmissionReview<DynamicObject>` and converting it with `TryInto<AdmissionRequest>`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    api_version: Option<String>,
    kind: Option<String>,
    request: Option<AdmissionRequest<DynamicObject>>,
}

/// Decodes an AdmissionReview body into its request, or a message for a 400 answer.
pub(crate) fn parse_request(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, String> {
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|e| format!("body is not a valid AdmissionReview: {e}"))?;
    let api_version = envelope
        .api_version
        .ok_or("AdmissionReview has no apiVersion")?;
    if api_version != META_API_VERSION_V1 {
        return Err(format!(
            "unsupported AdmissionReview apiVersion {api_version:?}: expected {META_API_VERSION_V1:?}"
        ));
    }
    let kind = envelope.kind.ok_or("AdmissionReview has no kind")?;
    if kind != META_KIND {
        return Err(format!("unexpected kind {kind:?}: expected {META_KIND:?}"));
    }
    let mut request = envelope.request.ok_or("AdmissionReview has no request")?;
    if request.uid.is_empty() {
        return Err("AdmissionReview request has an empty uid".into());
    }
    request.types = TypeMeta { api_version, kind };
    Ok(request)
}

/// Encodes the review answering `request` with `response`, forcing the request's uid and
/// the v1 type meta.
pub(crate) fn encode_response(
    request: &AdmissionRequest<DynamicObject>,
    mut response: AdmissionResponse,
) -> Result<Vec<u8>, serde_json::Error> {
    response.uid.clone_from(&request.uid);
    response.types = request.types.clone();
    let review: AdmissionReview<DynamicObject> = response.into_review();
    serde_json::to_vec(&review)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1","kind":{"group":"networking.k8s.io","version":"v1","kind":"Ingress"},"resource":{"group":"networking.k8s.io","version":"v1","resource":"ingresses"},"name":"a","namespace":"ns","operation":"CREATE","userInfo":{"username":"x"},"object":{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"a","namespace":"ns"},"spec":{}},"oldObject":null,"dryRun":false}}"#;

    #[test]
    fn same_as_kube_conversion() {
        let ours = parse_request(BODY.as_bytes()).unwrap();
        let review: AdmissionReview<DynamicObject> = serde_json::from_str(BODY).unwrap();
        let theirs: AdmissionRequest<DynamicObject> = review.try_into().unwrap();
        assert_eq!(
            serde_json::to_value(&ours).unwrap(),
            serde_json::to_value(&theirs).unwrap()
        );
        assert_eq!(ours.types, theirs.types);
    }

    #[test]
    fn rejects_wrong_envelopes() {
        let e = parse_request(b"{").unwrap_err();
        assert!(e.contains("line 1 column 1"), "{e}");
        let v1beta1 = BODY.replace("admission.k8s.io/v1", "admission.k8s.io/v1beta1");
        assert!(
            parse_request(v1beta1.as_bytes())
                .unwrap_err()
                .contains("apiVersion")
        );
        let no_req = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#;
        assert!(
            parse_request(no_req.as_bytes())
                .unwrap_err()
                .contains("no request")
        );
        let kind = BODY.replace("\"AdmissionReview\"", "\"Pod\"");
        assert!(parse_request(kind.as_bytes()).unwrap_err().contains("kind"));
    }

    #[test]
    fn response_echoes_uid() {
        let req = parse_request(BODY.as_bytes()).unwrap();
        let mut resp = AdmissionResponse::from(&req);
        resp.uid = "wrong".into();
        let out: serde_json::Value =
            serde_json::from_slice(&encode_response(&req, resp).unwrap()).unwrap();
        assert_eq!(out["response"]["uid"], "u-1");
        assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(out["kind"], "AdmissionReview");
    }
}
