// ESP tunnel mode with AES-GCM: decapsulation against the known-answer packet of
// draft-mcgrew-gcm-test-01 (test case 2: AES-128, SPI 0xa5f8, sequence 1), encapsulation checked
// by an independent AES-GCM (OpenSSL's EVP, not the cryptodev), a round trip, the anti-replay
// window (every bit position of its buckets), a forged ICV, a wrong key, and the key derivation.
#include "overlay/esp.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <rte_ether.h>
#include <rte_ip.h>

#include <cstring>
#include <vector>

#include "tests/unit/support/packet_builder.h"

namespace nodeplane::testing {
namespace {

using overlay::EspDevice;
using overlay::EspKey;
using overlay::EspSa;
using overlay::EspSaSpec;

// draft-mcgrew-gcm-test-01, test case 2 (AES-128): the inner packet and the ESP packet.
const Bytes kInner = {0x45, 0x00, 0x00, 0x3e, 0x69, 0x8f, 0x00, 0x00, 0x80, 0x11, 0x4d, 0xcc, 0xc0,
                      0xa8, 0x01, 0x02, 0xc0, 0xa8, 0x01, 0x01, 0x0a, 0x98, 0x00, 0x35, 0x00, 0x2a,
                      0x23, 0x43, 0xb2, 0xd0, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
                      0x00, 0x03, 0x73, 0x69, 0x70, 0x09, 0x63, 0x79, 0x62, 0x65, 0x72, 0x63, 0x69,
                      0x74, 0x79, 0x02, 0x64, 0x6b, 0x00, 0x00, 0x01, 0x00, 0x01};
const Bytes kEsp = {0x45, 0x00, 0x00, 0x74, 0x69, 0x8f, 0x00, 0x00, 0x80, 0x32, 0x4d, 0x75, 0xc0,
                    0xa8, 0x01, 0x02, 0xc0, 0xa8, 0x01, 0x01, 0x00, 0x00, 0xa5, 0xf8, 0x00, 0x00,
                    0x00, 0x01, 0xfa, 0xce, 0xdb, 0xad, 0xde, 0xca, 0xf8, 0x88, 0xde, 0xb2, 0x2c,
                    0xd9, 0xb0, 0x7c, 0x72, 0xc1, 0x6e, 0x3a, 0x65, 0xbe, 0xeb, 0x8d, 0xf3, 0x04,
                    0xa5, 0xa5, 0x89, 0x7d, 0x33, 0xae, 0x53, 0x0f, 0x1b, 0xa7, 0x6d, 0x5d, 0x11,
                    0x4d, 0x2a, 0x5c, 0x3d, 0xe8, 0x18, 0x27, 0xc1, 0x0e, 0x9a, 0x4f, 0x51, 0x33,
                    0x0d, 0x0e, 0xec, 0x41, 0x66, 0x42, 0xcf, 0xbb, 0x85, 0xa5, 0xb4, 0x7e, 0x48,
                    0xa4, 0xec, 0x3b, 0x9b, 0xa9, 0x5d, 0x91, 0x8b, 0xd4, 0x29, 0xc7, 0x37, 0x57,
                    0x9f, 0xf1, 0x9e, 0x58, 0xcf, 0xfc, 0x60, 0x7a, 0x3b, 0xce, 0x89, 0x94};

EspKey vectorKey() {
  EspKey k;
  const uint8_t key[16] = {0xfe, 0xff, 0xe9, 0x92, 0x86, 0x65, 0x73, 0x1c,
                           0x6d, 0x6a, 0x8f, 0x94, 0x67, 0x30, 0x83, 0x08};
  std::memcpy(k.bytes.data(), key, 16);
  k.length = 16;
  k.salt = {0xca, 0xfe, 0xba, 0xbe};
  return k;
}

Bytes withEthernet(const Bytes& ip) {
  Bytes frame = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00};
  frame.insert(frame.end(), ip.begin(), ip.end());
  return frame;
}

// The ESP payload decrypted by OpenSSL directly: nonce = salt || IV, AAD = SPI || sequence.
bool openWithOpenssl(const EspKey& key, const Bytes& espPacket, size_t espOffset, Bytes* plain) {
  const uint8_t* esp = espPacket.data() + espOffset;
  const size_t total = espPacket.size() - espOffset;
  if (total < 8 + 8 + 16) return false;
  uint8_t nonce[12];
  std::memcpy(nonce, key.salt.data(), 4);
  std::memcpy(nonce + 4, esp + 8, 8);
  const uint8_t* cipher = esp + 16;
  const int cipherLength = static_cast<int>(total - 16 - 16);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int n = 0;
  plain->resize(static_cast<size_t>(cipherLength));
  bool ok = EVP_DecryptInit_ex(ctx, key.length == 16 ? EVP_aes_128_gcm() : EVP_aes_256_gcm(),
                               nullptr, nullptr, nullptr) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) == 1 &&
            EVP_DecryptInit_ex(ctx, nullptr, nullptr, key.bytes.data(), nonce) == 1 &&
            EVP_DecryptUpdate(ctx, nullptr, &n, esp, 8) == 1 &&
            EVP_DecryptUpdate(ctx, plain->data(), &n, cipher, cipherLength) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16,
                                const_cast<uint8_t*>(esp + total - 16)) == 1;
  int last = 0;
  ok = ok && EVP_DecryptFinal_ex(ctx, plain->data() + n, &last) == 1;
  EVP_CIPHER_CTX_free(ctx);
  return ok;
}

class EspTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = EspDevice::open(0);
    ASSERT_TRUE(d.ok()) << d.error().message;
    device = std::move(*d);
  }
  std::unique_ptr<EspSa> sa(const EspKey& key, bool outbound, uint32_t window = 64,
                            uint32_t spi = 0xa5f8) {
    EspSaSpec spec;
    spec.spi = spi;
    spec.key = key;
    spec.outbound = outbound;
    spec.localAddress = *Ipv4Address::parse("192.168.1.2");
    spec.remoteAddress = *Ipv4Address::parse("192.168.1.1");
    spec.localMac = *MacAddress::parse("02:00:00:00:00:01");
    spec.remoteMac = *MacAddress::parse("02:00:00:00:00:02");
    spec.replayWindow = window;
    auto s = EspSa::create(*device, spec);
    EXPECT_TRUE(s.ok()) << s.error().message;
    return s.ok() ? std::move(*s) : nullptr;
  }
  std::unique_ptr<EspDevice> device;
};

TEST_F(EspTest, DecapsulatesTheKnownAnswerPacket) {
  auto in = sa(vectorKey(), false);
  ASSERT_NE(in, nullptr);
  rte_mbuf* m = makeMbuf(withEthernet(kEsp));
  uint16_t replayed = 9;
  ASSERT_EQ(in->process(&m, 1, &replayed), 1);
  EXPECT_EQ(replayed, 0);
  Bytes out = mbufBytes(m);
  Bytes want = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00};
  want.insert(want.end(), kInner.begin(), kInner.end());
  EXPECT_EQ(out, want);
  rte_pktmbuf_free(m);
}

TEST_F(EspTest, EncapsulatesWhatAnIndependentAesGcmOpens) {
  auto out = sa(vectorKey(), true);
  ASSERT_NE(out, nullptr);
  for (uint32_t seq = 1; seq <= 3; ++seq) {
    rte_mbuf* m = makeMbuf(withEthernet(kInner));
    ASSERT_EQ(out->process(&m, 1), 1);
    const Bytes frame = mbufBytes(m);
    rte_pktmbuf_free(m);
    ASSERT_GE(frame.size(), 14u + 20 + 8 + 8 + kInner.size() + 2 + 16);
    EXPECT_EQ(get16(frame, 12), RTE_ETHER_TYPE_IPV4);
    EXPECT_EQ(frame[0], 0x02);
    EXPECT_EQ(frame[5], 0x02) << "to the peer's MAC";
    const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(frame.data() + 14);
    EXPECT_EQ(ip->next_proto_id, IPPROTO_ESP);
    EXPECT_EQ(ip->time_to_live, 64);
    EXPECT_EQ(rte_be_to_cpu_16(ip->fragment_offset), RTE_IPV4_HDR_DF_FLAG);
    EXPECT_EQ(rte_be_to_cpu_16(ip->total_length), frame.size() - 14);
    rte_ipv4_hdr copy = *ip;
    copy.hdr_checksum = 0;
    EXPECT_EQ(rte_ipv4_cksum(&copy), ip->hdr_checksum);
    EXPECT_EQ(get32(frame, 26), Ipv4Address::parse("192.168.1.2")->value);
    EXPECT_EQ(get32(frame, 30), Ipv4Address::parse("192.168.1.1")->value);
    EXPECT_EQ(get32(frame, 34), 0xa5f8u) << "SPI";
    EXPECT_EQ(get32(frame, 38), seq) << "sequence numbers count from 1";
    Bytes plain;
    ASSERT_TRUE(openWithOpenssl(vectorKey(), frame, 34, &plain)) << "the ICV verifies";
    ASSERT_GE(plain.size(), kInner.size() + 2);
    EXPECT_TRUE(std::equal(kInner.begin(), kInner.end(), plain.begin()));
    EXPECT_EQ(plain.back(), IPPROTO_IPIP) << "next header: IPv4";
    const uint8_t padLength = plain[plain.size() - 2];
    EXPECT_EQ(plain.size(), kInner.size() + padLength + 2u);
    EXPECT_EQ(plain.size() % 4, 0u);
  }
}

