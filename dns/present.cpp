#include "dns/present.h"

#include <array>
#include <cstdio>

#include "dns/wire.h"
#include "dns/zone.h"

namespace nodeplane::dns {

namespace {

constexpr std::array<std::pair<uint16_t, const char*>, 10> kTypes = {{{kTypeA, "A"},
                                                                      {kTypeNs, "NS"},
                                                                      {kTypeCname, "CNAME"},
                                                                      {kTypeSoa, "SOA"},
                                                                      {kTypePtr, "PTR"},
                                                                      {kTypeTxt, "TXT"},
                                                                      {kTypeAaaa, "AAAA"},
                                                                      {kTypeSrv, "SRV"},
                                                                      {kTypeOpt, "OPT"},
                                                                      {kTypeAny, "ANY"}}};

std::string dotted(const Name& n) {
  std::string out;
  for (unsigned i = 0; i < n.labels; ++i) {
    const uint8_t at = n.labelOffsets[i];
    out.append(reinterpret_cast<const char*>(n.wire.data()) + at + 1, n.wire[at]);
    out.push_back('.');
  }
  return out.empty() ? "." : out;
}

std::optional<std::string> nameAt(const uint8_t* msg, size_t len, size_t* at) {
  Name n;
  if (readName(msg, len, at, &n) != ParseError::kNone) return std::nullopt;
  return dotted(n);
}

const char* rcodeName(unsigned rcode) {
  static constexpr const char* names[] = {"NOERROR",  "FORMERR", "SERVFAIL",
                                          "NXDOMAIN", "NOTIMP",  "REFUSED"};
  return rcode < 6 ? names[rcode] : "RCODE";
}

std::optional<std::string> rdataText(const uint8_t* msg, size_t len, size_t at, size_t rdlen,
                                     uint16_t type) {
  const size_t end = at + rdlen;
  char buf[64];
  switch (type) {
    case kTypeA:
      if (rdlen != 4) return std::nullopt;
      std::snprintf(buf, sizeof(buf), "%u.%u.%u.%u", msg[at], msg[at + 1], msg[at + 2],
                    msg[at + 3]);
      return std::string(buf);
    case kTypeCname:
    case kTypePtr:
    case kTypeNs:
      return nameAt(msg, end, &at);
    case kTypeSrv: {
      if (rdlen < 7) return std::nullopt;
      std::snprintf(buf, sizeof(buf), "%u %u %u ", load16(msg + at), load16(msg + at + 2),
                    load16(msg + at + 4));
      at += 6;
      auto target = nameAt(msg, end, &at);
      if (!target) return std::nullopt;
      return buf + *target;
    }
    case kTypeTxt: {
      std::string out;
      while (at < end) {
        const size_t n = msg[at];
        if (at + 1 + n > end) return std::nullopt;
        out += (out.empty() ? "\"" : " \"") +
               std::string(reinterpret_cast<const char*>(msg) + at + 1, n) + "\"";
        at += 1 + n;
      }
      return out;
    }
    case kTypeSoa: {
      auto mname = nameAt(msg, end, &at);
      if (!mname) return std::nullopt;
      auto rname = nameAt(msg, end, &at);
      if (!rname || at + 20 != end) return std::nullopt;
      std::string out = *mname + " " + *rname;
      for (int i = 0; i < 5; ++i)
        out += " " + std::to_string(uint32_t{load16(msg + at + 4 * i)} << 16 |
                                    load16(msg + at + 4 * i + 2));
      return out;
    }
    default: {
      (void)len;
      std::string out = "\\# " + std::to_string(rdlen);
      for (size_t i = at; i < end; ++i) {
        std::snprintf(buf, sizeof(buf), " %02x", msg[i]);
        out += buf;
      }
      return out;
    }
  }
}

}  // namespace

std::optional<uint16_t> typeFromName(std::string_view name) {
  for (const auto& [type, text] : kTypes)
    if (name.size() == std::string_view(text).size()) {
      bool same = true;
      for (size_t i = 0; i < name.size(); ++i)
        same &= (name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]) == text[i];
      if (same) return type;
    }
  return std::nullopt;
}

std::string typeName(uint16_t type) {
  for (const auto& [t, text] : kTypes)
    if (t == type) return text;
  return "TYPE" + std::to_string(type);
}

std::vector<uint8_t> buildQuery(std::string_view name, uint16_t type, uint16_t id,
                                std::optional<uint16_t> ednsSize) {
  // The wire form as typed (case kept), validated by the zone's rules.
  if (Zone::toWire(name).empty()) return {};
  std::vector<uint8_t> q = {
      static_cast<uint8_t>(id >> 8),         static_cast<uint8_t>(id), 1, 0, 0, 1, 0, 0, 0, 0, 0,
      static_cast<uint8_t>(ednsSize ? 1 : 0)};
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  size_t start = 0;
  while (start < name.size()) {
    size_t end = name.find('.', start);
    if (end == std::string_view::npos) end = name.size();
    q.push_back(static_cast<uint8_t>(end - start));
    q.insert(q.end(), name.begin() + static_cast<long>(start),
             name.begin() + static_cast<long>(end));
    start = end + 1;
  }
  q.insert(q.end(), {0, static_cast<uint8_t>(type >> 8), static_cast<uint8_t>(type), 0, 1});
  if (ednsSize)
    q.insert(q.end(), {0, 0, kTypeOpt, static_cast<uint8_t>(*ednsSize >> 8),
                       static_cast<uint8_t>(*ednsSize), 0, 0, 0, 0, 0, 0});
  return q;
}

std::optional<PresentedMessage> present(const uint8_t* msg, size_t len) {
  if (len < kHeaderSize) return std::nullopt;
  PresentedMessage p;
  const uint16_t flags = load16(msg + 2);
  p.rcode = rcodeName(flags & 0xf);
  p.authoritative = flags & 0x0400;
  p.truncated = flags & 0x0200;
  size_t at = kHeaderSize;
  for (unsigned i = 0; i < load16(msg + 4); ++i) {
    auto n = nameAt(msg, len, &at);
    if (!n || at + 4 > len) return std::nullopt;
    p.question = *n + " " + typeName(load16(msg + at));
    at += 4;
  }
  std::vector<PresentedRecord>* sections[] = {&p.answer, &p.authority, &p.additional};
  for (int s = 0; s < 3; ++s)
    for (unsigned i = 0; i < load16(msg + 6 + 2 * s); ++i) {
      PresentedRecord rr;
      auto n = nameAt(msg, len, &at);
      if (!n || at + 10 > len) return std::nullopt;
      rr.name = *n;
      const uint16_t type = load16(msg + at);
      rr.type = typeName(type);
      rr.ttl = uint32_t{load16(msg + at + 4)} << 16 | load16(msg + at + 6);
      const size_t rdlen = load16(msg + at + 8);
      at += 10;
      if (at + rdlen > len) return std::nullopt;
      if (type == kTypeOpt) {
        rr.name = ".";
        rr.ttl = 0;
        rr.data = "udp " + std::to_string(load16(msg + at - 8));
      } else {
        auto data = rdataText(msg, len, at, rdlen, type);
        if (!data) return std::nullopt;
        rr.data = *data;
      }
      at += rdlen;
      sections[s]->push_back(std::move(rr));
    }
  return p;
}

}  // namespace nodeplane::dns
