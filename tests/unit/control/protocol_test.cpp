#include "control/protocol.h"

#include <gtest/gtest.h>

namespace nodeplane::control {
namespace {

TEST(Protocol, ParsesAWellFormedRequest) {
  auto r = parseRequest(R"({"v":1,"id":"a7","op":"pod.list","args":{"x":1}})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->op, "pod.list");
  EXPECT_EQ(r->id, "a7");
  EXPECT_EQ(r->args["x"], 1);
  auto bare = parseRequest(R"({"v":1,"op":"status"})");
  ASSERT_TRUE(bare.ok());
  EXPECT_TRUE(bare->id.is_null());
  EXPECT_TRUE(bare->args.is_object());
}

TEST(Protocol, RejectsMalformedRequestsWithANamedProblem) {
  struct Case {
    const char* line;
    ErrorCode code;
    const char* mentions;
  } cases[] = {
      {"not json", ErrorCode::kBadRequest, "JSON"},
      {"[1,2]", ErrorCode::kBadRequest, "object"},
      {R"({"op":"status"})", ErrorCode::kBadRequest, "'v'"},
      {R"({"v":2,"op":"status"})", ErrorCode::kUnsupportedVersion, "version"},
      {R"({"v":"1","op":"status"})", ErrorCode::kUnsupportedVersion, "version"},
      {R"({"v":1})", ErrorCode::kBadRequest, "'op'"},
      {R"({"v":1,"op":7})", ErrorCode::kBadRequest, "'op'"},
      {R"({"v":1,"op":"status","args":[1]})", ErrorCode::kBadRequest, "'args'"},
      {R"({"v":1,"op":"status","extra":true})", ErrorCode::kBadRequest, "extra"},
      {"{\"v\":1,\"op\":\"\xff\xfe\"}", ErrorCode::kBadRequest, "JSON"},
  };
  for (const auto& c : cases) {
    auto r = parseRequest(c.line);
    ASSERT_FALSE(r.ok()) << c.line;
    EXPECT_EQ(r.error().code, c.code) << c.line;
    EXPECT_NE(r.error().message.find(c.mentions), std::string::npos) << r.error().message;
  }
}

TEST(Protocol, ARequestNestedDeeperThanAnyRequestIsRefusedBeforeItIsBuilt) {
  const std::string deep = R"({"v":1,"op":"status","args":{"a":)" + std::string(100, '[') + "1" +
                           std::string(100, ']') + "}}";
  auto r = parseRequest(deep);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kBadRequest);
  EXPECT_NE(r.error().message.find("nested deeper"), std::string::npos) << r.error().message;
}

TEST(Protocol, KeepsTheIdOfARejectedRequest) {
  Json id;
  auto r = parseRequest(R"({"v":9,"id":42,"op":"status"})", &id);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(id, 42);
}

TEST(Protocol, RepliesRoundTrip) {
  std::string ok = formatReply(5, Result<Json>(Json{{"a", 1}}));
  EXPECT_EQ(ok.back(), '\n');
  auto parsed = parseReply(ok.substr(0, ok.size() - 1));
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ((*parsed)["a"], 1);
  std::string err = formatReply(nullptr, Result<Json>(makeError(ErrorCode::kNotFound, "no pod x")));
  auto failed = parseReply(err);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(failed.error().message, "no pod x");
  EXPECT_FALSE(parseReply("garbage").ok());
}

TEST(Protocol, ArgReaderNamesOpAndField) {
  Json args = {{"name", 3}, {"n", 500}};
  ArgReader r("pod.attach", args);
  auto s = r.string("name");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message, "pod.attach: field 'name': not a string");
  EXPECT_FALSE(r.string("missing").ok());
  EXPECT_FALSE(r.integer("n", 0, 100).ok());
  EXPECT_FALSE(r.onlyFields({"name"}).ok());
  EXPECT_TRUE(r.onlyFields({"name", "n"}).ok());
}

}  // namespace
}  // namespace nodeplane::control
