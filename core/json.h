// Reading untrusted JSON without exceptions. nlohmann's value() and get() throw on a wrong type,
// operator[] on a const object without the key is undefined, and copying, dumping or walking a
// value recurses once per nesting level. Everything that reads JSON from outside (requests,
// manifests, API server objects, CNI configs, plugin output) goes through these: a field of the
// wrong type reads as absent (the caller's validation names it), and nothing nests deeper than
// a bound.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <string_view>

namespace nodeplane::json {

using Json = nlohmann::json;

// Deeper than any object this project reads (a NetworkPolicy is about 10 levels).
inline constexpr unsigned kMaxDepth = 64;

// How deep the arrays and objects of `text` nest (strings skipped); one pass, no recursion.
unsigned nestingDepth(std::string_view text);

// `text` as one JSON value, or nothing (with *error set) when it is not valid JSON or nests
// deeper than `maxDepth` (checked before anything is built).
std::optional<Json> parse(std::string_view text, std::string* error = nullptr,
                          unsigned maxDepth = kMaxDepth);

// The text of the next JSON value in a stream of concatenated values (as `kubectl get -o json
// --watch` prints them), whitespace before it skipped, read to the value's end without parsing
// it; then parse() reads it. Nothing when the stream ends before a value (*error empty) or ends
// inside one (*error set). A value nesting deeper than `maxDepth` is read to its end all the
// same (the stream stays usable) and returned with *error set.
std::optional<std::string> readValueText(std::istream& in, std::string* error,
                                         unsigned maxDepth = kMaxDepth);

// The value at `key` of `object`; a null value when `object` is not an object or has no such key.
const Json& field(const Json& object, std::string_view key);
// The value at a dotted path ("metadata.name"), as field() at each step.
const Json& path(const Json& object, std::string_view dotted);

// The string / integer / boolean at `key`; `fallback` when absent or of another type.
std::string string(const Json& object, std::string_view key, std::string_view fallback = "");
int64_t integer(const Json& object, std::string_view key, int64_t fallback = 0);
bool boolean(const Json& object, std::string_view key, bool fallback = false);

}  // namespace nodeplane::json
