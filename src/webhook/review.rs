//! AdmissionReview (admission.k8s.io/v1) decoding and encoding.

use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::core::admission::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, META_API_VERSION_V1, META_KIND, Operation,
};
use kube::core::{DynamicObject, GroupVersionKind, GroupVersionResource, TypeMeta};
use serde::Deserialize;

/// The top level of an AdmissionReview, decoded without `#[serde(flatten)]` (which would
/// buffer the whole document before decoding it).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    api_version: Option<String>,
    kind: Option<String>,
    request: Option<FastRequest>,
}

/// Field for field the serde shape of kube's `AdmissionRequest<DynamicObject>`, except
/// that the objects are decoded by [`FastObject`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FastRequest {
    uid: String,
    kind: GroupVersionKind,
    resource: GroupVersionResource,
    #[serde(default)]
    sub_resource: Option<String>,
    #[serde(default)]
    request_kind: Option<GroupVersionKind>,
    #[serde(default)]
    request_resource: Option<GroupVersionResource>,
    #[serde(default)]
    request_sub_resource: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    operation: Operation,
    user_info: UserInfo,
    object: Option<FastObject>,
    old_object: Option<FastObject>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    options: Option<RawExtension>,
}

/// A `DynamicObject` decoded in one pass. kube's own `Deserialize` for `DynamicObject`
/// uses two `#[serde(flatten)]` fields, which buffer the whole object into serde's
/// intermediate `Content` tree first and cost about as much again as the parse itself.
/// Objects with both `apiVersion` and `kind` as strings (every object the API server
/// sends) are built directly; anything else is handed to kube's implementation, so the
/// result is always what kube would produce.
struct FastObject(DynamicObject);

impl<'de> Deserialize<'de> for FastObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FastObjectVisitor)
    }
}

struct FastObjectVisitor;

impl<'de> serde::de::Visitor<'de> for FastObjectVisitor {
    type Value = FastObject;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<FastObject, A::Error> {
        use serde::de::Error as _;
        let mut data = serde_json::Map::new();
        let mut metadata: Option<ObjectMeta> = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "metadata" {
                if metadata.is_some() {
                    return Err(A::Error::duplicate_field("metadata"));
                }
                metadata = Some(map.next_value()?);
            } else {
                let value: serde_json::Value = map.next_value()?;
                data.insert(key, value);
            }
        }
        let fast = matches!(
            (data.get("apiVersion"), data.get("kind")),
            (
                Some(serde_json::Value::String(_)),
                Some(serde_json::Value::String(_))
            )
        );
        if fast {
            let take = |data: &mut serde_json::Map<String, serde_json::Value>, k: &str| match data
                .remove(k)
            {
                Some(serde_json::Value::String(s)) => s,
                _ => String::new(),
            };
            let api_version = take(&mut data, "apiVersion");
            let kind = take(&mut data, "kind");
            return Ok(FastObject(DynamicObject {
                types: Some(TypeMeta { api_version, kind }),
                metadata: metadata.unwrap_or_default(),
                data: serde_json::Value::Object(data),
            }));
        }
        // Unusual object: let kube decide, from the same content.
        if let Some(metadata) = metadata {
            let metadata = serde_json::to_value(metadata).map_err(A::Error::custom)?;
            data.insert("metadata".into(), metadata);
        }
        serde_json::from_value(serde_json::Value::Object(data))
            .map(FastObject)
            .map_err(A::Error::custom)
    }
}

