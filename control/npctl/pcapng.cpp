#include "control/npctl/pcapng.h"

#include <cstring>
#include <vector>

namespace nodeplane::control::npctl {

namespace {

constexpr uint32_t kSectionHeader = 0x0A0D0D0A;
constexpr uint32_t kInterfaceDescription = 1;
constexpr uint32_t kEnhancedPacket = 6;
constexpr uint16_t kLinkTypeEthernet = 1;

// A block under construction: body bytes, options padded to 32 bits.
class Block {
 public:
  template <typename T>
  void put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
  }
  void putBytes(std::string_view data) {
    bytes_.insert(bytes_.end(), data.begin(), data.end());
    pad();
  }
  void option(uint16_t code, std::string_view value) {
    put(code);
    put(static_cast<uint16_t>(value.size()));
    putBytes(value);
  }
  void endOptions() { put(uint32_t{0}); }
  void write(std::FILE* out, uint32_t type) const {
    const uint32_t total = static_cast<uint32_t>(bytes_.size()) + 12;
    std::fwrite(&type, 4, 1, out);
    std::fwrite(&total, 4, 1, out);
    std::fwrite(bytes_.data(), 1, bytes_.size(), out);
    std::fwrite(&total, 4, 1, out);
  }

 private:
  void pad() {
    while (bytes_.size() % 4 != 0) bytes_.push_back(0);
  }
  std::vector<uint8_t> bytes_;
};

}  // namespace

PcapngWriter::PcapngWriter(std::FILE* out, const std::string& interfaceName, uint32_t snaplen,
                           const std::string& comment)
    : out_(out) {
  Block shb;
  shb.put(uint32_t{0x1A2B3C4D});  // byte-order magic: this host's order
  shb.put(uint16_t{1});
  shb.put(uint16_t{0});
  shb.put(int64_t{-1});        // section length unknown
  shb.option(1, comment);      // opt_comment
  shb.option(4, "nodeplane");  // shb_userappl
  shb.endOptions();
  shb.write(out_, kSectionHeader);

  Block idb;
  idb.put(kLinkTypeEthernet);
  idb.put(uint16_t{0});
  idb.put(snaplen);
  idb.option(2, interfaceName);  // if_name
  const char nanoseconds = 9;
  idb.option(9, std::string_view(&nanoseconds, 1));  // if_tsresol: 10^-9
  idb.endOptions();
  idb.write(out_, kInterfaceDescription);
}

void PcapngWriter::writePacket(uint64_t unixNs, std::string_view data, uint32_t originalLength,
                               Direction direction) {
  Block epb;
  epb.put(uint32_t{0});  // the one interface
  epb.put(static_cast<uint32_t>(unixNs >> 32));
  epb.put(static_cast<uint32_t>(unixNs));
  epb.put(static_cast<uint32_t>(data.size()));
  epb.put(originalLength);
  epb.putBytes(data);
  if (direction != Direction::kUnknown) {
    const uint32_t flags = static_cast<uint32_t>(direction);  // epb_flags bits 0-1
    epb.option(2, std::string_view(reinterpret_cast<const char*>(&flags), 4));
    epb.endOptions();
  }
  epb.write(out_, kEnhancedPacket);
}

}  // namespace nodeplane::control::npctl
