// Base64 (RFC 4648, standard alphabet, padded): kubeconfig data fields, captured packets over
// the control protocol.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace nodeplane {

std::string base64Encode(std::string_view in);
// Padding, CR, LF and spaces are skipped; any other character outside the alphabet: nullopt.
std::optional<std::string> base64Decode(std::string_view in);

}  // namespace nodeplane
