//! Packet capture: a classic libpcap file writer and a [`Nic`] middleware that records every
//! frame it moves.
//!
//! File format (always written little-endian; readers detect the byte order from the magic):
//!
//! - global header, 24 bytes: magic `0xa1b2c3d4` (microsecond timestamps), version 2.4,
//!   thiszone 0, sigfigs 0, snaplen 65535, linktype 1 (Ethernet);
//! - per frame, a 16-byte record header: `ts_sec`, `ts_usec` (from the `now` passed in),
//!   `incl_len` (captured bytes, at most the snaplen), `orig_len` (frame length), then the
//!   captured bytes.
//!
//! Classic pcap has no direction field: a capture on a [`PcapNic`] interleaves received and
//! transmitted frames in call order.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::RawFd;
use std::path::Path;

use smoltcp::time::Instant;

use crate::{Nic, NicError, NicInfo, NicStats};

/// Magic number of a classic pcap file with microsecond timestamps.
pub const PCAP_MAGIC: u32 = 0xa1b2_c3d4;
/// Largest number of bytes of a frame that is captured.
pub const PCAP_SNAPLEN: u32 = 65535;
/// Link type of Ethernet frames (`LINKTYPE_ETHERNET`).
pub const LINKTYPE_ETHERNET: u32 = 1;

/// Writes frames to a classic libpcap stream.
///
/// Wrap unbuffered writers in a [`BufWriter`] (as [`PcapWriter::create`] does) and call
/// [`PcapWriter::flush`] when done: a `BufWriter` flushes on drop too, but then errors are lost.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
}

impl PcapWriter<BufWriter<File>> {
    /// Creates (or truncates) the file at `path` and writes the pcap global header.
    pub fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        PcapWriter::new(BufWriter::new(File::create(path)?))
    }
}

impl<W: Write> PcapWriter<W> {
    /// Writes the 24-byte pcap global header to `out`.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut header = [0u8; 24];
        header[0..4].copy_from_slice(&PCAP_MAGIC.to_le_bytes());
        header[4..6].copy_from_slice(&2u16.to_le_bytes());
        header[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone (8..12) and sigfigs (12..16) stay 0.
        header[16..20].copy_from_slice(&PCAP_SNAPLEN.to_le_bytes());
        header[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&header)?;
        Ok(PcapWriter { out })
    }

