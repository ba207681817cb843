//! The Payments NZ "MTLS endpoints" table, one test per row.
//!
//! Every row is served by one Ingress route on a split-host layout:
//!
//! * resource APIs on `mtls-api.bank.example` under `/open-banking-nz/v3.0`;
//! * the six MTLS authorisation endpoints on `mtls-auth.bank.example/oauth2/...`;
//! * `/authorize`, JWKS and discovery at the issuer `https://auth.bank.example/oauth2/`
//!   (an issuer with a path and a trailing `/`: discovery lives at
//!   `/oauth2/.well-known/openid-configuration`, OIDC Discovery §4).
//!
//! (a) On a host with the right client auth (MTLS row: ingress-nginx or haproxy-ingress
//! `auth-tls-verify-client: "on"` with the CA; TLS row: no client-certificate settings) the
//! endpoint is served and compliant and no violation names it. Every row is checked on
//! each controller of `DIALECTS`.
//! (b) On a host with the wrong one (MTLS row: no client auth; TLS row: certificates
//! required) there is exactly one violation, `MtlsNotRequired` or
//! `MtlsRequiredOnTlsEndpoint`, naming the endpoint as the table writes it, the Ingress and
//! the path.
//!
//! Templated rows are served by an `Exact` route to one concrete instance
//! (`/accounts/acc-0001`); findings name the template URL (`/accounts/{AccountId}`).

mod common;

use common::*;
use mtls_gate::catalog::ENDPOINT_TABLE;
use mtls_gate::violation::ViolationCode;

const ISSUER: &str = "https://auth.bank.example/oauth2/";

/// Where the profile used here serves a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServedAt {
    /// Under the API base URL `https://mtls-api.bank.example/open-banking-nz/v3.0`.
    ApiBase,
    /// On the MTLS alias of the authorisation server, `https://mtls-auth.bank.example/oauth2`.
    MtlsAlias,
    /// Under the issuer, `https://auth.bank.example/oauth2`.
    Issuer,
}

#[derive(Debug)]
struct Row {
    case: &'static str,
    /// Exactly as the table writes it.
    endpoint: &'static str,
    scheme: &'static str,
    served_at: ServedAt,
    /// A concrete request path of the endpoint, relative to where it is served.
    instance: &'static str,
}

impl Row {
    /// (host, Ingress path, endpoint URL as findings name it)
    fn location(&self) -> (&'static str, String, String) {
        // "/jwks or /keys" is served at the default /jwks.
        let template = if self.endpoint == "/jwks or /keys" {
            "/jwks"
        } else {
            self.endpoint
        };
        match self.served_at {
            ServedAt::ApiBase => (
                MTLS_API_HOST,
                format!("{API_BASE}{}", self.instance),
                format!("https://{MTLS_API_HOST}{API_BASE}{template}"),
            ),
            ServedAt::MtlsAlias => (
                MTLS_AUTH_HOST,
                format!("/oauth2{}", self.instance),
                format!("https://{MTLS_AUTH_HOST}/oauth2{template}"),
            ),
            ServedAt::Issuer => (
                PUBLIC_HOST,
                format!("/oauth2{}", self.instance),
                format!("https://{PUBLIC_HOST}/oauth2{template}"),
            ),
        }
    }

    fn ingress_name(&self) -> &'static str {
        match self.served_at {
            ServedAt::ApiBase => "open-banking-apis",
            ServedAt::MtlsAlias => "authorization-server-mtls",
            ServedAt::Issuer => "authorization-server-public",
        }
    }
}

/// The ingress controllers every row is checked on, with their IngressClass.
const DIALECTS: &[(&str, &str)] = &[("ingress-nginx", "nginx"), ("haproxy-ingress", "haproxy")];

/// The split-host profile of this file for a controller.
fn profile(controller: &str, class: &str) -> Profile {
    let alias = |p: &str| format!("https://{MTLS_AUTH_HOST}/oauth2{p}");
    let mut profile = Profile::split_host().issuer(ISSUER).class(class);
    profile.controller = controller.into();
    for (field, path) in [
        ("tokenEndpoint", "/token"),
        ("pushedAuthorizationRequestEndpoint", "/par"),
        ("backchannelAuthenticationEndpoint", "/bc-authorize"),
        ("introspectionEndpoint", "/introspect"),
        ("revocationEndpoint", "/revoke"),
        ("userinfoEndpoint", "/userinfo"),
    ] {
        profile = profile.authorization_server(field, &alias(path));
    }
    profile
}

