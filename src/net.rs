//! Networks: CIDR ranges of allowlists, and private address space (a workload leaving it is
//! news to VG003; `vigil_is_private` in SQL).

use std::net::IpAddr;

/// Parses `10.0.0.0/8`, `2001:db8::/32` or a single address.
pub fn parse_cidr(text: &str) -> Result<(IpAddr, u8), String> {
    let (addr, bits) = match text.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (text, None),
    };
    let ip: IpAddr = addr
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not an address or CIDR range"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        Some(b) => b
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|b| *b <= max)
            .ok_or_else(|| format!("'{text}': prefix length must be 0..={max}"))?,
        None => max,
    };
    Ok((ip, bits))
}

/// True when `ip` is inside `net`.
pub fn in_network(ip: IpAddr, net: (IpAddr, u8)) -> bool {
    match (ip, net.0) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if net.1 == 0 {
                0
            } else {
                u32::MAX << (32 - net.1)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if net.1 == 0 {
                0
            } else {
                u128::MAX << (128 - net.1)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Private, loopback or link-local network or address (`10.1.2.0/24`, `fd00::/48`).
pub fn is_private_network(network: &str) -> bool {
    let addr = network.split('/').next().unwrap_or("");
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
        Ok(std::net::IpAddr::V6(v6)) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
        Err(_) => false,
    }
}

/// True for `localhost` and loopback addresses: the only hosts plain SMTP may go to.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        assert!(is_private_network("10.1.2.0/24") && is_private_network("fd00::/48"));
        assert!(!is_private_network("203.0.113.0/24") && !is_private_network("nope"));
        let n = parse_cidr("10.0.0.0/8").unwrap();
        assert!(in_network("10.200.1.2".parse().unwrap(), n));
        assert!(!in_network("11.0.0.1".parse().unwrap(), n));
        assert!(!in_network("::1".parse().unwrap(), n));
        let n6 = parse_cidr("2001:db8::/32").unwrap();
        assert!(in_network("2001:db8:1::5".parse().unwrap(), n6));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("ten").is_err());
    }
}
