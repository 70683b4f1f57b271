// A pcapng writer (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html) for npctl
// capture: one section, one Ethernet interface with nanosecond timestamps, enhanced packet
// blocks with their direction. Written here rather than with rte_pcapng, which numbers
// interfaces by ethdev and cannot describe nodeplane's own pod ports, and libpcap, which writes
// pcapng only for reading back (1.10 dumps classic pcap).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace nodeplane::control::npctl {

enum class Direction : uint8_t { kUnknown = 0, kInbound = 1, kOutbound = 2 };

class PcapngWriter {
 public:
  // Writes the section header and the interface description. `out` stays the caller's.
  PcapngWriter(std::FILE* out, const std::string& interfaceName, uint32_t snaplen,
               const std::string& comment);
  void writePacket(uint64_t unixNs, std::string_view data, uint32_t originalLength,
                   Direction direction);
  bool failed() const { return std::ferror(out_) != 0; }

 private:
  std::FILE* out_;
};

}  // namespace nodeplane::control::npctl
