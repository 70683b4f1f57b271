// Plain-text tables for npctl: columns sized to their widest cell, numbers right-aligned.
#pragma once

#include <string>
#include <vector>

namespace nodeplane::control {

class TextTable {
 public:
  explicit TextTable(std::vector<std::string> header) : header_(std::move(header)) {}
  void addRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  // Key/value listings read better left-aligned throughout.
  void leftAlignNumbers() { rightAlignNumbers_ = false; }
  std::string render() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
  bool rightAlignNumbers_ = true;
};

}  // namespace nodeplane::control
