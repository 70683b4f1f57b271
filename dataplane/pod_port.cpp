#include "dataplane/pod_port.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "dataplane/vnet.h"

namespace nodeplane::dataplane {

namespace {

constexpr uint32_t kPage = 4096;
constexpr unsigned kMaxIov = 1024;  // segments of one sendmmsg() call, all packets together

Error sysError(const std::string& what) {
  return makeError(
      errno == EPERM || errno == EACCES ? ErrorCode::kInvalidArgument : ErrorCode::kInternal,
      what + ": " + std::strerror(errno));
}

uint64_t load(const uint64_t& v) {
  return std::atomic_ref<const uint64_t>(v).load(std::memory_order_relaxed);
}
void bump(uint64_t& v, uint64_t n) {
  std::atomic_ref<uint64_t> a(v);
  a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

}  // namespace

Result<std::unique_ptr<PodPort>> PodPort::open(const std::string& interface, Options options) {
  std::unique_ptr<PodPort> p(new PodPort());
  p->interface_ = interface;
  p->ifindex_ = static_cast<int>(::if_nametoindex(interface.c_str()));
  if (p->ifindex_ == 0) return makeError(ErrorCode::kNotFound, "no interface " + interface);
  p->fd_ = ::socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));
  if (p->fd_ < 0) return sysError("packet socket for " + interface);

