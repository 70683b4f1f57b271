// The cluster's DNS zone as the Kubernetes DNS specification (schema 1.1.0) and CoreDNS's
// kubernetes plugin define it, built whole by the control thread from the services it knows and
// read by workers without locks (it is immutable once built; snapshots share it).
//
// Every record is encoded once, at build time, in wire form with its owner written as a
// compression pointer to the question (offset 12): a worker's answer is the question echoed and
// these bytes copied. Lookups hash the lowercased wire name; nothing allocates.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dns/wire.h"

namespace nodeplane::dns {

// A Service as DNS needs it (control/snapshot_assembly fills it from the model).
struct ZonePort {
  std::string name;  // empty: no SRV record
  uint8_t protocol = 6;
  uint16_t port = 0;
};
struct ZoneEndpoint {
  uint32_t ip = 0;  // host order
  std::string hostname;
  bool ready = true;
  std::vector<ZonePort> ports;  // as this endpoint serves them (headless SRV)
};
struct ZoneService {
  std::string namespaceName, name;
  std::vector<uint32_t> clusterIps;  // host order; empty and no externalName: headless
  std::vector<ZonePort> ports;
  std::vector<ZoneEndpoint> endpoints;
  std::string externalName;  // ExternalName services: the CNAME target
};

struct ZoneConfig {
  std::string domain = "cluster.local";
  uint32_t ttl = 5;
  uint32_t serial = 1;  // the SOA serial
  bool ready = true;    // false: the cluster's state is not known yet (SERVFAIL)
};

// The records of one name. A name that is present with no record of a type answers NODATA.
struct RecordSet {
  uint16_t count = 0;
  std::string wire;  // `count` records, each owned by the question's name (pointer 0xc00c)
};
struct ZoneName {
  RecordSet a, srv, ptr, cname, txt, soa, ns;
  RecordSet additional;  // A records of SRV targets (full owner names)
};

class Zone {
 public:
  // Problems with one service (a name that is not a label, an externalName that is not a DNS
  // name) leave that service's records out and are listed in problems().
  Zone(const ZoneConfig& config, const std::vector<ZoneService>& services);

  const ZoneConfig& config() const { return config_; }
  const std::vector<std::string>& problems() const { return problems_; }
  size_t names() const { return names_.size(); }

  // The lowercased wire form of the zone's apex ("\7cluster\5local\0"), its label count.
  std::string_view apex() const { return apex_; }
  unsigned apexLabels() const { return apexLabels_; }

  // Lookup by a lowercased wire name (Name::key()).
  const ZoneName* find(std::string_view key) const {
    auto it = names_.find(key);
    return it == names_.end() ? nullptr : &it->second;
  }
  // The SOA record with the apex as owner (authority section of NXDOMAIN and NODATA answers).
  const std::string& soaAuthority() const { return soaAuthority_; }

  // Lowercased wire form of a dotted name ("a.b" -> "\1a\1b\0"); empty when not a DNS name.
  static std::string toWire(std::string_view dotted);

 private:
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  struct KeyEq {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const { return a == b; }
  };

  ZoneName& at(const std::string& wire);  // creates it and its empty ancestors in the zone
  void addService(const ZoneService& s);
  void addA(const std::string& owner, uint32_t ip);
  void addPtr(uint32_t ip, const std::string& target);

  ZoneConfig config_;
  std::string apex_;
  unsigned apexLabels_ = 0;
  std::string soaAuthority_;
  std::unordered_map<std::string, ZoneName, KeyHash, KeyEq> names_;
  std::vector<std::string> problems_;
};

}  // namespace nodeplane::dns
