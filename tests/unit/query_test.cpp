// The HTTP query of the profile endpoints: strict, so a typo is an error and not another profile.
#include "agent/http/query.h"

#include <gtest/gtest.h>

namespace kvmprof {
namespace {

TEST(Query, DecodesKeysAndValuesAsNetUrlWritesThem) {
  auto q = parse_query("seconds=30&domain=web%201&mode=guest,host_kernel&name=a+b&flag&&empty=");
  ASSERT_TRUE(q.ok()) << q.error().message();
  EXPECT_EQ(*q, (std::map<std::string, std::string>{
                    {"seconds", "30"}, {"domain", "web 1"}, {"mode", "guest,host_kernel"}, {"name", "a b"}, {"flag", ""}, {"empty", ""}}));
  EXPECT_TRUE(parse_query("").ok());
  EXPECT_EQ(parse_query("domain=%22%0Aquoted%22")->at("domain"), "\"\nquoted\"");
}

TEST(Query, RefusesBadEscapesRepeatedKeysAndTooManyKeys) {
  EXPECT_EQ(parse_query("domain=%zz").error().message(), "bad %-escape in the query");
  EXPECT_FALSE(parse_query("domain=%4").ok());
  EXPECT_FALSE(parse_query("domain=%").ok());
  EXPECT_EQ(parse_query("seconds=1&seconds=2").error().message(), "query parameter 'seconds' given twice");
  std::string many;
  for (int i = 0; i <= 16; ++i) many += "k" + std::to_string(i) + "=1&";
  EXPECT_EQ(parse_query(many).error().message(), "more than 16 query parameters");
}

}  // namespace
}  // namespace kvmprof
