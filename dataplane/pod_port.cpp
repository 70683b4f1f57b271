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

namespace nodeplane::dataplane {

namespace {

constexpr uint32_t kPage = 4096;
constexpr unsigned kMaxIov = 512;  // segments of one transmit call, all packets together

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
  // What we send is not received again; the veth has no queue to bypass the qdisc of.
  if (::setsockopt(p->fd_, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) != 0)
    return sysError(interface + ": PACKET_IGNORE_OUTGOING");
  (void)::setsockopt(p->fd_, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));

  // Frames: a power of two holding the TPACKET header and the largest frame; blocks of at least
  // a page, whole frames each.
  uint32_t frame = 2048;
  while (frame < options.frameSize) frame <<= 1;
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

uint16_t PodPort::receive(rte_mempool* pool, uint16_t port, rte_mbuf** pkts, uint16_t max) {
  uint16_t n = 0;
  uint64_t bytes = 0;
  while (n < max) {
    auto* hdr = reinterpret_cast<tpacket2_hdr*>(ring_ + size_t{next_} * frameSize_);
    const uint32_t status = __atomic_load_n(&hdr->tp_status, __ATOMIC_ACQUIRE);
    if (!(status & TP_STATUS_USER)) break;  // the kernel has not filled it: nothing more now
    const uint8_t* data = reinterpret_cast<const uint8_t*>(hdr) + hdr->tp_mac;
    const uint32_t length = hdr->tp_snaplen;
    if (length != hdr->tp_len) {  // cut at the frame size: larger than the pod's MTU allows
      __atomic_store_n(&hdr->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
      next_ = next_ + 1 == frames_ ? 0 : next_ + 1;
      bump(rxTruncated_, 1);
      continue;
    }
    rte_mbuf* head = rte_pktmbuf_alloc(pool);
    rte_mbuf* tail = head;
    uint32_t copied = 0;
    while (tail != nullptr && copied < length) {
      const uint32_t chunk = std::min<uint32_t>(length - copied, rte_pktmbuf_tailroom(tail));
      std::memcpy(rte_pktmbuf_mtod_offset(tail, uint8_t*, tail->data_len), data + copied, chunk);
      tail->data_len = static_cast<uint16_t>(tail->data_len + chunk);
      copied += chunk;
      if (copied < length) {  // larger than one mbuf: chain another
        rte_mbuf* next = rte_pktmbuf_alloc(pool);
        if (next != nullptr) next->data_off = 0;
        tail->next = next;
        if (next != nullptr) ++head->nb_segs;
        tail = next;
      }
    }
    __atomic_store_n(&hdr->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    next_ = next_ + 1 == frames_ ? 0 : next_ + 1;
    if (head == nullptr || tail == nullptr) {
      if (head != nullptr) rte_pktmbuf_free(head);
      bump(rxNoMbuf_, 1);
      continue;
    }
    head->pkt_len = length;
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

uint16_t PodPort::transmit(rte_mbuf* const* pkts, uint16_t n) {
  mmsghdr msgs[64];
  iovec iov[kMaxIov];
  unsigned used = 0;
  uint16_t count = 0;
  for (; count < n && count < 64; ++count) {
    const rte_mbuf* m = pkts[count];
    if (used + m->nb_segs > kMaxIov) break;  // the rest in the caller's next call
    msgs[count] = mmsghdr{};
    msgs[count].msg_hdr.msg_iov = &iov[used];
    for (const rte_mbuf* s = m; s != nullptr; s = s->next)
      iov[used++] = iovec{rte_pktmbuf_mtod(s, void*), s->data_len};
    msgs[count].msg_hdr.msg_iovlen = m->nb_segs;
  }
  uint16_t sent = 0;
  while (sent < count) {
    const int r = ::sendmmsg(fd_, msgs + sent, count - sent, MSG_DONTWAIT);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      break;  // full (EAGAIN) or gone: the caller counts the rest
    }
    sent = static_cast<uint16_t>(sent + r);
  }
  return sent;
}

PodPortStats PodPort::stats() {
  tpacket_stats st{};
  socklen_t len = sizeof(st);
  if (::getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) rxDropped_ += st.tp_drops;
  return PodPortStats{load(rxPackets_), load(rxBytes_), rxDropped_, load(rxNoMbuf_),
                      load(rxTruncated_)};
}

}  // namespace nodeplane::dataplane
