// Answers one DNS query from a Zone, into a caller's buffer: what a worker calls per query.
// No allocation, no exceptions; reads only [msg, msg + len) and writes only [out, out + cap).
//
// Decisions (dns/README.md): a name in the cluster domain is answered (records, NODATA or
// NXDOMAIN with the SOA); a PTR for an address the zone knows is answered; everything else is
// passed on (to the DNS Service's backends: an upstream such as CoreDNS or unbound), as are
// queries that are not one IN-class QUERY and messages that do not parse.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dns/wire.h"
#include "dns/zone.h"

namespace nodeplane::dns {

enum class Outcome : uint8_t {
  kAnswered,    // records in the answer section
  kNxDomain,    // no such name in the zone
  kNoData,      // the name exists, no record of that type
  kServFail,    // the zone is not there yet (no desired state applied)
  kBadVersion,  // EDNS version other than 0: BADVERS (RFC 6891)
  kPassOn,      // not ours to answer
  kMalformed,   // does not parse: passed on, the upstream decides
  kRefused,     // not ours, and no upstream to pass it to: REFUSED (NOTIMP for other opcodes)
};

struct Response {
  Outcome outcome = Outcome::kPassOn;
  uint16_t qtype = 0;
  bool truncated = false;  // TC set: the answer did not fit
  bool alias = false;      // the answer is a CNAME (an ExternalName service)
  size_t length = 0;       // bytes written to out
  ParseError error = ParseError::kNone;
};

// A zone whose config is not `ready` (no desired state applied yet) answers SERVFAIL for names
// in the cluster domain. `overTcp`: the size limit is 65535 (RFC 7766) instead of the UDP one.
// `upstream`: whether the DNS Service has a backend to pass queries on to. With one, an
// ExternalName's CNAME asked for with RD (a stub resolver, which will not chase it itself) is
// passed on too, for the upstream to follow (it asks us back without RD and gets the CNAME).
// Without one, what would be passed on is answered REFUSED.
enum class Upstream : uint8_t { kPresent, kNone };
// `secondary`: a second zone (the clusterset domain) answered for the names in it, and for the
// PTR names the primary does not have.
Response respond(const uint8_t* msg, size_t len, const Zone& zone, bool overTcp, uint8_t* out,
                 size_t cap, Upstream upstream = Upstream::kPresent,
                 const Zone* secondary = nullptr);

}  // namespace nodeplane::dns
