//! SYN cookies: answering SYNs without keeping state when the SYN backlog is full
//! (RFC 4987 §3.6). The ISN of our SYN-ACK encodes a time counter, an MSS index and a keyed MAC
//! of the four-tuple; the returning ACK proves the peer saw it.
//!
//! Layout of the cookie (our ISN): `t:5 | mss_index:3 | mac:24`, with `t` counting 64-second
//! periods. A cookie is valid for the current and the previous period. Window scaling, SACK and
//! timestamps are not encoded: a connection set up by cookie runs without them (our SYN-ACK does
//! not offer them, so both sides agree).

use core::net::SocketAddrV4;

use super::isn::Secret;
use super::seq::SeqNum;
use crate::time::Instant;

/// MSS values a cookie can encode (the 3-bit index).
const MSS_TABLE: [u16; 8] = [216, 536, 1200, 1360, 1400, 1440, 1460, 8960];

fn period(now: Instant) -> u32 {
    (now.total_micros().max(0) as u64 / 64_000_000) as u32
}

fn mac(
    secret: &Secret,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    t: u32,
    peer_isn: SeqNum,
) -> u32 {
    (secret.hash_tuple(local, remote, (t as u64) << 32 | peer_isn.0 as u64) as u32) & 0x00ff_ffff
}

/// The ISN to put in a SYN-ACK for a SYN with sequence `peer_isn` and MSS option `peer_mss`, and
/// the MSS the cookie encodes (the largest table entry not above `peer_mss`).
pub fn make(
    secret: &Secret,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    peer_isn: SeqNum,
    peer_mss: u16,
    now: Instant,
) -> (SeqNum, u16) {
    let idx = MSS_TABLE.iter().rposition(|&m| m <= peer_mss).unwrap_or(0);
    let t = period(now) & 0x1f;
    let cookie = t << 27 | (idx as u32) << 24 | mac(secret, local, remote, t, peer_isn);
    (SeqNum(cookie), MSS_TABLE[idx])
}

/// Checks the ACK of a cookie SYN-ACK (`seq` and `ack` of the arriving segment). Returns the
/// MSS the cookie encodes when valid.
pub fn check(
    secret: &Secret,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    seq: SeqNum,
    ack: SeqNum,
    now: Instant,
) -> Option<u16> {
    let cookie = (ack - 1).0;
    let peer_isn = seq - 1;
    let t = cookie >> 27;
    let current = period(now) & 0x1f;
    let age = current.wrapping_sub(t) & 0x1f;
    if age > 1 {
        return None;
    }
    if cookie & 0x00ff_ffff != mac(secret, local, remote, t, peer_isn) {
        return None;
    }
    Some(MSS_TABLE[((cookie >> 24) & 7) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;
    use core::net::Ipv4Addr;

    #[test]
    fn cookie_round_trip_and_expiry() {
        let s = Secret::new(3, 9);
        let l = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 80);
        let r = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 40000);
        let now = Instant::from_secs(1000);
        let (isn, mss) = make(&s, l, r, SeqNum(5000), 1460, now);
        assert_eq!(mss, 1460);
        assert_eq!(check(&s, l, r, SeqNum(5001), isn + 1, now), Some(1460));
        assert_eq!(
            check(
                &s,
                l,
                r,
                SeqNum(5001),
                isn + 1,
                now + Duration::from_secs(64)
            ),
            Some(1460)
        );
        assert_eq!(
            check(
                &s,
                l,
                r,
                SeqNum(5001),
                isn + 1,
                now + Duration::from_secs(200)
            ),
            None
        );
        assert_eq!(check(&s, l, r, SeqNum(5002), isn + 1, now), None);
        assert_eq!(check(&s, l, r, SeqNum(5001), isn + 2, now), None);
        let (_, small) = make(&s, l, r, SeqNum(1), 1000, now);
        assert_eq!(small, 536);
    }
}
