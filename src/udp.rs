//! Batched UDP: many datagrams per system call, for the reactor and the ceiling example.
//!
//! One `recv_from` and one `send_to` per datagram cost about a microsecond each of kernel entry
//! and socket locking; with 1,400-byte pieces or a tracker answering 200k requests a second,
//! that is most of the work. So:
//!
//! * **Receiving** ([`RecvBatch`]): one `recvmmsg` fills up to [`RECV_SLOTS`] buffers, and with
//!   GRO (`UDP_GRO`) one buffer may hold a run of equal-size datagrams from one sender, which
//!   [`RecvBatch::for_each`] cuts apart again (the last of a run may be shorter).
//! * **Sending** ([`SendBatch`]): the reactor fills the batch from the core's `poll_transmit`,
//!   datagrams packed back to back. [`SendBatch::flush`] sends each run of equal-size datagrams
//!   to one destination as one GSO `sendmsg` (the kernel, or the network card, cuts it into
//!   datagrams: an uploader's pieces to one peer are such runs), and everything else, such as a
//!   tracker's replies to many clients, with one `sendmmsg` for up to [`SENDMMSG_MAX`].
//!
//! Both sides are safe wrappers from crates rather than hand-written `unsafe`: `quinn-udp`
//! (QUIC's UDP layer: `recvmmsg` with GRO, `sendmsg` with GSO, and the fallback when a path
//! refuses GSO) and `rustix::net::sendmmsg`. Where the kernel lacks GRO or GSO, a run is one
//! datagram and everything still works, one `sendmmsg` at a time. The `unsafe` calls here
//! are a `setsockopt` of options that neither crate offers (see [`set_int_option`]) and
//! `getifaddrs` (see [`interface_addresses`]).
//!
//! A socket bound to all addresses answers each remote from the address it was asked at
//! ([`ReplySources`], in `udp/reply_sources.rs`).
//!
//! The module never decides what is sent: every datagram the core produced is sent once, in
//! order per destination, or dropped with a logged reason exactly where a plain `send_to` would
//! have failed.

#![allow(unsafe_code)]

use quinn_udp::{RecvMeta, UdpSockRef, UdpSocketState};
use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};

mod reply_sources;
pub use reply_sources::{REPLY_SOURCES_MAX, ReplySources};

/// Buffers one `recvmmsg` fills (quinn-udp's own batch size on Linux).
pub const RECV_SLOTS: usize = 32;
/// One receive buffer: room for the largest UDP payload, or a GRO run (the kernel coalesces
/// at most 64 KiB).
pub const RECV_SLOT_BYTES: usize = 1 << 16;
/// Datagrams one [`SendBatch`] holds.
pub const SEND_BATCH_MAX: usize = 256;
/// Bytes one [`SendBatch`] holds (datagrams packed back to back), besides room for one more
/// datagram of the largest size, which is what the core is handed to write into.
pub const SEND_BATCH_BYTES_MAX: usize = 256 << 10;
/// Datagrams in one `sendmmsg` call.
pub const SENDMMSG_MAX: usize = 64;
/// Most bytes of one GSO send: the payload of one IPv4 datagram (the kernel builds the run
/// as one large datagram before cutting it).
pub const GSO_BYTES_MAX: usize = 65_507;
/// Most datagrams in one GSO send (the kernel's `UDP_MAX_SEGMENTS`).
pub const GSO_SEGMENTS_MAX: usize = 64;
/// Largest datagram the core may write into one slot (IPv4's UDP payload limit).
pub const DATAGRAM_BYTES_MAX: usize = 65_507;

/// The per-socket state: what the kernel supports (GSO segments, GRO), learnt once.
pub struct Udp {
    state: UdpSocketState,
}

