//! The Payments NZ API Centre "MTLS endpoints" table, as data.
//!
//! Every row of the published table is here, in its published order, with the scheme the
//! provider must apply and, for authorisation and metadata rows, the OIDC discovery-metadata
//! key that names where the provider actually serves it. The `endpoint` strings are exactly
//! as written in the table: they are the names violations and reports use.

use serde::Serialize;

/// Whether the provider must require a client certificate on an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Scheme {
    /// The provider MUST require a verified client certificate.
    #[serde(rename = "MTLS")]
    Mtls,
    /// The provider MUST accept connections without a client certificate (MAY evaluate one).
    #[serde(rename = "TLS")]
    Tls,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Mtls => "MTLS",
            Scheme::Tls => "TLS",
        }
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The "Category / API" column of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    AccountInformation,
    PaymentInitiation,
    EventNotification,
    Authorisation,
    Metadata,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::AccountInformation => "account-information",
            Category::PaymentInitiation => "payment-initiation",
            Category::EventNotification => "event-notification",
            Category::Authorisation => "authorisation",
            Category::Metadata => "metadata",
        }
    }

    /// The heading the published table uses for this category.
    pub fn title(self) -> &'static str {
        match self {
            Category::AccountInformation => "Account Information API",
            Category::PaymentInitiation => "Payment Initiation API",
            Category::EventNotification => "Event Notification API",
            Category::Authorisation => "Authorisation",
            Category::Metadata => "Metadata",
        }
    }
}

/// Where the concrete URL of an endpoint comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Location {
    /// Relative to every `spec.apiBaseUrls` entry (`/open-banking-nz/vX.Y` + path).
    ApiBase,
    /// Served where the profile's `spec.authorizationServer.<key>` says, default issuer + path.
    AuthorizationServer,
    /// Served at the issuer (trailing `/` removed) + path (OIDC Discovery §4).
    Issuer,
}

/// One row of the endpoint table.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointRow {
    /// The endpoint exactly as the table writes it.
    pub endpoint: &'static str,
    /// The path matched against Ingress routes (differs from `endpoint` only for `/jwks or /keys`).
    #[serde(skip)]
    pub default_path: &'static str,
    pub category: Category,
    pub scheme: Scheme,
    /// OIDC discovery-metadata key (authorisation and metadata rows).
    pub discovery_key: Option<&'static str>,
    pub location: Location,
    /// HTTP methods the API Centre OpenAPI documents define (informational).
    pub methods: &'static [&'static str],
}

impl EndpointRow {
    /// The name of the `spec.authorizationServer` field that relocates this row, if any.
    pub fn profile_field(&self) -> Option<&'static str> {
        match self.discovery_key? {
            "authorization_endpoint" => Some("authorizationEndpoint"),
            "token_endpoint" => Some("tokenEndpoint"),
            "backchannel_authentication_endpoint" => Some("backchannelAuthenticationEndpoint"),
            "pushed_authorization_request_endpoint" => Some("pushedAuthorizationRequestEndpoint"),
            "introspection_endpoint" => Some("introspectionEndpoint"),
            "revocation_endpoint" => Some("revocationEndpoint"),
            "userinfo_endpoint" => Some("userinfoEndpoint"),
            "jwks_uri" => Some("jwksUri"),
            _ => None,
        }
    }
}

const GET: &[&str] = &["GET"];
const POST: &[&str] = &["POST"];
const GET_DELETE: &[&str] = &["GET", "DELETE"];

macro_rules! api {
    ($cat:ident, $path:literal, $methods:expr) => {
        EndpointRow {
            endpoint: $path,
            default_path: $path,
            category: Category::$cat,
            scheme: Scheme::Mtls,
            discovery_key: None,
            location: Location::ApiBase,
            methods: $methods,
        }
    };
}

macro_rules! auth {
    ($cat:ident, $path:literal, $scheme:ident, $key:literal, $loc:ident) => {
        EndpointRow {
            endpoint: $path,
            default_path: $path,
            category: Category::$cat,
            scheme: Scheme::$scheme,
            discovery_key: Some($key),
            location: Location::$loc,
            methods: &[],
        }
    };
}