    /// Appends one frame seen at `timestamp` (microseconds; instants before zero are written
    /// as zero). Frames longer than the snaplen are truncated, keeping their original length.
    pub fn write_frame(&mut self, timestamp: Instant, frame: &[u8]) -> io::Result<()> {
        let micros = timestamp.total_micros().max(0);
        let ts_sec = u32::try_from(micros / 1_000_000).unwrap_or(u32::MAX);
        let ts_usec = (micros % 1_000_000) as u32;
        let incl_len = frame.len().min(PCAP_SNAPLEN as usize);
        let orig_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let mut record = [0u8; 16];
        record[0..4].copy_from_slice(&ts_sec.to_le_bytes());
        record[4..8].copy_from_slice(&ts_usec.to_le_bytes());
        record[8..12].copy_from_slice(&(incl_len as u32).to_le_bytes());
        record[12..16].copy_from_slice(&orig_len.to_le_bytes());
        self.out.write_all(&record)?;
        self.out.write_all(&frame[..incl_len])
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// The underlying writer, mutably (writing to it corrupts the capture).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Returns the underlying writer, without flushing it.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// A [`Nic`] middleware that writes every received and transmitted frame to a pcap capture.
///
/// Received frames are captured as they are handed to the sink; transmitted frames once the
/// inner device has accepted them (a frame the device refuses is not captured). Timestamps are
/// the `now` of the call.
///
/// A capture write error never fails `receive` or `transmit` (the frames were moved): it stops
/// the capture and is returned by the next [`Nic::flush`]. The capture is flushed on `flush` and
/// on drop.
pub struct PcapNic<N: Nic, W: Write = BufWriter<File>> {
    inner: N,
    pcap: PcapWriter<W>,
    /// A capture error not yet reported by `flush`.
    error: Option<io::Error>,
    /// False once a capture write has failed.
    capturing: bool,
    /// Copy of the last transmitted frame, captured once the device has accepted it.
    scratch: Vec<u8>,
}

impl<N: Nic> PcapNic<N> {
    /// Wraps `inner`, capturing to a new file at `path`.
    pub fn create(inner: N, path: impl AsRef<Path>) -> Result<Self, NicError> {
        Ok(PcapNic::new(inner, PcapWriter::create(path)?))
    }
}

impl<N: Nic, W: Write> PcapNic<N, W> {
    /// Wraps `inner`, capturing to `pcap`.
    pub fn new(inner: N, pcap: PcapWriter<W>) -> Self {
        PcapNic {
            inner,
            pcap,
            error: None,
            capturing: true,
            scratch: Vec::new(),
        }
    }

    /// The wrapped device.
    pub fn get_ref(&self) -> &N {
        &self.inner
    }

    /// The wrapped device, mutably (frames moved through it directly are not captured).
    pub fn get_mut(&mut self) -> &mut N {
        &mut self.inner
    }

    /// The capture writer.
    pub fn writer(&self) -> &PcapWriter<W> {
        &self.pcap
    }

    fn capture(&mut self, now: Instant, frame_len: usize) {
        if self.capturing {
            if let Err(e) = self.pcap.write_frame(now, &self.scratch[..frame_len]) {
                self.capturing = false;
                self.error = Some(e);
            }
        }
    }
}

impl<N: Nic, W: Write> Nic for PcapNic<N, W> {
    fn info(&self) -> NicInfo {
        self.inner.info()
    }

    fn receive(
        &mut self,
        now: Instant,
        budget: usize,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, NicError> {
        let PcapNic {
            inner,
            pcap,
            error,
            capturing,
            ..
        } = self;
        inner.receive(now, budget, &mut |frame| {
            if *capturing {
                if let Err(e) = pcap.write_frame(now, frame) {
                    *capturing = false;
                    *error = Some(e);
                }
            }
            sink(frame);
        })
    }

    fn transmit(
        &mut self,
        now: Instant,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<usize, NicError> {
        let capturing = self.capturing;
        let scratch = &mut self.scratch;
        let len = self.inner.transmit(now, &mut |slot| {
            let len = fill(slot);
            if capturing {
                if let Some(frame) = slot.get(..len) {
                    scratch.clear();
                    scratch.extend_from_slice(frame);
                }
            }
            len
        })?;
        if len > 0 {
            self.capture(now, len);
        }
        Ok(len)
    }

    fn flush(&mut self, now: Instant) -> Result<(), NicError> {
        self.inner.flush(now)?;
        if let Some(e) = self.error.take() {
            return Err(e.into());
        }
        if self.capturing {
            if let Err(e) = self.pcap.flush() {
                self.capturing = false;
                return Err(e.into());
            }
        }
        Ok(())
    }

    fn rx_ready(&self) -> Option<bool> {
        self.inner.rx_ready()
    }

    fn poll_at(&self) -> Option<Instant> {
        self.inner.poll_at()
    }

    fn wait_fd(&self) -> Option<RawFd> {
        self.inner.wait_fd()
    }

    fn stats(&self) -> NicStats {
        self.inner.stats()
    }
}

impl<N: Nic, W: Write> Drop for PcapNic<N, W> {
    fn drop(&mut self) {
        if self.capturing {
            // Nowhere to report an error from drop: call `flush` first to see it.
            let _ = self.pcap.flush();
        }
    }
}

impl<N: Nic + std::fmt::Debug, W: Write> std::fmt::Debug for PcapNic<N, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapNic")
            .field("inner", &self.inner)
            .field("capturing", &self.capturing)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LinkConfig, MemoryLink};
    use std::path::PathBuf;
    use std::process::Command;

    /// A capture file in the temp dir, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir();
            TempFile(dir.join(format!("ringstack-nic-{}-{name}.pcap", std::process::id())))
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Parses a capture written by `PcapWriter`: `(ts_sec, ts_usec, orig_len, bytes)` records.
    fn records(file: &[u8]) -> Vec<(u32, u32, u32, Vec<u8>)> {
        let u32_at = |at: usize| u32::from_le_bytes(file[at..at + 4].try_into().unwrap());
        let mut out = Vec::new();
        let mut at = 24;
        while at < file.len() {
            let incl = u32_at(at + 8) as usize;
            let data = file[at + 16..at + 16 + incl].to_vec();
            out.push((u32_at(at), u32_at(at + 4), u32_at(at + 12), data));
            at += 16 + incl;
        }
        out
    }

    #[test]
    fn writes_headers_byte_for_byte() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_frame(Instant::from_micros(1_500_002), &[0xde, 0xad, 0xbe])
            .unwrap();
        w.write_frame(Instant::from_micros(-5), &[0x42]).unwrap();
        let bytes = w.into_inner();
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            // global header
            0xd4, 0xc3, 0xb2, 0xa1, // magic
            0x02, 0x00, 0x04, 0x00, // version 2.4
            0x00, 0x00, 0x00, 0x00, // thiszone
            0x00, 0x00, 0x00, 0x00, // sigfigs
            0xff, 0xff, 0x00, 0x00, // snaplen 65535
            0x01, 0x00, 0x00, 0x00, // linktype Ethernet
            // record 1: 1.500002 s, 3 bytes
            0x01, 0x00, 0x00, 0x00,
            0x22, 0xa1, 0x07, 0x00, // 500002 us
            0x03, 0x00, 0x00, 0x00,
            0x03, 0x00, 0x00, 0x00,
            0xde, 0xad, 0xbe,
            // record 2: a negative instant is written as 0
            0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00,
            0x01, 0x00, 0x00, 0x00,
            0x01, 0x00, 0x00, 0x00,
            0x42,
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn truncates_at_the_snaplen() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_frame(Instant::ZERO, &vec![7; 70_000]).unwrap();
        let recs = records(&w.into_inner());
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].2, 70_000);
        assert_eq!(recs[0].3.len(), 65_535);
    }

    #[test]
    fn pcap_nic_captures_both_directions_to_a_file() {
        let (a, b) = MemoryLink::pair(LinkConfig::default());
        let file_a = TempFile::new("a");
        let file_b = TempFile::new("b");
        let mut a = PcapNic::create(a, &file_a.0).unwrap();
        let mut b = PcapNic::create(b, &file_b.0).unwrap();
        a.send(Instant::from_micros(1_000_001), b"first frame")
            .unwrap();
        // A refused frame is not captured.
        assert!(a.transmit(Instant::ZERO, &mut |_| 2000).is_err());
        let mut got = 0;
        b.receive(Instant::from_millis(2_000), 8, &mut |_| got += 1)
            .unwrap();
        b.send(Instant::from_millis(3_000), b"reply").unwrap();
        a.receive(Instant::from_millis(4_000), 8, &mut |_| got += 1)
            .unwrap();
        assert_eq!(got, 2);
        a.flush(Instant::ZERO).unwrap();
        drop(b); // flushes on drop

        let recs_a = records(&std::fs::read(&file_a.0).unwrap());
        let recs_b = records(&std::fs::read(&file_b.0).unwrap());
        assert_eq!(
            recs_a,
            vec![
                (1, 1, 11, b"first frame".to_vec()),
                (4, 0, 5, b"reply".to_vec()),
            ]
        );
        assert_eq!(
            recs_b,
            vec![
                (2, 0, 11, b"first frame".to_vec()),
                (3, 0, 5, b"reply".to_vec()),
            ]
        );
        assert_eq!(a.stats().tx_dropped, 1);
    }

    /// Accepts `budget` bytes, then fails.
    struct FailingWriter {
        budget: usize,
    }

    impl Write for FailingWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.budget == 0 {
                return Err(io::Error::other("disk full"));
            }
            let n = buf.len().min(self.budget);
            self.budget -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn capture_errors_surface_on_flush_without_failing_the_traffic() {
        let (a, mut b) = MemoryLink::pair(LinkConfig::default());
        let writer = PcapWriter::new(FailingWriter {
            budget: 24 + 16 + 4,
        })
        .unwrap();
        let mut a = PcapNic::new(a, writer);
        assert_eq!(a.send(Instant::ZERO, b"fits").unwrap(), 4);
        assert_eq!(a.send(Instant::ZERO, b"does not fit").unwrap(), 12);
        assert_eq!(a.send(Instant::ZERO, b"not captured").unwrap(), 12);
        let err = a.flush(Instant::ZERO).unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        // Reported once; the capture stays off.
        a.flush(Instant::ZERO).unwrap();
        let mut got = 0;
        b.receive(Instant::ZERO, 8, &mut |_| got += 1).unwrap();
        assert_eq!(got, 3);
    }

    #[test]
    fn tshark_reads_the_capture() {
        let file = TempFile::new("tshark");
        let mut w = PcapWriter::create(&file.0).unwrap();
        // A broadcast ARP request, 198.18.0.1 asking for 198.18.0.2.
        #[rustfmt::skip]
        let arp: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06,
            0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01,
            0x02, 0, 0, 0, 0, 0x01, 198, 18, 0, 1,
            0, 0, 0, 0, 0, 0, 198, 18, 0, 2,
        ];
        w.write_frame(Instant::from_millis(1), &arp).unwrap();
        w.write_frame(Instant::from_millis(2), &arp).unwrap();
        w.flush().unwrap();
        let output = match Command::new("tshark").arg("-r").arg(&file.0).output() {
            Ok(output) => output,
            Err(e) => {
                println!("skipping: tshark is not available ({e})");
                return;
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(stdout.lines().count(), 2, "{stdout}");
        assert!(stdout.contains("198.18.0.2"), "{stdout}");
    }
}