impl Udp {
    /// Configures `socket` for batching (GRO on) and learns what the kernel supports. Also
    /// makes the socket non-blocking.
    pub fn new(socket: &impl AsFd) -> io::Result<Udp> {
        use rustix::net::sockopt;
        // quinn-udp forbids IP fragmentation (`IP_PMTUDISC_PROBE`, `IPV6_DONTFRAG`), as we
        // want: a datagram too large for the local link fails with EMSGSIZE, and the core
        // sizes every datagram to its path (see `crate::mtu`).
        let state = UdpSocketState::new(UdpSockRef::from(socket))?;
        // quinn-udp also asks for the destination address and the ECN bits of every datagram
        // (control messages); we do not use the ECN bits, and the kernel's building them cost
        // more than the batching saved on a tracker's small requests. The destination address
        // is kept on a socket bound to all addresses, which must answer from it (see
        // `ReplySources`). Options the family lacks fail.
        let _ = sockopt::set_ip_recvtos(socket, false);
        let _ = sockopt::set_ipv6_recvtclass(socket, false);
        let bound_to_all = rustix::net::getsockname(socket)
            .ok()
            .and_then(|address| SocketAddr::try_from(address).ok())
            .is_some_and(|address| address.ip().is_unspecified());
        if !bound_to_all {
            let _ = set_int_option(socket, libc::IPPROTO_IP, libc::IP_PKTINFO, 0);
            let _ = set_int_option(socket, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 0);
        }
        Ok(Udp { state })
    }

    /// How many datagrams one GSO send may carry here (1 when the kernel cannot, or when a
    /// path refused it once).
    pub fn gso_segments(&self) -> usize {
        self.state.max_gso_segments().min(GSO_SEGMENTS_MAX)
    }

    /// How many datagrams the kernel may coalesce into one received buffer (1 without GRO).
    pub fn gro_segments(&self) -> usize {
        self.state.gro_segments()
    }
}

/// Sets an integer socket option that neither rustix nor socket2 offers: `IP_PKTINFO`,
/// `IPV6_RECVPKTINFO`.
fn set_int_option(
    socket: &impl AsFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the descriptor is borrowed, so it is open for the whole call; the option value
    // points at a live `c_int` whose size is the length passed, and the kernel only reads it.
    let result = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The IPv4 and IPv6 addresses of this host's interfaces (`getifaddrs`), at most `max` of
/// them: what a node bound to all addresses is reachable at, so that it recognises itself in
/// a peer list. Std has no such call, and neither rustix nor quinn-udp offers one.
pub fn interface_addresses(max: usize) -> io::Result<Vec<std::net::IpAddr>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `list` is a valid place for the kernel's list head; on success it points at a
    // list that stays valid until the `freeifaddrs` below, which is called exactly once.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut addresses = Vec::new();
    let mut entry = list;
    while !entry.is_null() && addresses.len() < max {
        // SAFETY: `entry` is a non-null node of the list `getifaddrs` returned, not yet freed.
        let ifaddrs = unsafe { &*entry };
        let addr = ifaddrs.ifa_addr;
        if !addr.is_null() {
            // SAFETY: `ifa_addr` is non-null and points at a socket address whose family field
            // says which type it is; each is read only as the type its family names.
            let ip = unsafe {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let v4 = &*addr.cast::<libc::sockaddr_in>();
                        // In network order in memory: its bytes are the octets.
                        Some(std::net::IpAddr::from(v4.sin_addr.s_addr.to_ne_bytes()))
                    }
                    libc::AF_INET6 => {
                        let v6 = &*addr.cast::<libc::sockaddr_in6>();
                        Some(std::net::IpAddr::from(v6.sin6_addr.s6_addr))
                    }
                    _ => None,
                }
            };
            addresses.extend(ip);
        }
        entry = ifaddrs.ifa_next;
    }
    // SAFETY: `list` came from a successful `getifaddrs` and is freed once; nothing read from
    // it outlives this call (the addresses were copied).
    unsafe { libc::freeifaddrs(list) };
    Ok(addresses)
}

/// Route MTUs entries kept before the cache starts over.
const ROUTES_CACHED_MAX: usize = 4096;
/// How long a route MTU read from the kernel is believed (routes and learnt path MTUs change).
const ROUTE_MTU_FRESH: std::time::Duration = std::time::Duration::from_secs(60);

/// The kernel's MTU toward an address (including a path MTU it learnt from ICMP): read from
/// a UDP socket connected to it (connecting sends nothing), cached for a minute.
#[derive(Default)]
pub struct KernelRoutes {
    cache: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (u32, std::time::Instant)>>,
}

impl crate::mtu::RouteMtu for KernelRoutes {
    fn mtu(&self, to: SocketAddr) -> Option<u32> {
        // Loopback needs no look-up, nor the lock and the clock: a tracker answering clients on
        // loopback asks this for every reply.
        if crate::mtu::is_loopback(to.ip()) {
            return Some(crate::mtu::LOOPBACK_MTU_MIN + 1);
        }
        let now = std::time::Instant::now();
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(&(mtu, read_at)) = cache.get(&to.ip())
            && now.saturating_duration_since(read_at) < ROUTE_MTU_FRESH
        {
            return Some(mtu);
        }
        let mtu = route_mtu(to).ok()?;
        if cache.len() >= ROUTES_CACHED_MAX {
            cache.clear();
        }
        cache.insert(to.ip(), (mtu, now));
        Some(mtu)
    }
}

