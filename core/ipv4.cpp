#include "core/ipv4.h"

#include <charconv>
#include <cstdio>

namespace nodeplane {

namespace {

// Parses a decimal number in [0, max] with no sign, no leading zeros beyond "0", no spaces.
std::optional<uint32_t> parseDecimal(std::string_view text, uint32_t max) {
  if (text.empty() || text.size() > 10) return std::nullopt;
  if (text.size() > 1 && text[0] == '0') return std::nullopt;
  uint32_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value > max) return std::nullopt;
  return value;
}

}  // namespace

std::optional<Ipv4Address> Ipv4Address::parse(std::string_view text) {
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) {
    size_t dot = i < 3 ? text.find('.') : text.size();
    if (dot == std::string_view::npos) return std::nullopt;
    auto octet = parseDecimal(text.substr(0, dot), 255);
    if (!octet) return std::nullopt;
    value = value << 8 | *octet;
    text = i < 3 ? text.substr(dot + 1) : std::string_view{};
  }
  return Ipv4Address{value};
}

std::string Ipv4Address::toString() const {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%u.%u.%u.%u", value >> 24, (value >> 16) & 0xff,
                (value >> 8) & 0xff, value & 0xff);
  return buf;
}

std::optional<Ipv4Prefix> Ipv4Prefix::parse(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto address = Ipv4Address::parse(text.substr(0, slash));
  auto length = parseDecimal(text.substr(slash + 1), 32);
  if (!address || !length) return std::nullopt;
  Ipv4Prefix prefix{*address, static_cast<uint8_t>(*length)};
  if ((address->value & prefix.mask()) != address->value) return std::nullopt;
  return prefix;
}

std::string Ipv4Prefix::toString() const {
  return address.toString() + "/" + std::to_string(length);
}

bool Ipv4Prefix::overlaps(const Ipv4Prefix& other) const {
  const Ipv4Prefix& shorter = length <= other.length ? *this : other;
  const Ipv4Prefix& longer = length <= other.length ? other : *this;
  return shorter.contains(longer.address);
}

std::optional<MacAddress> MacAddress::parse(std::string_view text) {
  if (text.size() != 17) return std::nullopt;
  MacAddress mac;
  for (int i = 0; i < 6; ++i) {
    if (i > 0 && text[i * 3 - 1] != ':') return std::nullopt;
    uint32_t byte = 0;
    auto [end, ec] = std::from_chars(text.data() + i * 3, text.data() + i * 3 + 2, byte, 16);
    if (ec != std::errc() || end != text.data() + i * 3 + 2) return std::nullopt;
    mac.bytes[i] = static_cast<uint8_t>(byte);
  }
  return mac;
}

std::string MacAddress::toString() const {
  char buf[18];
  std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", bytes[0], bytes[1], bytes[2],
                bytes[3], bytes[4], bytes[5]);
  return buf;
}

bool MacAddress::isZero() const {
  for (uint8_t b : bytes)
    if (b != 0) return false;
  return true;
}

}  // namespace nodeplane
