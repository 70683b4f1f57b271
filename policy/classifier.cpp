#include "policy/classifier.h"

#include <rte_acl.h>

#include <atomic>
#include <cstddef>
#include <cstring>
#include <string>

namespace nodeplane::policy {

namespace {

enum Field { kProto, kSrc, kDst, kSport, kDport, kFieldCount };

// Fields are read in 4-byte groups (input_index); the first field must be one byte.
const rte_acl_field_def kFieldDefs[kFieldCount] = {
    {RTE_ACL_FIELD_TYPE_BITMASK, sizeof(uint8_t), kProto, 0, offsetof(AclKey, protocol)},
    {RTE_ACL_FIELD_TYPE_MASK, sizeof(uint32_t), kSrc, 1, offsetof(AclKey, src)},
    {RTE_ACL_FIELD_TYPE_MASK, sizeof(uint32_t), kDst, 2, offsetof(AclKey, dst)},
    {RTE_ACL_FIELD_TYPE_RANGE, sizeof(uint16_t), kSport, 3, offsetof(AclKey, sport)},
    {RTE_ACL_FIELD_TYPE_RANGE, sizeof(uint16_t), kDport, 3, offsetof(AclKey, dport)},
};

RTE_ACL_RULE_DEF(NpAclRule, kFieldCount);

std::atomic<uint32_t> sequence{0};  // rte_acl contexts need unique names

}  // namespace

Result<std::unique_ptr<Classifier>> Classifier::build(const std::vector<AclRule>& rules,
                                                      int socketId) {
  std::unique_ptr<Classifier> c(new Classifier());
  c->rules_ = rules.size();
  if (rules.empty()) return c;
  const std::string name = "np_acl_" + std::to_string(sequence.fetch_add(1));
  rte_acl_param param{};
  param.name = name.c_str();
  param.socket_id = socketId;
  param.rule_size = RTE_ACL_RULE_SZ(kFieldCount);
  param.max_rule_num = static_cast<uint32_t>(rules.size());
  c->ctx_ = rte_acl_create(&param);
  if (c->ctx_ == nullptr)
    return makeError(ErrorCode::kResourceExhausted, "policy classifier: rte_acl_create failed: " +
                                                        std::string(rte_strerror(rte_errno)));

  std::vector<NpAclRule> acl(rules.size());
  for (size_t i = 0; i < rules.size(); ++i) {
    const AclRule& r = rules[i];
    NpAclRule& a = acl[i];
    std::memset(&a, 0, sizeof(a));
    a.data.category_mask = r.categories;
    a.data.priority = r.priority;
    a.data.userdata = r.result;
    a.field[kProto].value.u8 = r.anyProtocol ? 0 : r.protocol;
    a.field[kProto].mask_range.u8 = r.anyProtocol ? 0 : 0xff;
    a.field[kSrc].value.u32 = r.src.address.value;
    a.field[kSrc].mask_range.u32 = r.src.length;
    a.field[kDst].value.u32 = r.dst.address.value;
    a.field[kDst].mask_range.u32 = r.dst.length;
    a.field[kSport].value.u16 = 0;
    a.field[kSport].mask_range.u16 = 0xffff;
    a.field[kDport].value.u16 = r.dportLow;
    a.field[kDport].mask_range.u16 = r.dportHigh;
  }
  if (int rc = rte_acl_add_rules(c->ctx_, reinterpret_cast<const rte_acl_rule*>(acl.data()),
                                 static_cast<uint32_t>(acl.size()));
      rc != 0)
    return makeError(ErrorCode::kInternal, "policy classifier: adding " +
                                               std::to_string(acl.size()) +
                                               " rules failed: " + std::string(rte_strerror(-rc)));
  rte_acl_config cfg{};
  cfg.num_categories = kCategories;
  cfg.num_fields = kFieldCount;
  std::memcpy(cfg.defs, kFieldDefs, sizeof(kFieldDefs));
  if (int rc = rte_acl_build(c->ctx_, &cfg); rc != 0)
    return makeError(ErrorCode::kResourceExhausted,
                     "policy classifier: building the trie of " + std::to_string(acl.size()) +
                         " rules failed: " + std::string(rte_strerror(-rc)));
  return c;
}

Classifier::~Classifier() {
  if (ctx_) rte_acl_free(ctx_);
}

void Classifier::classify(const AclKey* const* keys, uint32_t n, uint32_t* results) const {
  if (ctx_ == nullptr) {
    std::memset(results, 0, sizeof(uint32_t) * n * kCategories);
    return;
  }
  rte_acl_classify(ctx_, reinterpret_cast<const uint8_t**>(const_cast<const AclKey**>(keys)),
                   results, n, kCategories);
}

}  // namespace nodeplane::policy
