// The responder, byte for byte: every record kind, NXDOMAIN vs NODATA with the SOA, case, EDNS
// sizes and TC, compression in queries, and every malformed class. Expected messages are written
// out here with a tiny encoder of our own (not the zone's), so both must agree on the wire.
#include "dns/responder.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace nodeplane::dns {
namespace {

using Bytes = std::vector<uint8_t>;

void put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
void put32(Bytes& b, uint32_t v) {
  put16(b, static_cast<uint16_t>(v >> 16));
  put16(b, static_cast<uint16_t>(v));
}
// "a.b." -> labels, as sent (case kept).
void putName(Bytes& b, const std::string& dotted) {
  size_t start = 0;
  while (start < dotted.size()) {
    size_t end = dotted.find('.', start);
    if (end == std::string::npos) end = dotted.size();
    b.push_back(static_cast<uint8_t>(end - start));
    b.insert(b.end(), dotted.begin() + static_cast<long>(start),
             dotted.begin() + static_cast<long>(end));
    start = end + 1;
  }
  b.push_back(0);
}
Bytes name(const std::string& dotted) {
  Bytes b;
  putName(b, dotted);
  return b;
}
uint32_t ip(const char* text) {
  unsigned a, b, c, d;
  EXPECT_EQ(std::sscanf(text, "%u.%u.%u.%u", &a, &b, &c, &d), 4);
  return a << 24 | b << 16 | c << 8 | d;
}

struct Rr {
  Bytes owner;  // empty: the question's pointer
  uint16_t type;
  Bytes rdata;
};
Rr a(uint32_t addr, Bytes owner = {}) {
  Bytes r;
  put32(r, addr);
  return {owner, kTypeA, r};
}
Rr target(uint16_t type, const std::string& dotted) {
  return {{}, type, name(dotted)};
}
Rr srv(uint16_t weight, uint16_t port, const std::string& dotted) {
  Bytes r;
  put16(r, 0);
  put16(r, weight);
  put16(r, port);
  putName(r, dotted);
  return {{}, kTypeSrv, r};
}
Bytes soaRdata(uint32_t serial) {
  Bytes r = name("ns.dns.cluster.local");
  Bytes h = name("hostmaster.cluster.local");
  r.insert(r.end(), h.begin(), h.end());
  for (uint32_t v : {serial, 7200u, 1800u, 86400u, 5u}) put32(r, v);
  return r;
}

struct Message {
  uint16_t id = 0x1234;
  uint16_t flags = 0x0100;  // RD
  std::string qname;
  uint16_t qtype = kTypeA;
  std::vector<Rr> answer, authority, additional;
  int edns = -1;  // -1: no OPT; else its UDP size
};

void putRr(Bytes& b, const Rr& rr) {
  if (rr.owner.empty()) {
    b.push_back(0xc0);
    b.push_back(0x0c);
  } else {
    b.insert(b.end(), rr.owner.begin(), rr.owner.end());
  }
  put16(b, rr.type);
  put16(b, kClassIn);
  put32(b, 5);
  put16(b, static_cast<uint16_t>(rr.rdata.size()));
  b.insert(b.end(), rr.rdata.begin(), rr.rdata.end());
}

Bytes encode(const Message& m) {
  Bytes b;
  put16(b, m.id);
  put16(b, m.flags);
  put16(b, 1);
  put16(b, static_cast<uint16_t>(m.answer.size()));
  put16(b, static_cast<uint16_t>(m.authority.size()));
  put16(b, static_cast<uint16_t>(m.additional.size() + (m.edns >= 0 ? 1 : 0)));
  putName(b, m.qname);
  put16(b, m.qtype);
  put16(b, kClassIn);
  for (const auto* list : {&m.answer, &m.authority, &m.additional})
    for (const Rr& rr : *list) putRr(b, rr);
  if (m.edns >= 0) {
    b.push_back(0);
    put16(b, kTypeOpt);
    put16(b, static_cast<uint16_t>(m.edns));
    put32(b, 0);
    put16(b, 0);
  }
  return b;
}

constexpr uint16_t kAnswerFlags = 0x8000 | 0x0400 | 0x0100;  // QR AA RD

class Responder : public ::testing::Test {
 protected:
  Responder() : zone(config(), services()) {}
  static ZoneConfig config() {
    ZoneConfig c;
    c.serial = 42;
    return c;
  }
  static std::vector<ZoneService> services() {
    ZoneService web{"backend", "web", {ip("10.96.0.30")}, {{"http", 6, 80}, {"", 17, 53}}, {}, ""};
    ZoneService db{"backend",
                   "db",
                   {},
                   {{"pg", 6, 5432}},
                   {{ip("10.244.1.7"), "db-0", true, {{"pg", 6, 5432}}},
                    {ip("10.244.1.8"), "", true, {{"pg", 6, 5433}}},
                    {ip("10.244.1.9"), "", false, {{"pg", 6, 5432}}}},
                   ""};
    ZoneService ext{"backend", "ext", {}, {}, {}, "outside.example"};
    return {web, db, ext};
  }
  Response ask(const Bytes& query, Bytes* out, bool tcp = false) {
    out->assign(4096, 0);
    Response r = respond(query.data(), query.size(), zone, tcp, out->data(), out->size());
    out->resize(r.length);
    return r;
  }
  Zone zone;
};

Message query(const std::string& qname, uint16_t qtype, int edns = -1) {
  Message m;
  m.qname = qname;
  m.qtype = qtype;
  m.edns = edns;
  return m;
}
Message answer(const Message& q, std::vector<Rr> answers, std::vector<Rr> additional = {}) {
  Message m = q;
  m.flags = kAnswerFlags;
  m.answer = std::move(answers);
  m.additional = std::move(additional);
  if (q.edns >= 0) m.edns = 1232;
  return m;
}
Message negative(const Message& q, uint8_t rcode) {
  Message m = q;
  m.flags = kAnswerFlags | rcode;
  m.authority = {{name("cluster.local"), kTypeSoa, soaRdata(42)}};
  if (q.edns >= 0) m.edns = 1232;
  return m;
}

struct Case {
  const char* what;
  Message q;
  Message expected;
  Outcome outcome;
};

TEST_F(Responder, EveryRecordKindByteForByte) {
  const std::string svc = "web.backend.svc.cluster.local";
  const std::string db = "db.backend.svc.cluster.local";
  std::vector<Case> cases;
  auto add = [&](const char* what, Message q, Message e, Outcome o) {
    cases.push_back({what, std::move(q), std::move(e), o});
  };
  Message q = query(svc, kTypeA);
  add("A of a ClusterIP service", q, answer(q, {a(ip("10.96.0.30"))}), Outcome::kAnswered);
  q = query(db, kTypeA);
  add("headless: one A per ready endpoint", q,
      answer(q, {a(ip("10.244.1.7")), a(ip("10.244.1.8"))}), Outcome::kAnswered);
  q = query("db-0." + db, kTypeA);
  add("headless endpoint by hostname", q, answer(q, {a(ip("10.244.1.7"))}), Outcome::kAnswered);
  q = query("10-244-1-8." + db, kTypeA);
  add("headless endpoint without hostname: dashed address", q, answer(q, {a(ip("10.244.1.8"))}),
      Outcome::kAnswered);
  q = query("_http._tcp." + svc, kTypeSrv);
  add("SRV of a named port", q, answer(q, {srv(100, 80, svc)}, {a(ip("10.96.0.30"), name(svc))}),
      Outcome::kAnswered);
  q = query("_pg._tcp." + db, kTypeSrv);
  add("SRV of a headless service: each endpoint, its own port", q,
      answer(
          q, {srv(50, 5432, "db-0." + db), srv(50, 5433, "10-244-1-8." + db)},
          {a(ip("10.244.1.7"), name("db-0." + db)), a(ip("10.244.1.8"), name("10-244-1-8." + db))}),
      Outcome::kAnswered);
  q = query("30.0.96.10.in-addr.arpa", kTypePtr);
  add("PTR of a ClusterIP", q, answer(q, {target(kTypePtr, svc)}), Outcome::kAnswered);
  q = query("7.1.244.10.in-addr.arpa", kTypePtr);
  add("PTR of a headless endpoint", q, answer(q, {target(kTypePtr, "db-0." + db)}),
      Outcome::kAnswered);
  q = query("ext.backend.svc.cluster.local", kTypeA);
  q.flags = 0;  // no RD: an upstream asking the authority
  add(
      "ExternalName: CNAME whatever the type (asked without RD)", q,
      [&] {
        Message e = answer(q, {target(kTypeCname, "outside.example")});
        e.flags = 0x8000 | 0x0400;
        return e;
      }(),
      Outcome::kAnswered);
  q = query("dns-version.cluster.local", kTypeTxt);
  add("dns-version TXT", q, answer(q, {{{}, kTypeTxt, {5, '1', '.', '1', '.', '0'}}}),
      Outcome::kAnswered);
  q = query("10-1-2-3.anyns.pod.cluster.local", kTypeA);
  add("pod record, pods insecure", q, answer(q, {a(ip("10.1.2.3"))}), Outcome::kAnswered);
  q = query("cluster.local", kTypeSoa);
  add("SOA of the apex", q, answer(q, {{{}, kTypeSoa, soaRdata(42)}}), Outcome::kAnswered);
  q = query("nope.backend.svc.cluster.local", kTypeA);
  add("NXDOMAIN with the SOA", q, negative(q, kRcodeNxDomain), Outcome::kNxDomain);
  q = query("_http._udp." + svc, kTypeSrv);
  add("SRV of a port that is not there: NXDOMAIN", q, negative(q, kRcodeNxDomain),
      Outcome::kNxDomain);
  q = query(svc, kTypeAaaa);
  add("AAAA of an IPv4 service: NODATA with the SOA", q, negative(q, kRcodeNoError),
      Outcome::kNoData);
  q = query("svc.cluster.local", kTypeA);
  add("empty non-terminal svc.zone: NODATA", q, negative(q, kRcodeNoError), Outcome::kNoData);
  q = query("backend.svc.cluster.local", kTypeA);
  add("empty non-terminal ns.svc.zone: NODATA", q, negative(q, kRcodeNoError), Outcome::kNoData);
  q = query("_tcp." + svc, kTypeSrv);
  add("empty non-terminal _proto.svc: NODATA", q, negative(q, kRcodeNoError), Outcome::kNoData);
  q = query("WeB.BackEnd.Svc.CLUSTER.local", kTypeA);
  add("case-insensitive, the question echoed as sent", q, answer(q, {a(ip("10.96.0.30"))}),
      Outcome::kAnswered);
  q = query(svc, kTypeA, 4096);
  add("EDNS: OPT echoed with our size", q, answer(q, {a(ip("10.96.0.30"))}), Outcome::kAnswered);

  for (const Case& c : cases) {
    Bytes out;
    const Response r = ask(encode(c.q), &out);
    EXPECT_EQ(r.outcome, c.outcome) << c.what;
    EXPECT_EQ(out, encode(c.expected)) << c.what;
  }
}

TEST_F(Responder, NamesOutsideTheZonePassOn) {
  for (const std::string& n : {"example.com", "cluster.local.example.com", "local",
                               "1.1.1.1.in-addr.arpa", "in-addr.arpa"}) {
    Bytes out;
    const uint16_t type = n.ends_with("arpa") ? kTypePtr : kTypeA;
    EXPECT_EQ(ask(encode(query(n, type)), &out).outcome, Outcome::kPassOn) << n;
    EXPECT_TRUE(out.empty());
  }
}

TEST_F(Responder, AStubResolversQuestionAboutAnAliasGoesToTheUpstream) {
  // glibc and musl do not chase a CNAME to another zone: with an upstream, RD questions about an
  // ExternalName go to it (it asks us back without RD, then follows the alias).
  const Bytes in = encode(query("ext.backend.svc.cluster.local", kTypeA));
  Bytes out(512);
  Response r = respond(in.data(), in.size(), zone, false, out.data(), out.size());
  EXPECT_EQ(r.outcome, Outcome::kPassOn);
  EXPECT_EQ(r.length, 0u);
  // Without one, the CNAME is the best answer there is.
  r = respond(in.data(), in.size(), zone, false, out.data(), out.size(), Upstream::kNone);
  EXPECT_EQ(r.outcome, Outcome::kAnswered);
  EXPECT_TRUE(r.alias);
}

TEST_F(Responder, ServFailUntilTheFirstStateIsApplied) {
  ZoneConfig c;
  c.ready = false;
  Zone empty(c, {});
  const Message q = query("web.backend.svc.cluster.local", kTypeA);
  Bytes in = encode(q), out(512);
  Response r = respond(in.data(), in.size(), empty, false, out.data(), out.size());
  out.resize(r.length);
  Message e = q;
  e.flags = 0x8000 | 0x0100 | kRcodeServFail;  // not authoritative
  EXPECT_EQ(r.outcome, Outcome::kServFail);
  EXPECT_EQ(out, encode(e));
  in = encode(query("example.com", kTypeA));
  EXPECT_EQ(respond(in.data(), in.size(), empty, false, out.data(), out.size()).outcome,
            Outcome::kPassOn);
}

TEST(ResponderSizes, AnswersThatDoNotFitSetTcAndEdnsSizesAreRespected) {
  ZoneService big{"backend", "big", {}, {{"pg", 6, 5432}}, {}, ""};
  for (uint32_t i = 0; i < 100; ++i)
    big.endpoints.push_back({ip("10.244.0.0") + i + 1, "", true, {{"pg", 6, 5432}}});
  Zone zone(ZoneConfig{}, {big});
  const std::string n = "big.backend.svc.cluster.local";
  // 12 + 35 question; each A record 16 bytes: 100 -> 1647 bytes.
  struct {
    int edns;
    bool tcp;
    bool truncated;
  } sizes[] = {{-1, false, true},   {512, false, true}, {1232, false, true},
               {4096, false, true}, {-1, true, false},  {65535, true, false}};
  for (const auto& s : sizes) {
    Bytes in = encode(query(n, kTypeA, s.edns)), out(70000);
    Response r = respond(in.data(), in.size(), zone, s.tcp, out.data(), out.size());
    EXPECT_EQ(r.truncated, s.truncated) << s.edns << " tcp " << s.tcp;
    const uint16_t ancount = static_cast<uint16_t>(out[6] << 8 | out[7]);
    EXPECT_EQ(ancount, s.truncated ? 0 : 100);
    EXPECT_EQ((out[2] & 0x02) != 0, s.truncated) << "TC flag";
    EXPECT_LE(r.length, s.tcp ? 65535u : s.edns < 0 ? 512u : 1232u);
  }
  // 60 records fit in 1232 but not in 512.
  big.endpoints.resize(60);
  Zone sixty(ZoneConfig{}, {big});
  for (int edns : {-1, 1232}) {
    Bytes in = encode(query(n, kTypeA, edns)), out(2000);
    Response r = respond(in.data(), in.size(), sixty, false, out.data(), out.size());
    EXPECT_EQ(r.truncated, edns < 0);
  }
  // The SRV's additional records are left out (not truncated) when they alone do not fit:
  // 12 SRV records of about 60 bytes fit in 1232, their 12 A records of about 56 do not.
  big.endpoints.resize(12);
  Zone twelve(ZoneConfig{}, {big});
  Bytes in = encode(query("_pg._tcp." + n, kTypeSrv, 1232)), out(2000);
  Response r = respond(in.data(), in.size(), twelve, false, out.data(), out.size());
  EXPECT_FALSE(r.truncated);
  EXPECT_EQ(out[6] << 8 | out[7], 12);
  EXPECT_EQ(out[10] << 8 | out[11], 1) << "OPT only";
  r = respond(in.data(), in.size(), twelve, true, out.data(), out.size());
  EXPECT_EQ(out[10] << 8 | out[11], 13) << "over TCP they fit";
}

TEST_F(Responder, CompressionInTheQuestionIsFollowedOnlyBackwards) {
  // A question name that points into the header, at itself, or forward: malformed.
  Bytes base = encode(query("web.backend.svc.cluster.local", kTypeA));
  for (uint16_t target : {0x000c, 0x0010, 0x0002, 0x3fff}) {
    Bytes m(base.begin(), base.begin() + 12);
    m.push_back(3), m.insert(m.end(), {'w', 'e', 'b'});
    m.push_back(static_cast<uint8_t>(0xc0 | target >> 8));
    m.push_back(static_cast<uint8_t>(target));
    put16(m, kTypeA);
    put16(m, kClassIn);
    Bytes out;
    const Response r = ask(m, &out);
    if (target >= 12) {
      EXPECT_EQ(r.outcome, Outcome::kMalformed) << target;
      EXPECT_EQ(r.error, ParseError::kBadPointer) << target;
    } else {  // into the header: a backward pointer; the "name" read there does not end well
      EXPECT_NE(r.outcome, Outcome::kAnswered) << target;
    }
    EXPECT_TRUE(out.empty());
  }
}

TEST_F(Responder, EveryMalformedClassIsNamedAndNothingIsReadPastTheEnd) {
  const Bytes good = encode(query("web.backend.svc.cluster.local", kTypeA));
  // Every prefix of a good query: truncated, never answered, never read past (ASan checks).
  for (size_t n = 0; n < good.size(); ++n) {
    Bytes cut(good.begin(), good.begin() + static_cast<long>(n));
    cut.shrink_to_fit();
    Bytes out;
    const Response r = ask(cut, &out);
    EXPECT_EQ(r.outcome, Outcome::kMalformed) << n;
    EXPECT_EQ(r.error, ParseError::kTruncated) << n;
  }
  Bytes m = good;
  m[12] = 0x40;  // extended label type
  Bytes out;
  EXPECT_EQ(ask(m, &out).error, ParseError::kBadLabel);
  m = good;
  m.push_back(0);  // a byte after the question
  EXPECT_EQ(ask(m, &out).error, ParseError::kTrailingData);
  m = good;
  m[11] = 2;  // two additional records
  EXPECT_EQ(ask(m, &out).error, ParseError::kBadOpt);
  m = good;
  m[11] = 1;  // an additional record that is not an OPT
  m.insert(m.end(), {0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(ask(m, &out).error, ParseError::kBadOpt);
  // A name of 64-byte labels, and one longer than 255 bytes.
  Bytes longLabel(good.begin(), good.begin() + 12);
  longLabel.push_back(64);
  longLabel.insert(longLabel.end(), 64, 'a');
  EXPECT_EQ(ask(longLabel, &out).error, ParseError::kBadLabel);
  Bytes tooLong(good.begin(), good.begin() + 12);
  for (int i = 0; i < 5; ++i) tooLong.push_back(63), tooLong.insert(tooLong.end(), 63, 'a');
  tooLong.push_back(0);
  put16(tooLong, kTypeA);
  put16(tooLong, kClassIn);
  EXPECT_EQ(ask(tooLong, &out).error, ParseError::kNameTooLong);
}

TEST_F(Responder, WhatIsNotOneInClassQueryPassesOn) {
  const Message q = query("web.backend.svc.cluster.local", kTypeA);
  auto with = [&](auto change) {
    Bytes m = encode(q);
    change(m);
    Bytes out;
    return ask(m, &out).outcome;
  };
  EXPECT_EQ(with([](Bytes& m) { m[2] |= 0x80; }), Outcome::kPassOn) << "a response";
  EXPECT_EQ(with([](Bytes& m) { m[2] |= 0x28; }), Outcome::kPassOn) << "opcode UPDATE";
  EXPECT_EQ(with([](Bytes& m) { m[5] = 2; }), Outcome::kPassOn) << "two questions";
  EXPECT_EQ(with([](Bytes& m) { m[m.size() - 1] = 3; }), Outcome::kPassOn) << "class CH";
}

TEST_F(Responder, EdnsVersionOtherThanZeroGetsBadVers) {
  Bytes m = encode(query("web.backend.svc.cluster.local", kTypeA, 1232));
  m[m.size() - 5] = 1;  // OPT TTL: version 1
  Bytes out;
  const Response r = ask(m, &out);
  EXPECT_EQ(r.outcome, Outcome::kBadVersion);
  ASSERT_GE(out.size(), 11u);
  EXPECT_EQ(out[out.size() - 6], 1) << "extended rcode 1: BADVERS (16)";
  EXPECT_EQ(out[6] << 8 | out[7], 0);
}

TEST(ZoneBuild, BadNamesAreNamedAndLeftOut) {
  ZoneService bad{"Backend", "web", {ip("10.96.0.1")}, {}, {}, ""};
  ZoneService badTarget{"backend", "ext", {}, {}, {}, "not a name"};
  Zone zone(ZoneConfig{}, {bad, badTarget});
  ASSERT_EQ(zone.problems().size(), 2u);
  EXPECT_NE(zone.problems()[0].find("service Backend/web"), std::string::npos);
  EXPECT_NE(zone.problems()[1].find("externalName"), std::string::npos);
}

}  // namespace
}  // namespace nodeplane::dns