/// The 43 rows of the table, in published order.
pub static ENDPOINT_TABLE: [EndpointRow; 43] = [
    api!(AccountInformation, "/account-access-consents", POST),
    api!(
        AccountInformation,
        "/account-access-consents/{ConsentId}",
        GET_DELETE
    ),
    api!(AccountInformation, "/accounts", GET),
    api!(AccountInformation, "/accounts/{AccountId}", GET),
    api!(
        AccountInformation,
        "/accounts/{AccountId}/transactions",
        GET
    ),
    api!(
        AccountInformation,
        "/accounts/{AccountId}/beneficiaries",
        GET
    ),
    api!(AccountInformation, "/accounts/{AccountId}/balances", GET),
    api!(
        AccountInformation,
        "/accounts/{AccountId}/direct-debits",
        GET
    ),
    api!(
        AccountInformation,
        "/accounts/{AccountId}/standing-orders",
        GET
    ),
    api!(AccountInformation, "/accounts/{AccountId}/offers", GET),
    api!(AccountInformation, "/accounts/{AccountId}/party", GET),
    api!(
        AccountInformation,
        "/accounts/{AccountId}/scheduled-payments",
        GET
    ),
    api!(AccountInformation, "/accounts/{AccountId}/statements", GET),
    api!(
        AccountInformation,
        "/accounts/{AccountId}/statements/{StatementId}",
        GET
    ),
    api!(
        AccountInformation,
        "/accounts/{AccountId}/statements/{StatementId}/file",
        GET
    ),
    api!(
        AccountInformation,
        "/accounts/{AccountId}/statements/{StatementId}/transactions",
        GET
    ),
    api!(AccountInformation, "/standing-orders", GET),
    api!(AccountInformation, "/direct-debits", GET),
    api!(AccountInformation, "/beneficiaries", GET),
    api!(AccountInformation, "/transactions", GET),
    api!(AccountInformation, "/balances", GET),
    api!(AccountInformation, "/offers", GET),
    api!(AccountInformation, "/party", GET),
    api!(AccountInformation, "/scheduled-payments", GET),
    api!(AccountInformation, "/statements", GET),
    api!(PaymentInitiation, "/enduring-payment-consents", POST),
    api!(
        PaymentInitiation,
        "/enduring-payment-consents/{ConsentId}",
        GET_DELETE
    ),
    api!(PaymentInitiation, "/domestic-payment-consents", POST),
    api!(
        PaymentInitiation,
        "/domestic-payment-consents/{ConsentId}",
        GET
    ),
    api!(PaymentInitiation, "/domestic-payments", POST),
    api!(
        PaymentInitiation,
        "/domestic-payments/{DomesticPaymentId}",
        GET
    ),
    api!(
        PaymentInitiation,
        "/domestic-payments/{DomesticPaymentId}/debtor-account",
        GET
    ),
    api!(EventNotification, "/event-subscriptions", &["POST", "GET"]),
    api!(
        EventNotification,
        "/event-subscriptions/{EventSubscriptionId}",
        &["PUT", "DELETE"]
    ),
    auth!(
        Authorisation,
        "/authorize",
        Tls,
        "authorization_endpoint",
        AuthorizationServer
    ),
    auth!(
        Authorisation,
        "/bc-authorize",
        Mtls,
        "backchannel_authentication_endpoint",
        AuthorizationServer
    ),
    auth!(
        Authorisation,
        "/introspect",
        Mtls,
        "introspection_endpoint",
        AuthorizationServer
    ),
    auth!(
        Authorisation,
        "/par",
        Mtls,
        "pushed_authorization_request_endpoint",
        AuthorizationServer
    ),
    auth!(
        Authorisation,
        "/revoke",
        Mtls,
        "revocation_endpoint",
        AuthorizationServer
    ),
    auth!(
        Authorisation,
        "/token",
        Mtls,
        "token_endpoint",
        AuthorizationServer
    ),
    auth!(
        Authorisation,
        "/userinfo",
        Mtls,
        "userinfo_endpoint",
        AuthorizationServer
    ),
    EndpointRow {
        endpoint: "/jwks or /keys",
        default_path: "/jwks",
        category: Category::Metadata,
        scheme: Scheme::Tls,
        discovery_key: Some("jwks_uri"),
        location: Location::AuthorizationServer,
        methods: GET,
    },
    auth!(
        Metadata,
        "/.well-known/openid-configuration",
        Tls,
        "openid_configuration",
        Issuer
    ),
];

/// Looks a row up by its table name (`"/token"`, `"/jwks or /keys"`, ...).
pub fn row(endpoint: &str) -> Option<&'static EndpointRow> {
    ENDPOINT_TABLE.iter().find(|r| r.endpoint == endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_the_published_table() {
        let count = |c: Category| ENDPOINT_TABLE.iter().filter(|r| r.category == c).count();
        assert_eq!(count(Category::AccountInformation), 25);
        assert_eq!(count(Category::PaymentInitiation), 7);
        assert_eq!(count(Category::EventNotification), 2);
        assert_eq!(count(Category::Authorisation), 7);
        assert_eq!(count(Category::Metadata), 2);
        let tls: Vec<_> = ENDPOINT_TABLE
            .iter()
            .filter(|r| r.scheme == Scheme::Tls)
            .map(|r| r.endpoint)
            .collect();
        assert_eq!(
            tls,
            [
                "/authorize",
                "/jwks or /keys",
                "/.well-known/openid-configuration"
            ]
        );
    }

    #[test]
    fn every_row_of_the_seed_text_is_in_the_table() {
        let seed = include_str!("../tests/fixtures/mtls-endpoints.txt");
        let mut seen = 0;
        for line in seed.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let (endpoint, scheme) = match cells.as_slice() {
                [_, endpoint, scheme, ..] if endpoint.starts_with('/') => (*endpoint, *scheme),
                [endpoint, scheme, ..] if endpoint.starts_with('/') => (*endpoint, *scheme),
                _ => continue,
            };
            let row = row(endpoint).unwrap_or_else(|| panic!("seed row {endpoint} missing"));
            assert_eq!(row.scheme.as_str(), scheme, "scheme of {endpoint}");
            seen += 1;
        }
        assert_eq!(seen, 43);
    }

    #[test]
    fn authorisation_rows_name_their_profile_field() {
        for r in ENDPOINT_TABLE
            .iter()
            .filter(|r| r.location == Location::AuthorizationServer)
        {
            assert!(
                r.profile_field().is_some(),
                "{} has no profile field",
                r.endpoint
            );
        }
    }
}
