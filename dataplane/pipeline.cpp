#include "dataplane/pipeline.h"

namespace nodeplane::dataplane {

namespace {

struct NoObserver {
  void operator()(const char*, const Burst&) const {}
};

}  // namespace

void runStages(Burst& burst, const Snapshot& snapshot, WorkerContext& ctx) {
  runStagesTraced(burst, snapshot, ctx, NoObserver{});
}

}  // namespace nodeplane::dataplane
