//! Outbound network policy: which URLs a plugin may request and which resolved addresses
//! it may reach.
//!
//! The check happens twice: on the URL (scheme, host, port against the granted list) before
//! any DNS lookup, and on every address the name resolves to, so that a granted public name
//! pointing at 127.0.0.1 or 169.254.169.254 (DNS rebinding, SSRF) is refused. Internal
//! addresses pass only when the matching grant names that IP literally or sets
//! `allow-private`.

use secflow_manifest::{HostPattern, NetCapability, Scheme};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A network grant in checked form.
#[derive(Debug, Clone)]
pub struct NetGrant {
    pub scheme: Scheme,
    pub host: HostPattern,
    pub port: u16,
    pub allow_private: bool,
}

impl NetGrant {
    /// Builds grants from manifest capabilities (which must have passed validation).
    pub fn from_capabilities(caps: &[NetCapability]) -> Vec<NetGrant> {
        caps.iter()
            .filter_map(|c| {
                Some(NetGrant {
                    scheme: c.scheme,
                    host: c.pattern()?,
                    port: c.port(),
                    allow_private: c.allow_private,
                })
            })
            .collect()
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetDenial {
    /// No grant covers this scheme/host/port.
    NotGranted { url: String },
    /// A grant covers the host but only over https.
    InsecureScheme { url: String },
    /// The host resolved to an internal address that the grant does not allow.
    InternalAddress { host: String, ip: IpAddr },
    /// The request budget of the invocation is spent.
    TooManyRequests { limit: u32 },
    /// The URL could not be understood.
    BadUrl { url: String },
}

impl std::fmt::Display for NetDenial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetDenial::NotGranted { url } => {
                write!(f, "request to {url} is not covered by any network grant")
            }
            NetDenial::InsecureScheme { url } => {
                write!(
                    f,
                    "plain http request to {url} refused: the grant allows only https"
                )
            }
            NetDenial::InternalAddress { host, ip } => write!(
                f,
                "{host} resolved to internal address {ip}; internal addresses need an explicit grant"
            ),
            NetDenial::TooManyRequests { limit } => {
                write!(f, "more than {limit} HTTP requests in one invocation")
            }
            NetDenial::BadUrl { url } => write!(f, "malformed request URL {url}"),
        }
    }
}

/// Finds the grant that allows `scheme://host:port`, or says why none does.
pub fn check_url<'g>(
    grants: &'g [NetGrant],
    scheme: &str,
    host: &str,
    port: u16,
) -> Result<&'g NetGrant, NetDenial> {
    let url = format!("{scheme}://{host}:{port}");
    let scheme = match scheme {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        _ => return Err(NetDenial::BadUrl { url }),
    };
    let mut insecure = false;
    for grant in grants {
        if grant.host.matches(host) && grant.port == port {
            if grant.scheme == scheme {
                return Ok(grant);
            }
            insecure |= scheme == Scheme::Http;
        }
        // `http://host` with a grant for `https://host:443` is a downgrade, not just a miss.
        if scheme == Scheme::Http && grant.scheme == Scheme::Https && grant.host.matches(host) {
            insecure = true;
        }
    }
    Err(if insecure {
        NetDenial::InsecureScheme { url }
    } else {
        NetDenial::NotGranted { url }
    })
}

/// Checks one resolved address against the grant that allowed the name.
pub fn check_resolved(grant: &NetGrant, host: &str, ip: IpAddr) -> Result<(), NetDenial> {
    if !is_internal(ip) || grant.allow_private {
        return Ok(());
    }
    if let HostPattern::Ip(granted) = grant.host
        && canonical(granted) == canonical(ip)
    {
        return Ok(());
    }
    Err(NetDenial::InternalAddress {
        host: host.to_string(),
        ip,
    })
}

