// IPv4 addresses, prefixes and MAC addresses as plain values, with strict parsing.
// Addresses are kept in host byte order; the data plane converts at its edge.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nodeplane {

struct Ipv4Address {
  uint32_t value = 0;  // host byte order

  static std::optional<Ipv4Address> parse(std::string_view text);
  std::string toString() const;
  auto operator<=>(const Ipv4Address&) const = default;
};

struct Ipv4Prefix {
  Ipv4Address address;  // network address (host bits zero)
  uint8_t length = 0;

  // Accepts "a.b.c.d/n" only; host bits set is an error (it usually means a typo).
  static std::optional<Ipv4Prefix> parse(std::string_view text);
  std::string toString() const;
  uint32_t mask() const { return length == 0 ? 0 : ~uint32_t{0} << (32 - length); }
  bool contains(Ipv4Address a) const { return (a.value & mask()) == address.value; }
  bool overlaps(const Ipv4Prefix& other) const;
  auto operator<=>(const Ipv4Prefix&) const = default;
};

struct MacAddress {
  std::array<uint8_t, 6> bytes{};

  static std::optional<MacAddress> parse(std::string_view text);  // "aa:bb:cc:dd:ee:ff"
  std::string toString() const;
  bool isZero() const;
  bool isMulticast() const { return bytes[0] & 1; }
  auto operator<=>(const MacAddress&) const = default;
};

}  // namespace nodeplane
