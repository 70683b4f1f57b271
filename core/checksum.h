// Internet checksum updates for headers rewritten on the hot path (RFC 1624, eqn. 3).
#pragma once

#include <rte_byteorder.h>
#include <rte_ip.h>

#include <cstdint>

namespace nodeplane {

// HC' = ~(~HC + ~m + m') for one 16-bit word changing from oldWord to newWord.
// All values as stored in the packet (network order); the arithmetic is byte-order neutral.
inline rte_be16_t checksumUpdate16(rte_be16_t checksum, rte_be16_t oldWord, rte_be16_t newWord) {
  uint32_t sum = static_cast<uint16_t>(~checksum) + static_cast<uint16_t>(~oldWord) + newWord;
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<rte_be16_t>(~sum);
}

// The same for a 32-bit field (an IPv4 address).
inline rte_be16_t checksumUpdate32(rte_be16_t checksum, rte_be32_t oldValue, rte_be32_t newValue) {
  uint32_t sum = static_cast<uint16_t>(~checksum);
  sum += static_cast<uint16_t>(~oldValue) + static_cast<uint16_t>(~(oldValue >> 16));
  sum += (newValue & 0xffff) + (newValue >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<rte_be16_t>(~sum);
}

// The same change in a partial checksum: the pseudo-header sum a sender leaves for the hardware
// (or the receiving kernel) to finish, not complemented (DPDK's TX checksum offload convention
// and Linux's CHECKSUM_PARTIAL alike). Only pseudo-header fields (addresses, length) may be
// changed this way: the ports and the payload are summed when the checksum is finished.
inline rte_be16_t partialChecksumUpdate32(rte_be16_t partial, rte_be32_t oldValue,
                                          rte_be32_t newValue) {
  return static_cast<rte_be16_t>(
      ~checksumUpdate32(static_cast<rte_be16_t>(~partial), oldValue, newValue));
}

// Decrements the TTL of a valid IPv4 header (TTL > 1) and patches its checksum.
inline void decrementTtl(rte_ipv4_hdr* ip) {
  // TTL is the high byte of the 16-bit word it shares with the protocol.
  rte_be16_t oldWord = *reinterpret_cast<const rte_be16_t*>(&ip->time_to_live);
  --ip->time_to_live;
  rte_be16_t newWord = *reinterpret_cast<const rte_be16_t*>(&ip->time_to_live);
  ip->hdr_checksum = checksumUpdate16(ip->hdr_checksum, oldWord, newWord);
}

}  // namespace nodeplane
