//! Connection introspection, like `ss -ti` (Linux's `struct tcp_info`).

use core::fmt;
use core::net::SocketAddrV4;

use super::congestion::CongestionControl;
use super::connection::Tcb;
use super::state::State;
use crate::time::Duration;

/// A snapshot of one socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpInfo {
    /// Connection state.
    pub state: State,
    /// Our address.
    pub local: SocketAddrV4,
    /// The peer (0.0.0.0:0 for a listener).
    pub remote: SocketAddrV4,
    /// Bytes readable by the application (`Recv-Q`); for a listener, the accept queue length.
    pub recv_queue: usize,
    /// Bytes not yet acknowledged by the peer (`Send-Q`); for a listener, the backlog.
    pub send_queue: usize,
    /// Bytes of receive buffer storage allocated (it grows with the bytes held and may be
    /// given back once drained: `ring.rs`), like `ss -m`'s `r`.
    pub rcv_storage: usize,
    /// Bytes of send buffer storage allocated, like `ss -m`'s `t`.
    pub snd_storage: usize,
    /// Congestion control algorithm.
    pub congestion: &'static str,
    /// Our MSS for sending (after options).
    pub mss: u32,
    /// The MSS the peer announced.
    pub peer_mss: u16,
    /// Congestion window, bytes.
    pub cwnd: u32,
    /// Slow start threshold, bytes (`u32::MAX` until the first loss).
    pub ssthresh: u32,
    /// Smoothed RTT.
    pub srtt: Option<Duration>,
    /// RTT variation.
    pub rttvar: Duration,
    /// Current retransmission timeout.
    pub rto: Duration,
    /// Peer's receive window, bytes.
    pub snd_wnd: u32,
    /// Window we advertise, bytes.
    pub rcv_wnd: u32,
    /// Window scale shifts (ours, the peer's), when negotiated.
    pub wscale: Option<(u8, u8)>,
    /// Timestamps negotiated.
    pub timestamps: bool,
    /// SACK negotiated.
    pub sack: bool,
    /// Bytes in flight (RFC 6675 pipe).
    pub unacked: u32,
    /// Consecutive retransmission timeouts of the current data.
    pub backoff: u32,
    /// Segments retransmitted over the connection's life.
    pub total_retrans: u64,
    /// Retransmission timeouts.
    pub timeouts: u64,
    /// Fast retransmits.
    pub fast_retrans: u64,
    /// Tail loss probes sent (RFC 8985 §7).
    pub loss_probes: u64,
    /// Segments RACK deemed lost by time (RFC 8985 §6).
    pub rack_lost: u64,
    /// Retransmissions found lost.
    pub lost_retrans: u64,
    /// Timeouts found spurious and undone (RFC 3522).
    pub spurious_rtos: u64,
    /// Segments deemed lost now and not yet delivered (`tcpi_lost`).
    pub lost: u32,
    /// Reordering was observed (RACK widens its reordering window).
    pub reordering_seen: bool,
    /// Minimum RTT measured (RACK.min_RTT).
    pub min_rtt: Option<Duration>,
    /// Bytes sent (first transmissions).
    pub bytes_sent: u64,
    /// Bytes retransmitted.
    pub bytes_retrans: u64,
    /// Bytes acknowledged by the peer.
    pub bytes_acked: u64,
    /// Bytes received in order.
    pub bytes_received: u64,
    /// Segments received / sent.
    pub segs_in: u64,
    /// Segments sent.
    pub segs_out: u64,
    /// Data segments received / sent.
    pub data_segs_in: u64,
    /// Data segments sent.
    pub data_segs_out: u64,
    /// Bytes held out of order.
    pub ofo_bytes: u32,
    /// SACKed bytes on the sender's scoreboard.
    pub sacked: u32,
    /// Whether loss recovery is in progress.
    pub in_recovery: bool,
    /// Pending error, if any.
    pub error: Option<super::TcpError>,
}

