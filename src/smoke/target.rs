//! The `HOST[:PORT]` argument: `h`, `h:port`, `[v6]:port`, bare IPv6, `http(s)://h[:port]`.
//! A test's own `protocol`/`port` win over what the target says.

use super::spec::Protocol;

/// Where the tests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or IP, without IPv6 brackets.
    pub host: String,
    /// Port given with the host.
    pub port: Option<u16>,
    /// Scheme given with the host (`http://h`).
    pub scheme: Option<Protocol>,
}

impl Target {
    /// Parses the HOST argument; the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<Target, String> {
        let s = s.trim();
        let (scheme, rest) = match s.split_once("://") {
            Some((scheme, rest)) => {
                let p = match scheme.to_ascii_lowercase().as_str() {
                    "http" => Protocol::Http,
                    "https" => Protocol::Https,
                    "tcp" => Protocol::Tcp,
                    other => {
                        return Err(format!(
                            "unknown scheme `{other}://` (expected http:// or https://)"
                        ))
                    }
                };
                (Some(p), rest)
            }
            None => (None, s),
        };
        // Drop any path: Smolder builds URLs from the test's `uri`.
        let rest = rest.split('/').next().unwrap_or("");
        if rest.contains('@') {
            // Never echo it: the part before `@` is a credential.
            return Err("HOST must not carry credentials (user:password@); use the tests' `username`/`password` inputs".to_owned());
        }
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let Some((h, after)) = inner.split_once(']') else {
                return Err(format!("`{s}`: an IPv6 address needs a closing `]`"));
            };
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => {
                    return Err(format!(
                        "`{s}`: unexpected `{after}` after the IPv6 address"
                    ))
                }
            }
        } else if rest.matches(':').count() == 1 {
            let (h, p) = rest.split_once(':').unwrap_or((rest, ""));
            (h, Some(p))
        } else {
            (rest, None)
        };
        if host.is_empty() {
            return Err(format!("`{s}` has no host name"));
        }
        if host.contains(':') {
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!(
                    "`{s}` is neither HOST:PORT nor an IPv6 address (more than one `:`)"
                ));
            }
        } else if let Some(c) = host
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, '.' | '-' | '_')))
        {
            return Err(format!(
                "`{}`: a host name cannot contain {}",
                s.escape_debug(),
                match c {
                    ' ' => "a space".to_owned(),
                    c => format!("`{}`", c.escape_debug()),
                }
            ));
        } else if reqwest::Url::parse(&format!("http://{host}/")).is_err() {
            return Err(format!("`{s}` is not a valid host name"));
        }
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(format!("`{p}` is not a port (1-65535)")),
            },
        };
        Ok(Target {
            host: host.to_owned(),
            port,
            scheme,
        })
    }

    /// The host as it goes in a URL (IPv6 in brackets).
    pub fn url_host(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_of_host() {
        let t = Target::parse("example.com").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.scheme),
            ("example.com", None, None)
        );
        let t = Target::parse("localhost:8080").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("localhost", Some(8080)));
        let t = Target::parse("[::1]:81").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.url_host()),
            ("::1", Some(81), "[::1]".to_owned())
        );
        let t = Target::parse("https://h:8443/ignored").unwrap();
        assert_eq!((t.port, t.scheme), (Some(8443), Some(Protocol::Https)));
        let t = Target::parse("::1").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", None));
    }

    #[test]
    fn bad_hosts() {
        assert!(Target::parse("h:0").is_err());
        assert!(Target::parse("h:http").is_err());
        assert!(Target::parse("ftp://h").is_err());
        assert!(Target::parse("").is_err());
        assert!(Target::parse("[::1").is_err());
        for bad in [
            "exa mple.com",
            "127.0.0.1:80:90",
            "h?x",
            "a\nb",
            "[fe80::1%]:80",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Target::parse("my_host.internal").is_ok());
        let e = Target::parse("https://u:s3cret@h").unwrap_err();
        assert!(!e.contains("s3cret") && e.contains("credentials"), "{e}");
    }
}
