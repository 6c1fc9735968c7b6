//! Where the platform may send requests of its own: webhook deliveries leave the server, so a
//! webhook must not be a way to reach what only the server can reach (its loopback, the cloud
//! metadata service at 169.254.169.254, the private network it sits in). Checked when a
//! webhook is added, from the URL alone, and again by the sender for every address a host name
//! resolves to ([`is_public`]), unless the deployment allows private targets explicitly.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::spec::{Problem, SpecError};

/// Whether `ip` is a public unicast address. Not public: unspecified, loopback, private
/// (RFC 1918, unique local), shared (RFC 6598), link-local (with the metadata service),
/// multicast, broadcast, documentation, benchmarking, IETF-reserved and not yet allocated
/// ranges. An IPv6 address that carries an IPv4 one (mapped, compatible, NAT64, 6to4) is
/// judged by the IPv4 address; Teredo, whose IPv4 address is obscured, is not public.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let reserved = a == 0 // "this network", 0.0.0.0 included
        || a == 10
        || (a == 100 && (64..128).contains(&b)) // shared address space
        || a == 127
        || (a == 169 && b == 254) // link-local: the metadata service
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113) // documentation
        || a >= 224; // multicast, reserved, broadcast
    !reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible; :: and ::1 among them).
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        let carries_v4 = s[5] == 0xffff || s[6] != 0;
        return carries_v4 && is_public_v4(embedded(s[6], s[7]));
    }
    // 64:ff9b::a.b.c.d, the well-known NAT64 prefix.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(embedded(s[6], s[7]));
    }
    // 2002:a.b.c.d::/48, 6to4.
    if s[0] == 0x2002 {
        return is_public_v4(embedded(s[1], s[2]));
    }
    let global_unicast = s[0] & 0xe000 == 0x2000;
    let teredo = s[0] == 0x2001 && s[1] == 0;
    let documentation = s[0] == 0x2001 && s[1] == 0x0db8;
    let benchmarking = s[0] == 0x2001 && s[1] == 0x0002 && s[2] == 0;
    let orchid = s[0] == 0x2001 && s[1] & 0xfff0 == 0x0010;
    global_unicast && !teredo && !documentation && !benchmarking && !orchid
}

/// Host names that name the machine itself or a private zone, whatever a resolver says.
fn is_private_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    ["localhost", "internal", "local", "home.arpa"]
        .iter()
        .any(|zone| host == *zone || host.ends_with(&format!(".{zone}")))
}

/// Checks a webhook URL: `http` or `https`, a host, no credentials, a port between 1 and
/// 65535, and, unless `allow_private`, a host that is neither a non-public address (in any of
/// the forms a URL may write one: `0x7f.1`, `2130706433`, `[::ffff:127.0.0.1]`) nor a name
/// of the machine or of a private zone. Returns the URL as given.
///
/// Credentials are refused because the URL is recorded in the event log, in clear.
pub fn parse_webhook_url(url: &str, allow_private: bool) -> Result<String, SpecError> {
    let problem = |message: String| SpecError {
        problems: vec![Problem {
            field: "url".to_owned(),
            message,
        }],
    };
    if url.len() > crate::limits::MAX_URL_BYTES {
        return Err(problem("must have at most 2048 bytes".into()));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(problem(
            "must not contain whitespace or control characters".into(),
        ));
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(problem("must start with http:// or https://".into()));
    }
    let parsed = url::Url::parse(url).map_err(|e| match e {
        url::ParseError::InvalidPort => problem("port must be between 1 and 65535".into()),
        url::ParseError::EmptyHost => problem("must name a host".into()),
        e => problem(format!("is not a valid URL: {e}")),
    })?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(problem("must not contain credentials".into()));
    }
    if parsed.port() == Some(0) {
        return Err(problem("port must be between 1 and 65535".into()));
    }
    let refused = |what: String| {
        problem(format!(
            "{what}: webhooks may only reach public addresses (the deployment can allow \
             private targets explicitly)"
        ))
    };
    match parsed.host() {
        None => Err(problem("must name a host".into())),
        Some(_) if allow_private => Ok(url.to_owned()),
        Some(url::Host::Ipv4(ip)) if !is_public_v4(ip) => {
            Err(refused(format!("{ip} is not a public address")))
        }
        Some(url::Host::Ipv6(ip)) if !is_public_v6(ip) => {
            Err(refused(format!("{ip} is not a public address")))
        }
        Some(url::Host::Domain(name)) if is_private_name(name) => Err(refused(format!(
            "{name} names this machine or a private zone"
        ))),
        Some(_) => Ok(url.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses_are_told_from_every_other_kind() {
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "192.0.1.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            let ip: IpAddr = public.parse().expect("an address");
            assert!(is_public(ip), "{public} should be public");
        }
        for private in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::1",
            "2001::1",
            "2001:db8::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "100::1",
        ] {
            let ip: IpAddr = private.parse().expect("an address");
            assert!(!is_public(ip), "{private} should not be public");
        }
    }

    #[test]
    fn webhook_urls_are_checked() {
        for good in [
            "https://hooks.example.com/chaos?team=sre",
            "http://8.8.8.8:8080/hook",
            "https://[2606:4700:4700::1111]/hook",
            "https://hooks.example.com:65535/",
        ] {
            assert_eq!(parse_webhook_url(good, false).as_deref(), Ok(good));
        }
        for bad in [
            "ftp://example.com/x",
            "https://",
            "https://user:secret@example.com/",
            "https://exa mple.com/",
            "example.com/hook",
            "https://example.com:0/",
            "https://example.com:65536/",
            "https://example.com:99999/",
        ] {
            assert!(parse_webhook_url(bad, false).is_err(), "{bad} accepted");
            assert!(parse_webhook_url(bad, true).is_err(), "{bad} accepted");
        }
        let port = parse_webhook_url("https://example.com:70000/", false).expect_err("refused");
        assert_eq!(port.problems[0].message, "port must be between 1 and 65535");
    }

    #[test]
    fn private_targets_are_refused_in_every_spelling_unless_allowed() {
        for private in [
            "http://127.0.0.1:9000/hook",
            "http://localhost/hook",
            "http://LOCALHOST./hook",
            "http://api.localhost/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://0.0.0.0/",
            "http://0/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://017700000001/",
            "http://127.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[fd00::1]:8080/",
            "http://10.1.2.3/",
            "http://192.168.0.10/",
            "http://printer.local/",
        ] {
            let refused = parse_webhook_url(private, false).expect_err(private);
            assert_eq!(refused.problems[0].field, "url");
            assert!(
                refused.problems[0]
                    .message
                    .contains("webhooks may only reach public addresses"),
                "{private}: {refused}"
            );
            assert_eq!(
                parse_webhook_url(private, true).as_deref(),
                Ok(private),
                "allowed explicitly"
            );
        }
    }
}
