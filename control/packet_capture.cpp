#include "control/packet_capture.h"

#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "core/base64.h"
#include "dataplane/capture.h"

namespace nodeplane::control {

namespace dp = dataplane;

PacketCapture::~PacketCapture() {
  if (session_ != 0) backend_.removeCapture();
}

Result<uint16_t> PacketCapture::portNamed(const std::string& name, std::string* canonical) const {
  *canonical = name;
  if (name == "uplink" && node_.uplink()) return node_.uplink()->id;
  if (name == "host" && node_.hostPort()) return node_.hostPort()->port.id;
  for (const AttachedPod& pod : node_.pods()) {
    if (name == pod.spec.namespaceName + "/" + pod.spec.name || name == pod.port.name)
      return pod.port.id;
  }
  if (node_.uplink() && name == node_.uplink()->name) return node_.uplink()->id;
  if (node_.hostPort() && name == node_.hostPort()->port.name) return node_.hostPort()->port.id;
  return makeError(ErrorCode::kNotFound,
                   "port: no port '" + name + "' (npctl ports: uplink, host or a pod's NS/NAME)");
}

Result<Json> PacketCapture::start(const ArgReader& args) {
  auto port = args.string("port");
  if (!port) return port.error();
  dp::CaptureSpec spec;
  std::string canonical;
  auto id = portNamed(*port, &canonical);
  if (!id) return id.error();
  spec.port = *id;
  if (args.has("filter")) {
    auto f = args.string("filter");
    if (!f) return f.error();
    spec.filter = *f;
  }
  if (args.has("snaplen")) {
    auto s = args.integer("snaplen", 64, 65535);
    if (!s) return s.error();
    spec.snaplen = static_cast<uint32_t>(*s);
  }
  std::string direction = "both";
  if (args.has("direction")) {
    auto d = args.string("direction");
    if (!d) return d.error();
    if (*d != "rx" && *d != "tx" && *d != "both")
      return invalidArgument("direction: '" + *d + "' is not rx, tx or both");
    direction = *d;
  }
  spec.rx = direction != "tx";
  spec.tx = direction != "rx";
  if (session_ != 0)
    return makeError(ErrorCode::kAlreadyExists, "a capture is running on " + interface_ +
                                                    " (one at a time; it ends " +
                                                    "when its npctl stops)");
  auto session = dp::CaptureSession::create(spec, backend_.workerCount(), backend_.socketId());
  if (!session) return session.error();
  baseTsc_ = rte_rdtsc();
  baseUnixNs_ = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  if (auto st = backend_.installCapture(std::move(*session)); !st) return st.error();
  session_ = nextSession_++;
  interface_ = canonical;
  delivered_ = 0;
  lastRead_ = std::chrono::steady_clock::now();
  spdlog::info("capture {} started on {} ({}{})", session_, interface_, direction,
               spec.filter.empty() ? "" : ", filter '" + spec.filter + "'");
  return Json{{"session", session_},
              {"interface", interface_},
              {"direction", direction},
              {"snaplen", std::clamp<uint32_t>(spec.snaplen, 64, 65535)},
              {"linkType", "EN10MB"}};
}

Status PacketCapture::checkSession(const ArgReader& args) const {
  auto s = args.integer("session", 1, INT64_MAX);
  if (!s) return s.error();
  if (session_ == 0 || static_cast<uint64_t>(*s) != session_)
    return makeError(ErrorCode::kNotFound,
                     "session: no capture session " + std::to_string(*s) +
                         " (it ended, or went unread for " +
                         std::to_string(std::chrono::seconds(kIdleTimeout).count()) + " s)");
  return okStatus();
}

Result<Json> PacketCapture::read(const ArgReader& args) {
  if (auto st = checkSession(args); !st) return st.error();
  dp::CaptureSession* session = backend_.capture();
  lastRead_ = std::chrono::steady_clock::now();
  Json packets = Json::array();
  size_t bytes = 0;
  const double nsPerTick = 1e9 / static_cast<double>(session->tscHz());
  dp::CapturedPacket batch[64];
  while (bytes < kMaxReplyBytes) {
    const unsigned n = session->drain(batch, 64);
    for (unsigned i = 0; i < n; ++i) {
      rte_mbuf* m = batch[i].mbuf;
      std::string data(m->pkt_len, '\0');
      const void* p = rte_pktmbuf_read(m, 0, m->pkt_len, data.data());
      if (p != data.data()) std::memcpy(data.data(), p, m->pkt_len);
      rte_pktmbuf_free(m);
      bytes += data.size();
      const auto delta = static_cast<int64_t>(batch[i].tsc - baseTsc_);
      packets.push_back(
          {{"unixNs", baseUnixNs_ + static_cast<int64_t>(static_cast<double>(delta) * nsPerTick)},
           {"direction", batch[i].direction == dp::CaptureDirection::kRx ? "rx" : "tx"},
           {"length", batch[i].length},
           {"data", base64Encode(data)}});
    }
    delivered_ += n;
    if (n < 64) break;
  }
  return Json{{"packets", packets}, {"captured", session->captured()}, {"lost", session->lost()}};
}

Json PacketCapture::finish() {
  dp::CaptureSession* session = backend_.capture();
  Json out = {{"interface", interface_},
              {"captured", session ? session->captured() : 0},
              {"lost", session ? session->lost() : 0},
              {"delivered", delivered_}};
  spdlog::info("capture {} on {} stopped: {} captured, {} lost, {} delivered", session_, interface_,
               out["captured"].get<uint64_t>(), out["lost"].get<uint64_t>(), delivered_);
  backend_.removeCapture();
  session_ = 0;
  return out;
}

Result<Json> PacketCapture::stop(const ArgReader& args) {
  if (auto st = checkSession(args); !st) return st.error();
  return finish();
}

void PacketCapture::expireIdle(std::chrono::steady_clock::time_point now) {
  if (session_ != 0 && now - lastRead_ > kIdleTimeout) {
    spdlog::warn("capture {} on {}: unread for {} s, stopped", session_, interface_,
                 std::chrono::seconds(kIdleTimeout).count());
    (void)finish();
  }
}

}  // namespace nodeplane::control
