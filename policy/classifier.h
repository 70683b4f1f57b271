// The compiled rules in DPDK's rte_acl: one multi-bit trie per rule set, built on the control
// thread, read by every worker (rte_acl_classify is read-only on a built context). Four result
// categories per lookup (see compiler.h).
#pragma once

#include <rte_byteorder.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "core/result.h"
#include "policy/compiler.h"

struct rte_acl_ctx;

namespace nodeplane::policy {

// The lookup key, in network byte order as on the wire (rte_acl's input convention).
struct AclKey {
  uint8_t protocol;
  uint8_t pad[3];
  rte_be32_t src;
  rte_be32_t dst;
  rte_be16_t sport;
  rte_be16_t dport;
};
static_assert(sizeof(AclKey) == 16);

class Classifier {
 public:
  // An empty rule list gives a classifier that matches nothing.
  static Result<std::unique_ptr<Classifier>> build(const std::vector<AclRule>& rules, int socketId);
  ~Classifier();
  Classifier(const Classifier&) = delete;
  Classifier& operator=(const Classifier&) = delete;

  // results[i * kCategories + c]: the result of key i in category c (0: no match).
  void classify(const AclKey* const* keys, uint32_t n, uint32_t* results) const;
  bool empty() const { return ctx_ == nullptr; }
  size_t rules() const { return rules_; }

 private:
  Classifier() = default;
  rte_acl_ctx* ctx_ = nullptr;
  size_t rules_ = 0;
};

}  // namespace nodeplane::policy
