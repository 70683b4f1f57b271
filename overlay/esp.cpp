#include "overlay/esp.h"

#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <rte_cryptodev.h>
#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_ipsec.h>
#include <rte_malloc.h>

#include <algorithm>
#include <atomic>
#include <cstring>

namespace nodeplane::overlay {

namespace {

constexpr uint32_t kSessions = 1024;  // SAs per device at most
constexpr uint16_t kIvOffset = sizeof(rte_crypto_op) + sizeof(rte_crypto_sym_op);

std::string dpdkError(const std::string& what) {
  return what + ": " + rte_strerror(rte_errno);
}

}  // namespace

Result<EspKey> deriveEspKey(std::string_view secret, std::string_view context, unsigned keyBits) {
  if (secret.empty()) return invalidArgument("ESP key: the shared secret is empty");
  if (keyBits != 128 && keyBits != 256)
    return invalidArgument("ESP key: " + std::to_string(keyBits) + " bits (128 or 256)");
  EspKey key;
  key.length = static_cast<uint8_t>(keyBits / 8);
  uint8_t out[36];
  const size_t outLength = key.length + key.salt.size();
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr);
  const bool ok =
      ctx != nullptr && EVP_PKEY_derive_init(ctx) > 0 &&
      EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) > 0 &&
      EVP_PKEY_CTX_set1_hkdf_salt(ctx, reinterpret_cast<const unsigned char*>("nodeplane-esp"),
                                  13) > 0 &&
      EVP_PKEY_CTX_set1_hkdf_key(ctx, reinterpret_cast<const unsigned char*>(secret.data()),
                                 static_cast<int>(secret.size())) > 0 &&
      EVP_PKEY_CTX_add1_hkdf_info(ctx, reinterpret_cast<const unsigned char*>(context.data()),
                                  static_cast<int>(context.size())) > 0;
  size_t length = outLength;
  const bool derived = ok && EVP_PKEY_derive(ctx, out, &length) > 0 && length == outLength;
  EVP_PKEY_CTX_free(ctx);
  if (!derived) {
    char why[256] = "unknown";
    ERR_error_string_n(ERR_get_error(), why, sizeof(why));
    return makeError(ErrorCode::kInternal, std::string("ESP key: HKDF-SHA256 failed: ") + why);
  }
  std::memcpy(key.bytes.data(), out, key.length);
  std::memcpy(key.salt.data(), out + key.length, key.salt.size());
  OPENSSL_cleanse(out, sizeof(out));
  return key;
}

Result<std::unique_ptr<EspDevice>> EspDevice::open(int socketId) {
  static std::atomic<uint32_t> sequence{0};
  std::unique_ptr<EspDevice> d(new EspDevice());
  d->driver_ = "crypto_aesni_gcm";
  d->name_ = d->driver_ + std::to_string(sequence.fetch_add(1));
  const std::string args = "max_nb_queue_pairs=1,socket_id=" + std::to_string(socketId);
  if (rte_dev_probe((d->name_ + "," + args).c_str()) != 0)
    return makeError(ErrorCode::kUnavailable,
                     "ESP: cannot create the " + d->driver_ +
                         " crypto device (Debian: librte-crypto-ipsec-mb23 and libipsec-mb1)");
  d->probed_ = true;
  const int id = rte_cryptodev_get_dev_id(d->name_.c_str());
  if (id < 0) return makeError(ErrorCode::kInternal, "ESP: " + d->name_ + " has no device id");
  d->id_ = static_cast<uint8_t>(id);
  rte_cryptodev_info info{};
  rte_cryptodev_info_get(d->id_, &info);
  if (!(info.feature_flags & RTE_CRYPTODEV_FF_SYM_CPU_CRYPTO))
    return makeError(ErrorCode::kUnavailable, "ESP: " + d->driver_ + " has no CPU crypto");
  rte_cryptodev_config config{};
  config.socket_id = socketId;
  config.nb_queue_pairs = 1;
  rte_cryptodev_qp_conf qp{};
  qp.nb_descriptors = 128;
  const std::string pool = "np_esp_ses" + std::to_string(d->id_);
  d->sessionPool_ = rte_cryptodev_sym_session_pool_create(
      pool.c_str(), kSessions, rte_cryptodev_sym_get_private_session_size(d->id_), 0, 0, socketId);
  if (d->sessionPool_ == nullptr)
    return makeError(ErrorCode::kResourceExhausted, dpdkError("ESP session pool"));
  if (rte_cryptodev_configure(d->id_, &config) != 0 ||
      rte_cryptodev_queue_pair_setup(d->id_, 0, &qp, socketId) != 0 ||
      rte_cryptodev_start(d->id_) != 0)
    return makeError(ErrorCode::kInternal, "ESP: " + d->name_ + " does not start");
  d->started_ = true;
  return d;
}