/// Decodes an AdmissionReview (`admission.k8s.io/v1`, kind `AdmissionReview`, with a
/// request) into its request, exactly as kube's `AdmissionReview<DynamicObject>` decoding
/// followed by `TryInto<AdmissionRequest>` would, but in one pass. Errors are messages
/// for an HTTP 400 answer (serde's, with line and column, where the JSON is at fault).
pub fn parse_admission_review(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, String> {
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
    let r = envelope.request.ok_or("AdmissionReview has no request")?;
    if r.uid.is_empty() {
        return Err("AdmissionReview request has an empty uid".into());
    }
    Ok(AdmissionRequest {
        types: TypeMeta { api_version, kind },
        uid: r.uid,
        kind: r.kind,
        resource: r.resource,
        sub_resource: r.sub_resource,
        request_kind: r.request_kind,
        request_resource: r.request_resource,
        request_sub_resource: r.request_sub_resource,
        name: r.name,
        namespace: r.namespace,
        operation: r.operation,
        user_info: r.user_info,
        object: r.object.map(|o| o.0),
        old_object: r.old_object.map(|o| o.0),
        dry_run: r.dry_run,
        options: r.options,
    })
}

/// Encodes the review answering `request` with `response`, forcing the request's uid and
/// the v1 type meta.
pub(crate) fn encode_response(
    request: &AdmissionRequest<DynamicObject>,
    response: AdmissionResponse,
) -> Result<Vec<u8>, serde_json::Error> {
    encode_response_to(&request.uid, &request.types, response)
}

/// [`encode_response`] for a request known only by its uid and type meta.
pub(crate) fn encode_response_to(
    uid: &str,
    types: &TypeMeta,
    mut response: AdmissionResponse,
) -> Result<Vec<u8>, serde_json::Error> {
    response.uid = uid.to_string();
    response.types = types.clone();
    // kube serialises `patch` (a Vec<u8>) as an array of numbers, but the API server reads
    // a Go []byte: a base64 string (kube-rs/kube#1781). Encode it here.
    let patch = response.patch.take();
    let review: AdmissionReview<DynamicObject> = response.into_review();
    let mut value = serde_json::to_value(&review)?;
    if let (Some(patch), Some(response)) = (
        patch,
        value.get_mut("response").and_then(|r| r.as_object_mut()),
    ) {
        use base64::Engine as _;
        response.insert(
            "patch".to_string(),
            serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(patch)),
        );
    }
    serde_json::to_vec(&value)
}

/// Memory model of a decoded JSON document (serde_json `Value` with its default
/// `BTreeMap` maps, 64-bit): the sizes below are `size_of` of the types involved.
const VALUE_BYTES: usize = 32; // size_of::<serde_json::Value>()
const STRING_BYTES: usize = 24; // size_of::<String>()
/// One B-tree node of `BTreeMap<String, Value>`: 11 keys, 11 values, parent link and
/// lengths, plus 12 child edges for internal nodes (std's `CAPACITY = 11`).
const MAP_NODE_BYTES: usize = 11 * (STRING_BYTES + VALUE_BYTES) + 16 + 12 * 8;
/// Non-root B-tree nodes are at least half full, so a map of `n` entries has at most
/// `n / 5 + 1` nodes.
const MAP_ENTRIES_PER_NODE: usize = 5;

/// The largest ratio of modelled decoded bytes to JSON text bytes: the worst text is an
/// array of one-entry maps, `{"":0},` (7 bytes), modelled as a `Value` slot with growth
/// slack (64) + one map node (728) + one key (24): 816 / 7 < 117. A body shorter than
/// `limit / MAX_AMPLIFICATION` cannot exceed `limit`, so it need not be measured.
pub(crate) const MAX_AMPLIFICATION: usize = 128;

/// The largest body that cannot exceed `max_decoded_bytes` once decoded (see
/// [`MAX_AMPLIFICATION`]). Longer ones are "large": they are scanned for their decoded
/// size first, reviewed on the large-review lane and read at the large-body pace.
pub(crate) fn largest_unscanned_body(max_decoded_bytes: usize) -> usize {
    max_decoded_bytes / MAX_AMPLIFICATION
}

