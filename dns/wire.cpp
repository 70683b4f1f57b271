#include "dns/wire.h"

namespace nodeplane::dns {

namespace {

constexpr unsigned kMaxPointers = 16;  // more than any sane message uses for one name

inline uint8_t lowerAscii(uint8_t c) {
  return c >= 'A' && c <= 'Z' ? static_cast<uint8_t>(c + 32) : c;
}

}  // namespace

ParseError readName(const uint8_t* msg, size_t len, size_t* offset, Name* out) {
  size_t at = *offset;
  size_t runStart = at;  // where the current run of labels began: pointers must go before it
  size_t resume = 0;     // where the caller continues (past the first pointer)
  unsigned pointers = 0;
  out->length = 0;
  out->labels = 0;
  while (true) {
    if (at >= len) return ParseError::kTruncated;
    const uint8_t b = msg[at];
    if ((b & 0xc0) == 0xc0) {
      if (at + 1 >= len) return ParseError::kTruncated;
      const size_t target = static_cast<size_t>(b & 0x3f) << 8 | msg[at + 1];
      // Strictly backwards of every label read so far: no loops, and bounded anyway.
      if (target >= runStart || ++pointers > kMaxPointers) return ParseError::kBadPointer;
      if (resume == 0) resume = at + 2;
      at = runStart = target;
      continue;
    }
    if (b & 0xc0) return ParseError::kBadLabel;
    if (b == 0) {
      if (out->length + 1u > kMaxName) return ParseError::kNameTooLong;
      out->wire[out->length] = 0;
      out->lower[out->length] = 0;
      ++out->length;
      *offset = resume != 0 ? resume : at + 1;
      return ParseError::kNone;
    }
    if (at + 1 + b > len) return ParseError::kTruncated;
    if (out->length + 1u + b + 1u > kMaxName || out->labels >= kMaxLabels)
      return ParseError::kNameTooLong;
    out->labelOffsets[out->labels++] = out->length;
    out->wire[out->length] = b;
    out->lower[out->length] = b;
    ++out->length;
    for (unsigned i = 0; i < b; ++i) {
      const uint8_t c = msg[at + 1 + i];
      out->wire[out->length] = c;
      out->lower[out->length] = lowerAscii(c);
      ++out->length;
    }
    at += 1u + b;
  }
}

ParseError parseQuery(const uint8_t* msg, size_t len, Query* q) {
  if (len < kHeaderSize) return ParseError::kTruncated;
  q->id = load16(msg);
  q->flags = load16(msg + 2);
  q->qdcount = load16(msg + 4);
  q->ancount = load16(msg + 6);
  q->nscount = load16(msg + 8);
  q->arcount = load16(msg + 10);
  q->edns = false;
  if (q->qdcount != 1 || q->ancount != 0 || q->nscount != 0) return ParseError::kNone;
  size_t at = kHeaderSize;
  if (ParseError e = readName(msg, len, &at, &q->name); e != ParseError::kNone) return e;
  if (at + 4 > len) return ParseError::kTruncated;
  q->qtype = load16(msg + at);
  q->qclass = load16(msg + at + 2);
  at += 4;
  q->questionEnd = at;
  if (q->arcount > 1) return ParseError::kBadOpt;
  if (q->arcount == 1) {
    // OPT: root name, type 41, class = UDP size, TTL = extended rcode, version, flags; RDATA.
    if (at + 11 > len) return ParseError::kTruncated;
    if (msg[at] != 0 || load16(msg + at + 1) != kTypeOpt) return ParseError::kBadOpt;
    q->edns = true;
    q->ednsSize = load16(msg + at + 3);
    q->ednsVersion = msg[at + 6];
    q->dnssecOk = msg[at + 7] & 0x80;
    const size_t rdlen = load16(msg + at + 9);
    at += 11;
    if (at + rdlen > len) return ParseError::kTruncated;
    at += rdlen;
  }
  if (at != len) return ParseError::kTrailingData;
  return ParseError::kNone;
}

}  // namespace nodeplane::dns