EspDevice::~EspDevice() {
  if (started_) rte_cryptodev_stop(id_);
  if (probed_) {
    rte_cryptodev_close(id_);
    rte_eal_hotplug_remove("vdev", name_.c_str());
  }
  rte_mempool_free(sessionPool_);
}

Result<std::unique_ptr<EspSa>> EspSa::create(EspDevice& device, const EspSaSpec& spec) {
  if (spec.spi < 256)
    return invalidArgument("ESP SA: SPI " + std::to_string(spec.spi) +
                           " is reserved (RFC 4303: 1-255)");
  if (spec.key.length != 16 && spec.key.length != 32)
    return invalidArgument("ESP SA " + std::to_string(spec.spi) + ": key length " +
                           std::to_string(spec.key.length));
  std::unique_ptr<EspSa> s(new EspSa());
  s->spec_ = spec;
  s->device_ = &device;

  rte_crypto_sym_xform xform{};
  xform.type = RTE_CRYPTO_SYM_XFORM_AEAD;
  xform.aead.op = spec.outbound ? RTE_CRYPTO_AEAD_OP_ENCRYPT : RTE_CRYPTO_AEAD_OP_DECRYPT;
  xform.aead.algo = RTE_CRYPTO_AEAD_AES_GCM;
  xform.aead.key.data = s->spec_.key.bytes.data();
  xform.aead.key.length = spec.key.length;
  xform.aead.iv.offset = kIvOffset;
  xform.aead.iv.length = 12;
  xform.aead.digest_length = 16;
  xform.aead.aad_length = 8;  // SPI and sequence number (no ESN)

  // The outer headers (outbound): Ethernet, IPv4 (DF, TTL 64, protocol ESP); rte_ipsec fills in
  // the total length and identification, the checksum is computed after.
  auto* eth = reinterpret_cast<rte_ether_hdr*>(s->outerTemplate_.data());
  std::memcpy(&eth->src_addr, spec.localMac.bytes.data(), 6);
  std::memcpy(&eth->dst_addr, spec.remoteMac.bytes.data(), 6);
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
  ip->time_to_live = 64;
  ip->next_proto_id = IPPROTO_ESP;
  ip->src_addr = rte_cpu_to_be_32(spec.localAddress.value);
  ip->dst_addr = rte_cpu_to_be_32(spec.remoteAddress.value);

  rte_ipsec_sa_prm prm{};
  prm.crypto_xform = &xform;
  prm.ipsec_xform.spi = spec.spi;
  std::memcpy(&prm.ipsec_xform.salt, spec.key.salt.data(), 4);
  prm.ipsec_xform.direction =
      spec.outbound ? RTE_SECURITY_IPSEC_SA_DIR_EGRESS : RTE_SECURITY_IPSEC_SA_DIR_INGRESS;
  prm.ipsec_xform.proto = RTE_SECURITY_IPSEC_SA_PROTO_ESP;
  prm.ipsec_xform.mode = RTE_SECURITY_IPSEC_SA_MODE_TUNNEL;
  prm.ipsec_xform.tunnel.type = RTE_SECURITY_IPSEC_TUNNEL_IPV4;
  prm.ipsec_xform.replay_win_sz = spec.outbound ? 0 : spec.replayWindow;
  prm.tun.hdr_len = static_cast<uint8_t>(s->outerTemplate_.size());
  prm.tun.hdr_l3_off = sizeof(rte_ether_hdr);
  prm.tun.next_proto = IPPROTO_IPIP;
  prm.tun.hdr = s->outerTemplate_.data();

  const int size = rte_ipsec_sa_size(&prm);
  if (size < 0) return invalidArgument("ESP SA " + std::to_string(spec.spi) + ": not supported");
  s->sa_ = static_cast<rte_ipsec_sa*>(rte_zmalloc("np_esp_sa", size, RTE_CACHE_LINE_SIZE));
  if (s->sa_ == nullptr) return makeError(ErrorCode::kResourceExhausted, "ESP SA: no memory");
  if (rte_ipsec_sa_init(s->sa_, &prm, static_cast<uint32_t>(size)) < 0)
    return invalidArgument("ESP SA " + std::to_string(spec.spi) + ": rte_ipsec_sa_init failed");
  s->cryptoSession_ = rte_cryptodev_sym_session_create(device.id(), &xform, device.sessionPool());
  if (s->cryptoSession_ == nullptr)
    return makeError(ErrorCode::kResourceExhausted, dpdkError("ESP crypto session"));
  s->session_.sa = s->sa_;
  s->session_.type = RTE_SECURITY_ACTION_TYPE_CPU_CRYPTO;
  s->session_.crypto.ses = static_cast<rte_cryptodev_sym_session*>(s->cryptoSession_);
  s->session_.crypto.dev_id = device.id();
  if (rte_ipsec_session_prepare(&s->session_) != 0)
    return makeError(ErrorCode::kInternal, "ESP SA: rte_ipsec_session_prepare failed");
  if (!spec.outbound && spec.replayWindow != 0)
    s->window_ = std::make_unique<ReplayWindow>(spec.replayWindow);
  return s;
}

