#include "control/pod_state_file.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "control/model_json.h"

namespace nodeplane::control {

void PodStateFile::save(const std::vector<PodAttachment>& pods) const {
  if (!enabled()) return;
  Json list = Json::array();
  for (const PodAttachment& pod : pods) list.push_back(podAttachmentToJson(pod));
  const Json doc = {{"version", 1}, {"node", nodeName_}, {"pods", list}};
  const std::string tmp = path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << doc.dump(1) << "\n";
    if (!out) {
      spdlog::warn("state file {}: cannot write; attachments will not survive a restart", tmp);
      return;
    }
  }
  if (std::rename(tmp.c_str(), path_.c_str()) != 0)
    spdlog::warn("state file {}: rename failed: {}", path_, std::strerror(errno));
}

std::optional<std::vector<PodAttachment>> PodStateFile::load() const {
  if (!enabled()) return std::nullopt;
  std::ifstream in(path_);
  if (!in) return std::nullopt;  // first start
  Json doc = Json::parse(in, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("pods") || !doc["pods"].is_array()) {
    spdlog::warn("state file {}: unreadable, starting without pods", path_);
    return std::nullopt;
  }
  const Json* node = doc.contains("node") ? &doc["node"] : nullptr;
  const std::string owner = node != nullptr && node->is_string() ? node->get<std::string>() : "";
  if (owner != nodeName_) {
    spdlog::warn("state file {} belongs to node '{}', not '{}': ignored", path_, owner, nodeName_);
    return std::nullopt;
  }
  std::vector<PodAttachment> pods;
  for (const Json& args : doc["pods"]) {
    auto spec = podAttachmentFromJson("state file", args);
    if (!spec) {
      spdlog::warn("state file {}: {}", path_, spec.error().message);
      continue;
    }
    pods.push_back(std::move(*spec));
  }
  return pods;
}

}  // namespace nodeplane::control
