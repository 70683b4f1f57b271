// Label selectors: matching as metav1.LabelSelector defines it, and the name rules.
#include "policy/labels.h"

#include <gtest/gtest.h>

namespace nodeplane::policy {
namespace {

using Op = SelectorRequirement::Operator;

TEST(LabelSelector, EmptySelectsEverything) {
  LabelSelector s;
  EXPECT_TRUE(s.matches({}));
  EXPECT_TRUE(s.matches({{"app", "web"}}));
  EXPECT_EQ(s.toString(), "<all>");
}

TEST(LabelSelector, MatchLabelsNeedsEveryPair) {
  LabelSelector s{{{"app", "web"}, {"tier", "front"}}, {}};
  EXPECT_TRUE(s.matches({{"app", "web"}, {"tier", "front"}, {"x", "y"}}));
  EXPECT_FALSE(s.matches({{"app", "web"}}));
  EXPECT_FALSE(s.matches({{"app", "web"}, {"tier", "back"}}));
}

TEST(LabelSelector, EachOperator) {
  LabelSelector in{{}, {{"env", Op::kIn, {"dev", "stg"}}}};
  EXPECT_TRUE(in.matches({{"env", "dev"}}));
  EXPECT_FALSE(in.matches({{"env", "prod"}}));
  EXPECT_FALSE(in.matches({})) << "In needs the key";

  LabelSelector notIn{{}, {{"env", Op::kNotIn, {"prod"}}}};
  EXPECT_TRUE(notIn.matches({{"env", "dev"}}));
  EXPECT_TRUE(notIn.matches({})) << "NotIn matches a missing key";
  EXPECT_FALSE(notIn.matches({{"env", "prod"}}));

  LabelSelector exists{{}, {{"gpu", Op::kExists, {}}}};
  EXPECT_TRUE(exists.matches({{"gpu", ""}}));
  EXPECT_FALSE(exists.matches({{"cpu", "x"}}));

  LabelSelector absent{{}, {{"gpu", Op::kDoesNotExist, {}}}};
  EXPECT_FALSE(absent.matches({{"gpu", "a100"}}));
  EXPECT_TRUE(absent.matches({}));
}

TEST(LabelSelector, LabelsAndExpressionsTogether) {
  LabelSelector s{{{"app", "web"}}, {{"env", Op::kIn, {"dev"}}, {"canary", Op::kDoesNotExist, {}}}};
  EXPECT_TRUE(s.matches({{"app", "web"}, {"env", "dev"}}));
  EXPECT_FALSE(s.matches({{"app", "web"}, {"env", "dev"}, {"canary", "1"}}));
  EXPECT_EQ(s.toString(), "app=web,env in (dev),!canary");
}

TEST(Names, LabelKeysAndValues) {
  EXPECT_TRUE(isLabelKey("app"));
  EXPECT_TRUE(isLabelKey("kubernetes.io/metadata.name"));
  EXPECT_TRUE(isLabelKey("a_b.c-d"));
  EXPECT_FALSE(isLabelKey(""));
  EXPECT_FALSE(isLabelKey("-app"));
  EXPECT_FALSE(isLabelKey("Bad_Prefix!/x"));
  EXPECT_FALSE(isLabelKey("example.com/"));
  EXPECT_FALSE(isLabelKey(std::string(64, 'a')));
  EXPECT_TRUE(isLabelValue(""));
  EXPECT_TRUE(isLabelValue("v1.2_3-x"));
  EXPECT_FALSE(isLabelValue("a b"));
  EXPECT_FALSE(isLabelValue("x-"));
}

TEST(Names, PortNames) {
  EXPECT_TRUE(isPortName("http"));
  EXPECT_TRUE(isPortName("serve-80-tcp"));
  EXPECT_FALSE(isPortName("80"));    // no letter
  EXPECT_FALSE(isPortName("HTTP"));  // upper case
  EXPECT_FALSE(isPortName("a--b"));
  EXPECT_FALSE(isPortName("-a"));
  EXPECT_FALSE(isPortName("abcdefghijklmnop"));  // 16
}

}  // namespace
}  // namespace nodeplane::policy