EspSa::~EspSa() {
  if (cryptoSession_ != nullptr) rte_cryptodev_sym_session_free(device_->id(), cryptoSession_);
  rte_free(sa_);
}

uint16_t EspSa::process(rte_mbuf** pkts, uint16_t count, uint16_t* replayed) {
  count = std::min<uint16_t>(count, 64);
  if (replayed != nullptr) *replayed = 0;
  if (spec_.outbound) {
    for (uint16_t i = 0; i < count; ++i) pkts[i]->l2_len = sizeof(rte_ether_hdr);
    // Sequence numbers, then AES-GCM on this core, then the headers.
    const uint16_t prepared =
        static_cast<uint16_t>(rte_ipsec_pkt_cpu_prepare(&session_, pkts, count));
    const uint16_t done = rte_ipsec_pkt_process(&session_, pkts, prepared);
    for (uint16_t i = 0; i < done; ++i) {
      auto* ip = rte_pktmbuf_mtod_offset(pkts[i], rte_ipv4_hdr*, sizeof(rte_ether_hdr));
      ip->hdr_checksum = 0;
      ip->hdr_checksum = rte_ipv4_cksum(ip);
    }
    // One writer: a plain add, published for the control thread's reads.
    sealed_.store(sealed_.load(std::memory_order_relaxed) + done, std::memory_order_relaxed);
    return done;
  }

  // Inbound: our window first (each packet's sequence number kept in hash.usr), then rte_ipsec's
  // checks and AES-GCM, then the window marked for what authenticated.
  rte_mbuf* candidates[64];
  rte_mbuf* refused[64];
  uint16_t nc = 0, nr = 0;
  for (uint16_t i = 0; i < count; ++i) {
    rte_mbuf* m = pkts[i];
    m->l2_len = sizeof(rte_ether_hdr);
    const uint32_t minimum = sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) + 8;
    if (m->data_len < minimum) {
      refused[nr++] = m;
      continue;
    }
    const auto* ip = rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, sizeof(rte_ether_hdr));
    m->l3_len = (ip->version_ihl & 0xf) * 4u;
    const uint32_t espAt = sizeof(rte_ether_hdr) + m->l3_len;
    if (m->l3_len < sizeof(rte_ipv4_hdr) || m->data_len < espAt + 8) {
      refused[nr++] = m;
      continue;
    }
    rte_be32_t wire;  // the ESP header need not be aligned (IPv4 behind a 14-byte Ethernet)
    std::memcpy(&wire, rte_pktmbuf_mtod_offset(m, const uint8_t*, espAt + 4), sizeof(wire));
    const uint32_t seq = rte_be_to_cpu_32(wire);
    m->hash.usr = seq;
    if (window_ != nullptr && !window_->acceptable(seq))
      refused[nr++] = m;
    else
      candidates[nc++] = m;
  }
  const uint16_t prepared =
      static_cast<uint16_t>(rte_ipsec_pkt_cpu_prepare(&session_, candidates, nc));
  uint16_t replays = static_cast<uint16_t>(nr + (nc - prepared));
  const uint16_t processed = rte_ipsec_pkt_process(&session_, candidates, prepared);
  uint16_t done = 0;
  rte_mbuf* again[64];
  uint16_t na = 0;
  for (uint16_t i = 0; i < processed; ++i) {
    rte_mbuf* m = candidates[i];
    const uint32_t seq = m->hash.usr;
    if (window_ != nullptr) {
      if (!window_->acceptable(seq)) {  // twice in this burst
        again[na++] = m;
        continue;
      }
      window_->mark(seq);
    }
    // The inner packet, behind an Ethernet header the stages fill in.
    auto* eth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_prepend(m, sizeof(rte_ether_hdr)));
    std::memset(eth, 0, sizeof(*eth));
    eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
    m->l2_len = sizeof(rte_ether_hdr);
    pkts[done++] = m;
  }
  replays = static_cast<uint16_t>(replays + na);
  // Then the refused, then the ones whose ICV failed (rte_ipsec left them after the processed).
  uint16_t at = done;
  for (uint16_t i = 0; i < nr; ++i) pkts[at++] = refused[i];
  for (uint16_t i = 0; i < na; ++i) pkts[at++] = again[i];
  for (uint16_t i = prepared; i < nc; ++i) pkts[at++] = candidates[i];
  for (uint16_t i = processed; i < prepared; ++i) pkts[at++] = candidates[i];
  if (replayed != nullptr) *replayed = replays;
  return done;
}

}  // namespace nodeplane::overlay