/// An upper estimate of the memory that decoding `body` into a review takes, following
/// the model above, stopping as soon as it exceeds `limit`. `None` when it does;
/// `Some(bytes)` otherwise (also for text that is not JSON: the decoder then reports the
/// error). Adversarial test F3: a 4 MiB body holding an array of two million small numbers
/// grew the process by 130 MB when decoded; this measures such a body in one pass over
/// the text, without building it.
pub(crate) fn estimate_decoded_bytes(body: &[u8], limit: usize) -> Option<usize> {
    use serde::de::DeserializeSeed as _;
    let meter = Meter {
        used: std::cell::Cell::new(VALUE_BYTES),
        limit,
        over: std::cell::Cell::new(false),
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let _ = (&meter).deserialize(&mut de);
    if meter.over.get() {
        None
    } else {
        Some(meter.used.get())
    }
}

struct Meter {
    used: std::cell::Cell<usize>,
    limit: usize,
    over: std::cell::Cell<bool>,
}

impl Meter {
    fn add<E: serde::de::Error>(&self, bytes: usize) -> Result<(), E> {
        let used = self.used.get().saturating_add(bytes);
        self.used.set(used);
        if used > self.limit {
            self.over.set(true);
            return Err(E::custom("decoded review over the memory limit"));
        }
        Ok(())
    }
}

/// Heap bytes of a string of `len` bytes (allocations are 8-byte granular).
fn heap_text(len: usize) -> usize {
    len.div_ceil(8) * 8
}

impl<'de> serde::de::DeserializeSeed<'de> for &Meter {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// Measures a map key.
struct KeyMeter<'a>(&'a Meter);

impl<'de> serde::de::DeserializeSeed<'de> for KeyMeter<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self.0)
    }
}

impl<'de> serde::de::Visitor<'de> for &Meter {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<(), E> {
        self.add(heap_text(s.len()))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // Each element: its slot in the Vec, twice for the doubling growth.
        while seq.next_element_seed(self)?.is_some() {
            self.add::<A::Error>(2 * VALUE_BYTES)?;
        }
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut entries = 0usize;
        while map.next_key_seed(KeyMeter(self))?.is_some() {
            map.next_value_seed(self)?;
            entries += 1;
            if entries % MAP_ENTRIES_PER_NODE == 1 {
                self.add::<A::Error>(MAP_NODE_BYTES)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1","kind":{"group":"networking.k8s.io","version":"v1","kind":"Ingress"},"resource":{"group":"networking.k8s.io","version":"v1","resource":"ingresses"},"name":"a","namespace":"ns","operation":"CREATE","userInfo":{"username":"x"},"object":{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"a","namespace":"ns"},"spec":{}},"oldObject":null,"dryRun":false}}"#;

    #[test]
    fn same_as_kube_conversion() {
        let ours = parse_admission_review(BODY.as_bytes()).unwrap();
        let review: AdmissionReview<DynamicObject> = serde_json::from_str(BODY).unwrap();
        let theirs: AdmissionRequest<DynamicObject> = review.try_into().unwrap();
        assert_eq!(
            serde_json::to_value(&ours).unwrap(),
            serde_json::to_value(&theirs).unwrap()
        );
        assert_eq!(ours.types, theirs.types);
    }

    fn kube_decode(body: &str) -> Result<serde_json::Value, String> {
        let review: AdmissionReview<DynamicObject> =
            serde_json::from_str(body).map_err(|e| e.to_string())?;
        let req: AdmissionRequest<DynamicObject> = review
            .try_into()
            .map_err(|e: kube::core::admission::ConvertAdmissionReviewError| e.to_string())?;
        Ok(serde_json::to_value(&req).unwrap())
    }

    #[test]
    fn objects_decode_as_kube_decodes_them() {
        let objects = [
            r#"{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"a","labels":{"x":"y"},"managedFields":[{"manager":"m","operation":"Apply","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{}}}]},"spec":{"rules":[{"host":"h"}]},"status":{"loadBalancer":{}}}"#,
            r#"{"kind":"Ingress","metadata":{"name":"a"},"spec":{}}"#,
            r#"{"apiVersion":"v1","metadata":{"name":"a"}}"#,
            r#"{"apiVersion":1,"kind":"Ingress","metadata":{"name":"a"}}"#,
            r#"{"apiVersion":"v1","kind":"Pod"}"#,
            r#"{"metadata":{"name":"a"},"spec":{"x":[1,2,{"y":null}]}}"#,
            r#"{}"#,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":null}"#,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"metadata":{"name":"b"}}"#,
            r#""a string""#,
            r#"[1]"#,
            r#"null"#,
        ];
        let mut errors = 0;
        for object in objects {
            for field in ["object", "oldObject"] {
                let (obj, old) = if field == "object" {
                    (object, "null")
                } else {
                    ("null", object)
                };
                let body = format!(
                    r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u","kind":{{"group":"","version":"v1","kind":"Pod"}},"resource":{{"group":"","version":"v1","resource":"pods"}},"operation":"UPDATE","userInfo":{{}},"object":{obj},"oldObject":{old}}}}}"#
                );
                let ours = parse_admission_review(body.as_bytes())
                    .map(|r| serde_json::to_value(&r).unwrap());
                let theirs = kube_decode(&body);
                match (&ours, &theirs) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "{field}: {object}"),
                    (Err(_), Err(_)) => errors += 1,
                    _ => panic!("{field}: {object}: ours {ours:?} kube {theirs:?}"),
                }
            }
        }
        // Both reject: null metadata, duplicate metadata, a string, an array.
        assert_eq!(errors, 8);
    }