TEST_F(EspTest, RoundTripsAndRefusesReplaysAndForgeries) {
  auto key = overlay::deriveEspKey("a secret both clusters hold", "east->west/0");
  ASSERT_TRUE(key.ok()) << key.error().message;
  auto out = sa(*key, true, 0, 4242);
  auto in = sa(*key, false, 64, 4242);
  ASSERT_TRUE(out && in);
  std::vector<Bytes> sealed;
  const Bytes inner =
      PacketBuilder().ipv4("10.244.1.2", "10.244.2.3").tcp(40000, 80, 0x18).payload(1400).build();
  for (int i = 0; i < 100; ++i) {
    rte_mbuf* m = makeMbuf(withEthernet(inner));
    ASSERT_EQ(out->process(&m, 1), 1);
    sealed.push_back(mbufBytes(m));
    rte_pktmbuf_free(m);
  }
  auto open = [&](const Bytes& frame, uint16_t* replayed) {
    rte_mbuf* m = makeMbuf(frame);
    const uint16_t ok = in->process(&m, 1, replayed);
    Bytes got = ok ? mbufBytes(m) : Bytes{};
    rte_pktmbuf_free(m);
    return got;
  };
  uint16_t replayed = 0;
  Bytes got = open(sealed[99], &replayed);  // sequence 100 first
  ASSERT_FALSE(got.empty());
  EXPECT_TRUE(std::equal(inner.begin(), inner.end(), got.begin() + 14));
  EXPECT_EQ(got.size(), inner.size() + 14);
  EXPECT_TRUE(open(sealed[99], &replayed).empty()) << "100 again";
  EXPECT_FALSE(open(sealed[60], &replayed).empty()) << "61: inside the 64-packet window";
  EXPECT_TRUE(open(sealed[60], &replayed).empty()) << "61 again: a replay";
  EXPECT_EQ(replayed, 1);
  EXPECT_TRUE(open(sealed[9], &replayed).empty()) << "10: behind the window";
  EXPECT_EQ(replayed, 1);

  Bytes forged = sealed[98];
  forged[14 + 20 + 16 + 5] ^= 0x01;  // one ciphertext bit
  EXPECT_TRUE(open(forged, &replayed).empty());
  EXPECT_EQ(replayed, 0) << "a bad ICV, not a replay";
  EXPECT_FALSE(open(sealed[98], &replayed).empty()) << "the forgery did not burn 99";

  // The same packet twice in one burst: once.
  rte_mbuf* both[2] = {makeMbuf(sealed[97]), makeMbuf(sealed[97])};
  EXPECT_EQ(in->process(both, 2, &replayed), 1);
  EXPECT_EQ(replayed, 1);
  rte_pktmbuf_free(both[0]);
  rte_pktmbuf_free(both[1]);

  // Another key (the other direction's) opens nothing.
  auto other = overlay::deriveEspKey("a secret both clusters hold", "west->east/0");
  ASSERT_TRUE(other.ok());
  auto wrong = sa(*other, false, 64, 4242);
  rte_mbuf* m = makeMbuf(sealed[96]);
  EXPECT_EQ(wrong->process(&m, 1, &replayed), 0);
  rte_pktmbuf_free(m);
}

TEST(ReplayWindowTest, AcceptsEachNumberOnceInsideTheWindowAndNothingBehindIt) {
  overlay::ReplayWindow w(64);
  EXPECT_FALSE(w.acceptable(0)) << "sequence numbers start at 1";
  // Every position of a bucket, upper half included (DPDK's own window misses 32-63).
  for (uint64_t seq : {1u, 31u, 32u, 63u, 64u, 100u}) {
    ASSERT_TRUE(w.acceptable(seq)) << seq;
    w.mark(seq);
    EXPECT_FALSE(w.acceptable(seq)) << seq << " again";
  }
  EXPECT_TRUE(w.acceptable(99));
  EXPECT_TRUE(w.acceptable(37)) << "100 - 63: the oldest still in the window";
  EXPECT_FALSE(w.acceptable(36)) << "behind the window";
  w.mark(100000);  // far ahead: the whole window is new
  EXPECT_TRUE(w.acceptable(99999));
  EXPECT_FALSE(w.acceptable(100000));
  EXPECT_FALSE(w.acceptable(100));
  EXPECT_EQ(w.highest(), 100000u);
}

TEST(EspKeyTest, DerivationIsDeterministicPerContextAndChecksItsInput) {
  auto a = overlay::deriveEspKey("secret", "east->west/0");
  auto b = overlay::deriveEspKey("secret", "east->west/0");
  auto c = overlay::deriveEspKey("secret", "east->west/1");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->bytes, b->bytes);
  EXPECT_EQ(a->salt, b->salt);
  EXPECT_NE(a->bytes, c->bytes);
  auto wide = overlay::deriveEspKey("secret", "east->west/0", 256);
  ASSERT_TRUE(wide.ok());
  EXPECT_EQ(wide->length, 32);
  EXPECT_FALSE(overlay::deriveEspKey("", "x").ok());
  EXPECT_FALSE(overlay::deriveEspKey("secret", "x", 192).ok());
}

}  // namespace
}  // namespace nodeplane::testing
