// The DNS wire format (RFC 1035, 6891) as the responder needs it: constants, and a reader for a
// query's one question that never reads past the message (compression pointers validated).
// Pure functions over bytes: no allocation, no DPDK; safe on any input.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace nodeplane::dns {

inline constexpr uint16_t kTypeA = 1;
inline constexpr uint16_t kTypeNs = 2;
inline constexpr uint16_t kTypeCname = 5;
inline constexpr uint16_t kTypeSoa = 6;
inline constexpr uint16_t kTypePtr = 12;
inline constexpr uint16_t kTypeTxt = 16;
inline constexpr uint16_t kTypeAaaa = 28;
inline constexpr uint16_t kTypeSrv = 33;
inline constexpr uint16_t kTypeOpt = 41;
inline constexpr uint16_t kTypeAny = 255;
inline constexpr uint16_t kClassIn = 1;

inline constexpr uint8_t kRcodeNoError = 0;
inline constexpr uint8_t kRcodeServFail = 2;
inline constexpr uint8_t kRcodeNxDomain = 3;
inline constexpr uint8_t kRcodeNotImp = 4;
inline constexpr uint8_t kRcodeRefused = 5;

inline constexpr size_t kHeaderSize = 12;
inline constexpr size_t kMaxName = 255;  // wire form, with the root label
inline constexpr size_t kMaxLabels = 127;
inline constexpr uint16_t kPlainUdpSize = 512;  // without EDNS0
inline constexpr uint16_t kMaxUdpSize = 1232;   // what we answer at most over UDP (DNS flag day)

inline uint16_t load16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] << 8 | p[1]);
}
inline void store16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void store32(uint8_t* p, uint32_t v) {
  store16(p, static_cast<uint16_t>(v >> 16));
  store16(p + 2, static_cast<uint16_t>(v));
}

// Why a message was not read as a query we could answer.
enum class ParseError : uint8_t {
  kNone,
  kTruncated,     // shorter than its header, question or OPT record says
  kBadLabel,      // a label type other than 0b00 / 0b11 (RFC 6891 removed extended labels)
  kBadPointer,    // a compression pointer not strictly backwards, or too many of them
  kNameTooLong,   // more than 255 bytes or 127 labels
  kBadOpt,        // an additional record that is not one root-owned OPT
  kTrailingData,  // bytes after the last record
};

// A name read from a message: its labels in wire form (no pointers), as sent and lowercased.
// (The arrays are left uninitialized: only the first `length` bytes and `labels` offsets are
// ever read, and a query's parse should not pay for zeroing 640 bytes.)
struct Name {
  std::array<uint8_t, kMaxName> wire;   // as sent (case kept, for the echoed question)
  std::array<uint8_t, kMaxName> lower;  // ASCII letters lowercased: the lookup key
  std::array<uint8_t, kMaxLabels + 1> labelOffsets;
  uint8_t length = 0;  // bytes in wire/lower, with the root label
  uint8_t labels = 0;  // not counting the root

  std::string_view key() const { return {reinterpret_cast<const char*>(lower.data()), length}; }
  // The name from label `first` on (a suffix), lowercased.
  std::string_view suffix(unsigned first) const {
    const size_t at = first < labels ? labelOffsets[first] : length - 1u;
    return key().substr(at);
  }
  std::string_view label(unsigned i) const {
    return {reinterpret_cast<const char*>(lower.data()) + labelOffsets[i] + 1,
            lower[labelOffsets[i]]};
  }
};

// Reads the name at `*offset`, following backward compression pointers; on success `*offset` is
// just past the name where it began (past the first pointer, if any).
ParseError readName(const uint8_t* msg, size_t len, size_t* offset, Name* out);

// A query as the responder needs it.
struct Query {
  uint16_t id = 0;
  uint16_t flags = 0;  // the header's second 16 bits
  uint16_t qdcount = 0, ancount = 0, nscount = 0, arcount = 0;
  Name name;
  uint16_t qtype = 0, qclass = 0;
  size_t questionEnd = 0;  // offset just past the question
  bool edns = false;       // an OPT record came with it
  uint16_t ednsSize = 0;   // its advertised UDP payload size
  uint8_t ednsVersion = 0;
  bool dnssecOk = false;

  uint8_t opcode() const { return static_cast<uint8_t>(flags >> 11 & 0xf); }
  bool isResponse() const { return flags & 0x8000; }
};

// Reads the header; then, for a message with exactly one question, the question and an OPT
// record if one follows. Messages with other counts parse with the header only (qdcount tells).
ParseError parseQuery(const uint8_t* msg, size_t len, Query* out);

}  // namespace nodeplane::dns
