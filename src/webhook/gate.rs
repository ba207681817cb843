//! The per-path gate behind `/verify`: allow only requests whose ingress controller says
//! the client certificate was verified at the handshake. Pure functions, no allocation on
//! the allow path; anything unexpected denies (fail closed).

use http::HeaderMap;

/// The ingress controller whose forwarded header is trusted, chosen by the `controller`
/// query parameter of `/verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateController {
    /// `ssl-client-verify: SUCCESS` (ingress-nginx auth sub-request, from `$ssl_client_verify`).
    IngressNginx,
    /// `X-Forwarded-Tls-Client-Cert` present and non-empty (Traefik passTLSClientCert after
    /// the rendered chain stripped client-supplied copies).
    Traefik,
    /// `X-SSL-Client-SHA1` present and non-empty (haproxy-ingress).
    HaproxyIngress,
}

impl GateController {
    /// The dialect name, as used in the query parameter and the metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            GateController::IngressNginx => "ingress-nginx",
            GateController::Traefik => "traefik",
            GateController::HaproxyIngress => "haproxy-ingress",
        }
    }

    /// The header this dialect reads (lower case).
    pub fn header(self) -> &'static str {
        match self {
            GateController::IngressNginx => "ssl-client-verify",
            GateController::Traefik => "x-forwarded-tls-client-cert",
            GateController::HaproxyIngress => "x-ssl-client-sha1",
        }
    }
}

/// The gate's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateVerdict {
    /// True only when the certificate was verified.
    pub allowed: bool,
    /// The dialect used, or `None` when the query did not name a known one.
    pub controller: Option<GateController>,
    /// A short plain-text reason (for the 403 body and logs).
    pub reason: &'static str,
}

impl GateVerdict {
    fn deny(controller: Option<GateController>, reason: &'static str) -> Self {
        Self {
            allowed: false,
            controller,
            reason,
        }
    }

    /// The metrics label of the controller (`unknown` when not recognised).
    pub fn controller_label(&self) -> &'static str {
        self.controller.map_or("unknown", GateController::as_str)
    }
}

/// Which controller a `/verify` query names: absent parameter → ingress-nginx; a known
/// name → that dialect; anything else (unknown name, empty value, repeated parameter,
/// percent-encoded value) → `Err`.
pub fn controller_from_query(query: Option<&str>) -> Result<GateController, &'static str> {
    let mut found: Option<&str> = None;
    for pair in query.unwrap_or("").split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "controller" {
            continue;
        }
        if found.is_some() {
            return Err("controller parameter given more than once");
        }
        found = Some(value);
    }
    match found {
        None | Some("ingress-nginx") => Ok(GateController::IngressNginx),
        Some("traefik") => Ok(GateController::Traefik),
        Some("haproxy-ingress") => Ok(GateController::HaproxyIngress),
        Some(_) => Err("unknown controller"),
    }
}

/// Decides one `/verify` request from its query string and headers.
pub fn verify(query: Option<&str>, headers: &HeaderMap) -> GateVerdict {
    let controller = match controller_from_query(query) {
        Ok(c) => c,
        Err(reason) => return GateVerdict::deny(None, reason),
    };
    let mut values = headers.get_all(controller.header()).iter();
    let Some(value) = values.next() else {
        return GateVerdict::deny(Some(controller), "client certificate header missing");
    };
    if values.next().is_some() {
        return GateVerdict::deny(Some(controller), "client certificate header repeated");
    }
    let ok = match controller {
        GateController::IngressNginx => value.as_bytes() == b"SUCCESS",
        GateController::Traefik | GateController::HaproxyIngress => {
            !value.as_bytes().iter().all(u8::is_ascii_whitespace)
        }
    };
    if ok {
        GateVerdict {
            allowed: true,
            controller: Some(controller),
            reason: "client certificate verified",
        }
    } else if controller == GateController::IngressNginx {
        GateVerdict::deny(Some(controller), "client certificate not verified")
    } else {
        GateVerdict::deny(Some(controller), "client certificate header empty")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn nginx_dialect() {
        assert!(verify(None, &headers(&[("ssl-client-verify", "SUCCESS")])).allowed);
        assert!(
            verify(
                Some("controller=ingress-nginx"),
                &headers(&[("SSL-Client-Verify", "SUCCESS")])
            )
            .allowed
        );
        for bad in ["FAILED:unable to verify", "NONE", "success", " SUCCESS", ""] {
            let mut map = HeaderMap::new();
            map.insert("ssl-client-verify", HeaderValue::from_str(bad).unwrap());
            assert!(!verify(None, &map).allowed, "{bad:?}");
        }
        assert!(!verify(None, &headers(&[])).allowed);
        let dup = headers(&[
            ("ssl-client-verify", "SUCCESS"),
            ("ssl-client-verify", "SUCCESS"),
        ]);
        assert!(!verify(None, &dup).allowed);
    }

    #[test]
    fn other_dialects_and_queries() {
        let t = headers(&[("x-forwarded-tls-client-cert", "MIIB...")]);
        assert!(verify(Some("controller=traefik"), &t).allowed);
        assert!(!verify(None, &t).allowed);
        assert!(
            !verify(
                Some("controller=traefik"),
                &headers(&[("x-forwarded-tls-client-cert", " ")])
            )
            .allowed
        );
        let h = headers(&[("x-ssl-client-sha1", "ab12")]);
        assert!(verify(Some("a=b&controller=haproxy-ingress"), &h).allowed);
        assert!(!verify(Some("controller=haproxy"), &h).allowed);
        assert!(!verify(Some("controller="), &h).allowed);
        assert!(!verify(Some("controller=traefik&controller=traefik"), &t).allowed);
        assert!(!verify(Some("controller=haproxy%2Dingress"), &h).allowed);
        assert_eq!(
            verify(Some("controller=x"), &h).controller_label(),
            "unknown"
        );
    }
}
