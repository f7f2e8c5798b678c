#include "policy/event_spec.h"

#include <gtest/gtest.h>
#include <linux/perf_event.h>

using namespace kvmprof;

TEST(EventSpec, KnowsSoftwareEventsAndAliases) {
  auto spec = std::get<EventSpec>(parse_event_spec("cs"));
  EXPECT_EQ(spec.text, "context-switches");
  EXPECT_EQ(std::get<SoftwareEvent>(spec.kind).config, uint64_t{PERF_COUNT_SW_CONTEXT_SWITCHES});
  EXPECT_EQ(std::get<EventSpec>(parse_event_spec("task-clock")).text, "task-clock");
}

TEST(EventSpec, ParsesTracepoints) {
  auto spec = std::get<EventSpec>(parse_event_spec("kvm:kvm_exit"));
  auto tp = std::get<TracepointEvent>(spec.kind);
  EXPECT_EQ(tp.subsystem, "kvm");
  EXPECT_EQ(tp.name, "kvm_exit");
}

TEST(EventSpec, PointsAtTheBadToken) {
  auto err = std::get<EventSpecError>(parse_event_spec("kvm:kvm exit"));
  EXPECT_EQ(err.column, 7u);
  EXPECT_EQ(std::get<EventSpecError>(parse_event_spec(":x")).column, 0u);
  EXPECT_EQ(std::get<EventSpecError>(parse_event_spec("kvm:")).column, 4u);
  EXPECT_EQ(std::get<EventSpecError>(parse_event_spec("task\"clock")).column, 4u);
  EXPECT_NE(std::get<EventSpecError>(parse_event_spec("cycles")).message.find("unknown event 'cycles'"),
            std::string::npos);
  EXPECT_EQ(std::get<EventSpecError>(parse_event_spec("")).message, "empty event spec");
}