    #[test]
    fn rejects_wrong_envelopes() {
        let e = parse_admission_review(b"{").unwrap_err();
        assert!(e.contains("line 1 column 1"), "{e}");
        let v1beta1 = BODY.replace("admission.k8s.io/v1", "admission.k8s.io/v1beta1");
        assert!(
            parse_admission_review(v1beta1.as_bytes())
                .unwrap_err()
                .contains("apiVersion")
        );
        let no_req = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#;
        assert!(
            parse_admission_review(no_req.as_bytes())
                .unwrap_err()
                .contains("no request")
        );
        let kind = BODY.replace("\"AdmissionReview\"", "\"Pod\"");
        assert!(
            parse_admission_review(kind.as_bytes())
                .unwrap_err()
                .contains("kind")
        );
    }

    #[test]
    fn decoded_size_estimate_bounds_real_reviews_and_refuses_amplifying_ones() {
        // A real review is small against the 16 MiB limit and its estimate is bounded by
        // the amplification constant.
        let limit = 16 << 20;
        let small = estimate_decoded_bytes(BODY.as_bytes(), limit).unwrap();
        assert!(small <= BODY.len() * MAX_AMPLIFICATION, "{small}");
        assert!(small > BODY.len(), "{small}");

        // The crafted shapes: arrays of small numbers, of one-entry maps, nested arrays.
        let numbers = format!("[{}0]", "1,".repeat((2 << 20) - 2));
        let maps = format!("[{}{{}}]", r#"{"":0},"#.repeat(590_000));
        let nested = format!("[{}0]", "[0],".repeat((1 << 20) - 1));
        for (name, text) in [("numbers", &numbers), ("maps", &maps), ("nested", &nested)] {
            assert!(text.len() <= 4 << 20, "{name}");
            assert_eq!(
                estimate_decoded_bytes(text.as_bytes(), limit),
                None,
                "{name}"
            );
            // And the model's worst ratio holds for each.
            let measured = estimate_decoded_bytes(text.as_bytes(), usize::MAX).unwrap();
            assert!(
                measured <= text.len() * MAX_AMPLIFICATION,
                "{name}: {measured}"
            );
        }
        // Text that is not JSON is left to the decoder's error message.
        assert!(estimate_decoded_bytes(b"{\"a\": [1, 2", limit).is_some());
        // A long string costs about its length.
        let long = format!("{{\"a\":\"{}\"}}", "x".repeat(1 << 20));
        let cost = estimate_decoded_bytes(long.as_bytes(), limit).unwrap();
        assert!((1 << 20..(1 << 20) + 4096).contains(&cost), "{cost}");
    }

    #[test]
    fn response_echoes_uid() {
        let req = parse_admission_review(BODY.as_bytes()).unwrap();
        let mut resp = AdmissionResponse::from(&req);
        resp.uid = "wrong".into();
        let out: serde_json::Value =
            serde_json::from_slice(&encode_response(&req, resp).unwrap()).unwrap();
        assert_eq!(out["response"]["uid"], "u-1");
        assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(out["kind"], "AdmissionReview");
    }
}