impl TcpInfo {
    pub(crate) fn from_tcb(t: &Tcb) -> TcpInfo {
        TcpInfo {
            state: t.state,
            local: t.local,
            remote: t.remote,
            recv_queue: t.rcv_buf.len(),
            send_queue: t.snd_buf.len(),
            rcv_storage: t.rcv_buf.storage(),
            snd_storage: t.snd_buf.storage(),
            congestion: t.cc.name(),
            mss: t.smss(),
            peer_mss: t.peer_mss,
            cwnd: t.cc.cwnd(),
            ssthresh: t.cc.ssthresh(),
            srtt: t.rtt.srtt(),
            rttvar: t.rtt.rttvar(),
            rto: t.rtt.rto(),
            snd_wnd: t.snd_wnd,
            rcv_wnd: t.rcv_adv.since(t.rcv_nxt),
            wscale: t.ws_enabled.then_some((t.rcv_wscale, t.snd_wscale)),
            timestamps: t.ts_enabled,
            sack: t.sack_enabled,
            unacked: t.pipe(),
            backoff: t.rtt.backoff(),
            total_retrans: t.stats.retrans_segs,
            timeouts: t.stats.timeouts,
            fast_retrans: t.stats.fast_retrans,
            loss_probes: t.stats.loss_probes,
            rack_lost: t.stats.rack_lost,
            lost_retrans: t.stats.lost_retrans,
            spurious_rtos: t.stats.spurious_rtos,
            lost: t.sent.lost_segs(),
            reordering_seen: t.rack.reordering_seen,
            min_rtt: t.rack.min_rtt(),
            bytes_sent: t.stats.bytes_sent,
            bytes_retrans: t.stats.bytes_retrans,
            bytes_acked: t.stats.bytes_acked,
            bytes_received: t.stats.bytes_received,
            segs_in: t.stats.segs_in,
            segs_out: t.stats.segs_out,
            data_segs_in: t.stats.data_segs_in,
            data_segs_out: t.stats.data_segs_out,
            ofo_bytes: t.reasm.bytes(),
            sacked: t.scoreboard.sacked_bytes(),
            in_recovery: t.recovering(),
            error: t.error,
        }
    }

    pub(crate) fn listener(local: SocketAddrV4, queued: usize, backlog: usize) -> TcpInfo {
        TcpInfo {
            state: State::Listen,
            local,
            remote: SocketAddrV4::new(core::net::Ipv4Addr::UNSPECIFIED, 0),
            recv_queue: queued,
            send_queue: backlog,
            rcv_storage: 0,
            snd_storage: 0,
            congestion: "",
            mss: 0,
            peer_mss: 0,
            cwnd: 0,
            ssthresh: 0,
            srtt: None,
            rttvar: Duration::ZERO,
            rto: Duration::ZERO,
            snd_wnd: 0,
            rcv_wnd: 0,
            wscale: None,
            timestamps: false,
            sack: false,
            unacked: 0,
            backoff: 0,
            total_retrans: 0,
            timeouts: 0,
            fast_retrans: 0,
            loss_probes: 0,
            rack_lost: 0,
            lost_retrans: 0,
            spurious_rtos: 0,
            lost: 0,
            reordering_seen: false,
            min_rtt: None,
            bytes_sent: 0,
            bytes_retrans: 0,
            bytes_acked: 0,
            bytes_received: 0,
            segs_in: 0,
            segs_out: 0,
            data_segs_in: 0,
            data_segs_out: 0,
            ofo_bytes: 0,
            sacked: 0,
            in_recovery: false,
            error: None,
        }
    }
}

impl fmt::Display for TcpInfo {
    /// Two lines like `ss -tin`: the socket line, then the details.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<11} {:>7} {:>7} {:<21} {:<21}",
            self.state.ss_name(),
            self.recv_queue,
            self.send_queue,
            self.local.to_string(),
            self.remote.to_string()
        )?;
        if self.state == State::Listen {
            return Ok(());
        }
        write!(f, "\t {}", self.congestion)?;
        if let Some((r, s)) = self.wscale {
            write!(f, " wscale:{s},{r}")?;
        }
        if self.timestamps {
            write!(f, " ts")?;
        }
        if self.sack {
            write!(f, " sack")?;
        }
        write!(f, " rto:{}", self.rto.total_millis())?;
        if let Some(srtt) = self.srtt {
            write!(
                f,
                " rtt:{:.3}/{:.3}",
                srtt.total_micros() as f64 / 1000.0,
                self.rttvar.total_micros() as f64 / 1000.0
            )?;
        }
        if let Some(m) = self.min_rtt {
            write!(f, " minrtt:{:.3}", m.total_micros() as f64 / 1000.0)?;
        }
        write!(f, " mss:{} cwnd:{}", self.mss, self.cwnd / self.mss.max(1))?;
        if self.ssthresh != u32::MAX {
            write!(f, " ssthresh:{}", self.ssthresh / self.mss.max(1))?;
        }
        write!(
            f,
            " bytes_sent:{} bytes_retrans:{} bytes_acked:{} bytes_received:{} segs_out:{} segs_in:{} send_wnd:{} rcv_wnd:{} unacked:{} retrans:{}/{} sacked:{}",
            self.bytes_sent,
            self.bytes_retrans,
            self.bytes_acked,
            self.bytes_received,
            self.segs_out,
            self.segs_in,
            self.snd_wnd,
            self.rcv_wnd,
            self.unacked,
            self.backoff,
            self.total_retrans,
            self.sacked
        )?;
        if self.lost > 0 {
            write!(f, " lost:{}", self.lost)?;
        }
        if self.loss_probes > 0 {
            write!(f, " tlp:{}", self.loss_probes)?;
        }
        if self.reordering_seen {
            write!(f, " reord_seen")?;
        }
        write!(f, " storage:r{},t{}", self.rcv_storage, self.snd_storage)?;
        Ok(())
    }
}
