//! The `http` directory: an identity web service in the convention existing checkout
//! systems use (GroundControl's "Identity Web Service", see `peers.md`):
//! `GET <url with {badge}>` answers `200 {"user": "alice"}`, or 404 for an unknown badge.
//!
//! Optional fields are accepted: `displayName` (or `display_name`), `groups` and `roles`
//! (a role `enroller` lets the badge approve enrolments). A 200 whose `user` is null or
//! empty is read as unknown. Timeouts, 5xx, refusals and malformed bodies make the badge
//! `Unavailable` unless a cached answer exists, which is then served (see
//! [`crate::directory::cache`]).
//!
//! The badge is percent-encoded into the URL; request errors are reported without the
//! URL so the badge never reaches a message or a log.

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

use crate::badges::Resolution;
use crate::directory::cache::{resolve_cached, Answer, AnswerCache, Failure, Health};
use crate::directory::DirectoryError;
use crate::domain::{BadgeNumber, User, Username};

/// Everything but RFC 3986 unreserved characters is encoded, so a badge always stays one
/// path segment (or one query value).
const BADGE_IN_URL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Bodies larger than this are not an identity answer.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The identity web service directory.
pub(crate) struct HttpDirectory {
    url_template: String,
    /// The template as shown in messages (no user-info).
    shown_url: String,
    timeout: Duration,
    client: reqwest::Client,
    cache: AnswerCache,
    health: Health,
    config_warning: Option<String>,
}

#[derive(Deserialize)]
struct IdentityAnswer {
    user: Option<String>,
    #[serde(rename = "displayName", alias = "display_name")]
    display_name: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
}

impl HttpDirectory {
    /// Checks the URL template and builds the client (reading the CA file); does not
    /// contact the service.
    pub(crate) fn open(
        url_template: &str,
        timeout_ms: u64,
        cache_ttl_seconds: u64,
        ca_file: Option<&std::path::Path>,
    ) -> Result<HttpDirectory, DirectoryError> {
        if !url_template.contains("{badge}") {
            return Err(DirectoryError::Config {
                reason: format!(
                    "directory.url {url_template:?} has no {{badge}}: write e.g. https://idm.hospital.example/badge/{{badge}}"
                ),
            });
        }
        let sample = reqwest::Url::parse(&url_template.replace("{badge}", "0")).map_err(|err| {
            DirectoryError::Config {
                reason: format!("directory.url {url_template:?} is not a URL: {err}"),
            }
        })?;
        if sample.scheme() != "http" && sample.scheme() != "https" {
            return Err(DirectoryError::Config {
                reason: format!(
                    "directory.url must start with https:// or http://, not {}://",
                    sample.scheme()
                ),
            });
        }
        let shown_url = shown_template(url_template, &sample);
        let timeout = Duration::from_millis(timeout_ms.max(1));
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("badgedock/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_file {
            let ca_error = |reason: String| DirectoryError::CaFile {
                path: path.to_path_buf(),
                reason,
            };
            let pem =
                std::fs::read(path).map_err(|err| ca_error(format!("cannot read it: {err}")))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|err| ca_error(format!("is not a PEM certificate bundle: {err}")))?;
            if certificates.is_empty() {
                return Err(ca_error(
                    "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
                ));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder.build().map_err(|err| DirectoryError::Config {
            reason: format!("cannot set up the HTTP client for the identity service: {err}"),
        })?;
        let loopback = sample.host_str().is_some_and(|host| {
            host == "localhost"
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        let config_warning = (sample.scheme() == "http" && !loopback)
            .then(|| format!("{shown_url} sends badge numbers unencrypted: use https://"));
        if let Some(warning) = &config_warning {
            tracing::warn!(warning = %warning, "identity service configuration");
        }
        Ok(HttpDirectory {
            url_template: url_template.to_string(),
            shown_url,
            timeout,
            client,
            cache: AnswerCache::new(cache_ttl_seconds),
            health: Health::default(),
            config_warning,
        })
    }

    /// Resolves a badge: cache, then service, then stale cache.
    pub(crate) async fn lookup(&self, badge: &BadgeNumber) -> Resolution {
        resolve_cached(&self.cache, &self.health, badge, || self.fetch(badge)).await
    }

    /// One line for status screens; no secrets.
    pub(crate) fn describe(&self) -> String {
        format!(
            "http {} (timeout {} ms, cache {} s, {} answers)",
            self.shown_url,
            self.timeout.as_millis(),
            self.cache.ttl().as_secs(),
            self.cache.len()
        )
    }

    /// The configuration warning and the last failure, if any.
    pub(crate) fn problems(&self) -> Vec<String> {
        self.config_warning
            .iter()
            .cloned()
            .chain(self.health.problem())
            .collect()
    }

    async fn fetch(&self, badge: &BadgeNumber) -> Result<Answer, Failure> {
        let encoded = utf8_percent_encode(badge.expose(), BADGE_IN_URL).to_string();
        let url = self.url_template.replace("{badge}", &encoded);
        let response = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|err| Failure::Unreachable(self.request_failure(err)))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            let hint = match status.as_u16() {
                401 | 403 => {
                    ": the service refuses this station; allow it without HTTP authentication"
                }
                500..=599 => ": the identity service has a problem",
                _ => "",
            };
            return Err(Failure::Unreachable(format!(
                "{} answered HTTP {}{hint}",
                self.shown_url,
                status.as_u16()
            )));
        }
        let body = response
            .bytes()
            .await
            .map_err(|err| Failure::Unreachable(self.request_failure(err)))?;
        if body.len() > MAX_BODY_BYTES {
            return Err(Failure::Unreachable(format!(
                "{} answered with a {} byte body, not {{\"user\": \"…\"}}",
                self.shown_url,
                body.len()
            )));
        }
        let answer: IdentityAnswer = serde_json::from_slice(&body).map_err(|err| {
            // serde_json's message can quote a value from the body; keep only where it failed.
            Failure::Unreachable(format!(
                "{} answered with a body that is not JSON of the form {{\"user\": \"…\"}} ({:?} error at line {} column {})",
                self.shown_url,
                err.classify(),
                err.line(),
                err.column()
            ))
        })?;
        let Some(username) = answer
            .user
            .map(|user| user.trim().to_string())
            .filter(|user| !user.is_empty())
        else {
            return Ok(None);
        };
        let display_name = answer
            .display_name
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| username.clone());
        Ok(Some(User {
            username: Username::new(username),
            display_name,
            groups: answer.groups,
            enroller: answer
                .roles
                .iter()
                .any(|role| role.eq_ignore_ascii_case("enroller")),
        }))
    }