/// The row's route on an Ingress whose host requires client certificates or not.
fn manifests(
    row: &Row,
    (controller, class): (&str, &str),
    require_certificates: bool,
) -> (Vec<String>, Ingress) {
    let (host, path, _) = row.location();
    let mut ingress = Ingress::new(row.ingress_name(), host)
        .class(class)
        .exact(&path);
    if require_certificates {
        ingress = ingress.annotations(match controller {
            "haproxy-ingress" => haproxy::client_auth("on"),
            _ => nginx::client_auth("on"),
        });
    }
    (
        vec![
            profile(controller, class).yaml(),
            ca_secret(),
            ingress.yaml(),
        ],
        ingress,
    )
}

fn check_row(case: &str) {
    for &dialect in DIALECTS {
        check_row_on(case, dialect);
    }
}

fn check_row_on(row_case: &str, dialect: (&str, &str)) {
    let row = ROWS
        .iter()
        .find(|r| r.case == row_case)
        .unwrap_or_else(|| panic!("no row {row_case}"));
    let case = format!("{row_case} on {}", dialect.0);
    let (host, path, url) = row.location();
    let mtls = row.scheme == "MTLS";

    // (a) the right client auth: served, compliant, nothing names it.
    let (docs, ingress) = manifests(row, dialect, mtls);
    let verdict = evaluate(&docs);
    assert!(
        verdict.compliant && verdict.violations.is_empty(),
        "[{case}] {} on a host with the right client auth must be compliant, got:\n{}",
        row.endpoint,
        describe(&verdict)
    );
    let cov = coverage(&verdict, row.endpoint, &url);
    assert_eq!(cov.scheme, row.scheme, "[{case}] scheme in coverage");
    assert_eq!(cov.host, host, "[{case}] host in coverage");
    assert!(cov.served, "[{case}] {url} must be served by {path}");
    assert!(cov.compliant, "[{case}] {url} must be compliant");
    assert_eq!(
        serving(&verdict, row.endpoint, &url),
        [(
            ingress.key(),
            path.clone(),
            if mtls { "required" } else { "none" }.to_string()
        )],
        "[{case}] the one route serving {url}"
    );

    // (b) the wrong client auth: exactly one violation naming endpoint, Ingress and path.
    let (docs, ingress) = manifests(row, dialect, !mtls);
    let verdict = evaluate(&docs);
    assert_eq!(
        verdict.violations.len(),
        1,
        "[{case}] {} on a host with the wrong client auth: expected exactly one violation, got:\n{}",
        row.endpoint,
        describe(&verdict)
    );
    let v = &verdict.violations[0];
    let (code, fix) = if mtls {
        (ViolationCode::MtlsNotRequired, "require")
    } else {
        (ViolationCode::MtlsRequiredOnTlsEndpoint, "do not require")
    };
    assert_eq!(v.code, code, "[{case}] code");
    assert_eq!(v.endpoint, Some(row.endpoint), "[{case}] endpoint");
    assert_eq!(ingress_of(v), Some(ingress.key()), "[{case}] ingress");
    assert_eq!(v.path.as_deref(), Some(path.as_str()), "[{case}] path");
    assert_eq!(v.host, host, "[{case}] host");
    assert_eq!(v.url.as_deref(), Some(url.as_str()), "[{case}] url");
    assert_eq!(v.profile, "example-bank", "[{case}] profile");
    assert!(
        v.message.contains("Fix:") && v.message.contains(fix),
        "[{case}] the message must say what to change ({fix:?}): {}",
        v.message
    );
    let cov = coverage(&verdict, row.endpoint, &url);
    assert!(cov.served && !cov.compliant, "[{case}] coverage: {cov:?}");
}

macro_rules! endpoint_table {
    ($( $case:ident: $endpoint:literal, $scheme:ident, $served_at:ident, $instance:literal; )*) => {
        const ROWS: &[Row] = &[$(
            Row {
                case: stringify!($case),
                endpoint: $endpoint,
                scheme: stringify!($scheme),
                served_at: ServedAt::$served_at,
                instance: $instance,
            },
        )*];
        $(
            #[test]
            fn $case() {
                check_row(stringify!($case));
            }
        )*
    };
}

