#include "dataplane/pipeline.h"

#include "dataplane/parse.h"
#include "dataplane/pod_ingress.h"
#include "dataplane/route_stage.h"
#include "dataplane/uplink_ingress.h"
#include "lb/service_stage.h"

namespace nodeplane::dataplane {

void runStages(Burst& burst, const Snapshot& snapshot, WorkerContext& ctx) {
  parseBurst(burst);
  switch (snapshot.ports[burst.inPort].role) {
    case PortRole::kPod:
      podIngressStage(burst, snapshot, ctx);
      break;
    case PortRole::kUplink:
      uplinkIngressStage(burst, snapshot, ctx);
      break;
    case PortRole::kUnused:
      for (uint16_t i = 0; i < burst.count; ++i)
        if (burst.meta[i].action == Action::kContinue)
          burst.meta[i].setDrop(DropReason::kPortNotServed);
      return;
  }
  lb::serviceStage(burst, snapshot, ctx);
  routeStage(burst, snapshot, ctx);
}

}  // namespace nodeplane::dataplane
