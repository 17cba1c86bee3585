//! A handler's log that never grows past its cap (policy `log.max_bytes`).
//!
//! A handler that prints without end must not fill the disk of the machine it runs on. The log
//! keeps what a person needs to see why a run failed: the beginning (how it started) and the end
//! (how it stopped). The head — the first half of the cap — goes straight to the file as it
//! arrives, so a runner that crashes still leaves the beginning on disk; the tail is a ring in
//! memory, appended when the log is finished, after a marker line saying how much was cut. The
//! marker is budgeted inside the cap, so the file is never larger than `max_bytes`; output that
//! fits is written as it is, byte for byte.
//!
//! A full disk (`ENOSPC`) stops the writing instead of failing the run: the stats say so and the
//! marker (if it still fits on the disk) too. So does a *nearly* full one: the free space is
//! checked every [`CHECK_EVERY`] bytes, and writing stops while a reserve is left (5 % of the
//! file system, at least 256 KiB, at most 64 MiB), so the runner can still write the run's record
//! — a log must never be the reason a failure goes unrecorded. After such a stop only the last
//! [`FULL_TAIL`] bytes are appended. Nothing here panics on input.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

/// How many bytes of output pass between two checks of the free space.
pub const CHECK_EVERY: u64 = 64 * 1024;
/// The most of the tail appended after writing stopped for a (nearly) full disk.
pub const FULL_TAIL: usize = 4 * 1024;

/// Bytes the log leaves free on its file system: 5 % of it, within 256 KiB..=64 MiB.
pub fn reserve_for(fs_size: u64) -> u64 {
    (fs_size / 20).clamp(256 * 1024, 64 * 1024 * 1024)
}

/// Free bytes (for unprivileged users) and the size of the file system holding `file`.
fn space(file: &File) -> Option<(u64, u64)> {
    // SAFETY: fstatvfs writes into the zeroed struct we own; the fd is open for its duration.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstatvfs(file.as_raw_fd(), &mut st) };
    if rc != 0 {
        return None;
    }
    let unit = st.f_frsize as u64;
    Some(((st.f_bavail as u64).saturating_mul(unit), (st.f_blocks as u64).saturating_mul(unit)))
}

/// What a finished log holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogStats {
    /// Bytes of output in the file (the marker line not counted).
    pub written: u64,
    /// Bytes of output that are not in the file.
    pub cut: u64,
    /// Bytes of output the handler produced.
    pub total: u64,
    /// Writing stopped because the disk was full.
    pub disk_full: bool,
}

/// A log file capped at `max_bytes`: the head written as it comes, the tail kept in memory.
#[derive(Debug)]
pub struct CappedLog {
    file: Option<File>,
    max: u64,
    /// How much of the output goes straight to the file: the first half of the cap.
    head_cap: u64,
    /// Head bytes in the file.
    head: u64,
    /// The newest output past the head, at most `max - head_cap` bytes.
    tail: VecDeque<u8>,
    tail_cap: usize,
    total: u64,
    disk_full: bool,
    /// The head stopped early (disk full): everything after it goes to the tail or is cut.
    head_closed: bool,
    /// Free bytes to leave on the file system (0: not checked).
    reserve: u64,
    /// Head bytes written since the free space was last checked.
    unchecked: u64,
}

fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Write `parts` in order; a full disk stops the writing (`true`) and is not an error.
/// Returns the bytes written and whether the disk was full.
fn write_parts(file: &mut File, parts: &[&[u8]]) -> io::Result<(u64, bool)> {
    let mut written = 0u64;
    for part in parts {
        let mut data = *part;
        while !data.is_empty() {
            match file.write(data) {
                Ok(0) => return Ok((written, true)),
                Ok(n) => {
                    written += n as u64;
                    data = &data[n..];
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_disk_full(&e) => return Ok((written, true)),
                Err(e) => return Err(e),
            }
        }
    }
    Ok((written, false))
}

/// Cut the file to `len` bytes and write on from there.
fn shorten(file: &mut File, len: u64) -> io::Result<()> {
    use std::io::Seek;
    file.set_len(len)?;
    file.seek(io::SeekFrom::Start(len))?;
    Ok(())
}

/// The marker line for `cut` bytes cut, `head` kept before it and `tail` kept after it.
fn marker(cut: u64, head: u64, tail: u64, disk_full: bool) -> String {
    let why = if disk_full { " (the disk is (nearly) full)" } else { "" };
    format!("\n[git-baton: {cut} bytes of output cut here{why}; the log keeps the first {head} and the last {tail} bytes]\n")
}

impl CappedLog {
    /// Create (truncate) the log file at `path`.
    pub fn create(path: &Path, max_bytes: u64) -> io::Result<CappedLog> {
        let file = File::create(path)?;
        let reserve = space(&file).map(|(_, size)| reserve_for(size)).unwrap_or(0);
        let head_cap = max_bytes / 2;
        // The tail ring holds the rest of the cap: output up to the cap fits whole.
        let tail_cap = usize::try_from(max_bytes - head_cap).unwrap_or(usize::MAX);
        Ok(CappedLog {
            file: Some(file),
            max: max_bytes,
            head_cap,
            head: 0,
            tail: VecDeque::new(),
            tail_cap,
            total: 0,
            disk_full: false,
            head_closed: false,
            reserve,
            unchecked: CHECK_EVERY,
        })
    }

    /// Bytes of output seen so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Take more output. A full disk is not an error (writing just stops); other I/O errors are.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.total = self.total.saturating_add(data.len() as u64);
        let mut rest = data;
        if !self.head_closed && self.head < self.head_cap {
            let room = usize::try_from(self.head_cap - self.head).unwrap_or(usize::MAX);
            let (now, later) = rest.split_at(rest.len().min(room));
            rest = later;
            let result = self.write_head(now);
            // Whatever happens to the head, the newest bytes still reach the tail ring.
            self.push_tail(rest);
            return result;
        }
        self.push_tail(rest);
        Ok(())
    }

    fn write_head(&mut self, mut data: &[u8]) -> io::Result<()> {
        if self.reserve > 0 && self.unchecked >= CHECK_EVERY {
            self.unchecked = 0;
            let low =
                self.file.as_ref().and_then(space).is_some_and(|(free, _)| free < self.reserve + data.len() as u64);
            if low {
                self.stop_for_full_disk();
                return Ok(());
            }
        }
        self.unchecked = self.unchecked.saturating_add(data.len() as u64);
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        while !data.is_empty() {
            match file.write(data) {
                Ok(0) => {
                    self.stop_for_full_disk();
                    return Ok(());
                }
                Ok(n) => {
                    self.head += n as u64;
                    data = &data[n..];
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_disk_full(&e) => {
                    self.stop_for_full_disk();
                    return Ok(());
                }
                Err(e) => {
                    // The head is no longer contiguous with what follows: stop it here.
                    self.head_closed = true;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn stop_for_full_disk(&mut self) {
        if !self.disk_full {
            tracing::warn!("the disk is (nearly) full: the handler's log stops here");
        }
        self.disk_full = true;
        self.head_closed = true;
    }

    fn push_tail(&mut self, data: &[u8]) {
        if self.tail_cap == 0 || data.is_empty() {
            return;
        }
        if data.len() >= self.tail_cap {
            self.tail.clear();
            self.tail.extend(&data[data.len() - self.tail_cap..]);
            return;
        }
        let overflow = (self.tail.len() + data.len()).saturating_sub(self.tail_cap);
        self.tail.drain(..overflow);
        self.tail.extend(data);
    }

    /// Finish the log: append the marker (if anything was cut) and the tail.
    pub fn finish(mut self) -> io::Result<LogStats> {
        self.complete()
    }

    fn complete(&mut self) -> io::Result<LogStats> {
        let Some(mut file) = self.file.take() else {
            return Ok(self.stats(0));
        };
        let tail_len = self.tail.len() as u64;
        if !self.disk_full && self.head + tail_len == self.total {
            // Nothing cut: the file is exactly the output.
            let (a, b) = self.tail.as_slices();
            let (written, full) = write_parts(&mut file, &[a, b])?;
            if full {
                self.stop_for_full_disk();
            }
            return Ok(self.stats(written));
        }
        // Something is cut. Budget the marker inside the cap with an upper bound of its length
        // (the cut is at most `total`, head and tail at most the cap), then split what is left
        // between head and tail.
        let bound = marker(self.total, self.max, self.max, self.disk_full).len() as u64;
        let Some(room) = self.max.checked_sub(bound) else {
            // A cap too small for any marker: keep the head only, within the cap.
            let keep = self.head.min(self.max);
            if keep < self.head {
                shorten(&mut file, keep)?;
                self.head = keep;
            }
            return Ok(self.stats(0));
        };
        let head = if self.head <= room { self.head } else { room / 2 };
        if head < self.head {
            shorten(&mut file, head)?;
            self.head = head;
        }
        let mut tail = tail_len.min(room - head);
        if self.disk_full {
            tail = tail.min(FULL_TAIL as u64);
        }
        self.tail.drain(..(tail_len - tail) as usize);
        let cut = self.total - head - tail;
        let line = marker(cut, head, tail, self.disk_full);
        let (a, b) = self.tail.as_slices();
        let (written, full) = write_parts(&mut file, &[line.as_bytes(), a, b])?;
        if full {
            self.stop_for_full_disk();
        }
        // The marker line is not output.
        Ok(self.stats(written.saturating_sub(line.len() as u64)))
    }

    fn stats(&self, tail_written: u64) -> LogStats {
        let written = self.head + tail_written;
        LogStats { written, cut: self.total.saturating_sub(written), total: self.total, disk_full: self.disk_full }
    }
}

impl Drop for CappedLog {
    /// A log dropped without `finish` (an error path, a panic elsewhere) still gets its tail.
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = self.complete();
        }
    }
}

impl Write for CappedLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        CappedLog::write(self, buf).map(|()| buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(n: usize) -> Vec<u8> {
        (0..n).map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789\n"[i % 37]).collect()
    }

    fn run(max: u64, data: &[u8], chunks: &[usize]) -> (Vec<u8>, LogStats) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.log");
        let mut log = CappedLog::create(&path, max).unwrap();
        let mut rest = data;
        let mut i = 0;
        while !rest.is_empty() {
            let n = chunks[i % chunks.len()].min(rest.len());
            log.write(&rest[..n]).unwrap();
            rest = &rest[n..];
            i += 1;
        }
        let stats = log.finish().unwrap();
        (std::fs::read(&path).unwrap(), stats)
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn a_small_cap_keeps_head_marker_and_tail() {
        let data = output(1000);
        for chunks in [&[1usize][..], &[7, 13, 1], &[333], &[1000], &[49, 50, 51]] {
            let (file, stats) = run(100, &data, chunks);
            assert!(file.len() <= 100, "{} bytes with chunks {chunks:?}", file.len());
            let text = String::from_utf8_lossy(&file);
            assert!(text.contains("bytes of output cut here"), "{text:?}");
            let at = text.find("\n[git-baton:").unwrap();
            let end = text.rfind("bytes]\n").unwrap() + "bytes]\n".len();
            let (head, tail) = (&file[..at], &file[end..]);
            assert!(!head.is_empty() && !tail.is_empty(), "{text:?}");
            assert!(data.starts_with(head));
            assert!(data.ends_with(tail));
            assert_eq!(stats.total, 1000);
            assert_eq!(stats.written, (head.len() + tail.len()) as u64);
            assert_eq!(stats.cut, 1000 - stats.written);
            assert!(text.contains(&format!("{} bytes of output cut here", stats.cut)), "{text:?}");
            assert!(text.contains(&format!("the first {} and the last {} bytes", head.len(), tail.len())));
            assert!(!stats.disk_full);
        }
    }

    #[test]
    fn a_large_cap_keeps_half_the_cap_of_head() {
        let data = output(100_000);
        let (file, stats) = run(10_000, &data, &[4096, 17]);
        assert!(file.len() <= 10_000 && file.len() > 9_800, "{}", file.len());
        assert!(file.starts_with(&data[..5_000]));
        assert!(data.ends_with(&file[file.len() - 4_000..]));
        assert!(contains(&file, b"bytes of output cut here"));
        assert_eq!(stats.total, 100_000);
    }

    #[test]
    fn output_exactly_at_the_cap_is_kept_whole() {
        let data = output(100);
        for chunks in [&[1usize][..], &[30, 70], &[100], &[51, 3]] {
            let (file, stats) = run(100, &data, chunks);
            assert_eq!(file, data);
            assert_eq!(stats, LogStats { written: 100, cut: 0, total: 100, disk_full: false });
        }
        // One byte over the cap is a cut.
        let (file, stats) = run(100, &output(101), &[101]);
        assert!(file.len() <= 100 && contains(&file, b"cut here"));
        assert!(stats.cut > 0);
    }

    #[test]
    fn nothing_cut_means_the_file_is_the_output() {
        let data = output(640);
        let (file, stats) = run(10 * 1024 * 1024, &data, &[64]);
        assert_eq!(file, data);
        assert_eq!(stats, LogStats { written: 640, cut: 0, total: 640, disk_full: false });
        let (file, stats) = run(100, b"", &[1]);
        assert!(file.is_empty());
        assert_eq!(stats, LogStats::default());
    }

    #[test]
    fn the_head_is_on_disk_before_finish_and_a_dropped_log_gets_its_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.log");
        let data = output(5000);
        let mut log = CappedLog::create(&path, 1000).unwrap();
        log.write(&data).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), &data[..500]);
        drop(log);
        let file = std::fs::read(&path).unwrap();
        assert!(file.len() <= 1000 && data.ends_with(&file[file.len() - 100..]));
    }

    #[test]
    fn tiny_caps_never_exceed_the_cap() {
        let data = output(1000);
        for max in [0, 1, 2, 10, 50, 90, 99] {
            let (file, stats) = run(max, &data, &[3]);
            assert!(file.len() as u64 <= max, "cap {max}: {} bytes", file.len());
            assert!(data.starts_with(&file) || contains(&file, b"cut here"), "cap {max}");
            assert_eq!(stats.total, 1000);
        }
    }

    #[test]
    fn a_full_disk_stops_writing_without_an_error() {
        // /dev/full answers every write with ENOSPC.
        let Ok(mut log) = CappedLog::create(Path::new("/dev/full"), 100) else {
            return;
        };
        log.write(&output(30)).unwrap();
        log.write(&output(300)).unwrap();
        let stats = log.finish().unwrap();
        assert!(stats.disk_full);
        assert_eq!(stats.written, 0);
        assert_eq!(stats.total, 330);
        assert_eq!(stats.cut, 330);
    }

    #[test]
    fn the_reserve_is_five_percent_within_bounds() {
        for (size, want) in [(0, 256 * 1024), (1 << 20, 256 * 1024), (100 << 20, 5 << 20), (1 << 40, 64 << 20)] {
            assert_eq!(reserve_for(size), want, "file system of {size} bytes");
        }
    }
}