endpoint_table! {
    // Account Information API
    account_access_consents: "/account-access-consents", MTLS, ApiBase, "/account-access-consents";
    account_access_consent: "/account-access-consents/{ConsentId}", MTLS, ApiBase, "/account-access-consents/aac-7f3e";
    accounts: "/accounts", MTLS, ApiBase, "/accounts";
    account: "/accounts/{AccountId}", MTLS, ApiBase, "/accounts/acc-0001";
    account_transactions: "/accounts/{AccountId}/transactions", MTLS, ApiBase, "/accounts/acc-0001/transactions";
    account_beneficiaries: "/accounts/{AccountId}/beneficiaries", MTLS, ApiBase, "/accounts/acc-0001/beneficiaries";
    account_balances: "/accounts/{AccountId}/balances", MTLS, ApiBase, "/accounts/acc-0001/balances";
    account_direct_debits: "/accounts/{AccountId}/direct-debits", MTLS, ApiBase, "/accounts/acc-0001/direct-debits";
    account_standing_orders: "/accounts/{AccountId}/standing-orders", MTLS, ApiBase, "/accounts/acc-0001/standing-orders";
    account_offers: "/accounts/{AccountId}/offers", MTLS, ApiBase, "/accounts/acc-0001/offers";
    account_party: "/accounts/{AccountId}/party", MTLS, ApiBase, "/accounts/acc-0001/party";
    account_scheduled_payments: "/accounts/{AccountId}/scheduled-payments", MTLS, ApiBase, "/accounts/acc-0001/scheduled-payments";
    account_statements: "/accounts/{AccountId}/statements", MTLS, ApiBase, "/accounts/acc-0001/statements";
    account_statement: "/accounts/{AccountId}/statements/{StatementId}", MTLS, ApiBase, "/accounts/acc-0001/statements/stmt-2026-01";
    account_statement_file: "/accounts/{AccountId}/statements/{StatementId}/file", MTLS, ApiBase, "/accounts/acc-0001/statements/stmt-2026-01/file";
    account_statement_transactions: "/accounts/{AccountId}/statements/{StatementId}/transactions", MTLS, ApiBase, "/accounts/acc-0001/statements/stmt-2026-01/transactions";
    standing_orders: "/standing-orders", MTLS, ApiBase, "/standing-orders";
    direct_debits: "/direct-debits", MTLS, ApiBase, "/direct-debits";
    beneficiaries: "/beneficiaries", MTLS, ApiBase, "/beneficiaries";
    transactions: "/transactions", MTLS, ApiBase, "/transactions";
    balances: "/balances", MTLS, ApiBase, "/balances";
    offers: "/offers", MTLS, ApiBase, "/offers";
    party: "/party", MTLS, ApiBase, "/party";
    scheduled_payments: "/scheduled-payments", MTLS, ApiBase, "/scheduled-payments";
    statements: "/statements", MTLS, ApiBase, "/statements";
    // Payment Initiation API
    enduring_payment_consents: "/enduring-payment-consents", MTLS, ApiBase, "/enduring-payment-consents";
    enduring_payment_consent: "/enduring-payment-consents/{ConsentId}", MTLS, ApiBase, "/enduring-payment-consents/epc-31";
    domestic_payment_consents: "/domestic-payment-consents", MTLS, ApiBase, "/domestic-payment-consents";
    domestic_payment_consent: "/domestic-payment-consents/{ConsentId}", MTLS, ApiBase, "/domestic-payment-consents/dpc-77";
    domestic_payments: "/domestic-payments", MTLS, ApiBase, "/domestic-payments";
    domestic_payment: "/domestic-payments/{DomesticPaymentId}", MTLS, ApiBase, "/domestic-payments/pmt-42";
    domestic_payment_debtor_account: "/domestic-payments/{DomesticPaymentId}/debtor-account", MTLS, ApiBase, "/domestic-payments/pmt-42/debtor-account";
    // Event Notification API
    event_subscriptions: "/event-subscriptions", MTLS, ApiBase, "/event-subscriptions";
    event_subscription: "/event-subscriptions/{EventSubscriptionId}", MTLS, ApiBase, "/event-subscriptions/sub-9";
    // Authorisation
    authorize: "/authorize", TLS, Issuer, "/authorize";
    bc_authorize: "/bc-authorize", MTLS, MtlsAlias, "/bc-authorize";
    introspect: "/introspect", MTLS, MtlsAlias, "/introspect";
    par: "/par", MTLS, MtlsAlias, "/par";
    revoke: "/revoke", MTLS, MtlsAlias, "/revoke";
    token: "/token", MTLS, MtlsAlias, "/token";
    userinfo: "/userinfo", MTLS, MtlsAlias, "/userinfo";
    // Metadata
    jwks_or_keys: "/jwks or /keys", TLS, Issuer, "/jwks";
    openid_configuration: "/.well-known/openid-configuration", TLS, Issuer, "/.well-known/openid-configuration";
}

