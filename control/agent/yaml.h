// YAML documents as JSON values, read with libyaml's event parser (Debian libyaml-dev).
//
// Why not yaml-cpp: version 0.7 (Debian 12) never returns from some malformed inputs (a document
// that begins with ',', a ',' line after a top-level scalar: found by fuzz_manifests), and its
// nodes expand aliases without bound. Here the events build JSON on an explicit stack (no
// recursion), nesting is bounded (json::kMaxDepth), and a document may expand to at most
// nodeBudget(text) values ("billion laughs" aliases are refused, not expanded).
//
// Scalars follow YAML 1.2's core schema as kubectl reads manifests: a plain scalar may be null,
// a boolean, an integer or a float; a quoted one is always a string. Mapping keys are strings.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"

namespace nodeplane::agent {

struct YamlDocuments {
  std::vector<json::Json> documents;  // those read before any error, in order
  std::string error;                  // empty: all of it was read
  size_t errorLine = 0;               // 1-based, when error is set
};

// At most this many values per document: four per byte of text, at least 100,000.
size_t nodeBudget(size_t textBytes);

YamlDocuments readYaml(std::string_view text);

}  // namespace nodeplane::agent