fn route_mtu(to: SocketAddr) -> io::Result<u32> {
    use rustix::net::sockopt;
    let unspecified: SocketAddr = match to {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = std::net::UdpSocket::bind(unspecified)?;
    socket.connect(to)?;
    Ok(match to {
        SocketAddr::V4(_) => sockopt::ip_mtu(&socket)?,
        SocketAddr::V6(_) => sockopt::ipv6_mtu(&socket)?,
    })
}

/// Receive buffers for one `recvmmsg`, and what it returned.
pub struct RecvBatch {
    bytes: Vec<u8>,
    meta: Vec<RecvMeta>,
    filled: usize,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch::new()
    }
}

impl RecvBatch {
    pub fn new() -> RecvBatch {
        RecvBatch {
            bytes: vec![0; RECV_SLOTS * RECV_SLOT_BYTES],
            meta: vec![RecvMeta::default(); RECV_SLOTS],
            filled: 0,
        }
    }

    /// One `recvmmsg`: returns how many buffers were filled (each one datagram or a GRO run),
    /// or the socket's error (`WouldBlock` when nothing is waiting). `Interrupted` is retried
    /// inside.
    pub fn recv(&mut self, udp: &Udp, socket: &impl AsFd) -> io::Result<usize> {
        self.filled = 0;
        let mut slots = self
            .bytes
            .chunks_exact_mut(RECV_SLOT_BYTES)
            .map(IoSliceMut::new);
        let mut buffers: [IoSliceMut<'_>; RECV_SLOTS] =
            std::array::from_fn(|_| slots.next().unwrap_or_else(|| IoSliceMut::new(&mut [])));
        let filled = udp
            .state
            .recv(UdpSockRef::from(socket), &mut buffers, &mut self.meta)?;
        self.filled = filled.min(RECV_SLOTS);
        Ok(self.filled)
    }

    /// Tells `sources` which of our addresses each datagram of the last
    /// [`recv`](Self::recv) was sent to.
    pub fn learn_sources(&self, sources: &mut ReplySources) {
        if sources.active() {
            for meta in &self.meta[..self.filled] {
                sources.learn(meta.addr, meta.dst_ip);
            }
        }
    }

    /// Hands each datagram of the last [`recv`](Self::recv) to `handle`, in arrival order,
    /// cutting GRO runs at their stride. Returns how many datagrams there were.
    pub fn for_each(&self, mut handle: impl FnMut(SocketAddr, &[u8])) -> usize {
        let mut count = 0;
        for (index, meta) in self.meta[..self.filled].iter().enumerate() {
            let start = index * RECV_SLOT_BYTES;
            let bytes = &self.bytes[start..start + meta.len.min(RECV_SLOT_BYTES)];
            // A stride of 0 would never advance; the kernel never reports one, but a run is
            // then taken as one datagram.
            let stride = if meta.stride == 0 {
                bytes.len().max(1)
            } else {
                meta.stride
            };
            if bytes.is_empty() {
                // An empty datagram is a datagram.
                handle(meta.addr, bytes);
                count += 1;
            }
            for datagram in bytes.chunks(stride) {
                handle(meta.addr, datagram);
                count += 1;
            }
        }
        count
    }
}

/// One queued datagram: `len` bytes at `start` of the batch's bytes, to `to`, from the local
/// address `source_as_for` reached us at.
#[derive(Clone, Copy, Debug)]
struct Queued {
    to: SocketAddr,
    source_as_for: SocketAddr,
    start: usize,
    len: usize,
}

/// Datagrams waiting to be sent, packed back to back so that a run to one destination is one
/// slice for GSO.
pub struct SendBatch {
    bytes: Vec<u8>,
    queued: Vec<Queued>,
    /// Bytes of `bytes` in use.
    used: usize,
    /// Index in `queued` of the first datagram not yet sent.
    sent: usize,
    /// Datagrams before this index are sent one by one even when they form a run: a GSO send
    /// of them failed (the fallback must not try GSO again for them).
    no_gso_before: usize,
    /// Set by [`group_replies`](Self::group_replies).
    group: bool,
    /// Where [`fill`](Self::fill) puts the bytes in their new order when grouping.
    scratch: Vec<u8>,
}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch::new()
    }
}