/// Unwraps IPv4-mapped and IPv4-compatible IPv6 forms so `::ffff:127.0.0.1` is seen as
/// loopback.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                // Deprecated IPv4-compatible form ::a.b.c.d (but not :: and ::1).
                if s[..6].iter().all(|&x| x == 0) && (s[6] != 0 || s[7] > 1) {
                    IpAddr::V4(Ipv4Addr::new(
                        (s[6] >> 8) as u8,
                        s[6] as u8,
                        (s[7] >> 8) as u8,
                        s[7] as u8,
                    ))
                } else {
                    IpAddr::V6(v6)
                }
            }
        },
        v4 => v4,
    }
}

/// True for any address that is not plainly public unicast: loopback, RFC 1918 private,
/// carrier-grade NAT, link-local (and so cloud metadata at 169.254.169.254), unspecified,
/// broadcast, multicast, documentation and benchmarking ranges, IPv6 unique-local,
/// link-local, site-local, NAT64 and 6to4 forms that embed an internal IPv4.
pub fn is_internal(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10 carrier-grade NAT
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24 IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15 benchmarking
        || o[0] >= 240 // reserved
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
        || (s[0] & 0xffc0) == 0xfe80 // fe80::/10 link-local
        || (s[0] & 0xffc0) == 0xfec0 // fec0::/10 site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0064 && s[1] == 0xff9b && is_internal_v4(embedded_v4(s[6], s[7]))) // NAT64
        || (s[0] == 0x2002 && is_internal_v4(embedded_v4(s[1], s[2]))) // 6to4
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(host: &str, scheme: Scheme, port: u16, allow_private: bool) -> NetGrant {
        NetGrant {
            scheme,
            host: HostPattern::parse(host).unwrap(),
            port,
            allow_private,
        }
    }

    #[test]
    fn internal_addresses_are_recognized_in_every_form() {
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip} must be internal");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip} must be public");
        }
    }

    #[test]
    fn url_checks_scheme_host_and_port() {
        let grants = vec![grant("*.example.com", Scheme::Https, 443, false)];
        assert!(check_url(&grants, "https", "api.example.com", 443).is_ok());
        assert!(matches!(
            check_url(&grants, "http", "api.example.com", 80),
            Err(NetDenial::InsecureScheme { .. })
        ));
        assert!(matches!(
            check_url(&grants, "https", "api.example.com", 8443),
            Err(NetDenial::NotGranted { .. })
        ));
        assert!(matches!(
            check_url(&grants, "https", "evilexample.com", 443),
            Err(NetDenial::NotGranted { .. })
        ));
        assert!(matches!(
            check_url(&[], "https", "a.b", 443),
            Err(NetDenial::NotGranted { .. })
        ));
    }

    #[test]
    fn resolved_internal_address_needs_explicit_grant() {
        let name = grant("localhost", Scheme::Http, 8080, false);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            check_resolved(&name, "localhost", lo),
            Err(NetDenial::InternalAddress {
                host: "localhost".into(),
                ip: lo
            })
        );
        let by_ip = grant("127.0.0.1", Scheme::Http, 8080, false);
        assert!(check_resolved(&by_ip, "127.0.0.1", lo).is_ok());
        assert!(check_resolved(&by_ip, "127.0.0.1", "::ffff:127.0.0.1".parse().unwrap()).is_ok());
        let opted = grant("localhost", Scheme::Http, 8080, true);
        assert!(check_resolved(&opted, "localhost", lo).is_ok());
        let public = grant("example.com", Scheme::Https, 443, false);
        assert!(check_resolved(&public, "example.com", "93.184.216.34".parse().unwrap()).is_ok());
    }

    #[test]
    fn metadata_addresses_behind_a_granted_name_are_refused() {
        // A granted public name that DNS points at a cloud metadata service.
        let g = grant("metadata.example.com", Scheme::Http, 80, false);
        for ip in ["169.254.169.254", "::ffff:169.254.169.254", "fd00:ec2::254"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(
                check_resolved(&g, "metadata.example.com", ip),
                Err(NetDenial::InternalAddress {
                    host: "metadata.example.com".into(),
                    ip
                }),
                "{ip}"
            );
        }
    }
}
