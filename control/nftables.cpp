#include "control/nftables.h"

#include <nftables/libnftables.h>

#include <cctype>
#include <memory>

namespace nodeplane::control {

namespace {

struct NftDeleter {
  void operator()(nft_ctx* c) const { nft_ctx_free(c); }
};

}  // namespace

Status runNftScript(const std::string& script, const std::string& what) {
  std::unique_ptr<nft_ctx, NftDeleter> ctx(nft_ctx_new(NFT_CTX_DEFAULT));
  if (!ctx) return makeError(ErrorCode::kInternal, what + ": nftables context");
  nft_ctx_buffer_output(ctx.get());
  nft_ctx_buffer_error(ctx.get());
  if (nft_run_cmd_from_buffer(ctx.get(), script.c_str()) != 0) {
    std::string error = nft_ctx_get_error_buffer(ctx.get());
    while (!error.empty() && (error.back() == '\n' || error.back() == ' ')) error.pop_back();
    return makeError(ErrorCode::kUnavailable, what + ": " + error);
  }
  return okStatus();
}

bool isSafeInterfaceName(const std::string& name) {
  if (name.empty() || name.size() > 15) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      return false;
  return true;
}

}  // namespace nodeplane::control
