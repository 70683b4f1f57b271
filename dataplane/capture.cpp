#include "dataplane/capture.h"

#include <pcap/pcap.h>
#include <rte_bpf.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <algorithm>
#include <atomic>

namespace nodeplane::dataplane {

namespace {

// The filter as eBPF for mbufs: libpcap compiles it (for Ethernet, at the snap length), DPDK
// converts and loads it.
Result<rte_bpf*> compileFilter(const std::string& filter, uint32_t snaplen) {
  pcap_t* pcap = pcap_open_dead(DLT_EN10MB, static_cast<int>(snaplen));
  if (pcap == nullptr) return makeError(ErrorCode::kInternal, "capture: pcap_open_dead failed");
  bpf_program program{};
  if (pcap_compile(pcap, &program, filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
    std::string why = pcap_geterr(pcap);
    pcap_close(pcap);
    return invalidArgument("filter: '" + filter + "': " + why);
  }
  pcap_close(pcap);
  rte_bpf_prm* prm = rte_bpf_convert(&program);
  pcap_freecode(&program);
  if (prm == nullptr)
    return invalidArgument("filter: '" + filter +
                           "': cannot be converted to eBPF: " + rte_strerror(rte_errno));
  rte_bpf* bpf = rte_bpf_load(prm);
  rte_free(prm);
  if (bpf == nullptr)
    return invalidArgument("filter: '" + filter +
                           "': the eBPF program does not load: " + rte_strerror(rte_errno));
  return bpf;
}

}  // namespace

Result<std::unique_ptr<CaptureSession>> CaptureSession::create(const CaptureSpec& spec,
                                                               unsigned workers, int socketId) {
  static std::atomic<uint32_t> sequence{0};
  const std::string id = std::to_string(sequence.fetch_add(1));
  std::unique_ptr<CaptureSession> s(new CaptureSession());
  s->spec_ = spec;
  s->spec_.snaplen = std::clamp<uint32_t>(spec.snaplen, 64, 65535);
  s->workers_ = workers;
  s->counts_.reset(new WorkerCount[workers]);
  s->tscHz_ = rte_get_tsc_hz();
  if (!spec.filter.empty()) {
    auto bpf = compileFilter(spec.filter, s->spec_.snaplen);
    if (!bpf) return bpf.error();
    s->bpf_ = *bpf;
    rte_bpf_jit jit{};
    if (rte_bpf_get_jit(s->bpf_, &jit) == 0) s->jit_ = jit.func;
  }
  s->ring_ = rte_ring_create_elem(("np_cap" + id).c_str(), sizeof(CapturedPacket), kRingSize,
                                  socketId, RING_F_SC_DEQ | RING_F_EXACT_SZ);
  s->pool_ = rte_pktmbuf_pool_create(("np_capmb" + id).c_str(), kMbufs, 0, 0,
                                     RTE_MBUF_DEFAULT_BUF_SIZE, socketId);
  if (s->ring_ == nullptr || s->pool_ == nullptr)
    return makeError(ErrorCode::kResourceExhausted,
                     std::string("capture ring and mbufs: ") + rte_strerror(rte_errno));
  return s;
}

CaptureSession::~CaptureSession() {
  if (ring_ != nullptr) {
    CapturedPacket p;
    while (rte_ring_dequeue_elem(ring_, &p, sizeof(p)) == 0) rte_pktmbuf_free(p.mbuf);
    rte_ring_free(ring_);
  }
  rte_mempool_free(pool_);
  if (bpf_ != nullptr) rte_bpf_destroy(bpf_);
}

void CaptureSession::offer(rte_mbuf* const* pkts, uint16_t count, CaptureDirection d,
                           unsigned worker) {
  uint64_t verdicts[64];
  if (bpf_ != nullptr && jit_ == nullptr)
    rte_bpf_exec_burst(bpf_, reinterpret_cast<void**>(const_cast<rte_mbuf**>(pkts)), verdicts,
                       count);
  const uint64_t now = rte_rdtsc();
  WorkerCount& c = counts_[worker];
  for (uint16_t i = 0; i < count; ++i) {
    if (bpf_ != nullptr) {
      const uint64_t pass = jit_ != nullptr ? jit_(pkts[i]) : verdicts[i];
      if (pass == 0) continue;
    }
    rte_mbuf* copy = rte_pktmbuf_copy(pkts[i], pool_, 0, spec_.snaplen);
    if (copy == nullptr) {
      c.lost.add();
      continue;
    }
    CapturedPacket p{copy, now, pkts[i]->pkt_len, d, {0, 0, 0}};
    if (rte_ring_mp_enqueue_elem(ring_, &p, sizeof(p)) != 0) {
      rte_pktmbuf_free(copy);
      c.lost.add();
      continue;
    }
    c.captured.add();
  }
}

unsigned CaptureSession::drain(CapturedPacket* out, unsigned max) {
  return rte_ring_sc_dequeue_burst_elem(ring_, out, sizeof(CapturedPacket), max, nullptr);
}

uint64_t CaptureSession::captured() const {
  uint64_t n = 0;
  for (unsigned w = 0; w < workers_; ++w) n += counts_[w].captured.read();
  return n;
}

uint64_t CaptureSession::lost() const {
  uint64_t n = 0;
  for (unsigned w = 0; w < workers_; ++w) n += counts_[w].lost.read();
  return n;
}

}  // namespace nodeplane::dataplane