impl SendBatch {
    pub fn new() -> SendBatch {
        SendBatch {
            bytes: vec![0; SEND_BATCH_BYTES_MAX + DATAGRAM_BYTES_MAX],
            queued: Vec::with_capacity(SEND_BATCH_MAX),
            used: 0,
            sent: 0,
            no_gso_before: 0,
            group: false,
            scratch: Vec::new(),
        }
    }

    /// Lets [`fill`](Self::fill) reorder each batch: by destination, and within one
    /// destination longest first, so that equal sizes to one destination are adjacent and go
    /// as one GSO send. For a tracker, whose replies each answer their own request (UDP keeps
    /// no order anyway); not for a node, whose pieces to a peer keep the order they were
    /// asked in.
    pub fn group_replies(&mut self) {
        self.group = true;
    }

    /// Datagrams queued and not yet sent.
    pub fn pending(&self) -> usize {
        self.queued.len() - self.sent
    }

    /// Takes datagrams from `next` (the core's `poll_transmit`: writes one datagram into the
    /// buffer it is given) until the batch is full or `next` has none. Returns true when the
    /// batch filled up, i.e. the core may have more. Datagrams still queued from an incomplete
    /// flush stay first.
    pub fn fill(&mut self, mut next: impl FnMut(&mut [u8]) -> Option<crate::Transmit>) -> bool {
        if self.pending() == 0 {
            self.queued.clear();
            self.used = 0;
            self.sent = 0;
            self.no_gso_before = 0;
        }
        let (first_new, region_start) = (self.queued.len(), self.used);
        let mut full = true;
        while self.queued.len() < SEND_BATCH_MAX && self.used <= SEND_BATCH_BYTES_MAX {
            let slot = &mut self.bytes[self.used..self.used + DATAGRAM_BYTES_MAX];
            let Some(transmit) = next(slot) else {
                full = false;
                break;
            };
            let len = transmit.len.min(DATAGRAM_BYTES_MAX);
            self.queued.push(Queued {
                to: transmit.to,
                source_as_for: transmit.source_as_for.unwrap_or(transmit.to),
                start: self.used,
                len,
            });
            self.used += len;
        }
        if self.group && self.queued.len() - first_new > 1 {
            self.regroup(first_new, region_start);
        }
        full
    }

    /// Sorts the datagrams from `queued[first]` on (their bytes start at `region_start`) by
    /// destination, then longest first, and moves their bytes into that order so that each
    /// run is one slice.
    fn regroup(&mut self, first: usize, region_start: usize) {
        let queued = &mut self.queued[first..];
        queued.sort_by(|a, b| a.to.cmp(&b.to).then(b.len.cmp(&a.len)));
        self.scratch.clear();
        for datagram in queued.iter_mut() {
            let old = datagram.start;
            datagram.start = region_start + self.scratch.len();
            self.scratch
                .extend_from_slice(&self.bytes[old..old + datagram.len]);
        }
        self.bytes[region_start..region_start + self.scratch.len()].copy_from_slice(&self.scratch);
    }

    /// The run starting at `queued[index]`: how many datagrams one GSO send may carry from
    /// there (same destination, same size, except that the last may be shorter).
    fn run_at(&self, index: usize, gso_segments: usize) -> usize {
        let first = self.queued[index];
        if index < self.no_gso_before || gso_segments < 2 || first.len == 0 {
            return 1;
        }
        let mut count = 1;
        let mut bytes = first.len;
        for next in &self.queued[index + 1..] {
            if count == gso_segments
                || next.to != first.to
                || next.source_as_for != first.source_as_for
                || next.len > first.len
                || next.len == 0
                || next.start != first.start + bytes
                || bytes + next.len > GSO_BYTES_MAX
            {
                break;
            }
            count += 1;
            bytes += next.len;
            if next.len < first.len {
                // A shorter datagram ends a run.
                break;
            }
        }
        count
    }

