// Benchmark: ESP tunnel mode with AES-GCM-128 per core (overlay/esp.h: rte_ipsec over the
// crypto_aesni_gcm device's CPU-crypto API), encapsulation and decapsulation of bursts of 32, at
// 64- and 1,400-byte inner IPv4 packets. Cycles per packet net of restoring the frames, and what
// that is on one core in Mpps and Gbit/s of inner packets.
//
//   build/perf/esp_bench
//
// Decapsulation runs the same 32 sealed packets again and again, so its SA has no replay window
// (the window's cost is a few loads and a bit test per packet); encapsulation numbers every
// packet as it would on the wire.
#include <cstdio>

#include "overlay/esp.h"
#include "perf/bench_util.h"
#include "tests/unit/support/packet_builder.h"

using namespace nodeplane;
using testing::Bytes;
using testing::PacketBuilder;

int main(int argc, char** argv) {
  (void)argc;
  if (!perf::startBenchmark(argv[0])) return 1;
  rte_mempool* pool = perf::packetPool();
  perf::printTitle("nodeplane esp_bench: ESP tunnel mode, AES-GCM-128, one core",
                   "TSC cycles per packet (median of 7 runs)");
  auto device = overlay::EspDevice::open(0);
  if (!device) {
    std::fprintf(stderr, "%s\n", device.error().message.c_str());
    return 1;
  }
  auto key = overlay::deriveEspKey("benchmark secret", "east->west/0");
  overlay::EspSaSpec spec;
  spec.spi = 0x1000;
  spec.key = *key;
  spec.localAddress = *Ipv4Address::parse("172.20.0.1");
  spec.remoteAddress = *Ipv4Address::parse("172.20.0.2");
  spec.localMac = *MacAddress::parse("02:00:00:00:00:01");
  spec.remoteMac = *MacAddress::parse("02:00:00:00:00:02");
  auto out = overlay::EspSa::create(**device, spec);
  spec.outbound = false;
  spec.replayWindow = 0;
  auto in = overlay::EspSa::create(**device, spec);
  if (!out || !in) return 1;

  const double hz = static_cast<double>(rte_get_tsc_hz());
  std::printf("device %s\n\n%-8s %-8s %10s %8s %9s\n", (*device)->driver().c_str(), "inner B", "",
              "cycles", "Mpps", "Gbit/s");
  for (uint16_t size : {uint16_t{64}, uint16_t{1400}}) {
    std::vector<Bytes> frames;
    for (uint16_t i = 0; i < 32; ++i) {
      const Bytes inner = PacketBuilder()
                              .ipv4("10.244.1.2", "10.244.2.3")
                              .udp(static_cast<uint16_t>(1000 + i), 5001)
                              .payload(size - 28)
                              .build();
      Bytes frame = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00};
      frame.insert(frame.end(), inner.begin(), inner.end());
      frames.push_back(frame);
    }
    // The same frames sealed once, for decapsulation.
    std::vector<Bytes> sealed;
    for (const Bytes& f : frames) {
      rte_mbuf* m = rte_pktmbuf_alloc(pool);
      perf::loadFrame(m, f, 0);
      if ((*out)->process(&m, 1) != 1) return 1;
      sealed.push_back(testing::mbufBytes(m));
      rte_pktmbuf_free(m);
    }
    uint64_t failed = 0;
    const double encap = perf::measureBursts(pool, frames, 0, [&](rte_mbuf** pkts, uint16_t n) {
                           failed += n - (*out)->process(pkts, n);
                         }).net();
    const double decap = perf::measureBursts(pool, sealed, 0, [&](rte_mbuf** pkts, uint16_t n) {
                           failed += n - (*in)->process(pkts, n);
                         }).net();
    for (const auto& [what, cycles] : {std::pair{"encap", encap}, std::pair{"decap", decap}}) {
      const double mpps = hz / cycles / 1e6;
      std::printf("%-8u %-8s %10.0f %8.2f %9.2f\n", size, what, cycles, mpps,
                  mpps * size * 8 / 1000);
    }
    if (failed != 0) {
      std::fprintf(stderr, "%lu packets failed\n", static_cast<unsigned long>(failed));
      return 1;
    }
  }
  return 0;
}
