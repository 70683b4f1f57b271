// The operations of the control protocol: a table from op name to a thin handler that reads the
// args, calls the core function (NodeController) or reads statistics (DataplaneBackend) and
// returns the result as JSON. Shared by the socket server and tests.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>

#include "control/flow_observer.h"
#include "control/metrics_stats.h"
#include "control/node_controller.h"
#include "control/packet_capture.h"
#include "control/protocol.h"

namespace nodeplane::control {

class ControlApi {
 public:
  ControlApi(NodeController& node, dataplane::DataplaneBackend& backend);

  Result<Json> handle(const Request& request);
  // One request line to its reply line (what the socket server calls). An apply request is read
  // straight from the line (apply_reader.h); every other goes through parseRequest and handle.
  std::string handleLine(std::string_view line);

  struct Operation {
    std::string help;
    std::function<Result<Json>(const ArgReader&, const Json&)> run;
  };
  const std::map<std::string, Operation>& operations() const { return ops_; }
  const ApplyStats& applyStats() const { return applyStats_; }
  // What status reports for the metrics endpoint ("127.0.0.1:9964", "off", "failed: ...").
  void setMetricsState(std::string state) { metricsState_ = std::move(state); }
  // The flow log's history (drained by the daemon's tick).
  FlowObserver& flowObserver() { return flows_; }
  // Packet capture sessions (idle ones expired by the daemon's tick).
  PacketCapture& packetCapture() { return capture_; }

 private:
  Result<Json> status() const;
  Result<Json> ports() const;
  Result<Json> workers() const;
  Result<Json> drops(const ArgReader& args, const Json& raw) const;
  Result<Json> podAttach(const ArgReader& args, const Json& raw);
  Result<Json> podDetach(const ArgReader& args);
  Result<Json> podList() const;
  Result<Json> nodeSet(const Json& raw);
  Result<Json> nodeDelete(const ArgReader& args);
  Result<Json> nodeList() const;
  Result<Json> neighbors() const;
  Result<Json> serviceSet(const Json& raw);
  Result<Json> serviceEndpoints(const ArgReader& args, const Json& raw);
  Result<Json> serviceDelete(const ArgReader& args);
  Result<Json> serviceList() const;
  Result<Json> flows(const ArgReader& args, const Json& raw) const;
  Result<Json> flowsFlush(const ArgReader& args);
  Result<Json> conntrackStats() const;
  Result<Json> affinity() const;
  Result<Json> apply(const Json& raw);
  Result<Json> apply(Result<DesiredState> state);
  Result<Json> policyApply(const Json& raw);
  Result<Json> policyList() const;
  Result<Json> policyLog(const ArgReader& args) const;
  Result<Json> policyCheck(const ArgReader& args) const;
  Result<Json> observe(const ArgReader& args) const;
  Result<Json> clusterPeerSet(const ArgReader& args, const Json& raw);
  Result<Json> clusterPeerDelete(const ArgReader& args);
  Result<Json> clusterPeers() const;
  Result<Json> clusterGatewaysSet(const ArgReader& args, const Json& raw);
  Result<Json> clusterExportSet(const ArgReader& args);
  Result<Json> clusterExportDelete(const ArgReader& args);
  Result<Json> clusterExports() const;
  Result<Json> clusterImports() const;

  NodeController& node_;
  dataplane::DataplaneBackend& backend_;
  std::map<std::string, Operation> ops_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  ApplyStats applyStats_;
  std::string metricsState_ = "off";
  FlowObserver flows_;
  PacketCapture capture_;
};

Json podToJson(const AttachedPod& pod);

}  // namespace nodeplane::control