    fn request_failure(&self, err: reqwest::Error) -> String {
        if err.is_timeout() {
            return format!(
                "no answer from {} within {} ms: check the service, or raise directory.timeout-ms",
                self.shown_url,
                self.timeout.as_millis()
            );
        }
        // The URL holds the badge: drop it, and describe the cause chain instead.
        let err = err.without_url();
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        let lowered = text.to_ascii_lowercase();
        let hint = if lowered.contains("certificate") {
            ": the service's TLS certificate is not trusted; set directory.ca-file to the CA that issued it"
        } else {
            ""
        };
        format!("cannot reach {}: {text}{hint}", self.shown_url)
    }
}

fn shown_template(template: &str, sample: &reqwest::Url) -> String {
    if sample.username().is_empty() && sample.password().is_none() {
        return template.to_string();
    }
    // Drop "user:password@" from the template text itself, keeping {badge} readable.
    match (template.find("://"), template.find('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}{}", &template[..scheme_end + 3], &template[at + 1..])
        }
        _ => format!("{}://{}", sample.scheme(), sample.host_str().unwrap_or("?")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badges_stay_one_url_segment() {
        let encoded = utf8_percent_encode("AB/CD 12?x#é", BADGE_IN_URL).to_string();
        assert_eq!(encoded, "AB%2FCD%2012%3Fx%23%C3%A9");
        assert_eq!(
            utf8_percent_encode("04A1-b_c.d~", BADGE_IN_URL).to_string(),
            "04A1-b_c.d~"
        );
    }

    #[test]
    fn credentials_are_not_shown() {
        let template = "https://svc:pw@idm.example/badge/{badge}";
        let sample = reqwest::Url::parse(&template.replace("{badge}", "0")).expect("valid URL");
        assert_eq!(
            shown_template(template, &sample),
            "https://idm.example/badge/{badge}"
        );
    }
}
