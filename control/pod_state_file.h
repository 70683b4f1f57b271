// Attached pods survive a daemon restart: the node's attachments are written to a state file
// after every change (to a temporary file, then renamed over the old one) and read back at
// start. A missing file is a first start; an unreadable one, or one of another node, is logged
// and ignored. Control thread only.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "control/model.h"

namespace nodeplane::control {

class PodStateFile {
 public:
  // `path` empty: nothing is kept.
  PodStateFile(std::string path, std::string nodeName)
      : path_(std::move(path)), nodeName_(std::move(nodeName)) {}

  bool enabled() const { return !path_.empty(); }
  const std::string& path() const { return path_; }

  // Replaces the file's contents; a failure is logged (the attachments are then not kept).
  void save(const std::vector<PodAttachment>& pods) const;
  // The attachments the file lists; entries that do not read as an attachment are logged and
  // left out. Nothing (nullopt) when there is no file (a first start), when it is unreadable or
  // another node's (logged): then the file is left as it is.
  std::optional<std::vector<PodAttachment>> load() const;

 private:
  std::string path_;
  std::string nodeName_;
};

}  // namespace nodeplane::control
