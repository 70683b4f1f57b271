// The services of the model and what must stay stable across changes: service-port ids, backend
// liveness slots (a tracked flow dies when its backend's slot tag changes: backend removed or its
// flows flushed), and the Maglev table cache. A change is prepared without touching any of it and
// committed only once the snapshot carrying it is published. Control thread only.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/result.h"
#include "control/model.h"
#include "lb/service_table.h"

namespace nodeplane::control {

class ServiceRegistry {
 public:
  using Services = std::map<std::string, ServiceSpec>;  // by namespace/name

  // Checks one service on its own and against `others` (which must not contain it).
  static Status validate(const ServiceSpec& s, const NodeSettings& settings, const Services& others);
  // Address/port conflicts within a whole set of services, in one pass.
  static Status checkConflicts(const Services& all, const NodeSettings& settings);

  struct Prepared {
    std::shared_ptr<const lb::ServiceTable> table;
    // What commit() applies.
    std::map<std::tuple<uint32_t, uint32_t, uint16_t>, uint32_t> newSlots;
    std::set<std::tuple<uint32_t, uint32_t, uint16_t>> released;
    std::map<std::string, uint32_t> newPortIds;
    std::vector<uint32_t> tags;
    size_t freeSlotsUsed = 0;
    Services services;
  };

  // Builds the service table for `next` (flushing `flush` backends' flows: their tags change).
  Result<Prepared> prepare(Services next, const NodeSettings& settings, int socketId,
                           const std::set<uint32_t>& flushSlots = {});
  void commit(Prepared&& p);

  const Services& services() const { return services_; }
  // Slots of a service's backends (all ports), or of one backend address:port.
  std::set<uint32_t> slotsOf(const std::string& serviceKey) const;
  std::set<uint32_t> slotsOf(Ipv4Address ip, uint16_t port) const;
  // The service port an id stands for ("ns/name:port/proto"), for listings.
  std::string portName(uint32_t id) const;
  size_t maglevTables() const { return maglev_.size(); }

  static bool isLocal(const EndpointSpec& e, const NodeSettings& settings);
  // The port an endpoint serves a service port on, if it serves it at all.
  static std::optional<uint16_t> backendPort(const ServicePortSpec& p, const EndpointSpec& e);

 private:
  using BackendKey = std::tuple<uint32_t, uint32_t, uint16_t>;  // port id, IPv4, port
  static std::string portKey(const ServiceSpec& s, const ServicePortSpec& p);

  Services services_;
  std::map<std::string, uint32_t> portIds_;   // portKey -> id (never reused)
  std::map<uint32_t, std::string> portNames_;
  uint32_t nextPortId_ = 1;
  std::map<BackendKey, uint32_t> slotOf_;
  std::vector<uint32_t> tags_{0};             // slot 0: no backend
  std::vector<uint32_t> freeSlots_;
  lb::MaglevCache maglev_;
};

}  // namespace nodeplane::control