/// The rows above restate the published table: same endpoints, order and schemes as
/// `catalog::ENDPOINT_TABLE`, and every served path is an instance of its endpoint.
#[test]
fn rows_restate_the_published_table() {
    assert_eq!(ROWS.len(), 43, "the table has 43 rows");
    assert_eq!(ENDPOINT_TABLE.len(), 43, "the catalog has 43 rows");
    for (row, published) in ROWS.iter().zip(ENDPOINT_TABLE.iter()) {
        assert_eq!(row.endpoint, published.endpoint, "[{}] endpoint", row.case);
        assert_eq!(
            row.scheme,
            published.scheme.as_str(),
            "[{}] scheme",
            row.case
        );
        let template = if row.endpoint == "/jwks or /keys" {
            "/jwks"
        } else {
            row.endpoint
        };
        let t: Vec<&str> = template.split('/').collect();
        let i: Vec<&str> = row.instance.split('/').collect();
        assert_eq!(t.len(), i.len(), "[{}] instance depth", row.case);
        for (ts, is) in t.iter().zip(&i) {
            assert!(
                ts == is || (ts.starts_with('{') && !is.is_empty()),
                "[{}] {} is not an instance of {template}",
                row.case,
                row.instance
            );
        }
    }
    let mtls = ROWS.iter().filter(|r| r.scheme == "MTLS").count();
    assert_eq!(mtls, 40, "40 MTLS rows, 3 TLS rows");
}

/// OIDC Discovery §4: with issuer `https://as.example/oauth2/` the discovery document is
/// `https://as.example/oauth2/.well-known/openid-configuration`. A route for
/// `/.well-known/openid-configuration` at the host root does not serve it.
#[test]
fn discovery_is_served_under_the_issuer_path() {
    let profile = Profile::split_host()
        .issuer("https://as.example/oauth2/")
        .api_base_urls(&["https://mtls-api.as.example/open-banking-nz/v3.0"]);
    let discovery = "/.well-known/openid-configuration";
    let url = "https://as.example/oauth2/.well-known/openid-configuration";
    for (case, path, served) in [
        (
            "issuer path",
            "/oauth2/.well-known/openid-configuration",
            true,
        ),
        ("host root", "/.well-known/openid-configuration", false),
    ] {
        let ingress = Ingress::new("authorization-server-public", "as.example").exact(path);
        // A public host that requires certificates makes any serving route a finding.
        let ingress = ingress.annotations(nginx::client_auth("on"));
        let verdict = evaluate(&[profile.yaml(), ca_secret(), ingress.yaml()]);
        let cov = coverage(&verdict, discovery, url);
        assert_eq!(cov.served, served, "[{case}] {path} serves {url}?");
        assert_eq!(
            naming(&verdict, discovery).len(),
            usize::from(served),
            "[{case}] findings for discovery:\n{}",
            describe(&verdict)
        );
    }
}

/// The issuer's path also prefixes the default authorisation endpoints: with issuer
/// `https://as.example/oauth2/` and no `authorizationServer`, `/token` is
/// `https://as.example/oauth2/token` and `/jwks or /keys` is `https://as.example/oauth2/jwks`.
#[test]
fn default_authorisation_endpoints_are_under_the_issuer_path() {
    let profile = Profile {
        authorization_server: Vec::new(),
        ..Profile::split_host()
    }
    .issuer("https://as.example/oauth2/")
    .api_base_urls(&["https://mtls-api.as.example/open-banking-nz/v3.0"]);
    // One public host, no client auth: the MTLS rows there are findings, the TLS rows not.
    let ingress = Ingress::new("authorization-server", "as.example")
        .exact("/oauth2/authorize")
        .exact("/oauth2/token")
        .exact("/oauth2/jwks")
        .exact("/token");
    let verdict = evaluate(&[profile.yaml(), ingress.yaml()]);
    assert_eq!(
        endpoints_with(&verdict, ViolationCode::MtlsNotRequired),
        ["/token"],
        "{}",
        describe(&verdict)
    );
    let token = naming(&verdict, "/token");
    assert_eq!(token.len(), 1, "{}", describe(&verdict));
    assert_eq!(token[0].path.as_deref(), Some("/oauth2/token"));
    assert_eq!(
        token[0].url.as_deref(),
        Some("https://as.example/oauth2/token")
    );
    for (endpoint, url) in [
        ("/authorize", "https://as.example/oauth2/authorize"),
        ("/jwks or /keys", "https://as.example/oauth2/jwks"),
    ] {
        let cov = coverage(&verdict, endpoint, url);
        assert!(cov.served && cov.compliant, "{endpoint}: {cov:?}");
    }
}
