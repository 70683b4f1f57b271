// DNS messages for people: a query built from a name and a type, and a response decoded into
// text records (as dig prints them). For npctl dns and npctl trace, on the control thread; never
// on the hot path. Safe on any input (decoding stops at the first thing that does not parse).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nodeplane::dns {

struct PresentedRecord {
  std::string name;
  std::string type;
  uint32_t ttl = 0;
  std::string data;
};

struct PresentedMessage {
  std::string rcode;  // NOERROR, NXDOMAIN, SERVFAIL, ...
  bool authoritative = false, truncated = false;
  std::string question;
  std::vector<PresentedRecord> answer, authority, additional;
};

// "A", "SRV", ... and back; nullopt / "TYPE<n>" for the rest.
std::optional<uint16_t> typeFromName(std::string_view name);
std::string typeName(uint16_t type);

// A query for `name` (dotted, with or without the final dot) of `type`, RD set, with an OPT
// record of `ednsSize` when given. Empty when the name is not a DNS name.
std::vector<uint8_t> buildQuery(std::string_view name, uint16_t type, uint16_t id,
                                std::optional<uint16_t> ednsSize = std::nullopt);

std::optional<PresentedMessage> present(const uint8_t* msg, size_t len);

}  // namespace nodeplane::dns