  // TPACKET_V2: fixed-size frames the kernel hands over one at a time (V3 hands over blocks,
  // late by up to its retire timeout).
  const int version = TPACKET_V2;
  if (::setsockopt(p->fd_, SOL_PACKET, PACKET_VERSION, &version, sizeof(version)) != 0)
    return sysError(interface + ": PACKET_VERSION");
  const int one = 1;
  // Offload metadata both ways (before the ring: the frame layout depends on it).
  if (::setsockopt(p->fd_, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) != 0)
    return sysError(interface + ": PACKET_VNET_HDR");
  // Super-packets of 64 KiB are sent whole, and received through the socket's queue (frames
  // larger than a ring frame are queued whole as well, PACKET_COPY_THRESH): room for a few
  // dozen each way. Charged only while in use, unlike the ring.
  const int socketBuffer = 4 << 20;
  (void)::setsockopt(p->fd_, SOL_SOCKET, SO_SNDBUFFORCE, &socketBuffer, sizeof(socketBuffer));
  (void)::setsockopt(p->fd_, SOL_SOCKET, SO_RCVBUFFORCE, &socketBuffer, sizeof(socketBuffer));
  if (::setsockopt(p->fd_, SOL_PACKET, PACKET_COPY_THRESH, &one, sizeof(one)) != 0)
    return sysError(interface + ": PACKET_COPY_THRESH");
  // What we send is not received again; the veth has no queue to bypass the qdisc of.
  if (::setsockopt(p->fd_, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) != 0)
    return sysError(interface + ": PACKET_IGNORE_OUTGOING");
  (void)::setsockopt(p->fd_, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));

  // Frames hold the TPACKET header and the largest frame: a power of two up to a page, whole
  // pages above; blocks of at least a page, whole frames each (the frames lie back to back).
  uint32_t frame = 2048;
  while (frame < options.frameSize && frame < kPage) frame <<= 1;
  if (frame < options.frameSize) frame = (options.frameSize + kPage - 1) / kPage * kPage;
  const uint32_t block = std::max(frame, kPage);
  const uint32_t perBlock = block / frame;
  const uint32_t blocks = std::max<uint32_t>(1, (options.frames + perBlock - 1) / perBlock);
  tpacket_req req{};
  req.tp_block_size = block;
  req.tp_block_nr = blocks;
  req.tp_frame_size = frame;
  req.tp_frame_nr = blocks * perBlock;
  if (::setsockopt(p->fd_, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) != 0)
    return sysError(interface + ": PACKET_RX_RING");
  p->frameSize_ = frame;
  p->frames_ = req.tp_frame_nr;
  p->ringBytes_ = size_t{block} * blocks;
  void* ring = ::mmap(nullptr, p->ringBytes_, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd_, 0);
  if (ring == MAP_FAILED) return sysError(interface + ": mmap of the RX ring");
  p->ring_ = static_cast<uint8_t*>(ring);

  sockaddr_ll addr{};
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = htons(ETH_P_ALL);
  addr.sll_ifindex = p->ifindex_;
  if (::bind(p->fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    return sysError("binding the packet socket to " + interface);

  ifreq ifr{};
  std::strncpy(ifr.ifr_name, interface.c_str(), IFNAMSIZ - 1);
  if (::ioctl(p->fd_, SIOCGIFHWADDR, &ifr) != 0) return sysError(interface + ": its MAC");
  std::memcpy(p->mac_.bytes.data(), ifr.ifr_hwaddr.sa_data, 6);
  return p;
}

PodPort::~PodPort() {
  if (ring_ != nullptr) ::munmap(ring_, ringBytes_);
  if (fd_ >= 0) ::close(fd_);
}

namespace {

constexpr unsigned kMaxChain = 64;  // segments of one received packet (64 KiB in 2 KiB mbufs)

// A chain of mbufs from `pool` with room for `length` bytes, all data_len 0; nullptr if the
// pool has too few.
rte_mbuf* allocateChain(rte_mempool* pool, uint32_t length) {
  rte_mbuf* segs[kMaxChain];
  const uint32_t dataRoom = rte_pktmbuf_data_room_size(pool);
  const uint32_t firstRoom = dataRoom - RTE_PKTMBUF_HEADROOM;
  const uint32_t count =
      length <= firstRoom ? 1 : 1 + (length - firstRoom + dataRoom - 1) / dataRoom;
  if (count > kMaxChain || rte_pktmbuf_alloc_bulk(pool, segs, count) != 0) return nullptr;
  for (uint32_t i = 1; i < count; ++i) {
    segs[i]->data_off = 0;
    segs[i - 1]->next = segs[i];
  }
  segs[0]->nb_segs = static_cast<uint16_t>(count);
  return segs[0];
}

// Sets the segments' lengths for `length` bytes written into the chain's rooms in order.
void setChainLength(rte_mbuf* head, uint32_t length) {
  head->pkt_len = length;
  for (rte_mbuf* s = head; s != nullptr; s = s->next) {
    const uint32_t chunk = std::min<uint32_t>(length, rte_pktmbuf_tailroom(s));
    s->data_len = static_cast<uint16_t>(chunk);
    length -= chunk;
  }
}

}  // namespace

DropReason PodPort::takeFrame(const tpacket2_hdr* hdr, uint32_t status, rte_mbuf* head) {
  const uint8_t* data = reinterpret_cast<const uint8_t*>(hdr) + hdr->tp_mac;
  const uint32_t length = hdr->tp_len;
  VnetHeader vnet;
  if (status & TP_STATUS_COPY) {
    // Larger than a ring frame (a super-packet): the kernel queued the whole of it on the
    // socket as well. Read it straight into the chain, its virtio-net header in front.
    iovec iov[1 + kMaxChain];
    unsigned used = 0;
    iov[used++] = iovec{&vnet, sizeof(vnet)};
    for (rte_mbuf* s = head; s != nullptr; s = s->next)
      iov[used++] = iovec{rte_pktmbuf_mtod(s, void*), rte_pktmbuf_tailroom(s)};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = used;
    const ssize_t r = ::recvmsg(fd_, &msg, MSG_DONTWAIT);
    if (r != static_cast<ssize_t>(sizeof(vnet) + length) || (msg.msg_flags & MSG_TRUNC))
      return DropReason::kPodFrameTruncated;
  } else {
    if (hdr->tp_snaplen != length) return DropReason::kPodFrameTruncated;  // no room to queue it
    // The kernel writes the virtio-net header just in front of the frame.
    std::memcpy(&vnet, data - sizeof(vnet), sizeof(vnet));
    uint32_t copied = 0;
    for (rte_mbuf* s = head; s != nullptr && copied < length; s = s->next) {
      const uint32_t chunk = std::min<uint32_t>(length - copied, rte_pktmbuf_tailroom(s));
      std::memcpy(rte_pktmbuf_mtod(s, uint8_t*), data + copied, chunk);
      copied += chunk;
    }
  }
  setChainLength(head, length);
  return vnetToMbuf(vnet, length, head);
}

uint16_t PodPort::receive(rte_mempool* pool, uint16_t port, rte_mbuf** pkts, uint16_t max,
                          WorkerCounters& counters) {
  uint16_t n = 0;
  uint64_t bytes = 0;
  while (n < max) {
    auto* hdr = reinterpret_cast<tpacket2_hdr*>(ring_ + size_t{next_} * frameSize_);
    const uint32_t status = __atomic_load_n(&hdr->tp_status, __ATOMIC_ACQUIRE);
    if (!(status & TP_STATUS_USER)) break;  // the kernel has not filled it: nothing more now
    const uint32_t length = hdr->tp_len;
    rte_mbuf* head = allocateChain(pool, length);
    DropReason refused = DropReason::kPodRxNoMbuf;
    if (head != nullptr)
      refused = takeFrame(hdr, status, head);
    else if (status & TP_STATUS_COPY)  // the queued copy goes too
      (void)::recv(fd_, nullptr, 0, MSG_DONTWAIT | MSG_TRUNC);
    __atomic_store_n(&hdr->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    next_ = next_ + 1 == frames_ ? 0 : next_ + 1;
    if (refused != DropReason::kNone) {
      if (head != nullptr) rte_pktmbuf_free(head);
      counters.drop(refused);
      continue;
    }
    head->port = port;
    // The kernel took an 802.1Q tag off (a tagged frame from a pod): the parser drops it.
    if (status & TP_STATUS_VLAN_VALID) head->ol_flags |= RTE_MBUF_F_RX_VLAN_STRIPPED;
    pkts[n++] = head;
    bytes += length;
  }
  if (n != 0) {
    bump(rxPackets_, n);
    bump(rxBytes_, bytes);
  }
  return n;
}

uint16_t PodPort::transmit(rte_mbuf* const* pkts, uint16_t n, WorkerCounters& counters) {
  constexpr uint16_t kBatch = 64;
  mmsghdr msgs[kBatch];
  VnetHeader vnet[kBatch];
  iovec iov[kMaxIov];
  uint16_t done = 0, sent = 0;
  while (done < n) {
    // A batch: as many packets as the message and iovec arrays hold.
    unsigned used = 0;
    uint16_t count = 0;
    for (; done + count < n && count < kBatch; ++count) {
      const rte_mbuf* m = pkts[done + count];
      if (used + 1 + m->nb_segs > kMaxIov) break;  // in the next batch
      vnet[count] = vnetFromMbuf(m);
      msgs[count] = mmsghdr{};
      msgs[count].msg_hdr.msg_iov = &iov[used];
      iov[used++] = iovec{&vnet[count], sizeof(VnetHeader)};
      for (const rte_mbuf* s = m; s != nullptr; s = s->next)
        iov[used++] = iovec{rte_pktmbuf_mtod(s, void*), s->data_len};
      msgs[count].msg_hdr.msg_iovlen = 1 + m->nb_segs;
    }
    const int r = ::sendmmsg(fd_, msgs, count, MSG_DONTWAIT);
    if (r > 0) {
      done = static_cast<uint16_t>(done + r);
      sent = static_cast<uint16_t>(sent + r);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno != EAGAIN && errno != ENOBUFS && errno != ENETDOWN && errno != ENXIO) {
      // The kernel refused this one packet (its virtio-net header, its size): the rest may go.
      counters.drop(DropReason::kPodTxRefused);
      ++done;
      continue;
    }
    break;  // the socket is full, or the interface down or gone
  }
  if (done < n) counters.drop(DropReason::kTxQueueFull, n - done);
  return sent;
}

PodPortStats PodPort::stats() {
  tpacket_stats st{};
  socklen_t len = sizeof(st);
  if (::getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) rxDropped_ += st.tp_drops;
  return PodPortStats{load(rxPackets_), load(rxBytes_), rxDropped_};
}

}  // namespace nodeplane::dataplane
