#include "dns/responder.h"

#include <algorithm>
#include <cstring>

namespace nodeplane::dns {

namespace {

constexpr uint16_t kFlagQr = 0x8000, kFlagAa = 0x0400, kFlagTc = 0x0200, kFlagRd = 0x0100,
                   kFlagCd = 0x0010;
constexpr size_t kOptSize = 11;

const std::string_view kReverseSuffix("\7in-addr\4arpa\0", 14);

// "a-b-c-d" as CoreDNS's `pods insecure` reads it.
bool dashedAddress(std::string_view label, uint32_t* ip) {
  uint32_t value = 0;
  unsigned parts = 0, digits = 0, octet = 0;
  for (size_t i = 0; i <= label.size(); ++i) {
    if (i == label.size() || label[i] == '-') {
      if (digits == 0 || octet > 255) return false;
      value = value << 8 | octet;
      ++parts, digits = 0, octet = 0;
      continue;
    }
    const char c = label[i];
    if (c < '0' || c > '9' || ++digits > 3) return false;
    octet = octet * 10 + static_cast<unsigned>(c - '0');
  }
  if (parts != 4) return false;
  *ip = value;
  return true;
}

bool inZone(const Name& n, const Zone& zone) {
  return n.labels >= zone.apexLabels() && n.suffix(n.labels - zone.apexLabels()) == zone.apex();
}

struct Writer {
  uint8_t* out;
  size_t cap;
  size_t at = 0;
  bool put(const void* p, size_t n) {
    if (at + n > cap) return false;
    std::memcpy(out + at, p, n);
    at += n;
    return true;
  }
};

}  // namespace

Response respond(const uint8_t* msg, size_t len, const Zone& primary, bool overTcp, uint8_t* out,
                 size_t cap, Upstream upstream, const Zone* secondary) {
  const bool refuseOthers = upstream == Upstream::kNone;
  Response r;
  Query q;
  r.error = parseQuery(msg, len, &q);
  // The zone the name is in: the secondary (clusterset) when it is there, else the primary.
  const bool inSecondary =
      r.error == ParseError::kNone && secondary != nullptr && inZone(q.name, *secondary);
  const Zone& zoneRef = inSecondary ? *secondary : primary;
  const Zone* zone = zoneRef.config().ready ? &zoneRef : nullptr;
  if (r.error != ParseError::kNone) {
    r.outcome = Outcome::kMalformed;
    return r;
  }
  r.qtype = q.qtype;
  const bool oneQuestion = q.qdcount == 1 && q.ancount == 0 && q.nscount == 0;
  // Not ours to answer: passed on, or (no one else to ask) refused at once, the question echoed.
  auto notOurs = [&]() -> Response {
    if (!refuseOthers || q.isResponse()) return r;  // kPassOn
    uint8_t header[kHeaderSize] = {};
    store16(header, q.id);
    const uint8_t rcode = q.opcode() != 0 ? kRcodeNotImp : kRcodeRefused;
    store16(header + 2, static_cast<uint16_t>(0x8000 | (q.flags & 0x7900) | rcode));
    store16(header + 4, oneQuestion ? 1 : 0);
    Writer w{out, cap};
    if (!w.put(header, sizeof(header))) return r;
    if (oneQuestion) {
      uint8_t qtail[4];
      store16(qtail, q.qtype);
      store16(qtail + 2, q.qclass);
      if (!w.put(q.name.wire.data(), q.name.length) || !w.put(qtail, 4)) return r;
    }
    r.outcome = Outcome::kRefused;
    r.length = w.at;
    return r;
  };
  if (q.isResponse() || q.opcode() != 0 || !oneQuestion || q.qclass != kClassIn) return notOurs();

  // Whose name is it?
  const ZoneName* node = nullptr;
  uint32_t podIp = 0;
  bool ours = false;
  if (inZone(q.name, zoneRef)) {
    ours = true;
    if (zone != nullptr) {
      node = zone->find(q.name.key());
      // a-b-c-d.<namespace>.pod.<zone>: any address, as `pods insecure` answers.
      const unsigned k = zone->apexLabels();
      if (node == nullptr && !inSecondary && q.name.labels == k + 3 && q.name.label(2) == "pod" &&
          !dashedAddress(q.name.label(0), &podIp))
        podIp = 0;
    }
  } else if (zone != nullptr && q.name.key().ends_with(kReverseSuffix)) {
    node = zone->find(q.name.key());
    if ((node == nullptr || node->ptr.count == 0) && secondary != nullptr &&
        secondary->config().ready)
      node = secondary->find(q.name.key());
    ours = node != nullptr && node->ptr.count > 0;
  }
  if (!ours) return notOurs();

  // The answer, by outcome.
  const RecordSet* sets[4] = {};
  size_t nsets = 0;
  uint8_t podRecord[16];
  uint8_t rcode = kRcodeNoError;
  bool authoritySoa = false;
  bool podAnswer = false;
  if (zone == nullptr) {
    r.outcome = Outcome::kServFail;
    rcode = kRcodeServFail;
  } else if (q.edns && q.ednsVersion != 0) {
    r.outcome = Outcome::kBadVersion;
  } else if (node != nullptr) {
    auto add = [&](const RecordSet& s) {
      if (s.count > 0) sets[nsets++] = &s;
    };
    if (node->cname.count > 0) {
      // A stub resolver's question (RD) about an alias goes to the upstream, which follows it.
      if ((q.flags & 0x0100) && upstream == Upstream::kPresent) return r;  // kPassOn
      add(node->cname);  // whatever the type: the resolver follows the alias
      r.alias = true;
    } else {
      switch (q.qtype) {
        case kTypeA:
          add(node->a);
          break;
        case kTypeSrv:
          add(node->srv);
          break;
        case kTypePtr:
          add(node->ptr);
          break;
        case kTypeTxt:
          add(node->txt);
          break;
        case kTypeSoa:
          add(node->soa);
          break;
        case kTypeNs:
          add(node->ns);
          break;
        case kTypeAny:
          add(node->a), add(node->srv), add(node->txt), add(node->soa);
          break;
        default:
          break;
      }
    }
    if (nsets == 0) {
      r.outcome = Outcome::kNoData;
      authoritySoa = true;
    } else {
      r.outcome = Outcome::kAnswered;
    }
  } else if (podIp != 0) {
    if (q.qtype == kTypeA || q.qtype == kTypeAny) {
      podAnswer = true;
      r.outcome = Outcome::kAnswered;
    } else {
      r.outcome = Outcome::kNoData;
      authoritySoa = true;
    }
  } else {
    r.outcome = Outcome::kNxDomain;
    rcode = kRcodeNxDomain;
    authoritySoa = true;
  }
  if (podAnswer) {
    const uint8_t rr[16] = {0xc0,
                            0x0c,
                            0,
                            kTypeA,
                            0,
                            kClassIn,
                            static_cast<uint8_t>(zone->config().ttl >> 24),
                            static_cast<uint8_t>(zone->config().ttl >> 16),
                            static_cast<uint8_t>(zone->config().ttl >> 8),
                            static_cast<uint8_t>(zone->config().ttl),
                            0,
                            4,
                            static_cast<uint8_t>(podIp >> 24),
                            static_cast<uint8_t>(podIp >> 16),
                            static_cast<uint8_t>(podIp >> 8),
                            static_cast<uint8_t>(podIp)};
    std::memcpy(podRecord, rr, sizeof(rr));
  }

  // Sizes: what fits in the client's buffer.
  size_t limit = 65535;
  if (!overTcp)
    limit = q.edns ? std::clamp<size_t>(q.ednsSize, kPlainUdpSize, kMaxUdpSize) : kPlainUdpSize;
  limit = std::min(limit, cap);
  const size_t questionSize = q.name.length + 4u;
  const size_t fixed = kHeaderSize + questionSize + (q.edns ? kOptSize : 0);
  size_t answerBytes = 0, answerCount = 0;
  for (size_t i = 0; i < nsets; ++i)
    answerBytes += sets[i]->wire.size(), answerCount += sets[i]->count;
  if (podAnswer) answerBytes = sizeof(podRecord), answerCount = 1;
  const std::string* authority = authoritySoa ? &zone->soaAuthority() : nullptr;
  const size_t authorityBytes = authority ? authority->size() : 0;
  const RecordSet* additional = nsets == 1 && sets[0] == &node->srv && node->additional.count > 0
                                    ? &node->additional
                                    : nullptr;
  if (fixed > limit) return r.outcome = Outcome::kPassOn, r;  // (cap below any sane message)
  const bool fits = fixed + answerBytes + authorityBytes <= limit;
  if (!fits) {
    r.truncated = true;
    answerBytes = answerCount = 0;
    nsets = 0;
    podAnswer = false;
    authority = nullptr;
    additional = nullptr;
  } else if (additional != nullptr &&
             fixed + answerBytes + authorityBytes + additional->wire.size() > limit) {
    additional = nullptr;  // additional records are optional: left out, not truncated
  }

  // Header.
  Writer w{out, cap};
  uint8_t header[kHeaderSize];
  store16(header, q.id);
  uint16_t flags = kFlagQr | kFlagAa | (q.flags & (kFlagRd | kFlagCd)) | rcode;
  if (r.truncated) flags |= kFlagTc;
  if (r.outcome == Outcome::kServFail) flags &= static_cast<uint16_t>(~kFlagAa);
  store16(header + 2, flags);
  store16(header + 4, 1);
  store16(header + 6, static_cast<uint16_t>(answerCount));
  store16(header + 8, authority ? 1 : 0);
  store16(header + 10,
          static_cast<uint16_t>((additional ? additional->count : 0) + (q.edns ? 1 : 0)));
  w.put(header, sizeof(header));
  // The question as it came (case kept: resolvers check it), uncompressed.
  w.put(q.name.wire.data(), q.name.length);
  uint8_t qtail[4];
  store16(qtail, q.qtype);
  store16(qtail + 2, q.qclass);
  w.put(qtail, 4);
  if (podAnswer) w.put(podRecord, sizeof(podRecord));
  for (size_t i = 0; i < nsets; ++i) w.put(sets[i]->wire.data(), sets[i]->wire.size());
  if (authority) w.put(authority->data(), authority->size());
  if (additional) w.put(additional->wire.data(), additional->wire.size());
  if (q.edns) {
    uint8_t opt[kOptSize] = {0, 0, kTypeOpt};
    store16(opt + 3, kMaxUdpSize);
    opt[5] = r.outcome == Outcome::kBadVersion ? 1 : 0;  // extended rcode 16 = BADVERS
    opt[6] = 0;                                          // version
    opt[7] = q.dnssecOk ? 0x80 : 0;
    w.put(opt, sizeof(opt));
  }
  r.length = w.at;
  return r;
}

}  // namespace nodeplane::dns
