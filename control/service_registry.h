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
#include <unordered_map>
#include <vector>

#include "control/model.h"
#include "core/result.h"
#include "lb/service_table.h"

namespace nodeplane::control {

class ServiceRegistry {
 public:
  using Services = std::map<std::string, ServiceSpec>;  // by namespace/name

  // Checks one service on its own and against `others` (which must not contain it).
  static Status validate(const ServiceSpec& s, const NodeSettings& settings,
                         const Services& others);
  // Address/port conflicts within a whole set of services, in one pass.
  static Status checkConflicts(const Services& all, const NodeSettings& settings);

  // A set of changes: a key mapped to a service sets it, to nothing removes it.
  using Changes = std::map<std::string, std::optional<ServiceSpec>>;

  // A service as the committed table holds it: its ports' inputs (Maglev tables resolved) and its
  // backends' keys.
  using BackendKey = std::tuple<uint32_t, uint32_t, uint16_t>;  // port id, IPv4, port
  struct BackendKeyHash {
    size_t operator()(const BackendKey& k) const {
      const uint64_t a = uint64_t{std::get<0>(k)} << 32 | std::get<1>(k);
      return std::hash<uint64_t>()(a * 0x9e3779b97f4a7c15ull ^ std::get<2>(k));
    }
  };
  struct Built {
    std::vector<lb::ServicePortInput> inputs;
    std::vector<BackendKey> keys;
  };

  struct Prepared {
    std::shared_ptr<const lb::ServiceTable> table;
    // What commit() applies.
    std::unordered_map<BackendKey, uint32_t, BackendKeyHash> newSlots;
    std::set<BackendKey> released;
    std::map<std::string, uint32_t> newPortIds;
    std::vector<uint32_t> tags;
    size_t freeSlotsUsed = 0;
    Changes changes;
    std::map<std::string, Built> rebuilt;
  };

  // Builds the service table for `next` in place of every service (flushing the `flush` slots'
  // flows: their tags change). Only services that differ are rebuilt.
  Result<Prepared> prepare(Services next, const NodeSettings& settings, int socketId,
                           const std::set<uint32_t>& flushSlots = {});
  // The same for a few changes: unchanged services are not looked at beyond being listed.
  Result<Prepared> prepareChanges(Changes changes, const NodeSettings& settings, int socketId,
                                  const std::set<uint32_t>& flushSlots = {});
  void commit(Prepared&& p);
  const std::shared_ptr<const lb::ServiceTable>& table() const { return table_; }

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

  // The backends' counters the tables built from now on count into (kept for the daemon's life).
  void setCounters(std::shared_ptr<lb::BackendCounters> counters) {
    counters_ = std::move(counters);
  }
  // New flows to backend `slot` dropped for want of an SNAT source port, since the slot was
  // given to its current backend.
  uint64_t snatExhausted(uint32_t slot) const;

 private:
  static std::string portKey(const ServiceSpec& s, const ServicePortSpec& p);

  Result<Built> build(const ServiceSpec& s, const NodeSettings& settings, Prepared& out,
                      uint32_t& newPortIds, uint32_t& newSlotIndex);

  Services services_;
  std::map<std::string, Built> built_;             // same keys as services_
  std::shared_ptr<const lb::ServiceTable> table_;  // the last committed
  std::map<std::string, uint32_t> portIds_;        // portKey -> id (never reused)
  std::map<uint32_t, std::string> portNames_;
  uint32_t nextPortId_ = 1;
  std::unordered_map<BackendKey, uint32_t, BackendKeyHash> slotOf_;
  std::vector<uint32_t> tags_{0};  // slot 0: no backend
  std::vector<uint32_t> freeSlots_;
  lb::MaglevCache maglev_;
  std::shared_ptr<lb::BackendCounters> counters_;
  std::unordered_map<uint32_t, uint64_t> counterBaselines_;  // slot -> total when handed out
};

}  // namespace nodeplane::control
