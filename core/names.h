// Names the API server and the kernel accept, checked the way they check them, so that what
// they would refuse we refuse too (and say which field).
#pragma once

#include <string_view>

namespace nodeplane {

// A DNS-1123 label: 1-63 of [a-z0-9-], alphanumeric at both ends (namespaces, services).
bool isDnsLabel(std::string_view name);
// A DNS-1123 subdomain: at most 253, dot-separated labels (pods, nodes, most object names).
bool isDnsSubdomain(std::string_view name);
// A Linux network interface name: 1-15 printable characters, no '/', ',', '=', ':', white
// space; not "." or "..". (The last three characters are excluded for DPDK's devargs.)
bool isInterfaceName(std::string_view name);

}  // namespace nodeplane