    /// Sends everything queued, each datagram from the address `sources` gives for its
    /// destination, if any. `Ok` when all is sent (a datagram the network refused is
    /// dropped and logged, as a plain `send_to` error would be); `Err(WouldBlock)` when the
    /// socket buffer is full: what is left stays queued for the next flush.
    pub fn flush(
        &mut self,
        udp: &Udp,
        socket: &impl AsFd,
        sources: &ReplySources,
    ) -> io::Result<()> {
        while self.sent < self.queued.len() {
            let run = self.run_at(self.sent, udp.gso_segments());
            let source = sources.source_for(self.queued[self.sent].source_as_for);
            if run > 1 || source.is_some() {
                // A run, or a datagram that must leave from a given address (which
                // `sendmmsg` here does not say): one `sendmsg`.
                self.send_run(udp, socket, run, source)?;
            } else {
                self.send_singles(udp, socket, sources)?;
            }
        }
        Ok(())
    }

    /// One `sendmsg` (GSO when `run` > 1) of the `run` datagrams at `sent`, from `source`
    /// when given.
    fn send_run(
        &mut self,
        udp: &Udp,
        socket: &impl AsFd,
        run: usize,
        source: Option<std::net::IpAddr>,
    ) -> io::Result<()> {
        let first = self.queued[self.sent];
        let last = self.queued[self.sent + run - 1];
        let transmit = quinn_udp::Transmit {
            destination: first.to,
            ecn: None,
            contents: &self.bytes[first.start..last.start + last.len],
            segment_size: (run > 1).then_some(first.len),
            src_ip: source,
        };
        match udp.state.try_send(UdpSockRef::from(socket), &transmit) {
            Ok(()) => {
                self.sent += run;
                Ok(())
            }
            // The socket buffer is full: the run stays queued.
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Err(error),
            // One datagram the network refused: dropped, as a plain `send_to` would be (the
            // core finds out by timeout).
            Err(error) if run == 1 => {
                log::debug!("send to {}: {error}", first.to);
                self.sent += 1;
                Ok(())
            }
            // GSO refused (the path's MTU is below the segment, or the device cannot: quinn-udp
            // then stops offering GSO on this socket), or an error that would hit each datagram
            // alike: send the run one datagram at a time, where each error is dealt with alone.
            Err(error) => {
                log::debug!("GSO send of {run} datagrams to {}: {error}", first.to);
                self.no_gso_before = self.sent + run;
                Ok(())
            }
        }
    }

    /// One `sendmmsg` of the datagrams from `sent` up to the next run worth a GSO send, or
    /// the next that must leave from a given address.
    fn send_singles(
        &mut self,
        udp: &Udp,
        socket: &impl AsFd,
        sources: &ReplySources,
    ) -> io::Result<()> {
        let gso_segments = udp.gso_segments();
        let mut end = self.sent + 1;
        while end < self.queued.len()
            && end - self.sent < SENDMMSG_MAX
            && self.run_at(end, gso_segments) == 1
            && sources.source_for(self.queued[end].source_as_for).is_none()
        {
            end += 1;
        }
        let batch = &self.queued[self.sent..end];
        let addresses: Vec<SocketAddrAny> =
            batch.iter().map(|q| SocketAddrAny::from(q.to)).collect();
        let slices: Vec<[IoSlice<'_>; 1]> = batch
            .iter()
            .map(|q| [IoSlice::new(&self.bytes[q.start..q.start + q.len])])
            .collect();
        let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = batch
            .iter()
            .map(|_| SendAncillaryBuffer::default())
            .collect();
        let mut messages: Vec<MMsgHdr<'_>> = addresses
            .iter()
            .zip(&slices)
            .zip(&mut controls)
            .map(|((address, slice), control)| MMsgHdr::new_with_addr(address, slice, control))
            .collect();
        loop {
            match rustix::net::sendmmsg(socket, &mut messages, SendFlags::empty()) {
                // The kernel stops at the first datagram it cannot send; that one comes first
                // in the next call, which reports its error.
                // (It never reports 0 for a non-empty batch; counting at least one keeps the
                // loop finite whatever it says.)
                Ok(count) => {
                    self.sent += count.clamp(1, batch.len());
                    return Ok(());
                }
                // A signal arrived before anything was sent: try again.
                Err(rustix::io::Errno::INTR) => continue,
                // The socket buffer is full: the rest stays queued.
                Err(rustix::io::Errno::AGAIN) => {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                // The first datagram was refused (an ICMP error from an earlier send to that
                // address, a destination that cannot be reached): the core finds out by
                // timeout, as for any lost datagram, so it is dropped here.
                Err(error) => {
                    log::debug!("sendmmsg to {}: {error}", batch[0].to);
                    self.sent += 1;
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
